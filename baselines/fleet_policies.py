"""Fleet policies for CarbonFleet-v0 (issue 10): one interface, a decision for every job each step.

- ``threshold``, ``greedy``, ``caftm``, ``wait_awhile``, ``dvfs_only``, ``random``: the single-job rules
  of ``baselines/rules.py`` and ``baselines/caftm.py`` applied per job (:class:`PerJobPolicy`): each open job has
  its own instance of the rule (its own state, e.g. CAFTM's frequency controller), reset with the job's home and
  the fleet's TRAINING-split carbon (thresholds), and acting on the job's
  :meth:`envs.fleet.CarbonFleetEnv.job_view` (the job's tables; pools as the job sees them: free GPUs minus
  those other jobs hold).
- ``stay``: the carbon-agnostic FIFO reference (:class:`StayFleetPolicy`): every job at home, top clock, the pools
  serving waiting jobs first come, first served; the ``fifo`` deadlines are measured on its schedule.
- ``packing``: the fleet-level carbon-aware packing heuristic (``baselines/fleet_packing.py``).
- ``oracle``: the executable schedule rounded from the fleet LP (``baselines/fleet_bound.py``), computed at reset
  from the episode's true intensity and free GPUs (perfect foresight), played step by step.

Jobs not open (not arrived, or completed) get ``WAIT``; the environment ignores decisions for them.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from baselines import rules
from baselines.caftm import CaftmPolicy
from baselines.fleet_bound import FleetBound, fleet_lower_bound, hourly_capacity, lp_schedule, n_hours
from baselines.fleet_packing import WAIT as PACK_WAIT
from baselines.fleet_packing import carbon_aware_packing
from envs.fleet import CarbonFleetEnv, fleet_world
from sim.errors import ConfigError
from sim.rules import WAIT

_S_PER_H = 3600.0


class FleetPolicy:
    """``reset(env, seed)`` at each episode start, then ``act(env) -> (targets (J,), levels (J,))``; ``fifo``: the
    pools serve waiting jobs in arrival order (else by least slack)."""

    name = "fleet_policy"
    fifo = False

    def reset(self, env: CarbonFleetEnv, seed: int) -> None:
        pass

    def act(self, env: CarbonFleetEnv) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


@dataclass(frozen=True)
class _JobScenario:
    """What the single-job rules read from ``env.scenario`` at reset, for one job of the fleet."""

    home_index: int
    region_names: tuple[str, ...]
    zones: tuple[str, ...]


class _JobEnv:
    """The single-job rules' ``reset`` argument for one fleet job (they read ``env.scenario`` only)."""

    def __init__(self, scenario: _JobScenario):
        self.scenario = scenario


_TRAIN_CARBON: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class PerJobPolicy(FleetPolicy):
    """A single-job rule applied to every open job of the fleet (see the module docstring)."""

    def __init__(self, name: str, factory, fifo: bool = False):
        self.name = name
        self.factory = factory
        self.fifo = fifo

    def reset(self, env: CarbonFleetEnv, seed: int) -> None:
        sc = env.scenario
        train = fleet_world(sc, "train").carbon  # thresholds from the training split only (no test leakage)
        self.policies = []
        for j in range(env.J):
            job_env = _JobEnv(_JobScenario(int(env.jobs.home[j]), sc.region_names, sc.zones))
            rules._TRAIN_CI[job_env] = train  # the rules' cached training carbon, keyed by their env argument
            p = self.factory()
            p.reset(job_env, seed * 100_003 + j)
            self.policies.append((p, job_env))
        self.targets = np.full(env.J, WAIT, dtype=np.int64)
        self.levels = np.full(env.J, env.L - 1, dtype=np.int64)

    def act(self, env: CarbonFleetEnv) -> tuple[np.ndarray, np.ndarray]:
        R = env.R
        self.targets[:] = WAIT
        for j in np.flatnonzero(env.open_jobs()):
            view = env.job_view(int(j))
            a = self.policies[j][0].act(None, view)
            t = int(a[0])
            self.targets[j] = WAIT if t == R else t
            self.levels[j] = int(a[1])
        return self.targets, self.levels


class StayFleetPolicy(FleetPolicy):
    """The carbon-agnostic FIFO reference: every job targets its home region at the top clock (it waits there
    while the pool has no GPUs for it), the pools serve jobs not holding GPUs in arrival order. The schedule the
    ``fifo`` deadlines are measured on (``CarbonFleetEnv._set_fifo_deadlines``): the same decisions, so on the same
    episode the same trajectory."""

    name = "stay"
    fifo = True

    def act(self, env: CarbonFleetEnv) -> tuple[np.ndarray, np.ndarray]:
        return env.jobs.home, np.full(env.J, env.L - 1, dtype=np.int64)


class PackingPolicy(FleetPolicy):
    """``baselines.fleet_packing.carbon_aware_packing`` at every step."""

    name = "packing"

    def act(self, env: CarbonFleetEnv) -> tuple[np.ndarray, np.ndarray]:
        held = env.job_gpus() > 0
        current = np.where(held, env.job_region(), PACK_WAIT)
        p = carbon_aware_packing(
            env.jobs,
            env.t_s,
            env.remaining_minibatches(),
            current,
            env.free_now(),
            env.intensity_now(),
            env.region_up(),
        )
        return np.where(p.region == PACK_WAIT, WAIT, p.region), p.level


class OracleFleetPolicy(FleetPolicy):
    """The LP bound's rounded schedule (perfect foresight of intensity and free GPUs), played step by step.

    After ``reset``: ``bound`` (:class:`baselines.fleet_bound.FleetBound`, the episode's lower bound) and
    ``schedule`` (the rounded plan; ``schedule.carbon_kg`` is its carbon without the simulator's overheads).
    """

    name = "oracle"

    def reset(self, env: CarbonFleetEnv, seed: int) -> None:
        self.bound, self.schedule = episode_bound(env)
        mb = self.schedule.minibatches
        self.planned_left = np.cumsum(mb[:, ::-1], axis=1)[:, ::-1]  # (J, S) plan's mini-batches from step k on

    def act(self, env: CarbonFleetEnv) -> tuple[np.ndarray, np.ndarray]:
        """The plan's step; a job the simulator's overheads (checkpoints, transfers, restores, rollbacks) left
        behind its plan runs on at the top clock, where it is, whenever the plan has it idle."""
        k = min(env.k, self.schedule.region.shape[1] - 1)
        r = self.schedule.region[:, k].copy()
        lv = self.schedule.level[:, k].copy()
        behind = env.open_jobs() & (env.remaining_minibatches() > self.planned_left[:, k] + 1e-6)
        idle = behind & (r < 0)
        r[idle] = env.job_region()[idle]
        lv[behind] = env.L - 1
        return np.where(r < 0, WAIT, r), np.where(lv < 0, env.L - 1, lv)


def episode_bound(env: CarbonFleetEnv, schedule: bool = True):
    """The fleet LP bound of the environment's current episode (its jobs, hourly intensity, hourly maximum of
    the free GPUs) and, if ``schedule``, the executable schedule rounded from it at the decision step."""
    jobs = env.jobs
    H = n_hours(jobs)
    ci = env.ci[0, :, :H]
    steps = int(round(H * _S_PER_H / env.step_s))
    free = np.where(env.outage_mask()[:, :steps], 0, env.free[0, :, :steps])
    bound: FleetBound = fleet_lower_bound(jobs, ci, hourly_capacity(env.free[0, :, :steps], env.step_s, H))
    if not schedule:
        return bound
    per_h = int(round(_S_PER_H / env.step_s))
    sched = lp_schedule(jobs, bound, np.repeat(ci, per_h, axis=1), free, env.step_s)
    return bound, sched


FLEET_POLICIES = {
    "stay": StayFleetPolicy,
    "threshold": lambda: PerJobPolicy("threshold", rules.ThresholdPolicy),
    "greedy": lambda: PerJobPolicy("greedy", rules.GreedyPolicy),
    "caftm": lambda: PerJobPolicy("caftm", CaftmPolicy),
    "wait_awhile": lambda: PerJobPolicy("wait_awhile", rules.WaitAwhilePolicy),
    "dvfs_only": lambda: PerJobPolicy("dvfs_only", rules.DvfsOnlyPolicy),
    "random": lambda: PerJobPolicy("random", rules.RandomPolicy),
    "packing": PackingPolicy,
    "oracle": OracleFleetPolicy,
}


def make_fleet_policy(name: str) -> FleetPolicy:
    if name not in FLEET_POLICIES:
        raise ConfigError(f"unknown fleet policy {name!r}; expected one of {', '.join(FLEET_POLICIES)}")
    return FLEET_POLICIES[name]()


def run_fleet_episode(env: CarbonFleetEnv, policy: FleetPolicy, seed: int, log_gpus: bool = False) -> dict:
    """One episode of ``policy`` from ``env.reset(seed=seed)``: the environment's episode metrics (and, with
    ``log_gpus``, ``gpus_in_use`` (steps, R))."""
    env.reset(seed=seed)
    policy.reset(env, seed)
    done = truncated = False
    info: dict = {}
    while not (done or truncated):
        targets, levels = policy.act(env)
        _, _, done, truncated, info = env.step_jobs(targets, levels, policy.fifo)
    out = dict(info["fleet_episode"])
    if log_gpus:
        out["gpus_in_use"] = env.gpus_in_use_log()
    return out
