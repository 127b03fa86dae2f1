"""GPUs free for this tenant over time: a stochastic process calibrated on spot traces (SPEC W3).

Model (fitted by ``loaders/spot.py`` on the Parcae p3 and Bamboo p2/g4dn AWS spot traces, written to
``data/derived/availability_process.json`` by ``data/derive.py``): a latent standard-normal AR(1)

    z[t+1] = phi * z[t] + sqrt(1 - phi**2) * eps[t],    eps ~ N(0, 1),  z[0] ~ N(0, 1) (stationary start)

mapped through the empirical quantile function Q of the free fraction (monotone, piecewise linear), so the
long-run mean and spread of the fraction are the measured ones. ``phi`` is fitted at ``fit_step_s`` and
rescaled to any step as ``phi ** (step_s / fit_step_s)``. Free GPUs = round(fraction * pool_gpus).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numba import njit

from sim.errors import ConfigError, DataError
from sim.paths import DERIVED_DIR

AVAILABILITY_JSON = DERIVED_DIR / "availability_process.json"


@dataclass(frozen=True)
class AvailabilityParams:
    """Calibrated free-fraction process.

    :param phi: lag-1 autocorrelation of the latent AR(1) at ``fit_step_s``.
    :param fit_step_s: step (s) the traces were averaged over for the fit.
    :param quantile_z: standard-normal scores of the stored quantile probabilities (increasing).
    :param quantile_fraction: free fraction of the pool at those quantiles (non-decreasing, in [0, 1]).
    :param mean_fraction: measured long-run mean free fraction.
    """

    phi: float
    fit_step_s: float
    quantile_z: np.ndarray
    quantile_fraction: np.ndarray
    mean_fraction: float

    def phi_at(self, step_s: float) -> float:
        """Latent lag-1 autocorrelation for a step of ``step_s`` seconds."""
        return self.phi ** (step_s / self.fit_step_s)


@lru_cache(maxsize=4)
def availability_params(path: Path = AVAILABILITY_JSON) -> AvailabilityParams:
    """The calibrated parameters from ``availability_process.json`` (read once per process)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found; run `python data/derive.py` to build it")
    raw = json.loads(path.read_text(encoding="utf-8"))
    keys = ("lag1_autocorr_latent", "fit_step_s", "quantile_z", "quantile_fraction", "mean_fraction")
    missing = [k for k in keys if k not in raw]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}")
    qz = np.asarray(raw["quantile_z"], dtype=float)
    qf = np.asarray(raw["quantile_fraction"], dtype=float)
    if qz.shape != qf.shape or np.any(np.diff(qz) <= 0) or np.any(np.diff(qf) < 0) or qf.min() < 0 or qf.max() > 1:
        raise DataError(
            f"{path}: quantile_z must increase and quantile_fraction be non-decreasing in [0, 1], with equal lengths"
        )
    phi = float(raw["lag1_autocorr_latent"])
    if not 0.0 <= phi < 1.0:
        raise DataError(f"{path}: lag1_autocorr_latent = {phi}, expected in [0, 1)")
    qz.flags.writeable = qf.flags.writeable = False
    return AvailabilityParams(phi, float(raw["fit_step_s"]), qz, qf, float(raw["mean_fraction"]))


def _ar1(phi: float, eps: np.ndarray) -> np.ndarray:
    """Stationary unit-variance AR(1) along the last axis of ``eps`` (one series per row) without a Python loop
    per step.

    z[t] = phi**t * cumsum(u[k] / phi**k), in blocks short enough that phi**-k stays far from overflow.
    """
    u = eps * math.sqrt(1.0 - phi * phi)
    u[..., 0] = eps[..., 0]
    if phi < 1e-12:
        return u
    block = max(1, int(250.0 / -math.log10(phi)))
    out = np.empty_like(u)
    carry = 0.0
    n = u.shape[-1]
    for s in range(0, n, block):
        seg = u[..., s : s + block]
        m = seg.shape[-1]
        pw = phi ** np.arange(1, m + 1)  # phi**(k+1)
        out[..., s : s + m] = np.cumsum(seg / pw, axis=-1) * pw + pw * carry
        carry = out[..., s + m - 1 : s + m]  # the last value of each row
    return out


@lru_cache(maxsize=64)
def _powers(phi: float, m: int) -> np.ndarray:
    """``phi ** (k + 1)`` for k < m, computed by NumPy exactly as ``_ar1`` does (read-only, cached)."""
    pw = phi ** np.arange(1, m + 1)
    pw.setflags(write=False)
    return pw


@njit(cache=True)
def _ar1_rows(eps, root, pw, block):  # pragma: no cover - compiled
    """``_ar1`` compiled for 2-D ``eps``: the same operations in the same order per element (so the same bits),
    without the temporaries. ``root`` = sqrt(1 - phi**2), ``pw`` = ``_powers(phi, block)``."""
    rows, n = eps.shape
    out = np.empty_like(eps)
    for r in range(rows):
        carry = 0.0
        for s in range(0, n, block):
            m = min(block, n - s)
            c = 0.0
            for k in range(m):
                t = s + k
                u = eps[r, t] if t == 0 else eps[r, t] * root
                c += u / pw[k]
                out[r, t] = c * pw[k] + pw[k] * carry
            carry = out[r, s + m - 1]
    return out


@njit(cache=True)
def _free_from_latent(z, qz, qf, scale, pools):  # pragma: no cover - compiled
    """``rint(clip(1 - scale * (1 - interp(z, qz, qf)), 0, 1) * pool)`` per region row, with NumPy's ``interp``
    arithmetic (strictly increasing ``qz``: the same segment, slope and formula, so the same bits)."""
    rows, n = z.shape
    nq = qz.shape[0]
    out = np.empty((rows, n), dtype=np.int64)
    # the segment lo with qz[lo] <= x < qz[lo + 1] (unique: qz increases), found by a short scan from the first
    # index of x's bucket of an even grid over [qz[0], qz[-1]]: the same lo as a bisection, without its
    # unpredictable branches
    nb = 4 * nq
    width = (qz[nq - 1] - qz[0]) / nb
    per_width = 1.0 / width  # only picks where the scan starts: the scan below corrects any rounding
    first = np.empty(nb + 1, dtype=np.int64)
    j = 0
    for b in range(nb + 1):
        edge = qz[0] + b * width
        while j + 1 < nq - 1 and qz[j + 1] <= edge:
            j += 1
        first[b] = j
    slope = np.empty(nq - 1)  # per segment, as interp computes it (same operands, same bits)
    for j in range(nq - 1):
        slope[j] = (qf[j + 1] - qf[j]) / (qz[j + 1] - qz[j])
    for r in range(rows):
        pool = pools[r]
        for t in range(n):
            x = z[r, t]
            if x < qz[0]:
                frac = qf[0]
            elif x >= qz[nq - 1]:
                frac = qf[nq - 1]
            else:
                b = int((x - qz[0]) * per_width)
                lo = first[b if b < nb else nb]
                while lo > 0 and qz[lo] > x:  # rounding at a bucket edge
                    lo -= 1
                while qz[lo + 1] <= x:
                    lo += 1
                if qz[lo] == x:
                    frac = qf[lo]
                else:
                    frac = slope[lo] * (x - qz[lo]) + qf[lo]
            if scale != 1.0:
                frac = 1.0 - scale * (1.0 - frac)
                frac = min(max(frac, 0.0), 1.0)
            out[r, t] = np.int64(np.rint(frac * pool))
    return out


def sample_free_gpus(
    rng: np.random.Generator,
    pool_gpus: int,
    n_steps: int,
    step_s: float,
    params: AvailabilityParams | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """GPUs free for this tenant in each of ``n_steps`` steps of ``step_s`` seconds.

    :param rng: source of randomness (same seed -> same path).
    :param pool_gpus: GPUs in the regional pool (the most that can ever be free).
    :param scale: shortage severity: 0 = the whole pool is always free, 1 = as calibrated; values above 1
        deepen the shortage (the fraction is clipped to [0, 1]). Fraction = 1 - scale * (1 - calibrated).
    :returns: int64 array of shape (n_steps,), values in [0, pool_gpus].
    """
    if pool_gpus < 0 or n_steps < 0 or step_s <= 0 or scale < 0:
        raise ConfigError(
            f"sample_free_gpus: need pool_gpus >= 0, n_steps >= 0, step_s > 0, scale >= 0; got "
            f"pool_gpus={pool_gpus}, n_steps={n_steps}, step_s={step_s}, scale={scale}"
        )
    p = params or availability_params()
    z = _ar1(p.phi_at(step_s), rng.standard_normal(n_steps))
    frac = np.interp(z, p.quantile_z, p.quantile_fraction)
    if scale != 1.0:
        frac = np.clip(1.0 - scale * (1.0 - frac), 0.0, 1.0)
    return np.rint(frac * pool_gpus).astype(np.int64)


def free_gpus_table(
    rng: np.random.Generator,
    pools_gpus: list[int],
    n_steps: int,
    step_s: float,
    scale: float = 1.0,
    correlation: float = 0.0,
    daily_amplitude: float = 0.0,
    start_hour_utc: float = 0.0,
    peak_hour_utc: float = 14.0,
    params: AvailabilityParams | None = None,
) -> np.ndarray:
    """GPUs free per region and step, with optional cross-region correlation and daily cycle (assumptions).

    The calibrated marginal (``sample_free_gpus``) has one time scale and independent regions; the four
    1-GPU spot traces are too short and too few to fit a daily cycle or a correlation between regions, so both
    are stated assumptions, off by default:

    - ``correlation`` c: latent ``z_r = sqrt(c) * z_common + sqrt(1 - c) * z_own`` (both AR(1) with the same
      phi, so each region keeps the calibrated autocorrelation and marginal), i.e. latent correlation c;
    - ``daily_amplitude`` a: ``z_r(t) - a * cos(2 pi (hour_utc(t) - peak_hour_utc) / 24)``, fewer free GPUs
      around the peak hour (a busy afternoon of other tenants), more at night; the daily mean of the shift is 0.

    With both 0 the draws are exactly those of ``sample_free_gpus`` region by region (same random stream).
    :returns: int64 array (regions, n_steps) in ``[0, pool]``, all regions in one pass (each row's normal draws are
        the next ``n_steps`` of the stream, region after region).
    """
    p = params or availability_params()
    phi = p.phi_at(step_s)
    common = _ar1(phi, rng.standard_normal(n_steps)) if correlation > 0 else None
    shift = None
    if daily_amplitude > 0:
        hours = start_hour_utc + np.arange(n_steps) * step_s / 3600.0
        shift = daily_amplitude * np.cos(2 * math.pi * (hours - peak_hour_utc) / 24.0)
    eps = rng.standard_normal((len(pools_gpus), n_steps))
    pools = _pools(tuple(pools_gpus))
    # compiled: the operations of _ar1, np.interp, np.clip and np.rint in their order (same bits, a few us)
    if common is None and shift is None and phi >= 1e-12:  # the usual case: one compiled call
        block = max(1, int(250.0 / -math.log10(phi)))
        root, pw = math.sqrt(1.0 - phi * phi), _powers(phi, min(block, n_steps))
        return _free_ar1_rows(eps, root, pw, block, p.quantile_z, p.quantile_fraction, float(scale), pools)
    if phi < 1e-12:
        z = _ar1(phi, eps)
    else:
        block = max(1, int(250.0 / -math.log10(phi)))
        z = _ar1_rows(eps, math.sqrt(1.0 - phi * phi), _powers(phi, min(block, n_steps)), block)
    if common is not None:
        z = math.sqrt(correlation) * common + math.sqrt(1.0 - correlation) * z
    if shift is not None:
        z = z - shift
    return _free_from_latent(z, p.quantile_z, p.quantile_fraction, float(scale), pools)


@lru_cache(maxsize=64)
def _pools(pools_gpus: tuple[int, ...]) -> np.ndarray:
    pools = np.asarray(pools_gpus, dtype=float)
    pools.setflags(write=False)
    return pools


@njit(cache=True)
def _free_ar1_rows(eps, root, pw, block, qz, qf, scale, pools):  # pragma: no cover - compiled
    """``_free_from_latent(_ar1_rows(eps, ...), ...)`` in one compiled call (same operations, same bits)."""
    return _free_from_latent(_ar1_rows(eps, root, pw, block), qz, qf, scale, pools)
