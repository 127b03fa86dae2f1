"""GPU speed and power under DVFS for one (GPU type, workload) pair.

Model, fitted per pair by ``data/derive.py`` on the Perseus per-frequency profiles
and the Zeus power-limit sweeps (see ``data/derived/README.md`` for errors):

    time per mini-batch   t(f) = t0_s + t1_s_mhz / f          (s, on the job's full GPU request)
    board power per GPU   P(f) = p0_w + p1_w_per_mhz*f + p3_w_per_mhz3*f**3   (W, busy)
    blocking/idle power   idle_w                                (W per GPU, waiting on I/O)

The CAFTM analytic family (t = k_t*W/f, P = k_p*W*f**3 + idle) is the special case
t0=0, p0=idle, p1=0 and is the fallback for GPUs without measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GpuModel:
    gpu: str
    workload: str
    clocks_mhz: np.ndarray  # supported SM clocks, ascending, MHz
    t0_s: float
    t1_s_mhz: float
    p0_w: float
    p1_w_per_mhz: float
    p3_w_per_mhz3: float
    idle_w: float
    source: str = ""

    def time_per_minibatch_s(self, f_mhz):
        return self.t0_s + self.t1_s_mhz / f_mhz

    def power_w(self, f_mhz):
        return self.p0_w + self.p1_w_per_mhz * f_mhz + self.p3_w_per_mhz3 * f_mhz**3

    def clock_levels_mhz(self, n_levels: int) -> np.ndarray:
        """``n_levels`` supported clocks spread evenly from the lowest to the highest."""
        idx = np.round(np.linspace(0, len(self.clocks_mhz) - 1, n_levels)).astype(int)
        return np.asarray(self.clocks_mhz, dtype=float)[idx]
