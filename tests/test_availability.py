"""Specification of the spot-availability process: sim.availability and its calibration (SPEC W3)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from loaders.spot import read_trace
from sim.availability import (
    AVAILABILITY_JSON,
    _ar1,
    _ar1_rows,
    _powers,
    availability_params,
    free_gpus_table,
    sample_free_gpus,
)
from sim.errors import ConfigError, DataError
from sim.paths import raw_data_dir

CALIBRATED = json.loads(AVAILABILITY_JSON.read_text())


def lag1_autocorr(x: np.ndarray) -> float:
    d = x - x.mean()
    return float(np.sum(d[1:] * d[:-1]) / np.sum(d * d))


def test_same_seed_same_path_and_different_seed_different_path():
    a = sample_free_gpus(np.random.default_rng(7), 32, 700, 900.0)
    b = sample_free_gpus(np.random.default_rng(7), 32, 700, 900.0)
    c = sample_free_gpus(np.random.default_rng(8), 32, 700, 900.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("seed", range(40))
def test_compiled_table_is_bit_identical_to_the_numpy_path(seed):
    """free_gpus_table (compiled AR(1) and quantile map) = sample_free_gpus (NumPy) region by region, and the
    latent path is the same bits, including AR(1) blocks shorter than the series (small phi)."""
    pools = [10, 8, 32, 1]
    for scale in (1.0, 0.5, 1.7):
        table = free_gpus_table(np.random.default_rng(seed), pools, 193, 900.0, scale)
        rng = np.random.default_rng(seed)
        assert np.array_equal(table, [sample_free_gpus(rng, pool, 193, 900.0, scale=scale) for pool in pools])
    eps = np.random.default_rng(seed).standard_normal((3, 700))
    for phi in (0.9051, 0.3, 0.01):  # blocks of 5773, 478 and 125 steps
        block = max(1, int(250.0 / -np.log10(phi)))
        z = _ar1_rows(eps, np.sqrt(1.0 - phi * phi), _powers(phi, min(block, 700)), block)
        assert np.array_equal(z.view(np.uint64), _ar1(phi, eps.copy()).view(np.uint64))


@pytest.mark.parametrize("pool", [0, 1, 7, 32, 512])
def test_values_are_integers_within_the_pool(pool):
    x = sample_free_gpus(np.random.default_rng(pool), pool, 5000, 900.0)
    assert x.dtype == np.int64 and x.shape == (5000,)
    assert x.min() >= 0 and x.max() <= pool


def test_long_run_mean_fraction_matches_calibration():
    x = sample_free_gpus(np.random.default_rng(0), 1000, 200_000, 900.0) / 1000
    assert x.mean() == pytest.approx(CALIBRATED["mean_fraction"], abs=0.01)
    assert x.std() == pytest.approx(CALIBRATED["std_fraction"], abs=0.01)


def test_lag_autocorrelation_matches_fit_at_15_min_and_1_h():
    x15 = sample_free_gpus(np.random.default_rng(1), 1000, 200_000, 900.0) / 1000
    x60 = sample_free_gpus(np.random.default_rng(2), 1000, 200_000, 3600.0) / 1000
    assert lag1_autocorr(x15) == pytest.approx(CALIBRATED["lag1_autocorr_fraction"], abs=0.02)
    assert lag1_autocorr(x60) == pytest.approx(CALIBRATED["autocorr_per_hour_fraction"], abs=0.02)


def test_scale_zero_is_full_pool_and_half_scale_halves_the_shortage():
    assert (sample_free_gpus(np.random.default_rng(3), 16, 1000, 900.0, scale=0.0) == 16).all()
    x = sample_free_gpus(np.random.default_rng(3), 1000, 100_000, 900.0, scale=0.5) / 1000
    assert 1 - x.mean() == pytest.approx(0.5 * (1 - CALIBRATED["mean_fraction"]), abs=0.01)


def test_invalid_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="step_s"):
        sample_free_gpus(np.random.default_rng(0), 8, 10, 0.0)
    with pytest.raises(ConfigError, match="scale"):
        sample_free_gpus(np.random.default_rng(0), 8, 10, 900.0, scale=-1.0)


def test_params_file_missing_key_is_a_data_error(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text(json.dumps({k: v for k, v in CALIBRATED.items() if k != "quantile_z"}))
    with pytest.raises(DataError, match=r"a\.json.*quantile_z"):
        availability_params(bad)


def test_parcae_trace_mean_fraction_by_hand():
    root = raw_data_dir()
    path = None if root is None else root / "spot_availability" / "parcae" / "p3.csv"
    if path is None or not path.is_file():
        pytest.skip("raw spot traces absent: set CARBON_DATA_DIR or place them in ../shared/data")
    with open(path, newline="") as f:
        rows = [(float(t) / 1000, int(n)) for t, n in csv.reader(f)]
    steps = int(rows[-1][0] // 900)  # full 15-min steps from t = 0 (the trace starts with instances up)
    end, area = steps * 900.0, 0.0
    for (t0, n), (t1, _) in zip(rows, rows[1:]):
        area += n * max(0.0, min(t1, end) - min(t0, end))
    parcae = CALIBRATED["per_trace"][0]
    assert parcae["file"] == "p3.csv" and parcae["steps"] == steps
    assert parcae["mean_fraction"] == pytest.approx(area / end / 32, abs=1e-4)


def test_trace_with_time_going_backwards_names_the_row(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("0,4\n10,3\n5,2\n")
    with pytest.raises(DataError, match=r"t\.csv, row 3"):
        read_trace(p, 1.0)


def test_trace_with_negative_count_names_the_row(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("0,4\n10,-1\n")
    with pytest.raises(DataError, match=r"t\.csv, row 2"):
        read_trace(p, 1.0)
