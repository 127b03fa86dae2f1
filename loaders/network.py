"""Skyplane inter-region measurements -> zone-to-zone WAN table (SPEC W4).

Source: ``network/skyplane/{throughput,latency,cost}.csv`` from skyplane-project/skyplane commit 2e3b2c0
(Apache-2.0): iperf3 throughput (64 connections, 5 s, bits/s), ping RTT (ms), egress price (USD/GB).
Each grid zone stands in for the nearest cloud region the throughput grid measured (``ZONE_REGIONS``).

Rules (also in ``data/derived/README.md``):

* Inter-region figures use PREMIUM->PREMIUM rows (the providers' default network tier; AWS and Azure
  only have it) with ``success == True``; throughput is ``throughput_received``; several rows -> median.
* Two zones on one cloud region (and the diagonal): throughput = that region's intra-region rows
  (any tier) if measured, else the median of all intra-region rows in the grid; RTT = the smallest
  ``avg_rtt`` measured anywhere (a same-site ping). Labelled ``intra_region``/``intra_region_median``/``min_rtt``.
* A directed pair not measured: the reverse direction (``reverse``), else the median of measured pairs
  between the mapped regions of the same two continents (``continent_median``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from loaders.common import read_checked_csv
from sim.errors import DataError
from sim.network_data import COLUMNS
from sim.paths import raw_data_dir

# zone, cloud region, city of that region, continent, why.  Distances are great-circle, rounded.
ZONE_REGIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("AU-NSW", "aws:ap-southeast-2", "Sydney", "OC", "AWS Sydney is in New South Wales"),
    (
        "AU-VIC",
        "gcp:australia-southeast2-a",
        "Melbourne",
        "OC",
        "GCP Melbourne is in Victoria; no AWS Melbourne region in the 2022 grid (AWS Sydney ~710 km)",
    ),
    ("BR-CS", "aws:sa-east-1", "Sao Paulo", "SA", "AWS Sao Paulo is in the Central-South grid"),
    (
        "CA-ON",
        "gcp:northamerica-northeast2-a",
        "Toronto",
        "NA",
        "GCP Toronto is in Ontario; AWS ca-central-1 is in Montreal (Quebec grid, ~500 km)",
    ),
    (
        "CL-SEN",
        "gcp:southamerica-west1-a",
        "Santiago",
        "SA",
        "GCP Santiago is on the Chilean SEN grid; no AWS region in Chile",
    ),
    ("DE", "aws:eu-central-1", "Frankfurt", "EU", "AWS Frankfurt is in Germany"),
    ("GB", "aws:eu-west-2", "London", "EU", "AWS London is in Great Britain"),
    ("IN-WE", "aws:ap-south-1", "Mumbai", "AS", "AWS Mumbai is in the Western India grid (Maharashtra)"),
    ("JP-TK", "aws:ap-northeast-1", "Tokyo", "AS", "AWS Tokyo is in the TEPCO area"),
    ("KR", "aws:ap-northeast-2", "Seoul", "AS", "AWS Seoul is in Korea"),
    ("SG", "aws:ap-southeast-1", "Singapore", "AS", "AWS Singapore"),
    ("US-CAL-CISO", "aws:us-west-1", "N. California", "NA", "AWS N. California is in CAISO"),
    ("US-MIDA-PJM", "aws:us-east-1", "N. Virginia", "NA", "AWS N. Virginia (Ashburn) is in PJM"),
    (
        "US-NY-NYIS",
        "aws:us-east-1",
        "N. Virginia",
        "NA",
        "no measured region in New York state; nearest is N. Virginia (~350 km from NYC; Montreal ~530 km); "
        "shares the region with US-MIDA-PJM",
    ),
    (
        "US-TEX-ERCO",
        "gcp:us-central1-a",
        "Council Bluffs, Iowa",
        "NA",
        "no measured region in Texas; nearest is GCP Iowa (~940 km from Dallas; Phoenix ~1,420 km, Ohio ~1,470 km)",
    ),
    ("ZA", "aws:af-south-1", "Cape Town", "AF", "AWS Cape Town is in South Africa"),
    ("EIA-AZPS", "azure:westus3", "Phoenix", "NA", "Azure West US 3 is in Phoenix, APS area; no AWS region in Arizona"),
    ("EIA-BPAT", "aws:us-west-2", "Oregon", "NA", "AWS Oregon (Boardman) is in the Bonneville area"),
    ("EIA-CISO", "aws:us-west-1", "N. California", "NA", "AWS N. California is in CAISO"),
    ("EIA-ERCO", "gcp:us-central1-a", "Council Bluffs, Iowa", "NA", "as US-TEX-ERCO: no measured region in Texas"),
    (
        "EIA-MISO",
        "gcp:us-central1-a",
        "Council Bluffs, Iowa",
        "NA",
        "GCP Iowa is in MISO (MidAmerican); AWS Ohio and Azure Chicago are in PJM",
    ),
    ("EIA-NYIS", "aws:us-east-1", "N. Virginia", "NA", "as US-NY-NYIS: no measured region in New York state"),
    ("EIA-PJM", "aws:us-east-1", "N. Virginia", "NA", "AWS N. Virginia (Ashburn) is in PJM"),
    (
        "EIA-SOCO",
        "gcp:us-east1-b",
        "Moncks Corner, S. Carolina",
        "NA",
        "nearest measured region to the Southern Co. area (~410 km from Atlanta; AWS N. Virginia ~850 km)",
    ),
)

THROUGHPUT_COLUMNS = ("src_region", "src_tier", "dst_region", "dst_tier", "throughput_received", "success")
LATENCY_COLUMNS = ("src_region", "src_tier", "dst_region", "dst_tier", "avg_rtt")
COST_COLUMNS = ("src", "dest", "cost")
NETWORK_COLUMNS = (
    *COLUMNS,  # what sim.network_data reads back
    "fallback",
)


def zone_regions_table() -> pd.DataFrame:
    """The zone -> cloud region mapping as a table (columns zone, cloud_region, city, continent, why)."""
    return pd.DataFrame(ZONE_REGIONS, columns=["zone", "cloud_region", "city", "continent", "why"])


def _nonnegative(df: pd.DataFrame, col: str, path: Path) -> pd.DataFrame:
    """``df`` with ``col`` as float, raising DataError on the first value that is not a finite number >= 0."""
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column {col!r}, data row {df.index[i] + 1}: got {df[col].iloc[i]!r}, "
            "expected a finite number >= 0"
        )
    return df.assign(**{col: values})


def read_skyplane(data_dir: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Throughput (``throughput_gbps`` added), latency and cost tables of ``network/skyplane``."""
    root = raw_data_dir(data_dir)
    if root is None:
        raise DataError("no raw data directory (set CARBON_DATA_DIR or put shared/data beside the repo)")
    sky = Path(root) / "network" / "skyplane"
    tput = read_checked_csv(sky / "throughput.csv", THROUGHPUT_COLUMNS)
    tput = tput[tput["success"].astype(str).str.lower() == "true"]
    tput = _nonnegative(tput, "throughput_received", sky / "throughput.csv")
    tput["throughput_gbps"] = tput["throughput_received"] / 1e9  # bits/s -> Gbit/s
    lat = _nonnegative(read_checked_csv(sky / "latency.csv", LATENCY_COLUMNS), "avg_rtt", sky / "latency.csv")
    cost = _nonnegative(read_checked_csv(sky / "cost.csv", COST_COLUMNS), "cost", sky / "cost.csv")
    return tput, lat, cost


def _premium_median(df: pd.DataFrame, value: str) -> dict[tuple[str, str], float]:
    prem = df[(df["src_tier"] == "PREMIUM") & (df["dst_tier"] == "PREMIUM") & (df["src_region"] != df["dst_region"])]
    return prem.groupby(["src_region", "dst_region"])[value].median().to_dict()


def zone_network_table(
    data_dir: str | os.PathLike | None = None, mapping: tuple[tuple[str, str, str, str, str], ...] = ZONE_REGIONS
) -> pd.DataFrame:
    """Every ordered zone pair (diagonal included) with throughput, RTT, egress price and the fallback used."""
    tput, lat, cost = read_skyplane(data_dir)
    gbps = _premium_median(tput, "throughput_gbps")
    rtt = _premium_median(lat, "avg_rtt")
    intra = tput[tput["src_region"] == tput["dst_region"]]
    intra_gbps = intra.groupby("src_region")["throughput_gbps"].median().to_dict()
    intra_median_gbps = float(intra["throughput_gbps"].median())
    min_rtt_ms = float(lat["avg_rtt"].min())
    egress = {(s, d): c for s, d, c in zip(cost["src"], cost["dest"], cost["cost"])}
    continent = {region: cont for _, region, _, cont, _ in mapping}
    regions = sorted(continent)

    def continent_median(measured: dict, a: str, b: str) -> float:
        vals = [
            v
            for (s, d), v in measured.items()
            if s in continent
            and d in continent
            and (continent[s], continent[d]) in ((continent[a], continent[b]), (continent[b], continent[a]))
        ]
        if not vals:
            raise DataError(f"skyplane: no measured pair between continents {continent[a]} and {continent[b]}")
        return float(np.median(vals))

    def lookup(measured: dict, a: str, b: str, name: str) -> tuple[float, str]:
        if (a, b) in measured:
            return float(measured[a, b]), ""
        if (b, a) in measured:
            return float(measured[b, a]), f"{name}:reverse"
        return continent_median(measured, a, b), f"{name}:continent_median"

    pair_values = {}
    for a in regions:
        for b in regions:
            if a == b:
                t, tf = (
                    (intra_gbps[a], "throughput:intra_region")
                    if a in intra_gbps
                    else (intra_median_gbps, "throughput:intra_region_median")
                )
                r, rf = min_rtt_ms, "rtt:min_rtt"
            else:
                (t, tf), (r, rf) = lookup(gbps, a, b, "throughput"), lookup(rtt, a, b, "rtt")
            if (a, b) not in egress:
                raise DataError(f"skyplane cost.csv: no egress price for src={a!r} dest={b!r}")
            pair_values[a, b] = (t, r, egress[a, b], ";".join(f for f in (tf, rf) if f) or "none")

    rows = [(z1, z2, a, b, *pair_values[a, b]) for z1, a, *_ in mapping for z2, b, *_ in mapping]
    return pd.DataFrame(rows, columns=list(NETWORK_COLUMNS))
