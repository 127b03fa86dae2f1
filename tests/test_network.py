"""Specification of the WAN tables: zone -> cloud region mapping, zone_network.csv, load_network (SPEC W4)."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import numpy as np
import pytest

from loaders.network import read_skyplane, zone_network_table
from sim.errors import ConfigError, DataError
from sim.network_data import load_network
from sim.paths import DERIVED_DIR, raw_data_dir

EM_ZONES = {
    "AU-NSW",
    "AU-VIC",
    "BR-CS",
    "CA-ON",
    "CL-SEN",
    "DE",
    "GB",
    "IN-WE",
    "JP-TK",
    "KR",
    "SG",
    "US-CAL-CISO",
    "US-MIDA-PJM",
    "US-NY-NYIS",
    "US-TEX-ERCO",
    "ZA",
}
EIA_ZONES = {"EIA-BPAT", "EIA-CISO", "EIA-ERCO", "EIA-MISO", "EIA-NYIS", "EIA-PJM", "EIA-SOCO", "EIA-AZPS"}
# the regions the mapping is meant to pick (written out by hand from the Skyplane region list)
EXPECTED_REGION = {
    "KR": "aws:ap-northeast-2",
    "DE": "aws:eu-central-1",
    "JP-TK": "aws:ap-northeast-1",
    "GB": "aws:eu-west-2",
    "US-CAL-CISO": "aws:us-west-1",
    "AU-VIC": "gcp:australia-southeast2-a",
    "CL-SEN": "gcp:southamerica-west1-a",
    "ZA": "aws:af-south-1",
    "US-MIDA-PJM": "aws:us-east-1",
    "US-NY-NYIS": "aws:us-east-1",
}


def skyplane_dir() -> Path:
    root = raw_data_dir()
    if root is None or not (root / "network" / "skyplane" / "throughput.csv").is_file():
        pytest.skip("raw Skyplane grids absent: set CARBON_DATA_DIR or place them in ../shared/data")
    return root / "network" / "skyplane"


def raw_rows(name: str) -> list[dict]:
    with open(skyplane_dir() / name, newline="") as f:
        return list(csv.DictReader(f))


def mapping() -> dict[str, str]:
    with open(DERIVED_DIR / "zone_cloud_regions.csv", newline="") as f:
        return {r["zone"]: r["cloud_region"] for r in csv.DictReader(f)}


def test_mapping_covers_all_zones_with_measured_regions():
    zones = mapping()
    assert set(zones) == EM_ZONES | EIA_ZONES
    assert {z: zones[z] for z in EXPECTED_REGION} == EXPECTED_REGION
    measured = {r["src_region"] for r in raw_rows("throughput.csv")}
    assert set(zones.values()) <= measured


def test_every_mapping_row_says_why():
    with open(DERIVED_DIR / "zone_cloud_regions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(r["why"].strip() and r["city"].strip() for r in rows)


@pytest.mark.parametrize(
    "src,dst", [("KR", "DE"), ("DE", "KR"), ("JP-TK", "US-CAL-CISO"), ("AU-VIC", "CL-SEN"), ("GB", "ZA")]
)
def test_transfer_time_of_100_gb_matches_raw_rows(src, dst):
    a, b = EXPECTED_REGION[src], EXPECTED_REGION[dst]
    prem = lambda r: r["src_tier"] == "PREMIUM" and r["dst_tier"] == "PREMIUM"  # noqa: E731
    gbps = statistics.median(
        float(r["throughput_received"]) / 1e9
        for r in raw_rows("throughput.csv")
        if r["src_region"] == a and r["dst_region"] == b and prem(r) and r["success"] == "True"
    )
    rtt_ms = statistics.median(
        float(r["avg_rtt"])
        for r in raw_rows("latency.csv")
        if r["src_region"] == a and r["dst_region"] == b and prem(r)
    )
    net = load_network([src, dst])
    assert net.transfer_s(0, 1, 100.0) == pytest.approx(100 * 8 / gbps + rtt_ms / 1000, rel=1e-6)


def test_kr_to_de_figures_by_hand():
    # throughput.csv row: aws:ap-northeast-2 -> aws:eu-central-1, throughput_received 2848965...bits/s
    net = load_network(["KR", "DE"])
    assert net.throughput_gbps[0, 1] == pytest.approx(2.848966, rel=1e-6)
    assert net.rtt_ms[0, 1] == pytest.approx(249.118, rel=1e-6)
    assert net.transfer_s(0, 1, 100.0) == pytest.approx(800 / 2.848966 + 0.249118, rel=1e-6)


def test_matrices_are_finite_and_positive_off_diagonal():
    net = load_network(sorted(EM_ZONES | EIA_ZONES))
    off = ~np.eye(len(net.zones), dtype=bool)
    for m in (net.throughput_gbps, net.rtt_ms, net.egress_usd_per_gb):
        assert np.isfinite(m).all()
    assert (net.throughput_gbps[off] > 0).all() and (net.rtt_ms[off] > 0).all()
    assert (net.egress_usd_per_gb >= 0).all()


def test_egress_price_matches_cost_csv_rows():
    cost = {(r["src"], r["dest"]): float(r["cost"]) for r in raw_rows("cost.csv")}
    zones = mapping()
    net = load_network(list(zones))
    for i, zi in enumerate(net.zones):
        for j, zj in enumerate(net.zones):
            assert net.egress_usd_per_gb[i, j] == pytest.approx(cost[zones[zi], zones[zj]])


def test_zones_on_one_region_use_intra_region_median_and_min_rtt():
    rows = raw_rows("throughput.csv")
    intra_gbps = statistics.median(
        float(r["throughput_received"]) / 1e9 for r in rows if r["src_region"] == r["dst_region"]
    )
    min_rtt_ms = min(float(r["avg_rtt"]) for r in raw_rows("latency.csv"))
    net = load_network(["US-MIDA-PJM", "US-NY-NYIS"])  # both on aws:us-east-1, whose intra-region is unmeasured
    assert net.throughput_gbps[0, 1] == pytest.approx(intra_gbps, rel=1e-6)
    assert net.rtt_ms[0, 1] == pytest.approx(min_rtt_ms)
    assert net.egress_usd_per_gb[0, 1] == 0.0


def test_only_same_region_pairs_need_a_fallback():
    with open(DERIVED_DIR / "zone_network.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 * 24
    fallback = [(r["src_zone"], r["dst_zone"]) for r in rows if r["fallback"] != "none"]
    same = [(r["src_zone"], r["dst_zone"]) for r in rows if r["src_cloud_region"] == r["dst_cloud_region"]]
    assert fallback == same and len(same) == 24 + 20  # diagonal + 20 ordered pairs sharing a region


def test_unknown_zone_is_a_config_error_listing_known_zones():
    with pytest.raises(ConfigError, match=r"'XX-NOWHERE'.*KR"):
        load_network(["KR", "XX-NOWHERE"])


# --- synthetic grids: fallback rules and errors, no raw data needed ------------------------------------------
T_HEAD = "src_region,src_tier,dst_region,dst_tier,throughput_received,success\n"
L_HEAD = "src_region,src_tier,dst_region,dst_tier,avg_rtt\n"
C_HEAD = "src,dest,cost\n"
TINY_MAP = (("Z1", "r1", "c1", "EU", ""), ("Z2", "r2", "c2", "AS", ""))


def write_grid(root: Path, tput: str, lat: str, cost: str) -> Path:
    d = root / "network" / "skyplane"
    d.mkdir(parents=True)
    (d / "throughput.csv").write_text(tput)
    (d / "latency.csv").write_text(lat)
    (d / "cost.csv").write_text(cost)
    return root


def test_unmeasured_direction_falls_back_to_reverse(tmp_path):
    root = write_grid(
        tmp_path,
        T_HEAD + "r1,PREMIUM,r2,PREMIUM,2e9,True\nr1,PREMIUM,r2,PREMIUM,4e9,True\nr1,PREMIUM,r1,STANDARD,8e9,True\n",
        L_HEAD + "r1,PREMIUM,r2,PREMIUM,100\nr2,PREMIUM,r1,PREMIUM,120\nr1,PREMIUM,r1,PREMIUM,0.5\n",
        C_HEAD + "r1,r1,0\nr1,r2,0.09\nr2,r1,0.11\nr2,r2,0\n",
    )
    t = zone_network_table(root, TINY_MAP).set_index(["src_zone", "dst_zone"])
    assert t.loc[("Z1", "Z2"), "throughput_gbps"] == 3.0  # median of 2 and 4 Gbit/s
    assert t.loc[("Z2", "Z1"), "throughput_gbps"] == 3.0
    assert t.loc[("Z2", "Z1"), "rtt_ms"] == 120.0
    assert t.loc[("Z2", "Z1"), "fallback"] == "throughput:reverse"
    assert t.loc[("Z1", "Z1"), "throughput_gbps"] == 8.0  # r1's own intra-region row
    assert t.loc[("Z2", "Z2"), "throughput_gbps"] == 8.0  # r2: median of all intra-region rows
    assert t.loc[("Z2", "Z2"), "rtt_ms"] == 0.5
    assert t.loc[("Z2", "Z1"), "egress_usd_per_gb"] == 0.11


def test_missing_column_error_names_file_and_column(tmp_path):
    root = write_grid(tmp_path, "src_region,src_tier,dst_region,dst_tier,success\n", L_HEAD, C_HEAD)
    with pytest.raises(DataError, match=r"throughput\.csv.*throughput_received"):
        read_skyplane(root)


def test_negative_rtt_error_names_file_column_and_row(tmp_path):
    root = write_grid(
        tmp_path,
        T_HEAD + "r1,PREMIUM,r2,PREMIUM,2e9,True\n",
        L_HEAD + "r1,PREMIUM,r2,PREMIUM,100\nr2,PREMIUM,r1,PREMIUM,-3\n",
        C_HEAD,
    )
    with pytest.raises(DataError, match=r"latency\.csv.*'avg_rtt'.*row 2"):
        read_skyplane(root)
