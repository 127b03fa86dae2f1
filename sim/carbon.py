"""Hourly grid carbon intensity per zone on a common UTC timeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CarbonTable:
    """Hourly carbon intensity of several zones over one common, gap-free UTC range.

    :param zones: zone ids (Electricity Maps ``Zone Id``, or ``EIA-<BA>`` for EIA-930 files).
    :param start_h: first hour, ``numpy.datetime64`` with unit ``h`` (UTC).
    :param intensity_g_per_kwh: float64 array of shape (len(zones), n_hours), gCO2eq/kWh.
    :param signal: ``"direct"`` or ``"lca"``.
    :param source: human-readable origin, e.g. the folder it was read from or ``"synthetic profile"``.
    """

    zones: tuple[str, ...]
    start_h: np.datetime64
    intensity_g_per_kwh: np.ndarray
    signal: str
    source: str

    @property
    def n_hours(self) -> int:
        return self.intensity_g_per_kwh.shape[1]

    @property
    def end_h(self) -> np.datetime64:
        """One past the last hour."""
        return self.start_h + np.timedelta64(self.n_hours, "h")

    def hour_index(self, when: np.datetime64 | str) -> int:
        """Index of the hour containing ``when`` (UTC)."""
        return int((np.datetime64(when, "h") - self.start_h) / np.timedelta64(1, "h"))

    def select(self, zones: list[str] | tuple[str, ...]) -> CarbonTable:
        """A table with only ``zones``, in that order."""
        rows = [self.zones.index(z) for z in zones]
        return CarbonTable(tuple(zones), self.start_h, self.intensity_g_per_kwh[rows], self.signal, self.source)
