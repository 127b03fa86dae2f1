"""Fit the DVFS model of :mod:`sim.gpu` to measurements.

    t(f) = t0_s + t1_s_mhz / f          P(f) = p0_w + p1_w_per_mhz * f + p3_w_per_mhz3 * f**3

* :func:`fit_clock_sweep` -- measurements taken *at* SM clocks (Perseus): two bounded linear least-squares
  fits that minimise the relative error of time and of power.
* :func:`fit_power_limit_sweep` -- measurements taken under *power limits* (Zeus). The GPU's power
  management lowers the clock until the power it enforces fits under the limit, so a limit L runs at

      f(L) = max{ f in [f_min, f_max] : cap_ratio * P(f) <= L }   (f_max when the limit does not bind)

  and yields (t(f(L)), P(f(L))). ``cap_ratio`` >= 1 is the ratio of the power the controller enforces
  (short-window board power) to the epoch-average power the trace reports; it is > 1 for workloads that stall
  on input (DeepSpeech2's average stays well below the limit). Fitted with scipy.optimize.least_squares on
  relative errors of time and power.

All coefficients are constrained so that t decreases and P increases with f and P(f) >= idle_w.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares, lsq_linear

# Weight of the prior that pulls the clock-dependent parts of t and P towards zero. It only decides the
# fit where the data cannot (e.g. NCF, whose time and power do not react to the limit at all); at 1e-2 it
# moves the fitted points of the other workloads by well under 1 %.
PRIOR_WEIGHT = 1e-2
# Lowest and highest cap_ratio allowed: the controller cannot hold the average above the limit for long,
# and a ratio above 2 would mean the GPU idles more than half the time.
CAP_RATIO_BOUNDS = (0.9, 2.0)
# Smallest share of the time at f_max that scales with 1/f, and of the busy power above idle that grows with
# f. Keeps t strictly decreasing and P strictly increasing even for input-bound workloads (a mini-batch
# always runs some GPU kernels).
MIN_CLOCK_SHARE = 0.01
# Relative error above which a residual counts as an outlier (soft-L1 loss): a few points the one-curve model
# cannot follow (e.g. DeepSpeech2 on V100, whose average power keeps rising at limits where its time no longer
# improves) should not drag the fit off all the others.
ROBUST_SCALE = 0.03


@dataclass(frozen=True)
class DvfsFit:
    """Fitted coefficients (units as in :class:`sim.gpu.GpuModel`) plus ``cap_ratio`` (1 for clock sweeps)."""

    t0_s: float
    t1_s_mhz: float
    p0_w: float
    p1_w_per_mhz: float
    p3_w_per_mhz3: float
    cap_ratio: float = 1.0

    def time_s(self, f_mhz):
        return self.t0_s + self.t1_s_mhz / np.asarray(f_mhz, dtype=float)

    def power_w(self, f_mhz):
        f = np.asarray(f_mhz, dtype=float)
        return self.p0_w + self.p1_w_per_mhz * f + self.p3_w_per_mhz3 * f**3


def fit_clock_sweep(f_mhz, time_s, power_w, idle_w: float) -> DvfsFit:
    """Least-squares fit (relative errors) of t and P measured at the SM clocks ``f_mhz``.

    Bounds: t0, t1 >= 0; p0 >= idle_w; p1, p3 >= 0.
    """
    f, t, p = (np.asarray(a, dtype=float) for a in (f_mhz, time_s, power_w))
    # Divide each row by the measurement (relative error) and scale columns to O(1) for conditioning.
    f_max = f.max()
    a_t = np.column_stack([np.ones_like(f), f_max / f]) / t[:, None]
    sol_t = lsq_linear(a_t, np.ones_like(t), bounds=([0, 0], [np.inf, np.inf])).x
    x = f / f_max
    a_p = np.column_stack([np.ones_like(f), x, x**3]) / p[:, None]
    sol_p = lsq_linear(a_p, np.ones_like(p), bounds=([idle_w, 0, 0], [np.inf] * 3)).x
    return DvfsFit(sol_t[0], sol_t[1] * f_max, sol_p[0], sol_p[1] / f_max, sol_p[2] / f_max**3)


def clock_under_limit_mhz(fit: DvfsFit, limit_w, f_min_mhz: float, f_max_mhz: float) -> np.ndarray:
    """f(L): the highest clock in [f_min, f_max] with cap_ratio * P(f) <= L (f_min if none fits)."""
    limit = np.atleast_1d(np.asarray(limit_w, dtype=float))
    lo = np.full_like(limit, f_min_mhz)
    hi = np.full_like(limit, f_max_mhz)
    for _ in range(60):  # bisection on the increasing P(f); 60 halvings resolve far below 1e-6 MHz
        mid = 0.5 * (lo + hi)
        fits = fit.cap_ratio * fit.power_w(mid) <= limit
        lo = np.where(fits, mid, lo)
        hi = np.where(fits, hi, mid)
    f = lo
    f = np.where(fit.cap_ratio * fit.power_w(f_max_mhz) <= limit, f_max_mhz, f)
    return f


def predict_power_limit_sweep(fit: DvfsFit, limit_w, f_min_mhz: float, f_max_mhz: float):
    """(time per mini-batch s, average power W) predicted at each power limit."""
    f = clock_under_limit_mhz(fit, limit_w, f_min_mhz, f_max_mhz)
    return fit.time_s(f), fit.power_w(f)


def fit_power_limit_sweep(limit_w, time_s, power_w, idle_w: float, f_min_mhz: float, f_max_mhz: float) -> DvfsFit:
    """Fit t(f), P(f) and cap_ratio so that the predicted (time, power) at each limit match the measurement.

    Several starting points are tried (the limit-to-clock map is piecewise, so the problem is not convex);
    the one with the lowest cost wins.
    """
    limit, t, p = (np.asarray(a, dtype=float) for a in (limit_w, time_s, power_w))
    t_ref, p_ref = t.min(), p.max()

    def unpack(z):
        # z = [t0, t1n, p0, p1n, p3n, r] with t1n = t1/f_max (s), p1n = p1*f_max (W), p3n = p3*f_max^3 (W).
        return DvfsFit(z[0], z[1] * f_max_mhz, z[2], z[3] / f_max_mhz, z[4] / f_max_mhz**3, z[5])

    def residuals(z):
        t_hat, p_hat = predict_power_limit_sweep(unpack(z), limit, f_min_mhz, f_max_mhz)
        prior = PRIOR_WEIGHT * np.array([z[1] / t_ref, (z[3] + z[4]) / p_ref])
        return np.concatenate([t_hat / t - 1, p_hat / p - 1, prior])

    busy = max(p_ref - idle_w, 1.0)
    lower = [0, MIN_CLOCK_SHARE * t_ref, idle_w, 0, MIN_CLOCK_SHARE * busy, CAP_RATIO_BOUNDS[0]]
    upper = [np.inf, np.inf, np.inf, np.inf, np.inf, CAP_RATIO_BOUNDS[1]]
    best = None
    starts = [(share, ratio) for share in (0.2, 0.5, 0.8) for ratio in (1.0, 1.25)]
    for share, ratio in starts:  # share: part of t(f_max) and of busy power that depends on the clock
        z0 = [
            t_ref * (1 - share),
            t_ref * share,
            idle_w + busy * (1 - share),
            busy * share * 0.3,
            busy * share * 0.7,
            ratio,
        ]
        z0 = np.clip(z0, np.add(lower, 1e-12), upper)
        sol = least_squares(
            residuals, z0, bounds=(lower, upper), x_scale="jac", method="trf", loss="soft_l1", f_scale=ROBUST_SCALE
        )
        if best is None or sol.cost < best.cost:
            best = sol
    return unpack(best.x)


def relative_errors(predicted, measured) -> tuple[float, float]:
    """(median, max) of |predicted / measured - 1|."""
    err = np.abs(np.asarray(predicted, dtype=float) / np.asarray(measured, dtype=float) - 1)
    return float(np.median(err)), float(err.max())
