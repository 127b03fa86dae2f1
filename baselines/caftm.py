"""CAFTM (Park, Kim, Kim, Han, Chun, IEEE CLOUD 2024): carbon-threshold migration + fault-tolerant DVFS.

The frequency controller (spec S3) minimises, per mini-batch,

    J(f) = 0.05 * k_t * W / f  +  0.75 * (10 * k_p * W * f**3)  +  0.2 * (f_prev - f)**2

with ``t = k_t / f`` the time per mini-batch and ``P - idle = k_p * f**3`` the busy power per GPU, over CAFTM's
clock range (337-1522 MHz, the paper's bounds) intersected with the GPU's supported clocks and with ``f <= f_cap``
(``scipy.optimize.minimize(method="L-BFGS-B")``), ``f_cap`` solving ``n * (idle + k_p * W * f_cap**3) = cap``.
The continuous optimum is mapped to the nearest supported clock level inside that range whose *profiled* job
power ``n * P(level)`` does not exceed the cap, so the job never exceeds its cap, also on fewer GPUs.

**Units.** ``J`` adds a time, a power and a squared clock, so the clock it picks is set by the units they are
expressed in, not by the weights alone. The paper does not state them. The authors' public prototype,
``datascience-labs/GreenAccounter`` (git ``e88bb8f``; the same group, with the paper's per-zone thresholds
``VGGNet/carbon_config.csv``: US 250, KR 320 g/kWh), measures in: **W** (``VGGNet/gpu_utils.py`` line 59,
``nvidia-smi --query-gpu=power.draw``, used as read: the "Convert to kW" comment on line 63 converts nothing),
**MHz** (line 71-82 ``get_gpu_freq_info``: nvidia-smi clocks, MHz; it returns a placeholder 2475) and **s**
(``time.time()``, lines 33 and 129), sampling power every 5 s (lines 31, 130: "5초마다", every 5 s). It has no
frequency controller (``scipy.optimize.minimize`` is imported in ``VGGNet/__init__.py`` line 34 and never called),
so the units of ``J`` are left open. :data:`UNIT_READINGS` lists the plausible readings; the default,
:data:`PROTOTYPE_READING`, is the prototype's measured units (s, W, MHz) with the paper's sampling unit (per
mini-batch: ``t`` is seconds per mini-batch, ``P`` the mean busy power over the profiled mini-batches).
``report.md``'s CAFTM section runs every reading on the same episodes and says which term sets the clock.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize

from baselines.base import Policy
from baselines.rules import (
    TIMED,
    cap_safe_level,
    cleanest_if,
    continue_target,
    gpus_after,
    hours_needed,
    max_level_under_cap,
    training_thresholds,
)
from envs.carbon_migration import CarbonMigrationEnv, PolicyView
from sim.errors import ConfigError
from sim.states import State

W_TIME, W_POWER, W_SMOOTH = 0.05, 0.75, 0.2
# reading name -> (seconds per time unit, watts per power unit, MHz per clock unit) of the terms of J
UNIT_READINGS: dict[str, tuple[float, float, float]] = {
    "s_W_MHz": (1.0, 1.0, 1.0),  # the prototype's measured units (nvidia-smi W and MHz, time.time() s)
    "s_kW_GHz": (1.0, 1000.0, 1000.0),  # this project's reading before issue 22
    "ms_kW_GHz": (1e-3, 1000.0, 1000.0),
    "s_W_GHz": (1.0, 1.0, 1000.0),
}
PROTOTYPE_READING = "s_W_MHz"
# CAFTM's frequency bounds (Park et al. 2024, S3: f in [337, 1522] MHz); intersected with each GPU's clocks
CAFTM_F_MIN_MHZ, CAFTM_F_MAX_MHZ = 337.0, 1522.0
# theta_CI of the authors' prototype (g/kWh), by zone: KR 320 and US 250, as quoted in issue 11's review of
# this baseline. The prototype gives one US value; it is applied to the zone the paper scenario uses for its US
# region (California) only -- other US grids (PJM, ERCOT, NYISO) differ by up to 2x and get the default rule.
PROTOTYPE_THETA_G_PER_KWH = {"KR": 320.0, "US-CAL-CISO": 250.0}
# every other zone: this quantile of the zone's hourly intensity over the scenario's TRAINING split
THETA_QUANTILE = 0.5


def caftm_levels(clocks_mhz: np.ndarray) -> np.ndarray:
    """Indices of the supported clock levels inside CAFTM's range [337, 1522] MHz (all levels if none is)."""
    c = np.asarray(clocks_mhz, dtype=float)
    idx = np.flatnonzero((c >= CAFTM_F_MIN_MHZ - 1e-9) & (c <= CAFTM_F_MAX_MHZ + 1e-9))
    return idx if idx.size else np.arange(c.size)


def zone_thetas(zones, train_quantile_g_per_kwh: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per-zone theta_CI (g/kWh) and where each comes from: the prototype's value where the zone has one
    (:data:`PROTOTYPE_THETA_G_PER_KWH`), else the given training-split quantile of that zone."""
    theta = np.asarray(train_quantile_g_per_kwh, dtype=float).copy()
    source = [f"training-split q{THETA_QUANTILE:g}"] * len(theta)
    for r, z in enumerate(zones):
        if z in PROTOTYPE_THETA_G_PER_KWH:
            theta[r] = PROTOTYPE_THETA_G_PER_KWH[z]
            source[r] = "CAFTM prototype"
    return theta, source


def caftm_cost(f, k_t: float, k_p: float, work: float, f_prev: float):
    """The CAFTM frequency cost ``J(f)`` (vectorised over ``f``), every argument in one reading's units
    (clock ``f``, ``k_t`` in time x clock, ``k_p`` in power / clock^3)."""
    f = np.asarray(f, dtype=float)
    return W_TIME * k_t * work / f + W_POWER * (10.0 * k_p * work * f**3) + W_SMOOTH * (f_prev - f) ** 2


def cost_terms(f, k_t: float, k_p: float, work: float, f_prev: float) -> tuple[float, float, float]:
    """The three terms of ``J`` at ``f`` (time, power, smoothing), for reporting which one sets the clock."""
    return (W_TIME * k_t * work / f, W_POWER * 10.0 * k_p * work * f**3, W_SMOOTH * (f_prev - f) ** 2)


class FrequencyController:
    """CAFTM's fault-tolerant frequency controller (spec S3) in one unit reading (:data:`UNIT_READINGS`).

    Keeps the last ``window`` profiled samples ``(clock, time per mini-batch normalised to W = 1 on the full
    GPU request, busy power per GPU above idle)`` in the reading's units, refits ``k_t`` (least squares of
    ``t = k_t / f``) and ``k_p`` (least squares of ``P - idle = k_p * f^3``), and picks the clock with
    :meth:`choose_clock_mhz`. ``f_prev_mhz`` is the clock applied last (MHz, whatever the reading).

    :param units: a key of :data:`UNIT_READINGS` (default: the prototype's s, W, MHz).
    """

    def __init__(self, window: int = 10, units: str = PROTOTYPE_READING):
        if units not in UNIT_READINGS:
            raise ConfigError(f"caftm: units={units!r}; one of {', '.join(UNIT_READINGS)}")
        self.window = window
        self.units = units
        self.time_s, self.power_w, self.clock_mhz = UNIT_READINGS[units]
        self.samples: list[tuple[float, float, float]] = []
        self.k_t = math.nan
        self.k_p = math.nan
        self.f_prev_mhz = math.nan

    def add_sample(self, clock_mhz: float, t_mb_s: float, p_busy_w: float, idle_w: float) -> None:
        self.samples.append((clock_mhz / self.clock_mhz, t_mb_s / self.time_s, (p_busy_w - idle_w) / self.power_w))
        del self.samples[: -self.window]
        self.refit()

    def fit(self, clocks_mhz: np.ndarray, t_mb_s: np.ndarray, p_busy_w: np.ndarray, idle_w: float) -> None:
        """``k_t``, ``k_p`` from a profile table (a scheduler's offline measurement), in the reading's units."""
        f = np.asarray(clocks_mhz, dtype=float) / self.clock_mhz
        t = np.asarray(t_mb_s, dtype=float) / self.time_s
        p = (np.asarray(p_busy_w, dtype=float) - idle_w) / self.power_w
        self.k_t = float(np.dot(1 / f, t) / np.dot(1 / f, 1 / f))
        self.k_p = float(max(np.dot(f**3, p) / np.dot(f**3, f**3), 1e-30))

    def refit(self) -> None:
        if not self.samples:
            return
        f, t, p = (np.array(c) for c in zip(*self.samples))
        x = 1.0 / f
        self.k_t = float(np.dot(x, t) / np.dot(x, x))
        x3 = f**3
        self.k_p = float(max(np.dot(x3, p) / np.dot(x3, x3), 1e-30))

    def choose_clock_mhz(
        self,
        clocks_mhz: np.ndarray,
        p_gpu_w: np.ndarray,
        idle_w: float,
        n_gpus: int,
        cap_w: float,
        work: float,
        k_t: float | None = None,
        k_p: float | None = None,
        f_prev_mhz: float | None = None,
    ) -> tuple[int, float]:
        """Minimise ``J`` and map to a clock level under the cap.

        :param clocks_mhz: the supported clock levels (ascending).
        :param p_gpu_w: profiled busy power per GPU at each level (for the final cap check).
        :param n_gpus: GPUs the job runs on; ``cap_w``: job power cap (inf if none); ``work``: multiplier W.
        :param k_t: / ``k_p``: coefficients in the reading's units (default: the fitted ones).
        :returns: (level index, continuous optimum f* in MHz). The level lies in CAFTM's clock range
            (:func:`caftm_levels`) unless no level there fits under the cap: then the highest level under the
            cap below the range (lowest level if none fits), because the cap is a hard rule.
        """
        k_t = self.k_t if k_t is None else k_t
        k_p = self.k_p if k_p is None else k_p
        u = self.clock_mhz
        f_prev = (self.f_prev_mhz if f_prev_mhz is None else f_prev_mhz) / u
        clocks_mhz = np.asarray(clocks_mhz, dtype=float)
        allowed = caftm_levels(clocks_mhz)
        lo, hi = clocks_mhz[allowed[0]] / u, clocks_mhz[allowed[-1]] / u
        if not math.isfinite(f_prev):
            f_prev = hi
        n = max(n_gpus, 1)
        if math.isfinite(cap_w):
            head = (cap_w / n - idle_w) / self.power_w
            f_cap = (head / (k_p * work)) ** (1.0 / 3.0) if head > 0 else lo
            hi = max(lo, min(hi, f_cap))
        x0 = np.array([min(max(f_prev, lo), hi)])
        res = minimize(
            lambda x: float(caftm_cost(x[0], k_t, k_p, work, f_prev)),
            x0,
            method="L-BFGS-B",
            bounds=[(lo, hi)],
            jac=lambda x: np.array(
                [
                    -W_TIME * k_t * work / x[0] ** 2
                    + W_POWER * 30.0 * k_p * work * x[0] ** 2
                    - 2.0 * W_SMOOTH * (f_prev - x[0])
                ]
            ),
        )
        f_star = float(np.clip(res.x[0], lo, hi)) * u
        under = n * np.asarray(p_gpu_w) <= cap_w + 1e-9
        ok = allowed[under[allowed]]
        if ok.size:
            level = int(ok[np.argmin(np.abs(clocks_mhz[ok] - f_star))])
        else:  # no level in CAFTM's range fits the cap
            below = np.flatnonzero(under)
            level = int(below[-1]) if below.size else 0
        return level, f_star


class CaftmPolicy(Policy):
    """CAFTM as published (Park et al., IEEE CLOUD 2024): state machine driven by theta_CI plus the S3
    frequency controller, with no deadline awareness.

    Rule: in Tolerance, after each step, if the current region's intensity >= its ``theta_ci`` migrate
    (Suspend -> Migration -> Scaling) to the lowest-intensity region with usable GPUs (if it is below the
    current one); when it is below ``theta_ci`` stay (Tolerance -> Scaling only when the clock or GPU count
    changes). ``theta_ci`` is per zone: the authors' prototype values where the zone has one
    (:data:`PROTOTYPE_THETA_G_PER_KWH`: KR 320, US-CAL-CISO 250 g/kWh), else the median
    (:data:`THETA_QUANTILE`) of the zone's hourly intensity over the scenario's TRAINING split.
    The clock comes from :class:`FrequencyController`, within CAFTM's 337-1522 MHz range intersected with
    the GPU's supported clocks; ``f_prev`` is the clock actually applied (``view.level``).

    "Profiled" here: after a decision step the job spent entirely in Tolerance in one region at one clock
    and GPU count (consecutive views, no rollback), the policy records the observed mean time per mini-batch
    (elapsed step time / mini-batches gained, scaled to the full GPU request and divided by the step's
    measured work multiplier W, ``view.work`` of the next view) and the observed power per GPU
    (``view.power_w / n_gpus``). Each such step is one of the "last 10 profiled mini-batches" (the simulator
    is deterministic within a step, so a step's mean
    equals each mini-batch's value). Before any sample, ``k_t``/``k_p`` are fitted on the region's profile
    table (what a scheduler measures offline). Coefficients are refitted and the clock re-solved when the GPU
    count changes (S3), and re-solved when W changes by more than ``work_tol``, or the region or cap changes.

    :param theta_ci: one migration threshold for every zone in g/kWh (None = the per-zone rule above).
    :param theta_p_w: job power cap (None = the scenario's cap, time-varying windows included).
    :param deadline_guard: this project's addition (see ``caftm_guarded``); off as published.
    :param units: the reading of the cost's units (:data:`UNIT_READINGS`; default the prototype's s, W, MHz).
    """

    name = "caftm"

    def __init__(
        self,
        theta_ci: float | None = None,
        theta_p_w: float | None = None,
        deadline_guard: bool = False,
        guard_fraction: float = 0.9,
        work_tol: float = 0.01,
        units: str = PROTOTYPE_READING,
    ):
        if theta_ci is not None and theta_ci < 0:
            raise ConfigError(f"caftm: theta_ci={theta_ci} must be >= 0 g/kWh")
        if theta_p_w is not None and theta_p_w <= 0:
            raise ConfigError(f"caftm: theta_p_w={theta_p_w} must be > 0 W")
        if not 0.0 < guard_fraction <= 1.0:
            raise ConfigError(f"caftm: guard_fraction={guard_fraction} must be in (0, 1]")
        self.theta_ci_arg = theta_ci
        self.theta_p_w = theta_p_w
        self.deadline_guard = deadline_guard
        self.guard_fraction = guard_fraction
        self.work_tol = work_tol
        if units not in UNIT_READINGS:
            raise ConfigError(f"caftm: units={units!r}; one of {', '.join(UNIT_READINGS)}")
        self.units = units

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        zones = env.scenario.zones
        if self.theta_ci_arg is None:
            self.theta_g_per_kwh, self.theta_source = zone_thetas(zones, training_thresholds(env, THETA_QUANTILE))
        else:
            self.theta_g_per_kwh = np.full(len(zones), float(self.theta_ci_arg))
            self.theta_source = ["argument"] * len(zones)
        self.ctrl = FrequencyController(units=self.units)
        self.prev: PolicyView | None = None
        self.prev_target = -1
        self.key = None
        self.key_work = math.nan
        self.level = None
        self.n_running = 0

    def _profile(self, view: PolicyView) -> None:
        p = self.prev
        if (
            p is None
            or p.state != State.TOLERANCE
            or view.state != State.TOLERANCE
            or self.prev_target != p.region
            or view.region != p.region
            or view.level != p.level
            or view.n_gpus != p.n_gpus
            or view.n_gpus == 0
        ):
            return
        gained = view.progress_mb - p.progress_mb
        dt = view.t_s - p.t_s
        if gained <= 0 or dt <= 0:
            return
        t_full = dt / gained * view.n_gpus / view.requested_gpus / view.work  # view.work: the step just measured
        self.ctrl.add_sample(
            view.clocks_mhz[view.region, view.level], t_full, view.power_w / view.n_gpus, view.idle_w[view.region]
        )
        self.key = None  # coefficients changed: re-solve

    def _fit_from_table(self, view: PolicyView, r: int) -> None:
        self.ctrl.fit(view.clocks_mhz[r], view.t_mb_s[r], view.p_gpu_w[r], view.idle_w[r])

    def act(self, obs, view: PolicyView) -> np.ndarray:
        self._profile(view)
        if view.n_gpus > 0 and view.n_gpus != self.n_running:  # GPU count changed (fault, shortage, scaling)
            self.n_running = view.n_gpus
            self.ctrl.refit()
            self.key = None
        self.ctrl.f_prev_mhz = float(view.clocks_mhz[view.region, view.level])  # the clock applied
        if view.state in TIMED:
            target = continue_target(view)
        else:
            r = view.region
            target = cleanest_if(view, view.intensity_g_per_kwh[r] >= self.theta_g_per_kwh[r])
        dest = view.region if target == view.wait else target
        n = gpus_after(view, target)
        cap = view.cap_w if self.theta_p_w is None else min(view.cap_w, self.theta_p_w)
        if not self.ctrl.samples or dest != view.region:
            self._fit_from_table(view, dest)
        key = (dest, n, cap, float(f"{self.ctrl.k_t:.6g}"), float(f"{self.ctrl.k_p:.6g}"))
        if self.key is None or key != self.key or abs(view.work - self.key_work) > self.work_tol * self.key_work:
            self.level, _ = self.ctrl.choose_clock_mhz(
                view.clocks_mhz[dest], view.p_gpu_w[dest], view.idle_w[dest], n, cap, view.work
            )
            self.key, self.key_work = key, view.work
        level = self.level
        if self.deadline_guard and math.isfinite(view.deadline_s) and view.usable_gpus[dest] > 0:
            left_h = (view.deadline_s - view.t_s) / 3600.0
            if hours_needed(view, dest, level) > self.guard_fraction * left_h:
                level = max_level_under_cap(view, dest, n, cap)
        level = cap_safe_level(view, target, level, cap)  # theta_P possibly tighter than the env's cap
        self.prev, self.prev_target = view, target
        return np.array([target, level])


class CaftmGuardedPolicy(CaftmPolicy):
    """CAFTM (as in ``caftm``) plus this project's deadline guard.

    Rule: CAFTM's threshold migration and S3 clock; then, because the paper's cost ignores deadlines, if the
    remaining work at the chosen clock would need more than ``guard_fraction`` (0.9) of the time left before
    the deadline, the highest clock level under the cap is used instead.
    """

    name = "caftm_guarded"

    def __init__(self, theta_ci: float | None = None, theta_p_w: float | None = None, **kwargs):
        super().__init__(theta_ci, theta_p_w, deadline_guard=True, **kwargs)
