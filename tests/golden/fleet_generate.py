"""Golden trajectories of CarbonFleet-v0: the fleet environment's observable behaviour frozen before its step was
compiled (issue 9, allocation-free fleet step).

    python tests/golden/fleet_generate.py            # rewrite tests/golden/fleet_trajectories.json
    python tests/golden/fleet_generate.py --check    # compare (what tests/test_fleet_golden.py does)

Three cases (``CASES``), each a list of (seed, split, policy, steps):

- ``fleet_small``: the shipped 6-job scenario (no faults, 16 slots: padding slots), whole episodes on every split;
- ``fleet_small_faults``: the same jobs with every fault on (GPU failures, failed transfers, spot shortages,
  outages), regional power caps that bind (cap excess in the reward) and 4 slots (jobs outside the slots keep
  their course), whole episodes;
- ``fleet``: the shipped 160-job Philly scenario, the first 300 steps (a week is 672), needs the Philly trace.

Policies: ``slots`` draws from ``default_rng(20_000 + seed)`` a uniform target and level among each slot's
unmasked ones (``action_masks()``), and with probability 0.05 per slot any target / level (masked ones are counted
in ``invalid_actions``) or, rarely, one out of range (``step`` refuses it; the compiled step ignores and counts
it); ``jobs`` calls ``step_jobs`` with a uniform valid target per open job (from ``job_view(j).mask``), a uniform
level, the pools' FIFO order on every other step.

Per episode the file stores SHA-256 hashes of the exact bytes of every step's observation (float32), reward,
terminated / truncated, action mask and every info value (each value's type, dtype and shape too, in key order;
``fleet_episode`` at the end), and of ``episode_metrics()`` and ``gpus_in_use_log()`` at the end, plus a copy of the
final info scalars (for a readable diff when a hash changes). Only the env's public API is used.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from envs.fleet import CarbonFleetEnv  # noqa: E402
from sim.rules import WAIT  # noqa: E402
from sim.scenario import SCENARIO_DIR, parse_fleet_scenario  # noqa: E402
from tests.golden.generate import cli, trajectory_problems  # noqa: E402

PATH = Path(__file__).with_name("fleet_trajectories.json")
SPLITS = ("train", "validation", "test")
CASES = {
    "fleet_small": [(s, SPLITS[s % 3], "slots", None) for s in range(6)],
    "fleet_small_faults": [(s, SPLITS[s % 3], "slots" if s % 2 == 0 else "jobs", None) for s in range(8)],
    "fleet": [(0, "test", "slots", 300), (1, "train", "slots", 300), (2, "validation", "jobs", 120)],
}
SCALAR_KEYS = (
    "t_s",
    "carbon_kg",
    "energy_kwh",
    "jobs_completed",
    "migrations",
    "lost_minibatches",
    "rollbacks",
    "cap_violation_s",
    "invalid_actions",
)


def faults_scenario():
    """fleet_small with every fault on and regional power caps that bind (KR 600 W, DE 900 W, CA-ON uncapped)."""
    data = copy.deepcopy(yaml.safe_load((SCENARIO_DIR / "fleet_small.yaml").read_text()))
    data["faults"] = {
        "gpu_failure_per_gpu_hour": 0.05,
        "transfer_failure_prob": 0.3,
        "shortage_scale": 1.0,
        "outage_per_region_day": 3.0,
    }
    data["regions"][0]["power_cap_w"] = 600.0
    data["regions"][1]["power_cap_w"] = 900.0
    return parse_fleet_scenario(data, "fleet_small_faults.yaml")


def make_env(case: str, split: str) -> CarbonFleetEnv:
    if case == "fleet_small_faults":
        return CarbonFleetEnv(faults_scenario(), split, n_slots=4)
    return CarbonFleetEnv(case, split)


class _Hash:
    def __init__(self):
        self.h = hashlib.sha256()

    def add(self, v) -> None:
        if isinstance(v, dict):
            for k in v:
                self.h.update(f"<{k}>".encode())
                self.add(v[k])
        elif isinstance(v, np.ndarray):
            self.h.update(f"{v.dtype.str}{v.shape}".encode())
            self.h.update(np.ascontiguousarray(v).tobytes())
        else:  # Python and NumPy scalars: type and exact value
            self.h.update(f"{type(v).__name__}:{v!r}".encode())

    def hex(self) -> str:
        return self.h.hexdigest()


def slot_action(env: CarbonFleetEnv, rng: np.random.Generator) -> np.ndarray:
    R1, L, K = env.R + 1, env.L, env.K
    m = env.action_masks().reshape(K, R1 + L)
    a = np.empty(2 * K, dtype=np.int64)
    for s in range(K):
        t_ok, l_ok = np.flatnonzero(m[s, :R1]), np.flatnonzero(m[s, R1:])
        a[2 * s], a[2 * s + 1] = rng.choice(t_ok), rng.choice(l_ok)
        u = rng.random()
        if u < 0.05:  # any choice, masked or not
            a[2 * s], a[2 * s + 1] = rng.integers(R1), rng.integers(L)
        elif u < 0.06:  # out of range
            a[2 * s] = R1
    return a


def slot_step(env: CarbonFleetEnv, a: np.ndarray):
    """``env.step(a)``; an out-of-range choice (which ``step`` refuses since issue 23) goes to the compiled step
    directly, which ignores and counts it as before: the trajectories frozen with it stay comparable."""
    if (a[0::2] <= env.R).all():
        return env.step(a)
    try:
        env.step(a)
    except ValueError:
        return env._advance(a.reshape(env.K, 2), True)
    raise AssertionError("CarbonFleetEnv.step accepted an out-of-range action")


def job_decisions(env: CarbonFleetEnv, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    R = env.R
    targets = np.full(env.J, WAIT, dtype=np.int64)
    levels = rng.integers(env.L, size=env.J)
    for j in np.flatnonzero(env.open_jobs()):
        ok = np.flatnonzero(env.job_view(int(j)).mask[: R + 1])
        t = int(rng.choice(ok))
        targets[j] = WAIT if t == R else t
    return targets, levels


def _recorded(info: dict) -> dict:
    """The info keys the recorded hashes cover: ``reward_terms`` (issue 21) came later; its sum is the reward,
    which is hashed."""
    return {k: v for k, v in info.items() if k != "reward_terms"}


def episode(env: CarbonFleetEnv, seed: int, policy: str, steps: int | None) -> dict:
    """One episode (or its first ``steps`` steps) of ``policy``; hashes and final values."""
    rng = np.random.default_rng(20_000 + seed)
    obs, info = env.reset(seed=seed)
    h = {k: _Hash() for k in ("obs", "reward", "flags", "mask", "info")}
    h["obs"].add(obs)
    h["mask"].add(env.action_masks())
    h["info"].add(_recorded(info))
    n = 0
    while True:
        if policy == "slots":
            obs, reward, terminated, truncated, info = slot_step(env, slot_action(env, rng))
        else:
            targets, levels = job_decisions(env, rng)
            obs, reward, terminated, truncated, info = env.step_jobs(targets, levels, fifo=n % 2 == 1)
        n += 1
        h["obs"].add(obs)
        h["reward"].add(reward)
        h["flags"].add((terminated, truncated))
        h["mask"].add(env.action_masks())
        h["info"].add(_recorded(info))
        if terminated or truncated or n == steps:
            break
    end = _Hash()
    end.add(env.episode_metrics())
    end.add(env.gpus_in_use_log())
    end.add(env.completed_at_s())
    return {
        "seed": seed,
        "split": env.split,
        "policy": policy,
        "steps": n,
        "terminated": bool(terminated),
        **{f"hash_{k}": v.hex() for k, v in h.items()},
        "hash_end": end.hex(),
        "final_info": {k: float(info[k]) for k in SCALAR_KEYS},
    }


def generate(cases=tuple(CASES)) -> dict:
    out = {}
    for case in cases:
        envs: dict[str, CarbonFleetEnv] = {}
        out[case] = []
        for seed, split, policy, steps in CASES[case]:
            if split not in envs:
                envs[split] = make_env(case, split)
            out[case].append(episode(envs[split], seed, policy, steps))
    return out


def compare(stored: dict, fresh: dict) -> list[str]:
    """Differences between two golden dicts: hash mismatches, step counts, final values (exact)."""
    problems = []
    for case, eps in fresh.items():
        if len(stored[case]) != len(eps):
            problems.append(f"{case}: {len(stored[case])} episodes stored, {len(eps)} run")
        for a, b in zip(stored[case], eps):
            where = f"{case} seed {a['seed']} ({a['split']}, {a['policy']})"
            problems += trajectory_problems(where, a, b)
            for k, v in a["final_info"].items():
                if b["final_info"].get(k) != v:
                    problems.append(f"{where}: final_info[{k}] {v!r} -> {b['final_info'].get(k)!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, generate, compare, PATH, "fleet goldens")


if __name__ == "__main__":
    raise SystemExit(main())
