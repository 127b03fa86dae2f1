"""The constants registry (data/derived/constants.csv, spec V3): every constant a scenario uses is listed."""

from __future__ import annotations

import math

import pytest
import yaml

import sim.hardware as hw
from sim.constants import STATUSES, load_registry, unregistered
from sim.paths import SCENARIO_DIR
from sim.scenario import load_fleet_scenario, load_scenario

SHIPPED = sorted(SCENARIO_DIR.glob("*.yaml"))


def _value(name: str) -> list[str]:
    return [r["value"] for r in load_registry() if r["name"] == name]


def _load(path):
    data = yaml.safe_load(path.read_text())
    return load_fleet_scenario(path) if data.get("kind") == "fleet" else load_scenario(path)


def test_every_row_has_a_source_and_a_known_status():
    rows = load_registry()
    assert len(rows) >= 30
    for row in rows:
        assert row["status"] in STATUSES
        assert len(row["source"]) > 20, row["name"]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_uses_only_registered_constants(path):
    assert unregistered(_load(path)) == []


def test_an_unregistered_constant_is_named(tmp_path):
    data = yaml.safe_load((SCENARIO_DIR / "paper.yaml").read_text())
    data["regions"][1]["pue"] = 1.37
    data["faults"]["transfer_failure_prob"] = 0.05
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    assert unregistered(load_scenario(path)) == ["regions.pue = 1.37", "faults.transfer_failure_prob = 0.05"]


def test_a_scenario_default_is_checked_too(tmp_path):
    # a region without pue takes the default, which must itself be registered (AWS 2023: 1.15)
    data = yaml.safe_load((SCENARIO_DIR / "paper.yaml").read_text())
    del data["regions"][0]["pue"]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    sc = load_scenario(path)
    assert sc.regions[0].pue == 1.15
    assert unregistered(sc) == []


def test_gpu_failure_rate_is_llama3s_interruptions_per_gpu_hour():
    # Dubey et al. 2024, Table 5: 419 unexpected interruptions, 54 days, 16,384 H100s
    rate = 419 / (16384 * 54 * 24)
    assert any(math.isclose(float(v), rate, rel_tol=2e-3) for v in _value("faults.gpu_failure_per_gpu_hour"))


def test_storage_default_is_an_ebs_gp3_volumes_maximum():
    # 1,000 MiB/s in Gbit/s
    assert any(math.isclose(float(v), 1000 * 1048576 * 8 / 1e9) for v in _value("job.storage_gbps"))


def test_host_and_embodied_constants_in_code_match_the_registry():
    assert float(_value("host.memory_w_per_gb")[0]) == hw._W_PER_GB_MEMORY
    for cpu, (lo, hi) in hw._VCPU_W.items():
        assert _value(f"host.vcpu_w.{cpu}") == [f"{lo}:{hi}"]
    life_h = float(_value("embodied.life_h")[0])
    assert math.isclose(hw.EMBODIED_G_PER_GPU_H, float(_value("embodied.gpu_kg")[0]) * 1e3 / life_h, rel_tol=1e-6)
    assert math.isclose(hw.EMBODIED_G_PER_SERVER_H, float(_value("embodied.server_kg")[0]) * 1e3 / life_h, rel_tol=1e-6)
