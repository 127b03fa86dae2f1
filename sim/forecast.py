"""Carbon-intensity forecasts that policies may see: never silently perfect.

- ``perfect``: the realised trace (an oracle-style upper bound on forecast quality);
- ``noisy``: the realised value times (1 + e), with e of lead ``j`` hours (1..H) the sum of ``j`` independent
  N(0, error_std_per_hour^2) steps: a random walk across the leads of one forecast, so its std is
  ``error_std_per_hour * sqrt(j)`` and the errors of leads ``i < j`` are correlated (``sqrt(i / j)``), as real
  forecast errors are (a forecast that is high at 3 h is high at 4 h too). Forecasts issued at different hours
  draw independent walks. The magnitude is an assumption (data/derived/constants.csv);
- ``persistence``: the current hour's value for every lead;
- ``seasonal_naive``: the value 24 h before the forecast hour (persistence where no history exists).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from sim.rng import bitgen, random_standard_normal, rng_handles
from sim.scenario import ForecastSpec


def forecast_matrix(
    ci_g_per_kwh: np.ndarray, first_hour: int, n_hours: int, spec: ForecastSpec, rng: np.random.Generator
) -> np.ndarray:
    """Forecasts issued at each of ``n_hours`` hours starting at ``first_hour`` of ``ci`` (regions x hours).

    :returns: array (regions, n_hours, horizon_hours); ``[r, h, j]`` forecasts hour ``h + 1 + j`` from hour ``h``.
    """
    offset, src_ok, noise, std = forecast_tables(ci_g_per_kwh.shape[0], n_hours, spec)
    fns, state = rng_handles(rng)
    return draw_forecast(fns, np.uint64(state), ci_g_per_kwh, first_hour, offset, src_ok, noise, std)


def forecast_tables(
    n_regions: int, n_hours: int, spec: ForecastSpec
) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray]:
    """``draw_forecast``'s arguments for ``spec``: source-hour offsets, whether they are never negative, a noise
    buffer (regions, n_hours, horizon) (empty: no noise) and the noise std per lead."""
    H = spec.horizon_hours
    offset, src_ok = _source_offsets(n_hours, H, spec.kind)
    if spec.kind == "noisy" and spec.error_std_per_hour > 0:
        return offset, src_ok, np.empty((n_regions, n_hours, H)), _lead_std(H, spec.error_std_per_hour)
    return offset, src_ok, _NO_NOISE, _NO_STD


@njit(cache=True)
def draw_forecast(fns, state, ci, first_hour, offset, src_ok, noise, std):  # pragma: no cover - compiled
    """``_forecast`` with ``noise`` (unless empty) filled by the generator at ``state`` first, as
    ``np.cumsum(rng.standard_normal(noise.shape), axis=2)`` would (``sim.rng``): a random walk over leads."""
    if noise.shape[0] > 0:
        bg = bitgen(state, fns)
        R, n_hours, H = noise.shape
        for r in range(R):
            for h in range(n_hours):
                walk = 0.0
                for j in range(H):
                    walk += random_standard_normal(bg)  # a random walk across leads: errors correlated
                    noise[r, h, j] = walk
    return _forecast(ci, first_hour, offset, src_ok, noise, std)


@njit(cache=True)
def _forecast(ci, first_hour, offset, src_ok, noise, std):  # pragma: no cover - compiled
    """``fc[r, h, j] = max(ci[r, src] * (1 + noise[r, h, j] * std[j]), 0)`` with ``src = first_hour + offset[h, j]``
    (persistence's hour ``first_hour + h`` where ``src < 0`` unless ``src_ok``, the table's last hour at most);
    no noise factor when ``noise`` is empty. The order of NumPy's array expression, element by element."""
    R, total = ci.shape
    n_hours, H = offset.shape
    noisy = noise.shape[0] > 0
    out = np.empty((R, n_hours, H))
    for r in range(R):  # in the arrays' order: each element on its own, so any order gives the same bits
        for h in range(n_hours):
            for j in range(H):
                src = first_hour + offset[h, j]
                if not src_ok and src < 0:
                    src = first_hour + h
                if src > total - 1:
                    src = total - 1
                v = ci[r, src]
                if noisy:
                    v = v * (1.0 + noise[r, h, j] * std[j])
                out[r, h, j] = v if (v > 0.0 or v != v) else 0.0  # np.maximum(v, 0.0): +0.0 for -0.0, NaN kept
    return out


_NO_NOISE = np.zeros((0, 0, 1))
_NO_STD = np.zeros(1)


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
    # the noise is a random walk across leads (draw_forecast), so a constant step gives std sigma * sqrt(lead h)
    std = np.full(H, float(error_std_per_hour))
    std.setflags(write=False)
    return std
