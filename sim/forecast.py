"""Carbon-intensity forecasts that policies may see: never silently perfect.

- ``perfect``: the realised trace (an oracle-style upper bound on forecast quality);
- ``noisy``: the realised value times (1 + e), e ~ N(0, (error_std_per_hour * sqrt(lead_h))^2),
  i.e. error growing with the horizon like a random walk;
- ``persistence``: the current hour's value for every lead;
- ``seasonal_naive``: the value 24 h before the forecast hour (persistence where no history exists).
"""

from __future__ import annotations

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
    issue = first_hour + np.arange(n_hours)  # absolute hour a forecast is issued at
    target = issue[:, None] + 1 + np.arange(H)[None, :]  # absolute hour forecast
    if spec.kind == "persistence":
        src = np.broadcast_to(issue[:, None], target.shape)
    elif spec.kind == "seasonal_naive":
        src = target - 24 * ((target - issue[:, None] + 23) // 24)  # latest same-hour value already observed
        src = np.where(src >= 0, src, issue[:, None])
    else:
        src = target
    fc = ci_g_per_kwh[:, np.minimum(src, total - 1)]
    if spec.kind == "noisy" and spec.error_std_per_hour > 0:
        std = spec.error_std_per_hour * np.sqrt(1.0 + np.arange(H))
        fc = fc * (1.0 + rng.standard_normal(fc.shape) * std)
    return np.maximum(fc, 0.0)
