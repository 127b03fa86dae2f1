"""Noisy forecasts: errors grow like sigma * sqrt(lead) and are correlated across the leads of one forecast."""

from __future__ import annotations

import numpy as np

from sim.forecast import forecast_matrix
from sim.scenario import ForecastSpec


def test_noisy_forecast_errors_are_a_random_walk_across_leads():
    sigma, H, n = 0.03, 6, 40_000
    ci = np.full((1, n + H + 1), 200.0)  # a flat trace: the relative error is fc / 200 - 1
    fc = forecast_matrix(
        ci, 0, n, ForecastSpec(kind="noisy", horizon_hours=H, error_std_per_hour=sigma), np.random.default_rng(0)
    )
    e = fc[0] / 200.0 - 1.0  # (n, H): lead j + 1 hours in column j
    std = e.std(axis=0)
    np.testing.assert_allclose(std, sigma * np.sqrt(np.arange(1, H + 1)), rtol=0.02)
    corr = np.corrcoef(e.T)
    # a random walk: corr(lead i, lead j) = sqrt(i / j) for i <= j (1 and 4 h: 0.5; 2 and 6 h: 0.577)
    assert abs(corr[0, 3] - 0.5) < 0.02
    assert abs(corr[1, 5] - np.sqrt(2 / 6)) < 0.02
    # forecasts issued at different hours draw independent walks
    assert abs(np.corrcoef(e[:-1, 0], e[1:, 0])[0, 1]) < 0.02
