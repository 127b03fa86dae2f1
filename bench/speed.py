"""Speed of CarbonMigration-v0 against Gymnasium's CartPole, all measured in this one run (SPEC N1).

    python bench/speed.py [--scenario paper] [--seconds 3]

Prints ``name: value`` lines:

- ``cartpole_steps_per_s``: CartPole-v1 via ``gymnasium.make``, random actions, one process;
- ``single_env_steps_per_s``: CarbonMigration-v0 via ``gymnasium.make``, random *valid* actions (uniform over
  the unmasked targets, any clock level), same harness and duration;
- ``single_env_vs_cartpole``: their ratio (target >= 0.25), the median of 5 alternating rounds;
- ``cartpole_vector_env_steps_per_s`` / ``vector_env_env_steps_per_s``: CartPoleVectorEnv and
  CarbonMigrationVectorEnv, N = 16 each (env-steps/s = N * vector steps/s);
- ``vector_env_vs_cartpole_vector``: their ratio (SPEC target 0.5; see envs/vector.py for why it is far off);
- ``reset_ms``: median ``reset()`` time after the first (target < 1);
- ``load_s``: cold load of the scenario's data (``build_world``) in a fresh subprocess, imports excluded;
- ``oracle_7d_6r_s``: median oracle solve (bound + plan) on the 7-day, 6-region ``llm`` scenario (target < 2).

Throughputs count CPU seconds of this process (``time.process_time``), not wall time, so that other load on
the machine does not bias the ratios. Random numbers are drawn in advance in blocks so that the harness
costs about the same for both environments.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import envs  # noqa: E402,F401  (registers CarbonMigration-v0)
from bench.oracle_speed import oracle_7d_6r_s  # noqa: E402

VECTOR_N = 16
# Throughput is timed in CPU seconds of this process, so other jobs on a shared machine do not skew the ratios.
_clock = time.process_time
_BLOCK = 4096


def cartpole_steps_per_s(seconds: float, seed: int = 0) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n, t0 = 0, _clock()
    while True:
        for u in rng.random(_BLOCK).tolist():
            _, _, terminated, truncated, _ = env.step(int(u < 0.5))
            if terminated or truncated:
                env.reset()
        n += _BLOCK
        if _clock() - t0 >= seconds:
            return n / (_clock() - t0)


def single_env_steps_per_s(scenario: str, seconds: float, seed: int = 0) -> float:
    env = gym.make("CarbonMigration-v0", scenario=scenario)
    env.reset(seed=seed)
    core = env.unwrapped
    n_targets, n_levels = core.R + 1, core.L
    rng = np.random.default_rng(seed)
    n, t0 = 0, _clock()
    while True:
        for u, level in zip(rng.random(_BLOCK).tolist(), rng.integers(0, n_levels, _BLOCK).tolist()):
            valid = np.flatnonzero(core.action_masks()[:n_targets])
            _, _, terminated, truncated, _ = env.step(np.array([valid[int(u * len(valid))], level]))
            if terminated or truncated:
                env.reset()
        n += _BLOCK
        if _clock() - t0 >= seconds:
            return n / (_clock() - t0)


def cartpole_vector_env_steps_per_s(seconds: float, n_envs: int = VECTOR_N, seed: int = 0) -> float:
    venv = gym.make_vec("CartPole-v1", num_envs=n_envs, vectorization_mode="vector_entry_point")
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n, t0 = 0, _clock()
    while True:
        actions = rng.integers(0, 2, (256, n_envs))
        for a in actions:
            venv.step(a)
        n += 256 * n_envs
        if _clock() - t0 >= seconds:
            return n / (_clock() - t0)


def vector_env_steps_per_s(scenario: str, seconds: float, n_envs: int = VECTOR_N, seed: int = 0) -> float:
    venv = gym.make_vec(
        "CarbonMigration-v0", num_envs=n_envs, vectorization_mode="vector_entry_point", scenario=scenario
    )
    venv.reset(seed=seed)
    n_targets, n_levels = venv.R + 1, venv.L
    rng = np.random.default_rng(seed)
    n, t0 = 0, _clock()
    while True:
        for _ in range(64):
            # uniform over each env's valid targets: the argmax of random scores zeroed where masked
            target = (rng.random((n_envs, n_targets)) * venv.action_masks()[:, :n_targets]).argmax(axis=1)
            venv.step(np.stack([target, rng.integers(0, n_levels, n_envs)], axis=1))
        n += 64 * n_envs
        if _clock() - t0 >= seconds:
            return n / (_clock() - t0)


def paired(ref, ours, seconds: float, rounds: int = 5) -> tuple[float, float, float]:
    """Median steps/s of ``ref`` and ``ours`` and median ratio over ``rounds`` alternating measurements, so a
    burst of load on the machine hits both sides of a ratio instead of one."""
    refs, mine, ratios = [], [], []
    for _ in range(rounds):
        refs.append(ref(seconds / rounds))
        mine.append(ours(seconds / rounds))
        ratios.append(mine[-1] / refs[-1])
    return statistics.median(refs), statistics.median(mine), statistics.median(ratios)


def reset_ms(scenario: str, n: int = 200) -> float:
    env = gym.make("CarbonMigration-v0", scenario=scenario)
    env.reset(seed=0)
    times = []
    for _ in range(n):
        t0 = _clock()
        env.reset()
        times.append(_clock() - t0)
    return 1000.0 * statistics.median(times)


def load_s(scenario: str) -> float:
    """``build_world`` of the scenario's train split in a fresh interpreter (cold: no per-process cache)."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(REPO)!r})\n"
        "from sim.scenario import load_scenario\nfrom sim.world import build_world\n"
        f"t0 = time.perf_counter(); build_world(load_scenario({scenario!r}), 'train'); print(time.perf_counter() - t0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, float | str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="paper", help="shipped scenario name or YAML path (default: paper)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per throughput figure")
    args = parser.parse_args(argv)

    def show(name: str, value: float | str) -> None:
        print(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}", flush=True)
        results[name] = value

    results: dict[str, float | str] = {}
    cart, single, ratio = paired(cartpole_steps_per_s, lambda s: single_env_steps_per_s(args.scenario, s), args.seconds)
    show("cartpole_steps_per_s", cart)
    show("single_env_steps_per_s", single)
    show("single_env_vs_cartpole", ratio)
    cart_vec, vec, ratio = paired(
        cartpole_vector_env_steps_per_s, lambda s: vector_env_steps_per_s(args.scenario, s), args.seconds
    )
    show("cartpole_vector_env_steps_per_s", cart_vec)
    show("vector_env_env_steps_per_s", vec)
    show("vector_env_vs_cartpole_vector", ratio)
    show("reset_ms", reset_ms(args.scenario))
    show("load_s", load_s(args.scenario))
    show("oracle_7d_6r_s", oracle_7d_6r_s("llm"))  # 7 days x 6 regions x 15 min, whatever --scenario says
    return results


if __name__ == "__main__":
    main()
