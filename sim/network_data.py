"""Build a :class:`sim.network.Network` for some zones from ``data/derived/zone_network.csv``.

The csv is written by ``data/derive.py`` (``derive_zone_network``) from the Skyplane grids; see
``data/derived/README.md`` for the zone -> cloud region mapping and the fallback rules.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np

from sim.errors import ConfigError, DataError
from sim.network import Network
from sim.paths import DERIVED_DIR

NETWORK_CSV = DERIVED_DIR / "zone_network.csv"
COLUMNS = (  # the columns of zone_network.csv that the simulator reads (loaders.network writes them)
    "src_zone",
    "dst_zone",
    "src_cloud_region",
    "dst_cloud_region",
    "throughput_gbps",
    "rtt_ms",
    "egress_usd_per_gb",
)


@lru_cache(maxsize=4)
def _full_network(path: Path) -> Network:
    """All zones of the csv as one Network (read once per process)."""
    if not path.is_file():
        raise DataError(f"{path}: not found; run `python data/derive.py` to build it")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected {list(COLUMNS)}")
        rows = list(reader)
    zones = list(dict.fromkeys(r["src_zone"] for r in rows))
    index = {z: i for i, z in enumerate(zones)}
    n = len(zones)
    mats = {k: np.full((n, n), np.nan) for k in ("throughput_gbps", "rtt_ms", "egress_usd_per_gb")}
    regions = [""] * n
    for line, r in enumerate(rows, start=2):
        if r["dst_zone"] not in index:
            raise DataError(f"{path}, line {line}: dst_zone {r['dst_zone']!r} never appears as src_zone")
        i, j = index[r["src_zone"]], index[r["dst_zone"]]
        regions[i] = r["src_cloud_region"]
        for k, m in mats.items():
            try:
                m[i, j] = float(r[k])
            except ValueError:
                raise DataError(f"{path}, line {line}, column {k!r}: got {r[k]!r}, expected a number") from None
    for k, m in mats.items():
        bad = ~np.isfinite(m) | ((m <= 0) if k == "throughput_gbps" else (m < 0))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"{path}: {k} for {zones[i]} -> {zones[j]} is missing or out of range")
    return Network(tuple(zones), tuple(regions), mats["throughput_gbps"], mats["rtt_ms"], mats["egress_usd_per_gb"])


def known_zones(path: Path = NETWORK_CSV) -> tuple[str, ...]:
    """Zones that the derived network table covers."""
    return _full_network(Path(path)).zones


def load_network(zones, path: Path = NETWORK_CSV) -> Network:
    """Network restricted to ``zones`` (in that order), from the derived Skyplane table.

    :param zones: zone ids, e.g. ``["KR", "DE", "JP-TK"]`` (Electricity Maps ``Zone Id`` or ``EIA-<BA>``).
    :raises ConfigError: a zone that the table does not cover; the message lists the known zones.
    """
    full = _full_network(Path(path))
    unknown = [z for z in zones if z not in full.zones]
    if unknown:
        raise ConfigError(f"unknown network zone(s) {unknown}; {Path(path).name} knows {list(full.zones)}")
    return full.select(list(zones))
