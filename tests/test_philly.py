"""Specification of loaders.philly: the Philly job trace (Pollux copy) and job-size sampling (SPEC W6)."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders.philly import PHILLY_RELPATH, fleet_jobs, load_philly, philly_window, sample_jobs
from sim.errors import ConfigError, DataError
from sim.paths import raw_data_dir
from sim.scenario import load_fleet_scenario

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


# ---------------------------------------------------------------- fleet jobs drawn from a trace window (issue 10)

# P100 top clock (1329 MHz) time per mini-batch, t0_s + t1_s_mhz / f, copied from data/derived/gpu_models.csv
P100_TOP_S = {
    "resnet50": 0.5699319619 + 79.69445704 / 1329,
    "bert_squad": 0.7097275698 + 132.120667 / 1329,
    "shufflenetv2": 0.3229852813 + 18.74916915 / 1329,
}
# the same at the top clock of the fleet's region GPUs: V100 1380 MHz, A40 1740 MHz
TOP_S = {
    "V100": {
        "resnet50": 0.5194258377 + 253.239456 / 1380,
        "bert_squad": 0.3832515044 + 339.4528595 / 1380,
        "shufflenetv2": 0.093528495 + 87.17020192 / 1380,
    },
    "A40": {
        "resnet50": 0.5912295645 + 296.2754562 / 1740,
        "bert_squad": 0.1834454832 + 245.4221347 / 1740,
        "shufflenetv2": 0.1219771622 + 90.59717283 / 1740,
    },
}


@pytest.fixture(scope="module")
def raw_rows(raw_path):
    with open(raw_path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def fleet():
    return load_fleet_scenario("fleet")


def test_fleet_window_holds_the_raw_rows_of_days_70_to_75(raw_rows, trace, fleet):
    t0 = min(datetime.fromisoformat(r["timestamp"]) for r in raw_rows)
    keep = [
        i
        for i, r in enumerate(raw_rows)
        if 70 * 86400 <= (datetime.fromisoformat(r["timestamp"]) - t0).total_seconds() < 75 * 86400
        and 3600 <= float(r["duration"]) <= 24 * 3600
        and int(r["num_gpus"]) <= 16
    ]
    window = philly_window(trace, fleet.jobs)
    assert len(keep) == 571 and window["row"].tolist() == keep


def test_fleet_jobs_are_raw_rows_with_their_own_arrival_size_and_duration(raw_rows, trace, fleet):
    jobs = fleet_jobs(fleet, seed=3, df=trace)
    t_window = min(datetime.fromisoformat(r["timestamp"]) for r in raw_rows) + timedelta(days=70)
    clusters = sorted({r["cluster"] for r in raw_rows})
    assert jobs.n_jobs == 160 and len(set(jobs.trace_row.tolist())) == 160  # drawn without replacement
    assert np.all(np.diff(jobs.arrival_s) >= 0)
    for j in range(jobs.n_jobs):
        r = raw_rows[jobs.trace_row[j]]
        assert jobs.arrival_s[j] == (datetime.fromisoformat(r["timestamp"]) - t_window).total_seconds()
        assert jobs.gpus[j] == int(r["num_gpus"]) and jobs.trace_duration_s[j] == float(r["duration"])
        assert jobs.home[j] == clusters.index(r["cluster"]) % 6  # home: cluster
        workload = jobs.workloads[jobs.workload[j]]
        assert jobs.minibatches[j] == max(1, round(float(r["duration"]) / P100_TOP_S[workload]))
        home_gpu = fleet.regions[jobs.home[j]].gpu
        deadline = jobs.arrival_s[j] + 1.5 * jobs.minibatches[j] * TOP_S[home_gpu][workload]
        assert jobs.deadline_s[j] == pytest.approx(min(deadline, 168 * 3600.0), rel=1e-12)
        assert jobs.checkpoint_gb[j] == {"resnet50": 0.4096, "bert_squad": 1.76, "shufflenetv2": 0.0368}[workload]


def test_same_seed_same_jobs_and_another_seed_other_jobs(trace, fleet):
    a, b, c = fleet_jobs(fleet, 7, trace), fleet_jobs(fleet, 7, trace), fleet_jobs(fleet, 8, trace)
    assert np.array_equal(a.trace_row, b.trace_row) and np.array_equal(a.workload, b.workload)
    assert np.array_equal(a.energy_per_minibatch_kwh, b.energy_per_minibatch_kwh)
    assert not np.array_equal(a.trace_row, c.trace_row)


def test_an_empty_trace_window_names_the_field(trace, fleet):

    empty = replace(fleet, jobs=replace(fleet.jobs, window_days=(200.0, 201.0)))
    with pytest.raises(
        ConfigError, match=r"fleet\.yaml: jobs\.window_days: no trace job arrives in \[200\.0, 201\.0\]"
    ):
        fleet_jobs(empty, 0, trace)
    too_many = replace(fleet, jobs=replace(fleet.jobs, n_jobs=600))
    with pytest.raises(ConfigError, match=r"jobs\.n_jobs: 600 exceeds the 571 trace jobs in window_days"):
        fleet_jobs(too_many, 0, trace)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_any_seed_draws_distinct_window_rows_with_sound_windows_and_work(trace, fleet, seed):
    jobs = fleet_jobs(fleet, seed, trace)
    window_rows = set(philly_window(trace, fleet.jobs)["row"])
    assert len(set(jobs.trace_row.tolist())) == 160 and set(jobs.trace_row.tolist()) <= window_rows
    assert np.all((jobs.arrival_s >= 0) & (jobs.arrival_s < 120 * 3600))  # window_days [70, 75)
    assert np.all((jobs.deadline_s > jobs.arrival_s) & (jobs.deadline_s <= 168 * 3600))
    assert np.all((jobs.gpus >= 1) & (jobs.gpus <= 16) & (jobs.minibatches >= 1))
    assert np.all(np.diff(jobs.minibatch_s, axis=2) < 0)  # a higher clock level is faster
    assert np.all(jobs.energy_per_minibatch_kwh > 0)
