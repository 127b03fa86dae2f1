"""The real traces ship with the project (data/traces): a clone with nothing beside it runs on real data, and a
raw-data folder adds or overrides zones and years."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evaluate
import sim.paths
from loaders.carbon import carbon_table, scan_carbon_files
from loaders.philly import philly_path
from sim.paths import REPO_ROOT, TRACES_DIR
from sim.scenario import load_fleet_scenario, load_scenario, scenario_names

SIZE_BUDGET_BYTES = 10_000_000  # data/traces/README.md
SHARED_EM = REPO_ROOT.parent / "shared" / "data" / "carbon_intensity" / "electricitymaps"
EM_COLUMN = "Carbon Intensity gCO₂eq/kWh (direct)"


@pytest.fixture
def nothing_beside(monkeypatch, tmp_path):
    """A clone somewhere else: no $CARBON_DATA_DIR and no ../shared/data."""
    monkeypatch.delenv("CARBON_DATA_DIR", raising=False)
    monkeypatch.setattr(sim.paths, "DEFAULT_SHARED_DATA", tmp_path / "no-shared-data")
    monkeypatch.chdir(tmp_path)


def write_em(path: Path, zone: str, start: str, values: list[float]) -> None:
    hours = pd.date_range(start, periods=len(values), freq="h")
    pd.DataFrame({"Datetime (UTC)": hours.strftime("%Y-%m-%d %H:%M:%S"), "Zone Id": zone, EM_COLUMN: values}).to_csv(
        path, index=False
    )


def test_shipped_traces_fit_the_size_budget_and_carry_their_licences():
    files = [p for p in TRACES_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= SIZE_BUDGET_BYTES
    readme = (TRACES_DIR / "README.md").read_text()
    assert "Electricity Maps" in readme and "ODbL" in readme and "CC BY 4.0" in readme
    assert {p.name for p in (TRACES_DIR / "licenses").iterdir()} == {"Apache-2.0.txt", "MIT-green-dcc.txt"}


def test_every_zone_of_every_shipped_scenario_is_shipped():
    shipped = scan_carbon_files(TRACES_DIR)
    scenarios = [load_scenario(n) for n in scenario_names()] + [load_fleet_scenario(n) for n in scenario_names("fleet")]
    for sc in scenarios:
        assert set(sc.zones) <= set(shipped), sc.source


@pytest.mark.skipif(not SHARED_EM.is_dir(), reason="../shared/data absent: nothing to compare the shipped copy to")
def test_shipped_carbon_files_are_the_shared_data_bytes():
    for shared in SHARED_EM.glob("*.csv.gz"):
        shipped = TRACES_DIR / "carbon_intensity" / "electricitymaps" / shared.name
        assert gzip.decompress(shipped.read_bytes()) == gzip.decompress(shared.read_bytes()), shared.name


def test_a_clone_with_nothing_beside_it_reads_the_shipped_traces(nothing_beside):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a synthetic fallback warns
        table = carbon_table(["KR", "DE"], "2023-02-01", "2023-02-02")
    assert table.source == f"carbon-intensity files under {TRACES_DIR.resolve()}"
    # independent read of the shipped file: KR 2023-02-01 00:00..23:00, direct
    raw = pd.read_csv(TRACES_DIR / "carbon_intensity" / "electricitymaps" / "KR_2021-2023_hourly.csv.gz")
    day = raw[raw["Datetime (UTC)"].str.startswith("2023-02-01")][EM_COLUMN].to_numpy(dtype=float)
    assert day.size == 24 and table.intensity_g_per_kwh[0].tolist() == day.tolist()
    assert philly_path() == TRACES_DIR / "job_traces" / "philly_pollux" / "philly.csv.gz"


def test_evaluation_with_nothing_beside_it_is_on_real_data(nothing_beside, capsys):
    out = Path("ev")
    # a period no other test uses: worlds are cached per process by (scenario, split, data_dir, period)
    argv = ["--policies", "stay", "--agent", "none", "--episodes", "1", "--period", "2023-06-03:2023-06-10"]
    assert evaluate.main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    report = (out / "report.md").read_text()
    assert "synthetic" not in (printed.out + printed.err + report).lower()
    assert str(TRACES_DIR.resolve()) in report
    # says where the results went; the sensitivity runs are behind --sensitivity
    assert f"wrote {out}/" in printed.out and "report.md (open this)" in printed.out
    assert "--sensitivity" in printed.out and not (out / "sensitivity").exists()
    assert "Sensitivity to the model terms" not in report


def test_a_data_folder_adds_a_year_that_is_not_shipped(nothing_beside, tmp_path):
    write_em(tmp_path / "kr_2030.csv", "KR", "2030-01-01 00:00:00", [300.0, 310.0, 320.0])
    table = carbon_table(["KR"], "2030-01-01T01", "2030-01-01T03", data_dir=tmp_path)
    assert table.intensity_g_per_kwh.tolist() == [[310.0, 320.0]]


def test_a_data_folder_overrides_a_shipped_zone_and_the_others_stay_shipped(nothing_beside, tmp_path, monkeypatch):
    write_em(tmp_path / "kr.csv", "KR", "2021-01-01 00:00:00", [111.0, 112.0])
    monkeypatch.setenv("CARBON_DATA_DIR", str(tmp_path))
    table = carbon_table(["KR", "DE"], "2021-01-01T00", "2021-01-01T02")
    assert table.intensity_g_per_kwh[0].tolist() == [111.0, 112.0]
    raw = pd.read_csv(TRACES_DIR / "carbon_intensity" / "electricitymaps" / "DE-LU_2021-2023_hourly.csv.gz", nrows=2)
    assert table.intensity_g_per_kwh[1].tolist() == raw[EM_COLUMN].astype(float).tolist()
    assert str(tmp_path.resolve()) in table.source and str(TRACES_DIR.resolve()) in table.source


def test_a_period_in_no_folder_is_an_error_naming_the_ranges(nothing_beside):
    with pytest.raises(Exception, match=r"not inside the data range \[2021-01-01T00, 2024-01-01T00\)"):
        carbon_table(["KR"], "2031-01-01", "2031-01-02")


def test_synthetic_only_when_asked_for(nothing_beside):
    with pytest.warns(UserWarning, match="synthetic data asked for"):
        table = carbon_table(["KR"], "2023-02-01", "2023-02-02", data_dir="synthetic")
    assert table.source.startswith("synthetic") and np.all(table.intensity_g_per_kwh >= 0)
