"""Spot GPU availability traces and the fit of the free-GPU process used by ``sim/availability.py`` (SPEC W3).

Sources (``spot_availability/`` in the raw data; see its SOURCES.md):

* Parcae (NSDI '24, JF-D/Parcae, MIT): ``parcae/p3.csv`` = (time ms, live p3.2xlarge instances, cluster cap 32).
* Bamboo (NSDI '23, uclasystem/bamboo, MIT), AWS us-east-1, Nov 2020: ``p2-xlarge`` (time in hours) and two
  ``g4dn-xlarge`` traces (time in seconds) = (time, running spot instances).

Model: each trace is turned into the fraction of its own maximum that is available, averaged over fixed steps.
The fraction is modelled as a Gaussian copula AR(1): a latent standard normal AR(1) ``z`` mapped through the
empirical quantile function of the pooled fractions. This keeps the skewed marginal (mostly the full pool,
with deep dips) and the measured mean exactly, which a clipped Gaussian AR(1) on the fraction does not.
Each trace gets equal weight in the pooled marginal and autocorrelation (p2 is 7x longer than the others).
The latent ``phi`` is chosen (moment matching, by quadrature) so that the lag-1 autocorrelation of the mapped
fraction equals the measured one: the pooled fraction has a point mass at 1, so rank correlations of the
data would understate the latent persistence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from sim.errors import DataError
from sim.paths import raw_data_dir

# file (under spot_availability/), seconds per time unit, instance type -- units from SOURCES.md section 5.
SPOT_FILES = (
    ("parcae/p3.csv", 1e-3, "p3.2xlarge (V100)"),
    ("bamboo/aws-spot-instances-p2-xlarge-2020-11-20-to-2020-11-23.csv", 3600.0, "p2.xlarge (K80)"),
    (
        "bamboo/aws-spot-instances-g4dn-xlarge-us-east-1c-2020-11-20-1930-to-2020-11-21-2200.csv",
        1.0,
        "g4dn.xlarge (T4), us-east-1c",
    ),
    (
        "bamboo/aws-spot-instances-g4dn-xlarge-us-east-1d-2020-11-23-1730-to-2020-11-24-1530.csv",
        1.0,
        "g4dn.xlarge (T4), us-east-1d",
    ),
)
N_QUANTILES = 41  # points of the stored quantile function (probabilities (k + 0.5) / 41)


@dataclass(frozen=True)
class SpotTrace:
    """A step function of available instances: ``n_available[i]`` holds from ``time_s[i]`` to ``time_s[i+1]``."""

    name: str
    instance: str
    time_s: np.ndarray
    n_available: np.ndarray

    @property
    def pool_size(self) -> int:
        return int(self.n_available.max())


def read_trace(path: Path, seconds_per_unit: float, instance: str = "") -> SpotTrace:
    """Read a headerless ``time, n_available`` csv; time must be non-decreasing, counts integers >= 0."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        raw = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: expected two numeric columns (time, n_available) and no header: {e}") from None
    if raw.shape[1] != 2 or len(raw) < 2:
        raise DataError(f"{path}: expected >= 2 rows of two columns (time, n_available), got shape {raw.shape}")
    t, n = raw[:, 0] * seconds_per_unit, raw[:, 1]
    for row in np.flatnonzero(np.diff(t) < 0)[:1]:
        raise DataError(f"{path}, row {row + 2}: time goes backwards ({raw[row, 0]} -> {raw[row + 1, 0]})")
    for row in np.flatnonzero((n < 0) | (n != np.round(n)))[:1]:
        raise DataError(f"{path}, row {row + 1}, column 2: n_available {n[row]} is not an integer >= 0")
    if n.max() <= 0:
        raise DataError(f"{path}: no instance is ever available")
    return SpotTrace(path.name, instance, t, n.astype(int))


def load_spot_traces(data_dir: str | os.PathLike | None = None) -> list[SpotTrace]:
    """The four spot traces of ``SPOT_FILES``."""
    root = raw_data_dir(data_dir)
    if root is None:
        raise DataError("no raw data directory (set CARBON_DATA_DIR or put shared/data beside the repo)")
    return [read_trace(Path(root) / "spot_availability" / f, unit, inst) for f, unit, inst in SPOT_FILES]


def step_fractions(trace: SpotTrace, step_s: float) -> np.ndarray:
    """Time-averaged fraction of the pool available in each full step, from the first instance acquired.

    The leading period with zero instances is dropped: it is before the first launch succeeded, and the
    trace does not say whether instances were requested then (6 h and 7 h in the two g4dn traces).
    """
    start = trace.time_s[np.argmax(trace.n_available > 0)]
    edges = np.arange(start, trace.time_s[-1] + 1e-9, step_s)
    # integral of the step function at each edge; the last point's value never holds (it ends the trace)
    cum = np.concatenate([[0.0], np.cumsum(np.diff(trace.time_s) * trace.n_available[:-1])])
    area = np.interp(edges, trace.time_s, cum)
    return np.diff(area) / step_s / trace.pool_size


def _mapped_autocorr(rho: float, qz: np.ndarray, qf: np.ndarray, n_grid: int = 801) -> float:
    """Lag-1 autocorrelation of Q(z) when the latent z is a unit AR(1) with lag-1 correlation ``rho``
    (quadrature on a uniform grid over +-6 sd of the bivariate normal; Q is piecewise linear)."""
    x = np.linspace(-6.0, 6.0, n_grid)
    w = norm.pdf(x)
    w /= w.sum()
    f1 = np.interp(x, qz, qf)
    f2 = np.interp(rho * x[:, None] + np.sqrt(1.0 - rho * rho) * x[None, :], qz, qf)
    mean = w @ f1
    return float((w @ (f1[:, None] * f2) @ w - mean**2) / (w @ f1**2 - mean**2))


def fit_availability(traces: list[SpotTrace], step_s: float = 900.0) -> dict:
    """Fit the copula AR(1) of the free fraction; returns the JSON-ready parameter dict."""
    fracs = [step_fractions(tr, step_s) for tr in traces]
    weights = np.concatenate([np.full(len(f), 1.0 / len(f)) for f in fracs])
    pooled = np.concatenate(fracs)
    order = np.argsort(pooled, kind="stable")
    cdf = (np.cumsum(weights[order]) - 0.5 * weights[order]) / weights.sum()
    probs = (np.arange(N_QUANTILES) + 0.5) / N_QUANTILES
    quantiles = np.interp(probs, cdf, pooled[order])
    per_trace, frac_acf = [], []
    mean_fraction = float(np.average(pooled, weights=weights))
    for tr, f in zip(traces, fracs):
        d = f - mean_fraction
        frac_acf.append(float(np.sum(d[1:] * d[:-1]) / np.sum(0.5 * (d[1:] ** 2 + d[:-1] ** 2))))
        drops = np.diff(tr.n_available) < 0
        hours = (tr.time_s[-1] - tr.time_s[np.argmax(tr.n_available > 0)]) / 3600.0
        per_trace.append(
            {
                "file": tr.name,
                "instance": tr.instance,
                "pool_size": tr.pool_size,
                "hours": round(hours, 2),
                "steps": len(f),
                "mean_fraction": round(float(f.mean()), 4),
                "std_fraction": round(float(f.std()), 4),
                "lag1_autocorr_fraction": round(frac_acf[-1], 4),
                "reclaim_events_per_hour": round(float(drops.sum() / hours), 3),
            }
        )
    target = float(np.mean(frac_acf))
    phi_step = brentq(lambda r: _mapped_autocorr(r, norm.ppf(probs), quantiles) - target, 0.0, 0.9999)
    return {
        "model": "gaussian-copula AR(1): z[t+1] = phi*z[t] + sqrt(1-phi^2)*eps, free_fraction = Q(z)",
        "fit_step_s": step_s,
        "mean_fraction": round(mean_fraction, 4),
        "std_fraction": round(float(np.sqrt(np.cov(pooled, aweights=weights))), 4),
        "lag1_autocorr_latent": round(phi_step, 4),
        "autocorr_per_hour_latent": round(phi_step ** (3600.0 / step_s), 4),
        "lag1_autocorr_fraction": round(target, 4),
        "autocorr_per_hour_fraction": round(
            _mapped_autocorr(phi_step ** (3600.0 / step_s), norm.ppf(probs), quantiles), 4
        ),
        "quantile_z": [round(float(v), 5) for v in norm.ppf(probs)],
        "quantile_fraction": [round(float(v), 5) for v in quantiles],
        "pooling": "each trace weighted equally (weights 1/steps); leading zero-instance period dropped",
        "per_trace": per_trace,
        "sources": "Parcae p3.csv (JF-D/Parcae @efedee7, MIT); Bamboo doc/data (uclasystem/bamboo @8080929, MIT)",
    }
