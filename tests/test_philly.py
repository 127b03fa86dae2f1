"""Specification of loaders.philly: the Philly job trace (Pollux copy) and job-size sampling (SPEC W6)."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from loaders.philly import PHILLY_RELPATH, load_philly, sample_jobs
from sim.errors import DataError
from sim.paths import raw_data_dir

HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"


@pytest.fixture(scope="module")
def raw_path() -> Path:
    root = raw_data_dir()
    if root is None or not (root / PHILLY_RELPATH).is_file():
        pytest.skip("raw Philly trace absent: set CARBON_DATA_DIR or place it in ../shared/data")
    return root / PHILLY_RELPATH


@pytest.fixture(scope="module")
def trace(raw_path):
    return load_philly(raw_path)


def test_row_count_and_columns(trace):
    assert len(trace) == 82_247
    assert list(trace.columns) == ["arrival_s", "duration_s", "num_gpus", "gpu_time_s", "cluster"]


def test_values_match_raw_rows(raw_path, trace):
    with open(raw_path, newline="") as f:
        rows = list(csv.DictReader(f))
    t0 = min(datetime.fromisoformat(r["timestamp"]) for r in rows)
    for i in (0, 2, 40_000, len(rows) - 1):
        r = rows[i]
        assert trace["arrival_s"].iloc[i] == (datetime.fromisoformat(r["timestamp"]) - t0).total_seconds()
        assert trace["duration_s"].iloc[i] == float(r["duration"])
        assert trace["num_gpus"].iloc[i] == int(r["num_gpus"])
        assert trace["cluster"].iloc[i] == r["cluster"]
    # first row of the file, by eye: 2017-10-09 07:01:55, 66 s, 1 GPU; the trace starts 2017-09-04 10:30:41
    first_arrival = datetime(2017, 10, 9, 7, 1, 55) - datetime(2017, 9, 4, 10, 30, 41)
    assert trace["arrival_s"].iloc[0] == first_arrival.total_seconds()
    assert trace["num_gpus"].max() == max(int(r["num_gpus"]) for r in rows)


def test_sample_jobs_draws_real_rows_deterministically(trace):
    g1, d1 = sample_jobs(np.random.default_rng(0), 500, trace)
    g2, d2 = sample_jobs(np.random.default_rng(0), 500, trace)
    assert np.array_equal(g1, g2) and np.array_equal(d1, d2) and len(g1) == 500
    pairs = set(zip(trace["num_gpus"], trace["duration_s"]))
    assert all((g, d) in pairs for g, d in zip(g1, d1))


def test_missing_column_names_file_and_column(tmp_path):
    p = tmp_path / "jobs.csv"
    p.write_text("timestamp,duration,gpu_time,cluster\n2017-10-09 07:01:55,66.0,66.0,a\n")
    with pytest.raises(DataError, match=r"jobs\.csv.*num_gpus"):
        load_philly(p)


def test_negative_duration_names_column_and_row(tmp_path):
    p = tmp_path / "jobs.csv"
    p.write_text(HEADER + "2017-10-09 07:01:55,66.0,1,66.0,a\n2017-10-09 07:02:00,-5,1,5,a\n")
    with pytest.raises(DataError, match=r"jobs\.csv.*'duration'.*row 2"):
        load_philly(p)


def test_bad_timestamp_and_fractional_gpus_are_data_errors(tmp_path):
    p = tmp_path / "jobs.csv"
    p.write_text(HEADER + "yesterday,66.0,1,66.0,a\n")
    with pytest.raises(DataError, match="'timestamp'.*row 1"):
        load_philly(p)
    p.write_text(HEADER + "2017-10-09 07:01:55,66.0,1.5,99.0,a\n")
    with pytest.raises(DataError, match="'num_gpus'.*row 1"):
        load_philly(p)
