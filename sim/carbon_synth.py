"""Synthetic hourly carbon intensity from per-zone month×hour profiles, for runs without the raw traces.

The profiles (``data/derived/carbon_profiles.csv``, built by ``python data/derive.py`` from the Electricity Maps
2021-2023 hourly files; ODbL, attribution "Electricity Maps", via HewlettPackard/green-dcc) hold, per zone,
month (1-12) and UTC hour (0-23), the mean and standard deviation of the direct and LCA intensity
(gCO2eq/kWh), plus per zone and signal the lag-1-hour autocorrelation of the deseasonalised residual
``z = (x - mean[month, hour]) / std[month, hour]``.

The synthetic series is ``x_t = max(0, mean[m_t, h_t] + std[m_t, h_t] * z_t)`` with ``z`` a stationary AR(1)
process of unit variance: ``z_t = phi * z_{t-1} + sqrt(1 - phi^2) * e_t``, ``e_t ~ N(0, 1)``.
"""

from __future__ import annotations

import csv
import functools
import zlib
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from sim.carbon import CarbonTable
from sim.errors import ConfigError, DataError
from sim.paths import DERIVED_DIR

PROFILES_CSV = DERIVED_DIR / "carbon_profiles.csv"
SOURCE = "synthetic from month×hour profiles (Electricity Maps 2021-2023)"
SIGNALS = ("direct", "lca")


@functools.lru_cache(maxsize=4)
def load_profiles(path: Path = PROFILES_CSV) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, float]]:
    """(zone, signal) -> (mean (12, 24), std (12, 24), ar1), gCO2eq/kWh, indexed [month - 1, hour_utc]."""
    if not Path(path).is_file():
        raise DataError(
            f"{path} not found; build it with `python data/derive.py` (needs the raw Electricity "
            f"Maps files) or restore it from git"
        )
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, float]] = {}
    for line, r in enumerate(rows, start=2):
        try:
            zone, m, h = r["zone"], int(r["month"]) - 1, int(r["hour_utc"])
            for s in SIGNALS:
                mean, std, _ = out.setdefault(
                    (zone, s), (np.full((12, 24), np.nan), np.full((12, 24), np.nan), float(r[f"{s}_ar1"]))
                )
                mean[m, h], std[m, h] = float(r[f"{s}_mean"]), float(r[f"{s}_std"])
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            raise DataError(
                f"{path}: line {line}: bad profile row ({exc!r}); expected columns zone, month 1-12, "
                f"hour_utc 0-23, direct_mean, direct_std, direct_ar1, lca_mean, lca_std, lca_ar1"
            ) from exc
    for (zone, _signal), (mean, std, _) in out.items():
        if np.isnan(mean).any() or np.isnan(std).any():
            raise DataError(f"{path}: zone {zone!r} lacks some month×hour rows; expected 12 × 24 rows per zone")
    return out


def _ar1(phi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary AR(1) sample of length n with unit variance and lag-1 autocorrelation phi."""
    e = rng.standard_normal(n)
    e[1:] *= np.sqrt(1.0 - phi * phi)  # e[0] ~ N(0, 1) starts the process in its stationary law
    return lfilter([1.0], [1.0, -phi], e)


def synthesize_carbon(
    zones: list[str] | tuple[str, ...], start, end, signal: str = "direct", seed: int = 0
) -> CarbonTable:
    """Synthetic hourly intensity of ``zones`` over ``[start, end)`` (UTC, floored to the hour).

    Deterministic per ``seed``; a zone's series depends only on (seed, zone), not on the other zones listed.
    :raises DataError: when a zone has no profile (the message lists the zones that have one).
    """
    if signal not in SIGNALS:
        raise ConfigError(f"signal={signal!r}; expected one of {SIGNALS}")
    start_h, end_h = np.datetime64(start, "h"), np.datetime64(end, "h")
    if end_h <= start_h:
        raise ConfigError(f"end={end!r} is not after start={start!r}; expected start < end")
    profiles = load_profiles()
    hours = np.arange(start_h, end_h)
    month_ix = hours.astype("datetime64[M]").astype(np.int64) % 12
    hour_ix = (hours - hours.astype("datetime64[D]")).astype(np.int64)
    data = np.empty((len(zones), hours.size))
    for k, zone in enumerate(zones):
        if (zone, signal) not in profiles:
            raise DataError(
                f"zone {zone!r} has no profile in {PROFILES_CSV}; zones with profiles: "
                f"{sorted({z for z, _ in profiles})}"
            )
        mean, std, phi = profiles[(zone, signal)]
        rng = np.random.default_rng([seed, zlib.crc32(zone.encode())])
        z = _ar1(phi, hours.size, rng)
        data[k] = np.maximum(0.0, mean[month_ix, hour_ix] + std[month_ix, hour_ix] * z)
    return CarbonTable(tuple(zones), start_h, data, signal, SOURCE)
