"""Golden trajectories of CarbonMigration-v0: the simulator's observable behaviour frozen before the redesign.

    python tests/golden/generate.py            # rewrite tests/golden/trajectories.json
    python tests/golden/generate.py --check    # compare with the stored file (what tests/test_golden.py does)

For each shipped scenario and seeds 0..19, one whole episode on the ``train`` split: ``reset(seed=s)``, then
random *valid* actions drawn from ``default_rng(10_000 + s)`` until the episode ends:
even seeds pick a uniform target among the unmasked ones every step (many migrations), odd seeds keep the
previous target while it stays valid with probability 0.95 (long runs: completions, faults, deadlines); the
clock level is uniform. Per episode the file stores SHA-256 hashes of the exact
bytes of every step's observation (float32), action mask, reward (float64), every episode metric (float64,
columns in the order of ``metric_names``) and the info scalars below, plus a compact copy of the final values
(for a readable diff when a hash changes). Only the env's public API is used, so the file stays valid when
the internals are rebuilt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from envs.carbon_migration import CarbonMigrationEnv  # noqa: E402

SCENARIOS = ("paper", "faults", "global", "llm")
SEEDS = range(20)
PATH = Path(__file__).with_name("trajectories.json")
INFO_KEYS = ("t_s", "region_index", "n_gpus", "clock_mhz", "power_w", "progress_mb", "invalid_actions")
STATE_NAMES = ("QUEUED", "TOLERANCE", "SUSPEND", "MIGRATION", "SCALING", "WAITING", "RECOVERING", "COMPLETED")


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def episode(env: CarbonMigrationEnv, seed: int) -> dict:
    """Run one episode with random valid actions; return hashes and final values."""
    obs, info = env.reset(seed=seed)
    names = list(info["episode_metrics"])
    rng = np.random.default_rng(10_000 + seed)
    n_targets = env.action_space.nvec[0]
    n_levels = env.action_space.nvec[1]
    obs_rows, masks, rewards, metrics, infos, states = [obs], [env.action_masks()], [], [], [], []

    def keep(info: dict) -> None:
        metrics.append([info["episode_metrics"][k] for k in names])
        infos.append([float(info[k]) for k in INFO_KEYS])
        states.append(STATE_NAMES.index(info["state"]))

    keep(info)
    p_keep = 0.95 if seed % 2 else 0.0
    target = -1
    while True:
        mask = masks[-1]
        valid = np.flatnonzero(mask[:n_targets])
        u = rng.random()
        if not (u < p_keep and target >= 0 and mask[target]):
            target = int(valid[rng.integers(len(valid))])
        action = np.array([target, rng.integers(n_levels)], dtype=np.int64)
        obs, reward, terminated, truncated, info = env.step(action)
        obs_rows.append(obs)
        masks.append(env.action_masks())
        rewards.append(reward)
        keep(info)
        if terminated or truncated:
            break
    m = np.array(metrics, dtype=np.float64)
    return {
        "seed": seed,
        "steps": len(rewards),
        "terminated": bool(terminated),
        "hash_obs": _sha(np.array(obs_rows, dtype=np.float32)),
        "hash_mask": _sha(np.array(masks, dtype=bool)),
        "hash_reward": _sha(np.array(rewards, dtype=np.float64)),
        "hash_metrics": _sha(m),
        "hash_info": _sha(np.array(infos, dtype=np.float64)),
        "hash_state": _sha(np.array(states, dtype=np.int64)),
        "return": float(np.sum(rewards)),
        "final_metrics": dict(zip(names, m[-1].tolist())),
        "final_info": dict(zip(INFO_KEYS, infos[-1])),
    }


def generate(scenarios=SCENARIOS, seeds=SEEDS) -> dict:
    out = {}
    for sc in scenarios:
        env = CarbonMigrationEnv(sc)
        out[sc] = [episode(env, s) for s in seeds]
    return out


def trajectory_problems(where: str, a: dict, b: dict) -> list[str]:
    """A stored and a fresh episode's differences: trajectory hashes, step counts, how they ended."""
    problems = [f"{where}: {key[5:]} differs" for key in a if key.startswith("hash_") and a[key] != b[key]]
    return problems + [f"{where}: {key} {a[key]} -> {b[key]}" for key in ("steps", "terminated") if a[key] != b[key]]


def compare(stored: dict, fresh: dict, rel: float = 0.0) -> list[str]:
    """Differences between two golden dicts: hash mismatches, and final values beyond ``rel`` relative error."""
    problems = []
    for sc, eps in fresh.items():
        for a, b in zip(stored[sc], eps):
            where = f"{sc} seed {a['seed']}"
            problems += trajectory_problems(where, a, b)
            for group in ("final_metrics", "final_info"):
                for k, v in a[group].items():
                    w = b[group].get(k)
                    if w is None or abs(w - v) > rel * max(abs(v), 1e-300):
                        problems.append(f"{where}: {group}[{k}] {v!r} -> {w!r}")
    return problems


def cli(argv: list[str] | None, doc: str, generate, compare, path: Path, label: str) -> int:
    """Write the goldens to ``path``, or with ``--check`` compare a fresh run with them (exit 1 on a difference)."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the stored file instead of writing it")
    args = p.parse_args(argv)
    fresh = generate()
    if args.check:
        problems = compare(json.loads(path.read_text()), fresh)
        print("\n".join(problems) or f"{label} match")
        return 1 if problems else 0
    path.write_text(json.dumps(fresh, indent=1) + "\n")
    print(f"wrote {path} ({sum(len(v) for v in fresh.values())} episodes)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, generate, compare, PATH, "goldens")


if __name__ == "__main__":
    raise SystemExit(main())
