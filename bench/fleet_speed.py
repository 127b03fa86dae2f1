"""Speed of CarbonFleet-v0 against Gymnasium's CartPole, single and batched, measured in this one run (SPEC E4).

    python bench/fleet_speed.py [--scenario fleet] [--seconds 3] [--n-envs 64]

A fleet job-step is one job advanced one decision step; only jobs taking part count (arrived, not completed at
the step's start), so a quiet week is not flattered by idle rows. Prints ``name: value`` lines:

- ``cartpole_steps_per_s`` / ``fleet_env_steps_per_s`` / ``fleet_job_steps_per_s``: CartPole-v1 and
  ``CarbonFleet-v0`` via ``gymnasium.make``, one process; the fleet takes random valid slot actions (uniform
  over each slot's unmasked targets and levels, from random scores drawn in blocks as ``bench/speed.py`` does;
  jobs outside the slots keep their course);
- ``fleet_job_steps_vs_cartpole``: fleet job-steps/s / CartPole steps/s, median of 5 alternating rounds;
- ``cartpole_vector_env_steps_per_s_nN`` / ``fleet_batched_job_steps_per_s_nN`` /
  ``fleet_batched_job_steps_vs_cartpole_vector_nN``: CartPoleVectorEnv (``gymnasium.make_vec``) against the fleet
  kernel (``sim.fleet_core.advance_fleet``) stepping N environments in one call: N episodes' carbon windows,
  pools and faults over the job set of the first (the kernel's per-job tables are shared by the batch), every
  job at home at the top clock.

Throughputs count CPU seconds of this process (``time.process_time``), as ``bench/speed.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import envs  # noqa: E402,F401  (registers the environments)
from bench.speed import _clock, cartpole_steps_per_s, cartpole_vector_env_steps_per_s, paired  # noqa: E402
from envs.fleet import CarbonFleetEnv  # noqa: E402
from sim import fleet_core  # noqa: E402
from sim import layout as core  # noqa: E402
from sim.layout import N_METRICS, EpisodeRows, Generators, StateRows  # noqa: E402
from sim.rng import rng_handles  # noqa: E402

_COMPLETED = 7


def _open_jobs(arrival_s: np.ndarray, t_s: np.ndarray, state: np.ndarray) -> int:
    return int(((arrival_s[None, :] <= t_s + 1e-6) & (state != _COMPLETED)).sum())


def fleet_job_steps_per_s(scenario: str, seconds: float, seed: int = 0) -> tuple[float, float]:
    """(env steps/s, job-steps/s) of ``gymnasium.make("CarbonFleet-v0")`` with random valid slot actions."""
    env = gym.make("CarbonFleet-v0", scenario=scenario, split="test")
    fleet_env = env.unwrapped
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    R1, L, K = fleet_env.R + 1, fleet_env.L, fleet_env.K
    n = jobs = 0
    a = np.empty(2 * K, dtype=np.int64)
    t0 = _clock()
    while True:
        # uniform over each slot's valid targets and levels: the argmax of random scores zeroed where masked,
        # the scores drawn in blocks (as bench/speed.py does for the vector env)
        scores = rng.random((256, K, R1 + L))
        for b in range(256):
            sc = scores[b] * fleet_env.action_masks().reshape(K, R1 + L)
            a[0::2] = sc[:, :R1].argmax(axis=1)
            a[1::2] = sc[:, R1:].argmax(axis=1)
            jobs += int(fleet_env.open_jobs().sum())
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        n += 256
        dt = _clock() - t0
        if dt >= seconds:
            return n / dt, jobs / dt


class FleetBatch:
    """N fleet environments in one kernel call (see the module docstring): state arrays with an env axis."""

    def __init__(self, scenario: str, n_envs: int, seed: int = 0):
        self.env = env = CarbonFleetEnv(scenario, "test")
        env.reset(seed=seed)
        N, J, R = n_envs, env.J, env.R
        self.n = N
        ci, free, o_start, o_end, n_out = [], [], [], [], []
        keep = (env._f.copy(), env._i.copy(), env._P, env._t_mb_s, env._p_gpu_w, env._idle_w, env._speed)
        for e in range(N):  # each row its own carbon window, pools and outages
            other = CarbonFleetEnv(env.scenario, "test")
            other.reset(seed=seed + 1 + e)
            ci.append(other.ci[0])
            free.append(other.free[0])
            o_start.append(other._o_start[0])
            o_end.append(other._o_end[0])
            n_out.append(other._n_out[0])
        width = max(a.shape[1] for a in o_start)
        self.o_start = np.stack([np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in o_start])
        self.o_end = np.stack([np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in o_end])
        self.n_out = np.stack(n_out)
        self.ci, self.free = np.stack(ci), np.stack(free)
        self.f0 = np.repeat(keep[0], N, axis=0)
        self.i0 = np.repeat(keep[1], N, axis=0)
        self.f, self.i = self.f0.copy(), self.i0.copy()
        self.step_acc = np.zeros((N, J, N_METRICS))
        self.ep_acc = np.zeros_like(self.step_acc)
        self.order = np.repeat(np.arange(J)[None], N, axis=0)  # a permutation (priority_order starts from it)
        self.key = np.zeros((N, J))
        self.avail = np.zeros((N, R, env.n_steps + 1), dtype=np.int64)
        self.used = np.zeros((N, R), dtype=np.int64)
        self.rest = np.zeros((N, R), dtype=np.int64)
        self.peak = np.zeros(R, dtype=np.int64)
        self.envs = np.arange(N, dtype=np.int64)
        self.targets = np.repeat(env.jobs.home[None], N, axis=0).astype(np.int64)
        self.levels = np.full((N, J), env.L - 1, dtype=np.int64)
        self.rngs = [np.random.default_rng(seed + 10_000 + e) for e in range(N)]
        handles = [rng_handles(r) for r in self.rngs]
        self.rng_fns = handles[0][0]
        self.rng_states = np.array([h[1] for h in handles], dtype=np.uint64)
        H, K1 = env.n_hours, env.n_steps + 1
        episodes = EpisodeRows(
            self.ci, np.full((N, H), np.inf), np.ones((N, K1)), self.free, self.o_start, self.o_end, self.n_out
        )
        state = StateRows(self.f, self.i, self.step_acc, self.ep_acc)
        gens = Generators(self.rng_fns, self.rng_states)
        self.engine = (tuple(state), env._engine[1], tuple(episodes), tuple(gens))
        self.fleet = tuple(
            fleet_core.FleetRows(
                self.order,
                self.key,
                self.avail,
                self.used,
                self.rest,
                self.peak,
                env._arrival,
                env._fastest_mb_s,
                env._fail_rate,
                env.cap_w,
                np.zeros((N, R)),
                np.zeros((N, R)),
                np.zeros(R),
            )
        )

    def step(self) -> None:
        env = self.env
        if self.i[0, 0, core.I_K] >= env.n_steps:  # every row reached the horizon: start again
            self.f[:], self.i[:] = self.f0, self.i0
            self.ep_acc[:] = 0.0
        fleet_core.priority_order(self.envs, self.engine[0], env._P, self.fleet)
        fleet_core.advance_fleet(self.envs, self.targets, self.levels, self.engine, self.fleet)

    def open_jobs(self) -> int:
        t = self.i[:, :, core.I_K] * self.env.step_s
        return _open_jobs(self.env._arrival, t, self.i[:, :, core.I_STATE])


_BATCHES: dict[tuple, FleetBatch] = {}


def fleet_batched_job_steps_per_s(scenario: str, seconds: float, n_envs: int, seed: int = 0) -> float:
    key = (scenario, n_envs, seed)
    if key not in _BATCHES:  # built once (N resets), outside the clock
        _BATCHES[key] = FleetBatch(scenario, n_envs, seed)
        _BATCHES[key].step()  # compile / warm up
    batch = _BATCHES[key]
    jobs, busy = 0, 0.0
    while busy < seconds:
        n_open = batch.open_jobs()  # counted outside the clock
        t0 = _clock()
        batch.step()
        busy += _clock() - t0
        jobs += n_open
    return jobs / busy


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="fleet", help="fleet scenario (default: fleet)")
    ap.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per measurement (default 3)")
    ap.add_argument("--n-envs", type=int, default=64, help="batch size of the batched measurement (default 64)")
    a = ap.parse_args(argv)
    fleet_job_steps_per_s(a.scenario, 0.2)  # warm up (numba cache load, trace, carbon)
    out: dict[str, float] = {}
    env_steps: list[float] = []

    def ours(s: float) -> float:
        e, j = fleet_job_steps_per_s(a.scenario, s)
        env_steps.append(e)
        return j

    cp, fj, ratio = paired(cartpole_steps_per_s, ours, a.seconds)
    out["cartpole_steps_per_s"] = cp
    out["fleet_env_steps_per_s"] = float(np.median(env_steps))
    out["fleet_job_steps_per_s"] = fj
    out["fleet_job_steps_vs_cartpole"] = ratio
    n = a.n_envs
    cpv, fb, ratio_b = paired(
        lambda s: cartpole_vector_env_steps_per_s(s, n),
        lambda s: fleet_batched_job_steps_per_s(a.scenario, s, n),
        a.seconds,
    )
    out[f"cartpole_vector_env_steps_per_s_n{n}"] = cpv
    out[f"fleet_batched_job_steps_per_s_n{n}"] = fb
    out[f"fleet_batched_job_steps_vs_cartpole_vector_n{n}"] = ratio_b
    for k, v in out.items():
        print(f"{k}: {v:.4g}")
    return out


if __name__ == "__main__":
    main()
