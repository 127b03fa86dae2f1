"""Specification of loaders.carbon (real traces) and sim.carbon_synth (month×hour fallback)."""

from __future__ import annotations

import csv
import gzip
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from loaders.carbon import carbon_table, load_carbon, scan_carbon_files
from sim import carbon_synth
from sim.errors import DataError
from sim.paths import DERIVED_DIR, raw_data_dir

EM_HEADER = [
    "Datetime (UTC)",
    "Country",
    "Zone Name",
    "Zone Id",
    "Carbon Intensity gCO₂eq/kWh (direct)",
    "Carbon Intensity gCO₂eq/kWh (LCA)",
    "Low Carbon Percentage",
]
EIA_HEADER = ["timestamp", "WND", "SUN", "WAT", "OIL", "NG", "COL", "NUC", "OTH", "avg_CI"]


def raw_root() -> Path:
    root = raw_data_dir()
    if root is None or not (root / "carbon_intensity" / "electricitymaps").is_dir():
        pytest.skip("raw carbon traces absent: set CARBON_DATA_DIR or place them in ../shared/data")
    return root


def hours(start: str, n: int) -> list[datetime]:
    t0 = datetime.fromisoformat(start)
    return [t0 + timedelta(hours=i) for i in range(n)]


def write_em(path: Path, zone: str, start: str, direct: list, header: list[str] = EM_HEADER) -> Path:
    """An Electricity Maps-format file; LCA = direct + 100. Cells given as str are written verbatim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for t, d in zip(hours(start, len(direct)), direct):
        lca = d if isinstance(d, str) else d + 100
        full = {
            "Datetime (UTC)": t.strftime("%Y-%m-%d %H:%M:%S"),
            "Country": "X",
            "Zone Name": "X",
            "Zone Id": zone,
            EM_HEADER[4]: d,
            EM_HEADER[5]: lca,
            "Low Carbon Percentage": 50,
        }
        rows.append([full[c] for c in header])
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def write_eia(path: Path, start: str, ci: list) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EIA_HEADER)
        for t, v in zip(hours(start, len(ci)), ci):
            w.writerow([t.strftime("%Y-%m-%d %H:%M:%S+00:00"), 1, 2, 3, 0, 4, 0, 5, 6, v])
    return path


def raises(match_all: list[str], fn, *args, **kw) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    for part in match_all:
        assert part in msg, f"{part!r} not in error message: {msg}"
    return msg


# --- real traces ---------------------------------------------------------------------------------------------


def test_real_hourly_values_match_raw_csv():
    root = raw_root()
    path = root / "carbon_intensity" / "electricitymaps" / "DE-LU_2021-2023_hourly.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        raw = list(csv.DictReader(f))
    direct = load_carbon(root, ["GB", "DE"], "direct")
    lca = load_carbon(root, ["DE"], "lca")
    assert direct.start_h == np.datetime64("2021-01-01T00", "h") and direct.n_hours == len(raw) == 26280
    assert direct.intensity_g_per_kwh.dtype == np.float64 and direct.start_h.dtype == np.dtype("datetime64[h]")
    for i in (0, 1, 5000, 26279):
        assert direct.hour_index(raw[i]["Datetime (UTC)"].replace(" ", "T")) == i
        assert direct.intensity_g_per_kwh[1, i] == float(raw[i]["Carbon Intensity gCO₂eq/kWh (direct)"])
        assert lca.intensity_g_per_kwh[0, i] == float(raw[i]["Carbon Intensity gCO₂eq/kWh (LCA)"])


def test_real_eia_file_loads_as_eia_bpat():
    root = raw_root()
    with open(root / "carbon_intensity" / "eia_2022" / "BPAT_2022_hourly.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    table = load_carbon(root, ["EIA-BPAT"], "lca")
    assert table.zones == ("EIA-BPAT",) and table.start_h == np.datetime64("2022-01-01T00", "h")
    assert table.n_hours == 8760
    assert table.intensity_g_per_kwh[0, 100] == float(raw[100]["avg_CI"])


def test_four_zones_three_years_cover_every_hour():
    table = load_carbon(raw_root(), ["DE", "GB", "US-CAL-CISO", "SG"], "direct")
    assert table.intensity_g_per_kwh.shape == (4, 3 * 365 * 24)
    assert table.start_h == np.datetime64("2021-01-01T00", "h")


def test_profiles_match_raw_month_hour_means():
    root = raw_root()
    path = root / "carbon_intensity" / "electricitymaps" / "GB_2021-2023_hourly.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        jan_0h = [
            float(r["Carbon Intensity gCO₂eq/kWh (direct)"])
            for r in csv.DictReader(f)
            if r["Datetime (UTC)"][5:7] == "01" and r["Datetime (UTC)"][11:13] == "00"
        ]
    with open(DERIVED_DIR / "carbon_profiles.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if (r["zone"], r["month"], r["hour_utc"]) == ("GB", "1", "0"))
    assert len(jan_0h) == 93
    assert float(row["direct_mean"]) == pytest.approx(sum(jan_0h) / 93, abs=0.005)


# --- any folder of files -------------------------------------------------------------------------------------


def test_future_years_split_over_nested_csv_and_gz_load(tmp_path):
    write_em(tmp_path / "a" / "FOO.csv", "DE", "2030-01-01 00:00:00", [10.0, 11.0, 12.0])
    write_em(tmp_path / "b" / "c" / "second.csv.gz", "DE", "2030-01-01 03:00:00", [13.0, 14.0])
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")  # not carbon data: ignored
    table = load_carbon(tmp_path, ["DE"], "lca")
    assert table.start_h == np.datetime64("2030-01-01T00", "h")
    assert table.intensity_g_per_kwh.tolist() == [[110.0, 111.0, 112.0, 113.0, 114.0]]


def test_zone_comes_from_zone_id_column_not_file_name(tmp_path):
    write_em(tmp_path / "FOO.csv", "DE", "2030-01-01 00:00:00", [1.0])
    assert list(scan_carbon_files(tmp_path)) == ["DE"]


def test_eia_file_is_named_after_file_prefix(tmp_path):
    write_eia(tmp_path / "BPAT_2030_hourly.csv", "2030-06-01 00:00:00", [50.5, 60.5])
    table = load_carbon(tmp_path, ["EIA-BPAT"], "direct")
    assert table.zones == ("EIA-BPAT",) and table.start_h == np.datetime64("2030-06-01T00", "h")
    assert table.intensity_g_per_kwh.tolist() == [[50.5, 60.5]]


def test_zones_are_aligned_to_their_common_range(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0, 2.0, 3.0, 4.0])
    write_em(tmp_path / "gb.csv", "GB", "2030-01-01 02:00:00", [7.0, 8.0, 9.0])
    table = load_carbon(tmp_path, ["GB", "DE"])
    assert table.start_h == np.datetime64("2030-01-01T02", "h")
    assert table.intensity_g_per_kwh.tolist() == [[7.0, 8.0], [3.0, 4.0]]


def test_short_nan_run_is_interpolated_when_allowed(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [10.0, "", "", 40.0])
    table = load_carbon(tmp_path, ["DE"], fill_gaps_h=2)
    assert table.intensity_g_per_kwh.tolist() == [[10.0, 20.0, 30.0, 40.0]]


# --- bad input: DataError naming file and row/timestamp/field ------------------------------------------------


def test_missing_signal_column_names_missing_and_existing(tmp_path):
    header = [c for c in EM_HEADER if "LCA" not in c]
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0], header=header)
    raises(["de.csv", "Carbon Intensity gCO₂eq/kWh (LCA)", "Zone Id"], load_carbon, tmp_path, ["DE"], "lca")


def test_missing_zone_id_column_is_reported_when_scanning(tmp_path):
    header = [c for c in EM_HEADER if c != "Zone Id"]
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0], header=header)
    raises(["de.csv", "['Zone Id']", "Datetime (UTC)"], scan_carbon_files, tmp_path)


def test_unparseable_timestamp(tmp_path):
    path = write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0, 2.0, 3.0])
    path.write_text(path.read_text().replace("2030-01-01 02:00:00", "2030-01-01 2 o'clock"))
    raises(["de.csv", "line 4", "Datetime (UTC)", "2 o'clock"], load_carbon, tmp_path, ["DE"])


def test_nan_intensity(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0, 2.0, "", 4.0])
    raises(["de.csv", "line 4", "2030-01-01T02", "(direct)"], load_carbon, tmp_path, ["DE"])


def test_nan_run_longer_than_fill_gaps_h(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0, "", "", 4.0])
    raises(["de.csv", "line 3", "2030-01-01T01", "2 h run"], load_carbon, tmp_path, ["DE"], fill_gaps_h=1)


def test_non_numeric_intensity(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0, "abc"])
    raises(["de.csv", "line 3", "'abc'", "(direct)"], load_carbon, tmp_path, ["DE"])


def test_negative_intensity(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0, 2.0, -3.0])
    raises(["de.csv", "line 4", "2030-01-01T02", "(direct)", "-3.0"], load_carbon, tmp_path, ["DE"])


def test_duplicate_timestamps_across_files(tmp_path):
    write_em(tmp_path / "one.csv", "DE", "2030-01-01 00:00:00", [1.0, 2.0])
    write_em(tmp_path / "two.csv", "DE", "2030-01-01 01:00:00", [3.0, 4.0])
    raises(["duplicate", "2030-01-01T01", "one.csv: line 3", "two.csv: line 2"], load_carbon, tmp_path, ["DE"])


def test_gap_names_first_missing_hour(tmp_path):
    write_em(tmp_path / "one.csv", "DE", "2030-01-01 00:00:00", [1.0, 2.0])
    write_em(tmp_path / "two.csv", "DE", "2030-01-01 05:00:00", [3.0])
    raises(["missing", "2030-01-01T02", "(3 h)", "one.csv: line 3", "two.csv: line 2"], load_carbon, tmp_path, ["DE"])


def test_timestamp_not_on_the_hour(tmp_path):
    path = write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0, 2.0])
    path.write_text(path.read_text().replace("01:00:00", "01:15:00"))
    raises(["de.csv", "line 3", "01:15:00", "not on the hour"], load_carbon, tmp_path, ["DE"])


def test_zone_not_found_names_folder_zones_their_files_and_skipped_files(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0])
    write_eia(tmp_path / "BPAT_2030.csv", "2030-01-01 00:00:00", [1.0])
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "rtt.csv").write_text("src_region,dst_region,avg_rtt\na,b,3\n")  # plainly not carbon
    msg = raises([], load_carbon, tmp_path, ["FR", "DE"])
    assert msg == (
        f"zone(s) ['FR'] not found in carbon files under {tmp_path}; zones found there: DE (de.csv); "
        f"EIA-BPAT (BPAT_2030.csv); skipped as not carbon-intensity files: net/rtt.csv"
    )


def test_non_overlapping_zones_give_each_range(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0, 2.0])
    write_em(tmp_path / "gb.csv", "GB", "2031-01-01 00:00:00", [100.0])
    raises(
        ["do not overlap", "DE: 2030-01-01T00 to 2030-01-01T01", "GB: 2031-01-01T00 to 2031-01-01T00"],
        load_carbon,
        tmp_path,
        ["DE", "GB"],
    )


def test_missing_data_dir(tmp_path):
    raises([str(tmp_path / "nope"), "does not exist"], load_carbon, tmp_path / "nope", ["DE"])


# --- synthetic fallback --------------------------------------------------------------------------------------


def profile_month_means(zone: str) -> np.ndarray:
    """Mean over hours of the profile's direct_mean per month, read with the csv module."""
    sums = np.zeros(12)
    with open(DERIVED_DIR / "carbon_profiles.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["zone"] == zone:
                sums[int(r["month"]) - 1] += float(r["direct_mean"]) / 24
    return sums


def test_synthetic_is_deterministic_per_seed_and_non_negative():
    a = carbon_synth.synthesize_carbon(["CA-ON", "DE"], "2025-01-01", "2025-03-01", "direct", seed=3)
    b = carbon_synth.synthesize_carbon(["DE"], "2025-01-01", "2025-03-01", "direct", seed=3)
    c = carbon_synth.synthesize_carbon(["DE"], "2025-01-01", "2025-03-01", "direct", seed=4)
    assert a.source == "synthetic from month×hour profiles (Electricity Maps 2021-2023)"
    assert np.array_equal(a.intensity_g_per_kwh[1], b.intensity_g_per_kwh[0])
    assert not np.array_equal(b.intensity_g_per_kwh, c.intensity_g_per_kwh)
    assert a.intensity_g_per_kwh.shape == (2, 59 * 24) and (a.intensity_g_per_kwh >= 0).all()


def test_synthetic_monthly_means_within_10_percent_of_profile():
    # The residual is very persistent (ar1 up to 0.998, BR-CS), so one synthetic year's monthly mean can be far
    # from the profile; the expectation is what must match: average 100 seeded years.
    zones = ["BR-CS", "CA-ON", "DE", "GB", "SG", "US-CAL-CISO"]
    mean = (
        sum(
            carbon_synth.synthesize_carbon(zones, "2025-01-01", "2026-01-01", "direct", seed).intensity_g_per_kwh
            for seed in range(100)
        )
        / 100
    )
    month = np.arange(np.datetime64("2025-01-01T00"), np.datetime64("2026-01-01T00")).astype("datetime64[M]")
    for k, zone in enumerate(zones):
        got = np.array([mean[k, month == np.datetime64(f"2025-{m:02d}")].mean() for m in range(1, 13)])
        np.testing.assert_allclose(got, profile_month_means(zone), rtol=0.10, err_msg=zone)


def test_synthetic_residual_has_profile_autocorrelation():
    with open(DERIVED_DIR / "carbon_profiles.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["zone"] == "SG"]  # SG: std/mean 3 %, so no clipping
    mean = np.array([float(r["direct_mean"]) for r in rows]).reshape(12, 24)
    std = np.array([float(r["direct_std"]) for r in rows]).reshape(12, 24)
    x = carbon_synth.synthesize_carbon(["SG"], "2025-01-01", "2025-02-01", "direct", 0).intensity_g_per_kwh[0]
    z = (x - mean[0, np.arange(x.size) % 24]) / std[0, np.arange(x.size) % 24]
    assert np.corrcoef(z[:-1], z[1:])[0, 1] == pytest.approx(float(rows[0]["direct_ar1"]), abs=0.05)
    assert z.std() == pytest.approx(1.0, abs=0.2)


def test_carbon_table_synthesizes_with_a_warning_when_asked_for(monkeypatch):
    monkeypatch.setenv("CARBON_DATA_DIR", "synthetic")  # the shipped traces would otherwise be used
    with pytest.warns(UserWarning, match="synthetic data asked for"):
        table = carbon_table(["DE"], "2040-05-01", "2040-05-02", "lca", seed=1)
    assert table.start_h == np.datetime64("2040-05-01T00", "h") and table.n_hours == 24
    assert table.source == carbon_synth.SOURCE and table.signal == "lca"


def test_carbon_table_uses_real_files_restricted_to_window(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [1.0, 2.0, 3.0, 4.0])
    table = carbon_table(["DE"], "2030-01-01T01", "2030-01-01T03", data_dir=tmp_path)
    assert table.start_h == np.datetime64("2030-01-01T01", "h")
    assert table.intensity_g_per_kwh.tolist() == [[2.0, 3.0]]
    raises(["2030-01-01T05", "not inside"], carbon_table, ["DE"], "2030-01-01", "2030-01-01T05", data_dir=tmp_path)


# --- bad files: one-line errors naming the file (and line / column), never a silent skip -----------------------


def test_infinite_intensity_is_rejected_naming_line_and_column(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [100.0, "inf", 120.0])
    raises(
        ["de.csv: line 3 (2030-01-01T01)", "(direct)'", "'inf' is outside the plausible 0..2000 gCO2eq/kWh"],
        load_carbon,
        tmp_path,
        ["DE"],
    )


def test_implausibly_large_intensity_is_rejected(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [100.0, 120.0, "1e12"])
    raises(["de.csv: line 4", "'1e12' is outside the plausible 0..2000"], load_carbon, tmp_path, ["DE"])


def test_intensity_bound_is_above_every_real_zone_and_signal():
    from loaders.carbon import MAX_INTENSITY_G_PER_KWH

    root = raw_root()
    peak = 0.0
    for path in sorted((root / "carbon_intensity" / "electricitymaps").glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                for col in EM_HEADER[4:6]:
                    if r[col]:
                        peak = max(peak, float(r[col]))
    assert peak == pytest.approx(816.5, abs=1.0)  # AU-NSW, LCA: the bound (2000) keeps 2.4x headroom
    assert peak < MAX_INTENSITY_G_PER_KWH


def test_row_with_an_extra_field_is_rejected(tmp_path):
    path = write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [100.0, 110.0, 120.0])
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] += ",999"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    raises(["de.csv: line 3: 8 fields, the header has 7"], load_carbon, tmp_path, ["DE"])


def test_truncated_gzip_is_an_error_not_a_skip(tmp_path):
    path = write_em(tmp_path / "de.csv.gz", "DE", "2030-01-01 00:00:00", [100.0 + i for i in range(2000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    raises([str(path), "truncated gzip stream"], load_carbon, tmp_path, ["DE"])


def test_uncompressed_file_named_gz_is_an_error(tmp_path):
    plain = write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [100.0])
    plain.rename(tmp_path / "de.csv.gz")
    raises([f"{tmp_path / 'de.csv.gz'}: named .gz but not gzip-compressed"], load_carbon, tmp_path, ["DE"])


def test_empty_file_is_an_error(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [100.0])
    (tmp_path / "kr.csv").write_bytes(b"")
    raises([f"{tmp_path / 'kr.csv'}: empty file"], load_carbon, tmp_path, ["DE"])


def test_binary_garbage_is_an_error(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [100.0])
    (tmp_path / "kr.csv").write_bytes(bytes(range(256)) * 4)  # 0x80.. is not UTF-8
    raises([f"{tmp_path / 'kr.csv'}", "not UTF-8 text (byte 0x80)"], load_carbon, tmp_path, ["DE"])
    (tmp_path / "kr.csv").write_bytes(b"\x00\x01\x02\x03" * 64)  # valid UTF-8, but NUL bytes
    raises([f"{tmp_path / 'kr.csv'}", "binary data (NUL bytes)"], load_carbon, tmp_path, ["DE"])


def test_non_utf8_text_is_an_error_naming_the_line(tmp_path):
    path = write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [100.0, 110.0, 120.0])
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b",X,X,", ",Zürich,X,".encode("latin-1"))  # a Latin-1 byte on line 3
    path.write_bytes(b"\n".join(lines))
    raises([f"{path}: line 3: not UTF-8 text (byte 0xfc)"], load_carbon, tmp_path, ["DE"])


def test_file_without_intensity_columns_is_an_error_not_a_skip(tmp_path):
    header = ["Datetime (UTC)", "Country", "Zone Name", "Zone Id", "Low Carbon Percentage"]
    write_em(tmp_path / "kr.csv", "KR", "2030-01-01 00:00:00", [100.0], header=header)
    raises(
        [str(tmp_path / "kr.csv"), "missing required column(s)", "Carbon Intensity gCO₂eq/kWh (direct)"],
        load_carbon,
        tmp_path,
        ["KR"],
    )


def test_plainly_non_carbon_csvs_are_skipped_and_listed(tmp_path):
    from loaders.carbon import scan_carbon_folder

    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [100.0])
    (tmp_path / "gpu.csv").write_text("gpu,clock_mhz,power_w\nV100,1380,250\n")
    found, skipped = scan_carbon_folder(tmp_path)
    assert found == {"DE": [tmp_path.resolve() / "de.csv"]} and skipped == [tmp_path.resolve() / "gpu.csv"]
    assert load_carbon(tmp_path, ["DE"]).intensity_g_per_kwh.tolist() == [[100.0]]


def test_two_regions_on_one_grid_zone_get_the_same_row(tmp_path):
    write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [100.0, 110.0])
    write_em(tmp_path / "gb.csv", "GB", "2030-01-01 00:00:00", [200.0, 210.0])
    table = load_carbon(tmp_path, ["DE", "GB", "DE"])
    assert table.zones == ("DE", "GB", "DE")
    assert table.intensity_g_per_kwh.tolist() == [[100.0, 110.0], [200.0, 210.0], [100.0, 110.0]]


def test_mistyped_carbon_data_dir_is_an_error_not_synthetic_data(monkeypatch, tmp_path):
    monkeypatch.setenv("CARBON_DATA_DIR", str(tmp_path / "shared" / "dta"))
    with pytest.raises(DataError) as info:
        carbon_table(["DE"], "2021-01-01", "2021-01-02")
    assert str(info.value).startswith(f"CARBON_DATA_DIR={tmp_path / 'shared' / 'dta'} is not a folder; fix it")


def bad_data_folder(tmp_path: Path) -> Path:
    """A folder with the paper scenario's four zones, whose KR file is a truncated gzip."""
    root = tmp_path / "carbon"
    for zone in ("JP-TK", "DE", "US-CAL-CISO"):
        write_em(root / f"{zone}.csv", zone, "2021-01-01 00:00:00", [200.0] * 3000)
    path = write_em(root / "kr.csv.gz", "KR", "2021-01-01 00:00:00", [300.0 + i % 50 for i in range(3000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return root


def test_evaluate_bad_data_exits_2_with_one_line_naming_the_file_without_period_prefix(tmp_path, capsys):
    import evaluate

    root = bad_data_folder(tmp_path)
    argv = ["--policies", "stay", "--episodes", "1", "--data-dir", str(root), "--period", "2021-01-01:2021-02-01"]
    assert evaluate.main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"evaluate.py: error: {root / 'kr.csv.gz'}: line ") and "\n" not in err
    assert err.endswith(
        ": truncated gzip stream (ends before its end-of-stream marker); re-download or re-compress the file"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", ["missing", "truncated"])
def test_train_bad_data_dir_exits_2_with_one_line(tmp_path, case):
    import subprocess
    import sys

    data_dir = str(tmp_path / "missing") if case == "missing" else str(bad_data_folder(tmp_path))
    proc = subprocess.run(
        [sys.executable, "train.py", "--data-dir", data_dir, "--out", str(tmp_path / "runs"), "--timesteps", "10"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train.py: error: ")
    assert (
        ("does not exist" in lines[0])
        if case == "missing"
        else ("kr.csv.gz: line " in lines[0] and ": truncated gzip stream" in lines[0])
    )


def test_a_zone_in_kg_per_kwh_is_an_error_saying_so(tmp_path):
    # DE's real 2022 range, 250-700 g/kWh, written in kg/kWh
    path = write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [0.25, 0.4, 0.7])
    raises(
        [f"zone 'DE': {path}", "largest intensity is 0.7, which looks like kg/kWh", "multiply by 1000"],
        load_carbon,
        tmp_path,
        ["DE"],
    )


def test_a_zone_of_all_zeros_is_an_error(tmp_path):
    path = write_em(tmp_path / "de.csv", "DE", "2030-01-01 00:00:00", [0.0, 0.0, 0.0])
    raises([f"zone 'DE': {path}", "all 3 hours are 0"], load_carbon, tmp_path, ["DE"])
