"""Fleet scenarios (kind: fleet) are data: the shipped ones load, and bad values name the file and field."""

from __future__ import annotations

import copy

import pytest
import yaml

from sim.errors import ConfigError
from sim.scenario import (
    SCENARIO_DIR,
    load_fleet_scenario,
    load_scenario,
    parse_fleet_scenario,
    scenario_names,
)


def raw(name: str) -> dict:
    return yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text())


def test_shipped_fleet_scenarios_are_listed_apart_from_single_job_ones():
    assert scenario_names("fleet") == ["fleet", "fleet_small"]
    assert not {"fleet", "fleet_small"} & set(scenario_names())


def test_the_fleet_scenario_has_six_regions_150_jobs_and_a_week():
    sc = load_fleet_scenario("fleet")
    assert len(sc.regions) >= 6 and sc.jobs.n_jobs >= 150 and sc.horizon_hours == 168
    assert sc.jobs.source == "philly" and sc.jobs.window_days == (70.0, 75.0)
    assert sc.regions[5].name == "CA-ON" and sc.regions[5].gpus == 8


@pytest.mark.parametrize("name", ["fleet", "fleet_small"])
def test_round_trip_through_plain_data(name):
    sc = load_fleet_scenario(name)
    assert parse_fleet_scenario(sc.to_dict(), "again") == parse_fleet_scenario(raw(name), "again")


def test_a_fleet_file_given_to_the_single_job_loader_says_which_loader_to_use():
    with pytest.raises(ConfigError, match=r"fleet\.yaml: kind: fleet is a multi-job scenario; .*load_fleet_scenario"):
        load_scenario("fleet")
    with pytest.raises(ConfigError, match=r"paper\.yaml: kind: must be fleet"):
        load_fleet_scenario("paper")


SMALL = [
    (("jobs", "list", 2, "home"), "MARS", r"jobs.list\[2\].home: unknown region 'MARS'; regions are KR, DE, CA-ON"),
    (("jobs", "list", 0, "gpus"), 5, r"jobs.list\[0\].gpus: 5 GPUs exceeds every pool \(largest: KR, 4 GPUs\)"),
    (("regions", 1, "gpus"), -4, r"regions\[1\].gpus: must be >= 1, got -4"),
    (("jobs", "list", 1, "workload"), "gpt5", r"jobs.list\[1\].workload: must be one of resnet50, bert_squad"),
    (("jobs", "list", 0, "arrival_hours"), 30, r"jobs.list\[0\].arrival_hours: must be < horizon_hours \(24\)"),
    (("jobs", "list", 0, "duration_hours"), 0, r"jobs.list\[0\].duration_hours: must be > 0.0"),
    (("jobs", "list"), [], "jobs.list: must be a non-empty list of jobs for source: list"),
    (("jobs", "slack_factor"), 0.5, "jobs.slack_factor: must be >= 1.0, got 0.5"),
    (("jobs", "source"), "alibaba", "jobs.source: must be one of philly, list; got 'alibaba'"),
    (("jobs", "workloads"), [], "jobs.workloads: must be a non-empty list"),
    (("jobs", "colour"), "red", r"jobs.colour: unknown field \(misspelt\?\)"),
    (("regions", 2, "name"), "KR", r"regions\[2\].name: duplicate region name 'KR'"),
    (("horizon_hours",), 0.1, "horizon_hours: must be >= 0.25"),
    (("jobs", "storage_gbps"), 0, "jobs.storage_gbps: must be > 0.0, got 0"),
    (("cap_enforcement",), "pray", "cap_enforcement: must be one of measure, throttle; got 'pray'"),
]

FLEET = [
    (("jobs", "gpus"), [1, 32], r"jobs.gpus: 32 GPUs exceeds every pool \(largest: KR, 16 GPUs\); must be <= 16"),
    (("jobs", "gpus"), [8, 2], r"jobs.gpus: must be \[low, high\] GPUs per job with 1 <= low <= high"),
    (("jobs", "window_days"), [70, 70], r"jobs.window_days: is empty: start 70.0 == end 70.0"),
    (("jobs", "window_days"), [70, 80], r"jobs.window_days: arrivals span 240 h; must be shorter than horizon_hours"),
    (("jobs", "window_days"), "last week", r"jobs.window_days: must be \[low, high\] days after the trace's first"),
    (("jobs", "home"), "MARS", "jobs.home: unknown region 'MARS'; expected cluster, uniform or one of KR, JP-TK"),
    (("jobs", "n_jobs"), 0, "jobs.n_jobs: must be >= 1, got 0"),
    (("regions", 0, "gpus"), -16, r"regions\[0\].gpus: must be >= 1, got -16"),
    (("splits", "test"), ["2023-01-01"], r"splits.test: must be \[start, end\]"),
]


@pytest.mark.parametrize(
    "name, path, value, message", [("fleet_small", *c) for c in SMALL] + [("fleet", *c) for c in FLEET]
)
def test_bad_values_name_the_file_and_field(name, path, value, message):
    data = copy.deepcopy(raw(name))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=rf"^{name}\.yaml: {message}"):
        parse_fleet_scenario(data, f"{name}.yaml")


def test_a_missing_window_for_the_trace_is_named():
    data = raw("fleet")
    del data["jobs"]["window_days"]
    with pytest.raises(ConfigError, match=r"jobs.window_days: is required for source: philly"):
        parse_fleet_scenario(data, "f.yaml")
