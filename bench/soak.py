"""Soak test: many random steps per scenario, checking the accounting invariants after every step.

    nice python bench/soak.py --steps 1000000            # every shipped scenario, 1M steps each
    python bench/soak.py --scenario paper --steps 20000

Episodes alternate between *masked* random actions (uniform over the valid targets, any clock level) and
*unmasked* ones (uniform over the whole ``MultiDiscrete`` space; the env ignores masked targets and counts
them). After every step it checks, independently of the simulator's own sums:

- ``energy``: IT, facility and transfer energy of the step >= 0; ``carbon``: operational and transfer carbon >= 0;
- ``energy_sum``: the step's IT energy equals the sum over its logged pieces of (GPU + host) power x duration, and its
  facility energy the same times each piece's PUE;
- ``carbon_sum``: the step's operational carbon equals the sum over its logged pieces of
  power x duration x PUE x the raw table's intensity of that hour, and its transfer carbon the network energy of
  each migration piece x the mean intensity of both ends (``sim/simulator.py`` physics, recomputed here);
- ``progress``: job progress equals mini-batches done minus mini-batches lost (episode totals), within [0, total];
- ``state_times``: the states' times add up to the elapsed time (to completion, if it completed);
- ``observation``: the observation lies in ``observation_space``; ``nan``: no NaN/inf in obs, reward or metrics.

Fleet scenarios (``kind: fleet``, CarbonFleet-v0) get random slot actions drawn among each slot's valid targets and
levels (with probability 0.05 a slot's choice is any in-range pair: masked ones are ignored and counted) and these
checks after every step: ``crash`` (any exception), ``observation`` / ``nan`` as above, ``capacity`` (GPUs in use
in a region <= its pool), ``progress`` (every job's remaining mini-batches within [0, its total]).

Prints one line per scenario (steps, episodes, violations per invariant) and exits 1 if any was violated.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from envs.carbon_migration import CarbonMigrationEnv  # noqa: E402
from sim.scenario import scenario_kind, scenario_names  # noqa: E402
from sim.simulator import M  # noqa: E402
from sim.states import State  # noqa: E402

INVARIANTS = ("energy", "carbon", "energy_sum", "carbon_sum", "progress", "state_times", "observation", "nan")
_J_PER_KWH = 3.6e6
_REL = 1e-9  # relative tolerance of the recomputed sums (float summation order differs)
_MIGRATION, _TOLERANCE = int(State.MIGRATION), int(State.TOLERANCE)
_TIME_SLOTS = [M[f"time_{s.name.lower()}_s"] for s in State]


def _close(a: float, b: float, abs_tol: float) -> bool:
    return abs(a - b) <= _REL * max(abs(a), abs(b)) + abs_tol


def check_step(env: CarbonMigrationEnv, obs: np.ndarray, reward: float, n_segments: int, bad: dict[str, int]) -> int:
    """Count the invariants broken by the step just taken; return the number of logged pieces so far."""
    sim = env.sim
    acc, ep = sim.step_acc, sim.episode_acc
    if min(acc[M["it_energy_kwh"]], acc[M["facility_energy_kwh"]], acc[M["transfer_energy_kwh"]]) < 0:
        bad["energy"] += 1
    if min(acc[M["operational_carbon_g"]], acc[M["transfer_carbon_g"]]) < 0:
        bad["carbon"] += 1
    # recompute this step's carbon from its pieces and the raw intensity table
    ci = env.world.carbon.intensity_g_per_kwh
    h0 = sim.start_hour
    it_kwh = fac_kwh = op_g = tx_g = 0.0
    for t, dt, r, s, power_w, n, dest in sim.segments[n_segments:]:
        h = h0 + int(t // 3600.0)
        # pieces log GPU power; the servers' host power per GPU held is busy while training, idle otherwise
        host_w = n * (sim.host_busy_w[r] if s == _TOLERANCE else sim.host_idle_w[r])
        e_kwh = (power_w + host_w) * dt / _J_PER_KWH
        it_kwh += e_kwh
        fac_kwh += e_kwh * sim.pue[r]
        op_g += e_kwh * sim.pue[r] * ci[r, h]
        if s == _MIGRATION:
            tx_g += sim.xfer_kwh * dt / sim.xfer_s[r][dest] * 0.5 * (ci[r, h] + ci[dest, h])
    if not (_close(it_kwh, acc[M["it_energy_kwh"]], 1e-12) and _close(fac_kwh, acc[M["facility_energy_kwh"]], 1e-12)):
        bad["energy_sum"] += 1
    if not (_close(op_g, acc[M["operational_carbon_g"]], 1e-9) and _close(tx_g, acc[M["transfer_carbon_g"]], 1e-9)):
        bad["carbon_sum"] += 1
    total = env.total_mb
    net = ep[M["minibatches_done"]] - ep[M["lost_minibatches"]]
    if not (_close(sim.progress_mb, net, 1e-6 * total) and -1e-9 <= sim.progress_mb <= total + 1e-9):
        bad["progress"] += 1
    elapsed = min(sim.t_s, sim.completed_at_s)
    if not _close(sum(ep[i] for i in _TIME_SLOTS), elapsed, 1e-6):
        bad["state_times"] += 1
    if not env.observation_space.contains(obs):
        bad["observation"] += 1
    if not (np.isfinite(obs).all() and math.isfinite(reward) and all(map(math.isfinite, ep))):
        bad["nan"] += 1
    return len(sim.segments)


def soak(scenario: str, steps: int, seed: int = 0) -> dict:
    """Run ``steps`` random steps on ``scenario``; return steps, episodes (by action kind) and violation counts."""
    env = CarbonMigrationEnv(scenario)
    env.sim.record = True  # log the (t, dt, region, state, power, gpus, dest) pieces the checks recompute from
    rng = np.random.default_rng(seed)
    n_targets, n_levels = env.R + 1, env.L
    bad = dict.fromkeys(INVARIANTS, 0)
    episodes = {"masked": 0, "unmasked": 0}
    invalid = 0
    obs, _ = env.reset(seed=seed)
    masked, n_seg = True, 0
    for _ in range(steps):
        if masked:
            valid = np.flatnonzero(env.action_masks()[:n_targets])
            action = np.array([valid[rng.integers(len(valid))], rng.integers(n_levels)])
        else:
            action = np.array([rng.integers(n_targets), rng.integers(n_levels)])
        obs, reward, terminated, truncated, info = env.step(action)
        n_seg = check_step(env, obs, reward, n_seg, bad)
        if terminated or truncated:
            episodes["masked" if masked else "unmasked"] += 1
            invalid += info["invalid_actions"]
            masked = not masked
            obs, _ = env.reset()
            n_seg = 0
    return {"steps": steps, "episodes": episodes, "invalid_actions_ignored": invalid, "violations": bad}


FLEET_INVARIANTS = ("crash", "observation", "nan", "capacity", "progress")


def fleet_action(env, rng: np.random.Generator) -> np.ndarray:
    """A valid target and level per slot (argmax of random scores where allowed), 5 % of slots any in-range pair."""
    from envs.fleet import CarbonFleetEnv

    assert isinstance(env, CarbonFleetEnv)
    K, R1, L = env.K, env.R + 1, env.L
    m = env.action_masks().reshape(K, -1)
    scores = rng.random((K, R1 + L))
    t = np.argmax(np.where(m[:, :R1], scores[:, :R1], -1.0), axis=1)
    lev = np.argmax(np.where(m[:, R1 : R1 + L], scores[:, R1:], -1.0), axis=1)
    wild = rng.random(K) < 0.05
    t[wild] = rng.integers(R1, size=int(wild.sum()))
    lev[wild] = rng.integers(L, size=int(wild.sum()))
    return np.stack([t, lev], axis=1).reshape(-1)


def soak_fleet(scenario: str, steps: int, seed: int = 0) -> dict:
    """``steps`` random slot steps on a fleet scenario; steps, episodes, masked choices ignored, violations."""
    from envs.fleet import CarbonFleetEnv

    env = CarbonFleetEnv(scenario)
    capacity = np.array([r.gpus for r in env.scenario.regions])
    rng = np.random.default_rng(seed)
    bad = dict.fromkeys(FLEET_INVARIANTS, 0)
    episodes = invalid = 0
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        try:
            obs, reward, terminated, truncated, info = env.step(fleet_action(env, rng))
        except Exception:  # counted, then a fresh episode
            bad["crash"] += 1
            obs, _ = env.reset()
            continue
        if not env.observation_space.contains(obs):
            bad["observation"] += 1
        if not (np.isfinite(obs).all() and math.isfinite(reward)):
            bad["nan"] += 1
        if (env.gpus_in_use() > capacity).any():
            bad["capacity"] += 1
        left = env.remaining_minibatches()
        if not ((left >= -1e-6) & (left <= env.jobs.minibatches + 1e-6)).all():
            bad["progress"] += 1
        if terminated or truncated:
            episodes += 1
            invalid += info["invalid_actions"]
            obs, _ = env.reset()
    return {"steps": steps, "episodes": episodes, "invalid_actions_ignored": invalid, "violations": bad}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", action="append", help="shipped name or YAML path; repeatable (default: all shipped)")
    p.add_argument("--steps", type=int, default=100_000, help="random steps per scenario (default: 100000)")
    p.add_argument("--seed", type=int, default=0, help="seeds the actions and the first reset (default: 0)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    total_bad = 0
    for name in args.scenario or scenario_names() + scenario_names("fleet"):
        t0 = time.perf_counter()
        fleet = scenario_kind(name) == "fleet"
        r = (soak_fleet if fleet else soak)(name, args.steps, args.seed)
        n_bad = sum(r["violations"].values())
        total_bad += n_bad
        ep = r["episodes"]
        episodes = (
            f"{ep} episodes"
            if fleet
            else (f"{ep['masked'] + ep['unmasked']} episodes ({ep['masked']} masked, {ep['unmasked']} unmasked;")
        )
        print(
            f"{name}: {r['steps']} steps, {episodes} {r['invalid_actions_ignored']} masked "
            f"{'slot choices' if fleet else 'actions'} ignored{'' if fleet else ')'}, violations {n_bad} "
            f"{r['violations']}, {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main())
