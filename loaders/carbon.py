"""Read hourly grid carbon-intensity traces into a :class:`sim.carbon.CarbonTable`.

Two file formats are recognised, as ``.csv`` or ``.csv.gz``, anywhere below a data folder:

* **Electricity Maps** (data portal export; e.g. ``carbon_intensity/electricitymaps`` in the shared data):
  columns ``Datetime (UTC)`` (naive, UTC), ``Zone Id``, ``Carbon Intensity gCO₂eq/kWh (direct)`` and
  ``Carbon Intensity gCO₂eq/kWh (LCA)`` (gCO2eq/kWh). The zone is the ``Zone Id`` column, not the file name
  (``DE-LU_2021-2023_hourly.csv.gz`` holds zone ``DE``). Licence: ODbL, attribution "Electricity Maps".
* **EIA-930** as prepared by HewlettPackard/dc-rl (``carbon_intensity/eia_2022``): columns ``timestamp``
  (ISO, ``+00:00``), hourly generation by fuel (MWh) and ``avg_CI`` (gCO2/kWh). There is no zone column:
  the zone is ``EIA-<BA>``, BA being the file name up to the first ``_`` (``BPAT_2022_hourly.csv`` -> ``EIA-BPAT``).

A zone may be spread over any number of files (e.g. one per year); they are joined in time order.

Strict by design: a ``.csv``/``.csv.gz`` that cannot be read (empty, truncated or fake gzip, binary, not UTF-8)
or looks like a carbon file but lacks its columns raises :class:`DataError` naming the file, never skipped;
only readable CSVs with none of the formats' columns are skipped (and listed when a zone is not found). Rows
must have as many fields as the header, and intensities must be numbers in 0..``MAX_INTENSITY_G_PER_KWH``
(2,000 gCO2eq/kWh; the bound's sources are next to the constant).

Entry points: :func:`scan_carbon_files`, :func:`load_carbon` (strict, real traces only) and
:func:`carbon_table` (real traces: a raw-data folder's, else the ones shipped in ``data/traces``; the synthetic
month×hour fallback of :mod:`sim.carbon_synth`, with a warning, only when asked for or when a zone is in neither).
``carbon_table`` lives here rather than in ``sim/`` so that the simulation core does not import the pandas readers.
"""

from __future__ import annotations

import csv
import functools
import gzip
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from sim import carbon_synth
from sim.carbon import CarbonTable
from sim.errors import ConfigError, DataError
from sim.paths import SYNTHETIC, synthetic_requested, trace_roots

EM_TIME = "Datetime (UTC)"
EM_ZONE = "Zone Id"
EM_SIGNAL_COLUMNS = {
    "direct": "Carbon Intensity gCO₂eq/kWh (direct)",
    "lca": "Carbon Intensity gCO₂eq/kWh (LCA)",
}
# Plausible hourly intensity, gCO2eq/kWh. A grid's average intensity is a generation-weighted mean of its
# plants' emission factors, so it cannot exceed its dirtiest plant's: lignite, the worst fuel, emits
# ~1,000-1,200 g/kWh direct (IPCC AR5 WGIII Annex III, Table A.III.2: coal PC direct 670-870, lifecycle median
# 820; old lignite/oil-shale units ~1,100-1,200), and Electricity Maps' lifecycle factors top out at coal 820.
# The 24 zones shipped in ../shared/data peak at 757 (direct, AU-NSW) and 817 (LCA, AU-NSW). 2,000 leaves
# ~1.7x headroom over the dirtiest plant and rejects unit mistakes (kg/MWh x 1000, g/MWh) and overflow values.
MAX_INTENSITY_G_PER_KWH = 2000.0
# A series whose largest value is below this was almost surely written in kg/kWh (the g/kWh values / 1000 peak
# below MAX_INTENSITY_G_PER_KWH / 1000 = 2): no grid stays under 2 g/kWh for a whole series; the cleanest of the
# 24 zones shipped in ../shared/data (CA-ON direct, EIA-BPAT) peak at 139 and 114 gCO2eq/kWh.
MIN_PEAK_G_PER_KWH = MAX_INTENSITY_G_PER_KWH / 1000
EIA_TIME = "timestamp"
EIA_CI = "avg_CI"
EIA_FUELS = ("WND", "SUN", "WAT", "OIL", "NG", "COL", "NUC", "OTH")
SIGNALS = ("direct", "lca")
_MISSING_TEXT = {"", "nan", "NaN", "NA", "N/A", "null", "None"}
_ONE_H = np.timedelta64(1, "h")


def _open_text(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def _unreadable(path: Path, exc: BaseException, line: int | None = None) -> DataError:
    """A one-line DataError saying why ``path`` cannot be read as (gzip-compressed) UTF-8 CSV text."""
    at = f": line {line}" if line else ""
    if isinstance(exc, gzip.BadGzipFile):
        why = "named .gz but not gzip-compressed; expected a gzip file (or rename it to .csv)"
    elif isinstance(exc, EOFError):
        why = "truncated gzip stream (ends before its end-of-stream marker); re-download or re-compress the file"
    elif isinstance(exc, zlib.error):
        why = f"corrupt gzip data ({exc}); re-download or re-compress the file"
    elif isinstance(exc, UnicodeDecodeError):
        line, byte = _first_non_utf8(path)  # text is decoded in chunks: find the line in the raw bytes
        at = f": line {line}" if line else at
        why = f"not UTF-8 text (byte 0x{byte:02x}); expected a UTF-8 CSV"
    elif isinstance(exc, _BinaryFile):
        why = "binary data (NUL bytes), not CSV text; expected a UTF-8 CSV"
    else:
        why = f"cannot read ({exc})"
    return DataError(f"{path}{at}: {why}")


def _first_non_utf8(path: Path) -> tuple[int | None, int]:
    """(line number, value) of the first byte of ``path`` (decompressed if .gz) that is not valid UTF-8."""
    raw = (gzip.open if path.name.endswith(".gz") else open)(path, "rb").read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return raw.count(b"\n", 0, e.start) + 1, raw[e.start]
    return None, 0


class _BinaryFile(Exception):
    pass


def _rows(path: Path):
    """Yield (line number, fields) of every row; DataError naming the file (and line) if it cannot be read."""
    line = 0
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            for row in reader:
                line = reader.line_num
                if any("\x00" in c for c in row):
                    raise _BinaryFile()
                yield line, row
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error, _BinaryFile) as exc:
        raise _unreadable(path, exc, line + 1 if line else None) from None


def _header_and_first_row(path: Path) -> tuple[list[str], list[str] | None]:
    """The header and first data row; DataError if the file is empty or not readable CSV text."""
    header = first = None
    rows = _rows(path)
    for _, row in rows:
        if header is None:
            header = row
        else:
            first = row
            break
    rows.close()
    if not header:
        raise DataError(f"{path}: empty file; expected a CSV header line (or remove the file)")
    return header, first


def _missing_columns_error(path: Path, missing: list[str], header: list[str]) -> DataError:
    return DataError(f"{path}: missing required column(s) {missing}; the file has columns {header}")


def _file_kind(path: Path, header: list[str]) -> str | None:
    """``"em"``, ``"eia"`` or None (plainly not a carbon-intensity file: none of the formats' columns)."""
    if any(c.startswith("Carbon Intensity") for c in header) or EM_ZONE in header or EM_TIME in header:
        return "em"
    fuels = sum(c in EIA_FUELS for c in header)
    if EIA_CI in header or (EIA_TIME in header and fuels >= 2):
        return "eia"
    return None


def _zone_of(path: Path) -> tuple[str, str] | None:
    """(zone id, kind) of a carbon-intensity file, or None for any other CSV. Reads two lines only."""
    header, first = _header_and_first_row(path)
    kind = _file_kind(path, header)
    if kind is None:
        return None
    if kind == "em":
        required = [EM_TIME, EM_ZONE]
        if not any(c in header for c in EM_SIGNAL_COLUMNS.values()):
            required += list(EM_SIGNAL_COLUMNS.values())
    else:
        required = [EIA_TIME, EIA_CI]
    missing = [c for c in required if c not in header]
    if missing:
        raise _missing_columns_error(path, missing, header)
    if kind == "eia":
        return "EIA-" + path.name.split("_", 1)[0].split(".", 1)[0], kind
    if first is None:
        raise DataError(f"{path}: Electricity Maps header but no data rows; expected hourly rows after line 1")
    zone = first[header.index(EM_ZONE)].strip() if len(first) > header.index(EM_ZONE) else ""
    if not zone:
        raise DataError(f"{path}: line 2, column '{EM_ZONE}' is empty; expected a zone id such as 'DE'")
    return zone, kind


def _csv_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith((".csv", ".csv.gz")))


def _check_dir(data_dir: str | os.PathLike) -> Path:
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise DataError(
            f"carbon data folder {root} does not exist (or is not a folder); "
            f"pass --data-dir or set CARBON_DATA_DIR to a folder holding carbon-intensity CSVs"
        )
    return root


def scan_carbon_folder(data_dir: str | os.PathLike) -> tuple[dict[str, list[Path]], list[Path]]:
    """(zone id -> carbon-intensity files holding it, CSVs skipped as plainly not carbon files), recursively.

    Only the header and first data row of each ``*.csv`` / ``*.csv.gz`` are read. A readable CSV without any
    column of either format is skipped (the shared data folder also holds network, GPU and job traces). A file
    that cannot be read (empty, truncated or fake gzip, binary, not UTF-8) or that looks like a carbon file but
    lacks ``Zone Id`` / ``Datetime (UTC)`` / the intensity columns (Electricity Maps) or ``timestamp`` /
    ``avg_CI`` (EIA) raises :class:`DataError`: it may be a zone's data, so it is never skipped.
    """
    root = _check_dir(data_dir)
    found: dict[str, list[Path]] = {}
    skipped: list[Path] = []
    for path in _csv_files(root):
        zone_kind = _zone_of(path)
        if zone_kind is None:
            skipped.append(path)
        else:
            found.setdefault(zone_kind[0], []).append(path)
    return found, skipped


def scan_carbon_files(data_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """Zone id -> carbon-intensity files holding it, searching ``data_dir`` recursively
    (see :func:`scan_carbon_folder`)."""
    return scan_carbon_folder(data_dir)[0]


def _not_found_error(root: Path, absent: list[str], found: dict[str, list[Path]], skipped: list[Path]) -> DataError:
    def rel(p: Path) -> str:
        return str(p.relative_to(root))

    zones = "; ".join(f"{z} ({', '.join(rel(p) for p in found[z])})" for z in sorted(found)) or "none"
    skip = f"; skipped as not carbon-intensity files: {', '.join(rel(p) for p in skipped)}" if skipped else ""
    return DataError(f"zone(s) {absent} not found in carbon files under {root}; zones found there: {zones}{skip}")


def _read_file(path: Path, zone: str, signal: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(hours as datetime64[h], intensity in gCO2eq/kWh with NaN for empty cells, line numbers, value column)
    of one file."""
    rows = _rows(path)
    _, header = next(rows)
    if _file_kind(path, header) == "eia":
        time_col, value_col, cols = EIA_TIME, EIA_CI, [EIA_TIME, EIA_CI]
    else:
        time_col, value_col = EM_TIME, EM_SIGNAL_COLUMNS[signal]
        cols = [EM_TIME, EM_ZONE, value_col]
    missing = [c for c in cols if c not in header]
    if missing:
        raise _missing_columns_error(path, missing, header)
    n_fields, ix = len(header), [header.index(c) for c in cols]
    lines, table = [], []
    for line, row in rows:
        if len(row) != n_fields:  # a shifted or extra field would put values under the wrong column
            raise DataError(
                f"{path}: line {line}: {len(row)} fields, the header has {n_fields}; expected one value per column"
            )
        lines.append(line)
        table.append([row[i] for i in ix])
    df = pd.DataFrame(table, columns=cols, dtype=str)
    line_of = np.array(lines, dtype=np.int64)

    def where(i: int) -> str:
        return f"{path}: line {line_of[i]}"

    if time_col == EM_TIME:
        other = np.flatnonzero(df[EM_ZONE].str.strip().to_numpy(dtype=object) != zone)
        if other.size:
            i = other[0]
            raise DataError(
                f"{where(i)}, column '{EM_ZONE}': zone {df[EM_ZONE].iat[i]!r} in a file of zone "
                f"{zone!r}; expected one zone per file"
            )

    text = df[time_col].str.strip()
    times = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = np.flatnonzero(times.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise DataError(
            f"{where(i)}, column '{time_col}': cannot parse timestamp {text.iat[i]!r}; "
            f"expected e.g. '2022-01-01 00:00:00' (UTC)"
        )
    ns = times.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    hours = ns.astype("datetime64[h]")
    off = np.flatnonzero(hours != ns)
    if off.size:
        i = off[0]
        raise DataError(
            f"{where(i)}, column '{time_col}': timestamp {text.iat[i]!r} is not on the hour; expected hourly data"
        )

    raw = df[value_col].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    junk = np.flatnonzero(np.isnan(values) & ~raw.isin(_MISSING_TEXT).to_numpy())
    if junk.size:
        i = junk[0]
        raise DataError(
            f"{where(i)} ({hours[i]}), column '{value_col}': {raw.iat[i]!r} is not a number; expected gCO2eq/kWh"
        )
    implausible = np.flatnonzero(~np.isnan(values) & ~(values <= MAX_INTENSITY_G_PER_KWH))  # +inf too
    if implausible.size:
        i = implausible[0]
        raise DataError(
            f"{where(i)} ({hours[i]}), column '{value_col}': intensity {raw.iat[i]!r} is outside the plausible "
            f"0..{MAX_INTENSITY_G_PER_KWH:.0f} gCO2eq/kWh (see loaders/carbon.py, MAX_INTENSITY_G_PER_KWH)"
        )
    return hours, values, line_of, value_col


def _zone_series(zone: str, paths: list[Path], signal: str, fill_gaps_h: int) -> tuple[np.datetime64, np.ndarray]:
    """Join a zone's files in time order and validate: (first hour, gap-free hourly values)."""
    parts = [_read_file(p, zone, signal) for p in paths]
    t = np.concatenate([p[0] for p in parts])
    v = np.concatenate([p[1] for p in parts])
    file_ix = np.concatenate([np.full(len(p[0]), k) for k, p in enumerate(parts)])
    line = np.concatenate([p[2] for p in parts])
    order = np.argsort(t, kind="stable")
    t, v, file_ix, line = t[order], v[order], file_ix[order], line[order]
    if t.size == 0:
        raise DataError(f"zone {zone!r}: no data rows in {[str(p) for p in paths]}")

    def where(i: int) -> str:
        return f"{paths[file_ix[i]]}: line {line[i]} ({t[i]})"

    step = np.diff(t)
    dup = np.flatnonzero(step == np.timedelta64(0, "h"))
    if dup.size:
        i = dup[0]
        raise DataError(
            f"zone {zone!r}: duplicate timestamp {t[i]}: {where(i)} and {where(i + 1)}; expected each hour once"
        )
    gap = np.flatnonzero(step > _ONE_H)
    if gap.size:
        i = gap[0]
        n_missing = int(step[i] / _ONE_H) - 1
        raise DataError(
            f"zone {zone!r}: missing hour(s) from {t[i] + _ONE_H} ({n_missing} h) between "
            f"{where(i)} and {where(i + 1)}; expected a gap-free hourly sequence"
        )

    column = parts[0][3]
    nan = np.isnan(v)
    if nan.any():
        edges = np.diff(np.concatenate([[0], nan.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            if b - a > fill_gaps_h or a == 0 or b == v.size:
                raise DataError(
                    f"zone {zone!r}: {where(a)}, column '{column}': empty or NaN intensity "
                    f"({b - a} h run); expected a number (runs of <= fill_gaps_h={fill_gaps_h} h "
                    f"inside the series are interpolated)"
                )
        idx = np.arange(v.size)
        v[nan] = np.interp(idx[nan], idx[~nan], v[~nan])
    neg = np.flatnonzero(v < 0)
    if neg.size:
        i = neg[0]
        raise DataError(
            f"zone {zone!r}: {where(i)}, column '{column}': negative intensity {v[i]}; expected >= 0 gCO2eq/kWh"
        )
    files = ", ".join(str(p) for p in paths)
    if not v.any():
        raise DataError(
            f"zone {zone!r}: {files}, column '{column}': all {v.size} hours are 0; expected the zone's gCO2eq/kWh "
            "(leave a zone without data out of the folder)"
        )
    if v.max() < MIN_PEAK_G_PER_KWH:
        raise DataError(
            f"zone {zone!r}: {files}, column '{column}': the largest intensity is {v.max():g}, which looks like "
            f"kg/kWh; expected gCO2eq/kWh (multiply by 1000; real grids peak at tens to hundreds of g/kWh)"
        )
    return t[0], v


@functools.lru_cache(maxsize=128)
def _load_cached(root: Path, zones: tuple[str, ...], signal: str, fill_gaps_h: int) -> CarbonTable:
    found, skipped = scan_carbon_folder(root)
    absent = [z for z in zones if z not in found]
    if absent:
        raise _not_found_error(root, absent, found, skipped)
    series = {z: _zone_series(z, found[z], signal, fill_gaps_h) for z in dict.fromkeys(zones)}  # each zone once
    start = max(s for s, _ in series.values())
    end = min(s + np.timedelta64(len(v), "h") for s, v in series.values())
    if start >= end:
        ranges = ", ".join(f"{z}: {s} to {s + np.timedelta64(len(v) - 1, 'h')}" for z, (s, v) in series.items())
        raise DataError(
            f"the time ranges of the zones under {root} do not overlap ({ranges}); expected a common hourly range"
        )
    n = int((end - start) / _ONE_H)
    cut = {z: v[int((start - s) / _ONE_H) :][:n] for z, (s, v) in series.items()}
    data = np.stack([cut[z] for z in zones])  # one row per requested zone: two regions may share a grid zone
    data.setflags(write=False)  # shared by every caller of the cache
    return CarbonTable(zones, start, data, signal, f"carbon-intensity files under {root}")


def load_carbon(
    data_dir: str | os.PathLike, zones: list[str] | tuple[str, ...], signal: str = "direct", fill_gaps_h: int = 0
) -> CarbonTable:
    """Hourly intensity of ``zones`` from the carbon files below ``data_dir``, on their common hourly range.

    :param data_dir: folder searched recursively (see :func:`scan_carbon_files`).
    :param zones: Electricity Maps ``Zone Id`` values or ``EIA-<BA>``; rows of the result follow this order.
    :param signal: ``"direct"`` (operational) or ``"lca"`` (life-cycle) intensity. EIA-930 files carry a
        single signal, ``avg_CI``, which is used for both.
    :param fill_gaps_h: runs of empty/NaN intensity up to this many hours inside a series are linearly
        interpolated; longer runs (or any, when 0) raise :class:`DataError`.
    :returns: a :class:`CarbonTable` (``start_h`` datetime64[h] UTC, float64 (zones, hours) array, read-only),
        cut to the intersection of the zones' ranges. Results are cached per process.
    :raises DataError: naming the file, line, timestamp and column of the first problem.
    """
    if signal not in SIGNALS:
        raise ConfigError(f"signal={signal!r}; expected one of {SIGNALS}")
    if not zones:
        raise ConfigError("zones is empty; expected at least one zone id")
    if int(fill_gaps_h) < 0:
        raise ConfigError(f"fill_gaps_h={fill_gaps_h}; expected >= 0 hours")
    return _load_cached(_check_dir(data_dir), tuple(zones), signal, int(fill_gaps_h))


class PeriodOutOfRange(DataError):
    """The requested time range is not inside the carbon data (the split's or ``--period``'s fault)."""


def _window(table: CarbonTable, start_h: np.datetime64, end_h: np.datetime64) -> CarbonTable:
    i, j = table.hour_index(start_h), table.hour_index(end_h)
    if i < 0 or j > table.n_hours or i >= j:
        raise PeriodOutOfRange(
            f"requested [{start_h}, {end_h}) is not inside the data range "
            f"[{table.start_h}, {table.end_h}) of {table.source}"
        )
    return CarbonTable(table.zones, start_h, table.intensity_g_per_kwh[:, i:j], table.signal, table.source)


def _source(used: dict[Path, list[str]]) -> str:
    """``CarbonTable.source`` of a table whose zones come from the folders of ``used`` (folder -> zones)."""
    if len(used) == 1:
        return f"carbon-intensity files under {next(iter(used))}"
    return "carbon-intensity files under " + "; ".join(f"{root} ({', '.join(z)})" for root, z in used.items())


def carbon_table(
    zones: list[str] | tuple[str, ...],
    start,
    end,
    signal: str = "direct",
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> CarbonTable:
    """Intensity of ``zones`` over ``[start, end)`` (UTC, floored to the hour): real traces when available.

    Each zone is read from the first folder of :func:`sim.paths.trace_roots` (the raw-data folder: ``data_dir``,
    ``$CARBON_DATA_DIR`` or ``../shared/data``; then the traces shipped in ``data/traces``) that holds it over
    ``[start, end)``: a raw-data folder adds zones and years and overrides the shipped ones.
    When a zone is in no folder, falls back to :func:`sim.carbon_synth.synthesize_carbon` for all zones and says so
    with ``warnings.warn``; ``data_dir="synthetic"`` (or ``CARBON_DATA_DIR=synthetic``) asks for that fallback.
    An explicit ``data_dir`` is strict: a missing folder or zone raises :class:`DataError` instead.
    Real traces that exist but do not cover ``[start, end)`` raise :class:`PeriodOutOfRange` (no silent synthesis).
    """
    start_h, end_h = np.datetime64(start, "h"), np.datetime64(end, "h")
    if end_h <= start_h:
        raise ConfigError(f"end={end!r} is not after start={start!r}; expected start < end")
    if synthetic_requested(data_dir):
        reason = f"synthetic data asked for ({'data_dir' if data_dir is not None else 'CARBON_DATA_DIR'}={SYNTHETIC})"
    else:
        roots = [r.expanduser().resolve() for r in trace_roots(data_dir)]
        if data_dir is not None:
            _check_dir(data_dir)  # strict: a mistyped folder is an error
        scans = {root: scan_carbon_folder(root) for root in roots if root.is_dir()}
        found = {root: scan[0] for root, scan in scans.items()}
        absent = [z for z in zones if not any(z in f for f in found.values())]
        if not absent:
            return _layered(zones, start_h, end_h, signal, found)
        if data_dir is not None:
            raise _not_found_error(roots[0], absent, *scans[roots[0]])
        reason = f"zone(s) {absent} have no carbon files under {' or '.join(str(r) for r in found) or 'any folder'}"
    warnings.warn(
        f"{reason}: using synthetic carbon intensity from {carbon_synth.PROFILES_CSV.name} "
        f"(month×hour profiles + AR(1) noise, seed={seed})",
        stacklevel=2,
    )
    return carbon_synth.synthesize_carbon(zones, start_h, end_h, signal, seed)


def _layered(
    zones, start_h: np.datetime64, end_h: np.datetime64, signal: str, found: dict[Path, dict[str, list[Path]]]
) -> CarbonTable:
    """Each zone over ``[start_h, end_h)`` from the first folder of ``found`` whose files of it cover the period."""
    rows, used = [], {}
    for zone in zones:
        ranges = []
        for root, files in found.items():
            if zone not in files:
                continue
            table = load_carbon(root, (zone,), signal)
            try:
                rows.append(_window(table, start_h, end_h).intensity_g_per_kwh[0])
            except PeriodOutOfRange:
                ranges.append(f"[{table.start_h}, {table.end_h}) under {root}")
                continue
            used.setdefault(root, []).append(zone)
            break
        else:
            raise PeriodOutOfRange(
                f"zone {zone!r}: requested [{start_h}, {end_h}) is not inside the data range "
                f"{' nor '.join(ranges)}; add the years to a folder passed as --data-dir (or CARBON_DATA_DIR)"
            )
    data = np.stack(rows)
    data.setflags(write=False)
    return CarbonTable(tuple(zones), start_h, data, signal, _source(used))
