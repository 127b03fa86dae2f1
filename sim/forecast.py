"""Carbon-intensity forecasts that policies may see: never silently perfect.

- ``perfect``: the realised trace (an oracle-style upper bound on forecast quality);
- ``noisy``: the realised value times (1 + e), e ~ N(0, (error_std_per_hour * sqrt(lead_h))^2),
  i.e. error growing with the horizon like a random walk;
- ``persistence``: the current hour's value for every lead;
- ``seasonal_naive``: the value 24 h before the forecast hour (persistence where no history exists).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from sim.scenario import ForecastSpec


def forecast_matrix(
    ci_g_per_kwh: np.ndarray, first_hour: int, n_hours: int, spec: ForecastSpec, rng: np.random.Generator
) -> np.ndarray:
    """Forecasts issued at each of ``n_hours`` hours starting at ``first_hour`` of ``ci`` (regions x hours).

    :returns: array (regions, n_hours, horizon_hours); ``[r, h, j]`` forecasts hour ``h + 1 + j`` from hour ``h``.
    """
    R, total = ci_g_per_kwh.shape
    H = spec.horizon_hours
    offset, src_ok = _source_offsets(n_hours, H, spec.kind)
    src = first_hour + offset  # absolute hour each forecast is read from
    if not src_ok:  # seasonal_naive: persistence where the same hour a day before is not in the table
        src = np.where(src >= 0, src, first_hour + np.arange(n_hours)[:, None])
    fc = ci_g_per_kwh[:, np.minimum(src, total - 1)]
    if spec.kind == "noisy" and spec.error_std_per_hour > 0:
        fc = fc * (1.0 + rng.standard_normal(fc.shape) * _lead_std(H, spec.error_std_per_hour))
    return np.maximum(fc, 0.0)


@lru_cache(maxsize=32)
def _source_offsets(n_hours: int, H: int, kind: str) -> tuple[np.ndarray, bool]:
    """``(src - first_hour, whether src >= 0 always)`` for forecasts issued at hours ``first_hour + h``: the same
    integers for every episode, so computed once (read-only)."""
    issue = np.arange(n_hours)  # hour a forecast is issued at, from the first
    target = issue[:, None] + 1 + np.arange(H)[None, :]  # hour forecast
    if kind == "persistence":
        src = np.broadcast_to(issue[:, None], target.shape).copy()
    elif kind == "seasonal_naive":
        src = target - 24 * ((target - issue[:, None] + 23) // 24)  # latest same-hour value already observed
    else:
        src = target
    src.setflags(write=False)
    return src, kind != "seasonal_naive"


@lru_cache(maxsize=32)
def _lead_std(H: int, error_std_per_hour: float) -> np.ndarray:
    std = error_std_per_hour * np.sqrt(1.0 + np.arange(H))
    std.setflags(write=False)
    return std
