"""Scenario files are data: every shipped one loads, and bad values are reported with file and field."""

import copy

import pytest
import yaml

from loaders.world import build_world
from sim.errors import ConfigError
from sim.scenario import SCENARIO_DIR, load_scenario, parse_scenario, scenario_names


def raw(name="paper"):
    return yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text())


def test_shipped_scenarios_load_with_disjoint_splits():
    assert {"paper", "global", "llm", "faults"} <= set(scenario_names())
    for name in scenario_names():
        sc = load_scenario(name)
        spans = sorted(sc.splits.values())
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_round_trip_through_plain_data():
    sc = load_scenario("paper")
    assert parse_scenario(sc.to_dict(), "again") == parse_scenario(raw(), "again")


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("job", "gpus"), 0, "job.gpus: must be >= 1, got 0"),
        (("job", "home"), "MARS", "job.home: unknown region 'MARS'"),
        (("job", "minibatches"), "many", "job.minibatches: must be an integer, got 'many'"),
        (("regions", 0, "pue"), 0.5, "regions[0].pue: must be >= 1.0"),
        (("faults", "transfer_failure_prob"), 1.5, "faults.transfer_failure_prob: must be <= 1.0"),
        (("forecast", "kind"), "crystal_ball", "forecast.kind: must be one of perfect, noisy"),
        (("step_minutes",), -15, "step_minutes: must be >= 1.0"),
        (("signal",), "marginal", "signal: must be one of direct, lca"),
        (("splits", "test"), ["2023-01-01"], "splits.test: must be [start, end]"),
    ],
)
def test_invalid_values_name_file_and_field(path, value, message):
    data = raw()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as e:
        parse_scenario(data, "scenarios/x.yaml")
    assert str(e.value).startswith("scenarios/x.yaml: ")
    assert message in str(e.value)


def test_unknown_field_and_overlapping_splits_and_duplicate_region():
    data = raw()
    data["job"]["gpu_count"] = 8
    with pytest.raises(ConfigError, match=r"job.gpu_count: unknown field"):
        parse_scenario(data, "x.yaml")
    data = raw()
    data["splits"]["validation"] = ["2022-01-01", "2023-01-01"]
    with pytest.raises(ConfigError, match="train and validation overlap"):
        parse_scenario(data, "x.yaml")
    data = raw()
    data["regions"].append(copy.deepcopy(data["regions"][0]))
    with pytest.raises(ConfigError, match=r"regions\[4\].name: duplicate region name 'KR'"):
        parse_scenario(data, "x.yaml")


def test_missing_file_bad_yaml_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="unknown scenario 'nope'; shipped: .*paper"):
        load_scenario("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="cannot read scenario file"):
        load_scenario(tmp_path / "absent.yaml")


def test_gpu_without_a_model_for_the_workload_names_the_region():
    data = raw()
    data["regions"][2]["gpu"] = "H100"
    sc = parse_scenario(data, "x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: regions\[2\].gpu / job.workload: .*H100"):
        build_world(sc, "train")
