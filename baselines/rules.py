"""Rule-based baselines (spec B2): stay, threshold, greedy, wait_awhile, dvfs_only, random.

Shared conventions: a policy only chooses among actions its :class:`PolicyView` mask allows; during a
timed phase (checkpoint write, transfer, restore) it returns the phase's own target. Units are in names.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from baselines.base import Policy
from envs.carbon_migration import CarbonMigrationEnv, PolicyView
from loaders.world import build_world
from sim.errors import ConfigError
from sim.rules import TIMED_STATES
from sim.states import State

TIMED = tuple(State(s) for s in TIMED_STATES)  # the env's timed phases (sim.rules)


def continue_target(view: PolicyView) -> int:
    """The only valid target during a timed phase (else the current region)."""
    if view.state in TIMED:
        return int(np.flatnonzero(view.mask[: view.n_regions + 1])[0])
    return view.region


def gpus_after(view: PolicyView, target: int) -> int:
    """GPUs the job will hold after moving to / staying in ``target`` (upper estimate for cap checks)."""
    dest = view.region if target == view.wait else target
    return max(view.n_gpus, int(view.usable_gpus[dest]))


def max_level_under_cap(view: PolicyView, region: int, n_gpus: int, cap_w: float | None = None) -> int:
    """Highest clock level whose power ``n_gpus * P`` stays within the cap (lowest level if none does).

    :param cap_w: job power cap in W (default: the environment's cap now, ``view.cap_w``).
    """
    cap = view.cap_w if cap_w is None else cap_w
    ok = np.flatnonzero(n_gpus * view.p_gpu_w[region] <= cap + 1e-9)
    return int(ok[-1]) if ok.size else 0


def clamp_to_cap(view: PolicyView, region: int, n_gpus: int, level: int, cap_w: float | None = None) -> int:
    """``level``, lowered to the highest level under the cap when ``n_gpus`` GPUs at it would exceed the cap
    (power rises with the clock, so this is the one rule every capped policy applies last)."""
    return min(int(level), max_level_under_cap(view, region, n_gpus, cap_w))


def cap_safe_level(view: PolicyView, target: int, level: int, cap_w: float | None = None) -> int:
    """``level`` lowered so the job stays under the cap wherever this action may leave it: in the destination on
    the GPUs it will hold, and, for a move, also back at the source (a transfer that fails mid-flight resumes there
    within the same step, on the source's usable GPUs)."""
    dest = view.region if target == view.wait else target
    level = clamp_to_cap(view, dest, gpus_after(view, target), level, cap_w)
    if dest != view.region:
        level = clamp_to_cap(view, view.region, max(view.n_gpus, int(view.usable_gpus[view.region])), level, cap_w)
    return level


def energy_optimal_level(view: PolicyView, region: int, n_gpus: int) -> int:
    """Zeus-style: the level minimising energy per mini-batch ``P(f) * t(f)`` among levels under the cap."""
    e = view.p_gpu_w[region] * view.t_mb_s[region]
    ok = n_gpus * view.p_gpu_w[region] <= view.cap_w + 1e-9
    if not ok.any():
        return 0
    return int(np.flatnonzero(ok)[np.argmin(e[ok])])


def hours_needed(view: PolicyView, region: int, level: int) -> float:
    """Hours the remaining work takes in ``region`` at ``level`` on the GPUs usable there, at the last measured work
    rate (``view.work``)."""
    n = max(int(view.usable_gpus[region]), 1)
    return view.remaining_mb * view.t_mb_s[region, level] * view.work * view.requested_gpus / n / 3600.0


def _run_or_wait(view: PolicyView, region: int) -> int:
    return region if view.mask[region] else view.wait


def cleanest_if(view: PolicyView, trigger: bool) -> int:
    """Where a threshold rule sends the job: when ``trigger`` (or the current region is unusable), the
    lowest-intensity region with usable GPUs if it is cleaner than here; else here; wait if neither is usable."""
    r = view.region
    ci = view.intensity_g_per_kwh
    target = r
    if trigger or not view.mask[r]:
        ok = np.flatnonzero(view.mask[: view.n_regions])
        if ok.size:
            best = int(ok[np.argmin(ci[ok])])
            if ci[best] < ci[r] or not view.mask[r]:
                target = best
    return _run_or_wait(view, target)


class StayPolicy(Policy):
    """Carbon-agnostic reference: run in the home region as fast as the power cap allows, never migrate
    (spec B2 "stay home, max clock", read as the highest clock that keeps the rule every other policy keeps).

    Rule: target = home region when it has GPUs (else pause there); clock level = the highest whose job power
    (GPUs held x profiled power per GPU) stays within the cap now. See ``stay_uncapped`` for the top clock.
    """

    name = "stay"

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        self.home = env.scenario.home_index

    def act(self, obs, view: PolicyView) -> np.ndarray:
        tgt = continue_target(view) if view.state in TIMED else _run_or_wait(view, self.home)
        dest = view.region if tgt == view.wait else tgt
        return np.array([tgt, self._level(view, dest, gpus_after(view, tgt))])

    def _level(self, view: PolicyView, region: int, n_gpus: int) -> int:
        return max_level_under_cap(view, region, n_gpus)


class StayUncappedPolicy(StayPolicy):
    """Carbon-agnostic, cap ignored: run in the home region at the top clock, never migrate (this project).

    Rule: as ``stay`` but always the highest clock level, even when the job's power exceeds its cap (the
    environment measures the violation; tables mark this policy). Kept as the reference "what the hardware
    would do unmanaged"; compare against ``stay`` for claims about policies that keep the cap.
    """

    name = "stay_uncapped"

    def _level(self, view: PolicyView, region: int, n_gpus: int) -> int:
        return view.n_levels - 1


_TRAIN_CI: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def training_intensity(env: CarbonMigrationEnv):
    """The scenario's TRAINING-split carbon table (``sim.carbon.CarbonTable``), loaded once per environment."""
    if env not in _TRAIN_CI:
        _TRAIN_CI[env] = build_world(env.scenario, "train").carbon
    return _TRAIN_CI[env]


def training_thresholds(env: CarbonMigrationEnv, quantile: float = 0.5) -> np.ndarray:
    """Per-region intensity threshold: the ``quantile`` of the zone's TRAINING-split hourly intensity."""
    return np.quantile(training_intensity(env).intensity_g_per_kwh, quantile, axis=1)


class ThresholdPolicy(Policy):
    """GreenAccounter-style threshold migration (Xu et al. style carbon accounting; spec B2).

    Rule: when the current region's intensity exceeds its threshold, migrate to the lowest-intensity
    region with usable GPUs (if it is cleaner than the current one); otherwise stay. Thresholds are
    per zone; by default the median (``quantile=0.5``) of the zone's hourly intensity over the scenario's
    TRAINING split (no test data leaks). Clock: the highest level under the power cap.

    :param thresholds: per-region thresholds g/kWh (overrides the default), by region name or index order.
    :param quantile: training-split quantile used for the default thresholds.
    """

    name = "threshold"

    def __init__(self, thresholds: dict[str, float] | list[float] | None = None, quantile: float = 0.5):
        if not 0.0 <= quantile <= 1.0:
            raise ConfigError(f"threshold policy: quantile={quantile} must be in [0, 1]")
        self.user_thresholds = thresholds
        self.quantile = quantile

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        names = list(env.scenario.region_names)
        th = training_thresholds(env, self.quantile)
        if isinstance(self.user_thresholds, dict):
            for k, v in self.user_thresholds.items():
                if k not in names:
                    raise ConfigError(f"threshold policy: thresholds has unknown region {k!r}; regions: {names}")
                th[names.index(k)] = float(v)
        elif self.user_thresholds is not None:
            if len(self.user_thresholds) != len(names):
                raise ConfigError(
                    f"threshold policy: thresholds has {len(self.user_thresholds)} values, "
                    f"expected {len(names)} (one per region)"
                )
            th = np.asarray(self.user_thresholds, dtype=float)
        self.thresholds_g_per_kwh = th

    def act(self, obs, view: PolicyView) -> np.ndarray:
        if view.state in TIMED:
            tgt = continue_target(view)
        else:
            tgt = cleanest_if(view, view.intensity_g_per_kwh[view.region] > self.thresholds_g_per_kwh[view.region])
        dest = view.region if tgt == view.wait else tgt
        return np.array([tgt, max_level_under_cap(view, dest, gpus_after(view, tgt))])


class GreedyPolicy(Policy):
    """Greedy lowest-carbon placement aware of transfer cost (spec B2; this project).

    Rule: for each region with usable GPUs, estimate the carbon of running the next ``window_h`` hours there
    (forecast intensity x facility energy per hour at the energy-optimal clock under the cap) and subtract it
    from staying; the cost of moving is the transfer's carbon (``checkpoint_gb * transfer_kwh_per_gb`` at the
    two ends' intensity), plus the idle energy of a checkpoint write and restore, plus the carbon of the
    work the transfer time displaces (redone later at the window's mean intensity). Move to the region with
    the largest positive net saving, provided the deadline still holds with the transfer time added.
    Clock: energy-optimal (min P*t) under the cap, raised to the fastest level under the cap when the
    remaining work would otherwise miss the deadline.

    :param window_h: look-ahead (capped by the forecast horizon).
    :param min_saving_g: hysteresis: a move must save at least this much.
    """

    name = "greedy"

    def __init__(self, window_h: int = 6, min_saving_g: float = 1.0):
        if window_h < 1:
            raise ConfigError(f"greedy policy: window_h={window_h} must be >= 1")
        self.window_h = window_h
        self.min_saving_g = min_saving_g

    def _level(self, view: PolicyView, region: int, n: int) -> int:
        lvl = energy_optimal_level(view, region, n)
        left_h = (view.deadline_s - view.t_s) / 3600.0
        if math.isfinite(left_h) and hours_needed(view, region, lvl) > 0.9 * left_h:
            lvl = max_level_under_cap(view, region, n)
        return lvl

    def act(self, obs, view: PolicyView) -> np.ndarray:
        if view.state in TIMED:
            tgt = continue_target(view)
            return np.array([tgt, self._level(view, view.region if tgt == view.wait else tgt, view.requested_gpus)])
        R, r = view.n_regions, view.region
        H = min(self.window_h, view.forecast_g_per_kwh.shape[1])
        ci_win = np.concatenate([view.intensity_g_per_kwh[:, None], view.forecast_g_per_kwh[:, : H - 1]], axis=1)
        ci_mean = ci_win.mean(axis=1)  # g/kWh per region over the window
        n = view.requested_gpus
        kwh_per_h = np.zeros(R)  # facility kWh per running hour
        for q in range(R):
            nq = max(int(view.usable_gpus[q]), 1)
            kwh_per_h[q] = nq * view.p_gpu_w[q, energy_optimal_level(view, q, nq)] * view.pue[q] / 1000.0
        # carbon per unit of work: compare regions per mini-batch-equivalent of the current region's hour
        cur_ok = view.mask[r] or view.state in (State.QUEUED, State.WAITING)
        stay_g = ci_mean[r] * kwh_per_h[r] * H
        best, best_saving = r, 0.0
        left_s = view.deadline_s - view.t_s
        for q in range(R):
            if q == r or not view.mask[q]:
                continue
            move_s = view.transfer_s[q] + 2 * view.io_s
            tx_g = (
                view.checkpoint_gb
                * view.transfer_kwh_per_gb
                * 0.5
                * (view.intensity_g_per_kwh[r] + view.intensity_g_per_kwh[q])
            )
            io_g = 2 * view.io_s * n * view.idle_w[q] * view.pue[q] / 3.6e6 * ci_mean[q]
            displaced_g = move_s / 3600.0 * kwh_per_h[q] * ci_mean[q]
            # same work as H hours in r, done in q (q may be faster or slower)
            there_g = ci_mean[q] * kwh_per_h[q] * H * self._speed_ratio(view, r, q)
            saving = stay_g - there_g - tx_g - io_g - displaced_g
            if math.isfinite(left_s):
                lvl = max_level_under_cap(view, q, max(int(view.usable_gpus[q]), 1))
                if hours_needed(view, q, lvl) * 3600.0 + move_s > left_s:
                    continue
            if saving > best_saving + self.min_saving_g:
                best, best_saving = q, saving
        if best == r and not view.mask[r]:
            tgt = view.wait if cur_ok else r
        else:
            tgt = best
        tgt = _run_or_wait(view, tgt)
        dest = view.region if tgt == view.wait else tgt
        return np.array([tgt, self._level(view, dest, gpus_after(view, tgt))])

    @staticmethod
    def _speed_ratio(view: PolicyView, r: int, q: int) -> float:
        """Hours in q per hour of r for the same mini-batches (energy-optimal clocks, usable GPUs)."""
        nr = max(int(view.usable_gpus[r]), 1)
        nq = max(int(view.usable_gpus[q]), 1)
        tr = view.t_mb_s[r, energy_optimal_level(view, r, nr)] / nr
        tq = view.t_mb_s[q, energy_optimal_level(view, q, nq)] / nq
        return tq / tr


class WaitAwhilePolicy(Policy):
    """Wait-Awhile temporal shifting (Wiesner et al., Middleware 2021): pause in the dirtiest hours.

    Rule (home region, no migration): the fraction of the time left before the deadline that the job must
    run is ``rho = hours needed / hours left``. Run now iff the current intensity is among the cleanest
    ``rho`` of the visible window (now + forecast) -- otherwise pause -- unless the slack (time left minus
    time needed minus ``safety_h`` and checkpoint/restore overheads) is used up, in which case run.
    Never misses the deadline *because of waiting*: it pauses only while the slack exceeds one decision
    step plus the safety margin. Clock: the fastest level under the power cap (more slack to shift).
    Without a deadline the episode horizon plays its role.

    :param safety_h: slack kept in reserve (hours).
    """

    name = "wait_awhile"

    def __init__(self, safety_h: float = 1.0):
        self.safety_h = safety_h

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        self.home = env.scenario.home_index

    def act(self, obs, view: PolicyView) -> np.ndarray:
        lvl = max_level_under_cap(view, self.home, view.requested_gpus)
        if view.state in TIMED:
            return np.array([continue_target(view), lvl])
        deadline = view.deadline_s if math.isfinite(view.deadline_s) else view.horizon_s
        left_h = (deadline - view.t_s) / 3600.0
        need_h = hours_needed(view, self.home, lvl) if view.usable_gpus[self.home] > 0 else math.inf
        slack_h = left_h - need_h - self.safety_h - (2 * view.io_s + view.step_s) / 3600.0
        run = True
        if slack_h > view.step_s / 3600.0 and left_h > 0:
            rho = min(1.0, need_h / left_h)
            window = np.concatenate([[view.intensity_g_per_kwh[self.home]], view.forecast_g_per_kwh[self.home]])
            run = view.intensity_g_per_kwh[self.home] <= np.quantile(window, rho)
        tgt = _run_or_wait(view, self.home) if run else view.wait
        return np.array([tgt, lvl])


class DvfsOnlyPolicy(Policy):
    """DVFS only, no migration: Zeus-style energy-optimal clock under the cap (You et al., NSDI 2023).

    Rule: run in the home region at the clock level minimising energy per mini-batch ``P(f) * t(f)``
    (profiled GPU model, ``PolicyView.p_gpu_w`` / ``t_mb_s``) among levels whose job power stays under the cap.
    """

    name = "dvfs_only"

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        self.home = env.scenario.home_index

    def act(self, obs, view: PolicyView) -> np.ndarray:
        tgt = continue_target(view) if view.state in TIMED else _run_or_wait(view, self.home)
        dest = view.region if tgt == view.wait else tgt
        return np.array([tgt, energy_optimal_level(view, dest, gpus_after(view, tgt))])


class RandomPolicy(Policy):
    """Uniformly random valid action (respects ``action_masks``), seeded at ``reset`` (this project)."""

    name = "random"

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        self.rng = np.random.default_rng(seed if self.seed is None else self.seed)

    def act(self, obs, view: PolicyView) -> np.ndarray:
        R = view.n_regions
        targets = np.flatnonzero(view.mask[: R + 1])
        levels = np.flatnonzero(view.mask[R + 1 :])
        return np.array([int(self.rng.choice(targets)), int(self.rng.choice(levels))])
