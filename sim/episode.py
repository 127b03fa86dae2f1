"""Drawing an episode of the single-job model into rows of the core, compiled (part of the model's definition).

An episode starting at hour index ``start`` of the carbon table draws from its environment's generator, in this
order: (1) a work multiplier per decision step, the phase cycle times lognormal noise of mean 1 (``job.noise_std``);
(2) the GPUs free per region and step, the spot-calibrated availability process of ``sim.availability`` (with its
optional cross-region correlation and daily cycle); (3) outages per region, a Poisson count, uniform start times
(sorted) and exponential durations; (4) the GPU-hours until the first GPU failure, exponential. The power cap per
hour and the phase cycle depend only on the UTC hour of day at the start, so they are tables built once.

``draw_rows`` does this for a list of rows in one compiled call, straight into the batch's arrays, with Numba's
ports of NumPy's distributions on each row's own generator (``sim.rng``): the same numbers as the NumPy calls
``rng.lognormal(mu, sigma, K)``, ``rng.standard_normal((R, K))``, ``rng.poisson``, ``rng.uniform``,
``rng.exponential`` in that order (``tests/test_episode_draw.py`` checks it against them); it replaced those
calls at about a third of their cost (a reset is drawn every ~190 steps of every environment).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import NamedTuple

import numpy as np
from numba import njit

from sim.availability import _ar1_rows, _free_from_latent, _powers, availability_params
from sim.rng import (
    bitgen,
    random_lognormal,
    random_poisson,
    random_standard_exponential,
    random_standard_normal,
    random_uniform,
)

_S_PER_H = 3600.0

# the scalars of EpisodeDraw.params (one float vector for the compiled code)
DRAW_PARAMS = (
    "noise_mu",  # lognormal work noise: mean of the log (-sigma^2 / 2: mean 1)
    "noise_sigma",  # its sigma (0: no noise)
    "shortage_scale",  # availability process depth (0: the whole pool is always free)
    "correlation",  # latent cross-region correlation of the availability process
    "phi",  # latent lag-1 autocorrelation per decision step
    "root",  # sqrt(1 - phi^2)
    "block",  # steps per block of the blocked AR(1) recursion (sim.availability._ar1)
    "outage_mean_count",  # expected outages per region and episode (0: none)
    "horizon_s",  # episode length [s]
    "outage_mean_s",  # mean outage duration [s]
    "failure_scale_gpu_h",  # mean GPU-hours between GPU failures (0: none)
    "carbon_h0",  # first hour of the carbon table, hours since 1970-01-01T00 UTC
)
(_MU, _SIGMA, _SCALE, _CORR, _PHI, _ROOT, _BLOCK, _OUT_N, _HORIZON, _OUT_S, _FAIL, _H0) = (
    DRAW_PARAMS.index(n) for n in DRAW_PARAMS
)


class AvailabilityTables(NamedTuple):
    """What the free-GPU and outage draw reads (R regions, K decision steps)."""

    params: np.ndarray  # (len(DRAW_PARAMS),) the draw's scalars
    shift: np.ndarray  # (24 or 0, K + 1) daily shift of the latent availability by UTC start hour (empty: none)
    powers: np.ndarray  # (block,) AR(1) powers phi^k (sim.availability._powers)
    quantile_z: np.ndarray  # (Q,) latent quantiles of the availability map
    quantile_fraction: np.ndarray  # (Q,) free fraction of the pool at each
    pools: np.ndarray  # (R,) float GPUs per region
    pools_gpus: np.ndarray  # (R, K + 1) int the whole pool per step (no shortage)


class DrawTables(NamedTuple):
    """What a single job's episode draw reads: the availability's tables, then the job's (H hours)."""

    availability: tuple  # AvailabilityTables as a plain tuple
    cap_w: np.ndarray  # (24, H) W the power cap per hour, by UTC start hour
    phase_work: np.ndarray  # (24, K + 1) work multiplier of the phase cycle, by UTC start hour
    ci_g_per_kwh: np.ndarray  # (R, hours of the table) g/kWh the whole carbon table


class EpisodeDraw:
    """The constants of a scenario's episode draw (built once per simulator or fleet environment).

    ``cap_w`` (24, H) W and ``phase_work`` (24, K + 1) by UTC hour of day at the start; ``shift`` (24, K + 1) the
    daily cycle of the latent availability (empty when off); ``pools`` (R,) GPUs; the availability quantile map
    ``quantile_z`` / ``quantile_fraction`` and AR(1) powers ``powers``; scalars in ``params`` (``DRAW_PARAMS``).

    :param faults: the scenario's ``FaultSpec`` (availability process, outages, GPU failures)
    :param pool: GPUs per region
    :param step_s: decision step [s]; ``n_steps`` steps make the episode of ``horizon_s`` [s] and ``n_hours`` hours
    :param carbon: the carbon table episodes start in (``sim.carbon.CarbonTable``)
    :param job: the single job's ``JobSpec`` (power cap, phases, work noise); None for a fleet (no cap, no noise)
    """

    def __init__(
        self, faults, pool: list[int], step_s: float, horizon_s: float, n_steps: int, n_hours: int, carbon, job=None
    ):
        f = faults
        H, K1, R = n_hours, n_steps + 1, len(pool)
        self.cap_w = np.full((24, H), math.inf if job is None else float(job.power_cap_w))
        self.phase_work = np.ones((24, K1))
        for hod0 in range(24):
            hod = (hod0 + np.arange(H)) % 24
            for win in job.cap_windows if job else ():
                inside = (win.start_hour_utc <= hod) & (hod < win.end_hour_utc)
                self.cap_w[hod0, inside] = np.minimum(self.cap_w[hod0, inside], win.cap_w)
            if job and job.phase_hours > 0:
                phase = (np.arange(K1) * step_s / (job.phase_hours * _S_PER_H)).astype(int)
                self.phase_work[hod0] *= np.asarray(job.phase_multipliers)[phase % len(job.phase_multipliers)]
        self.pools = np.array(pool, dtype=float)
        self.pools_gpus = np.repeat(np.array(pool, dtype=np.int64)[:, None], K1, axis=1)
        p = np.zeros(len(DRAW_PARAMS))
        if job and job.noise_std > 0:
            p[_MU], p[_SIGMA] = -0.5 * job.noise_std**2, job.noise_std
        self.shift = np.zeros((0, K1))
        self.powers = np.ones(1)
        avail = availability_params() if f.shortage_scale > 0 else None
        self.quantile_z = avail.quantile_z if avail else np.zeros(2)
        self.quantile_fraction = avail.quantile_fraction if avail else np.zeros(2)
        if avail:
            phi = avail.phi_at(step_s)
            p[_SCALE], p[_CORR], p[_PHI] = f.shortage_scale, f.shortage_region_correlation, phi
            p[_ROOT] = math.sqrt(1.0 - phi * phi)
            if phi >= 1e-12:
                p[_BLOCK] = block = max(1, int(250.0 / -math.log10(phi)))
                self.powers = _powers(phi, min(block, K1))
            if f.shortage_daily_amplitude > 0:  # sim.availability.free_gpus_table's shift, per start hour of day
                self.shift = np.zeros((24, K1))
                for hod0 in range(24):
                    hours = hod0 + np.arange(K1) * step_s / 3600.0
                    cycle = np.cos(2 * math.pi * (hours - f.shortage_peak_hour_utc) / 24.0)
                    self.shift[hod0] = f.shortage_daily_amplitude * cycle
        if f.outage_per_region_day > 0:
            p[_OUT_N] = f.outage_per_region_day * horizon_s / 86400.0
            p[_OUT_S] = f.outage_mean_hours * _S_PER_H
        p[_HORIZON] = horizon_s
        lam = f.gpu_failure_per_gpu_hour
        p[_FAIL] = 1.0 / lam if lam > 0 else 0.0
        p[_H0] = int(carbon.start_h.astype("datetime64[h]").astype(np.int64))
        self.params = p
        self.ci_g_per_kwh = carbon.intensity_g_per_kwh  # (R, hours of the table)
        self.n_hours, self.n_regions = H, R
        for a in (self.cap_w, self.phase_work, self.pools, self.pools_gpus, self.shift, self.params):
            a.setflags(write=False)

    def hour_of_day(self, start: int) -> int:
        """UTC hour of day of the carbon table's hour index ``start``."""
        return (int(self.params[_H0]) + start) % 24

    @cached_property
    def availability(self) -> tuple:
        """``draw_availability``'s tables (``AvailabilityTables`` as a plain tuple; built once: the arrays are
        read-only)."""
        return tuple(
            AvailabilityTables(
                self.params,
                self.shift,
                self.powers,
                self.quantile_z,
                self.quantile_fraction,
                self.pools,
                self.pools_gpus,
            )
        )

    @cached_property
    def tables(self) -> tuple:
        """``draw_rows``' tables (``DrawTables`` as a plain tuple, built once)."""
        return tuple(DrawTables(self.availability, self.cap_w, self.phase_work, self.ci_g_per_kwh))


@njit(cache=True)
def draw_rows(rows, starts, gens, draw, ep, fail_left_gpu_h):
    """Draw the episode of each row ``rows[e]`` starting at hour index ``starts[e]`` with the generator at
    ``gens.states[rows[e]]`` (``sim.layout.Generators``) from ``draw`` (``DrawTables``, plain) into the episode
    arrays ``ep`` (``sim.layout.EpisodeRows``) and ``fail_left_gpu_h[rows[e]]``. Returns the outage arrays: new,
    larger ones when an episode drew more outages than they hold (rare), else the same."""
    av, cap_hod, work_hod, ci_all = AvailabilityTables(*draw[0]), draw[1], draw[2], draw[3]
    D = av.params
    R, K1 = av.pools_gpus.shape
    H = ep.ci.shape[2]
    o_start, o_end = ep.outage_start_s, ep.outage_end_s
    for e in range(rows.shape[0]):
        i, s = rows[e], starts[e]
        bg = bitgen(gens.states[i], gens.fns)
        hod0 = (int(D[_H0]) + s) % 24
        ep.cap_w[i] = cap_hod[hod0]
        # (1) work multiplier per step: phase cycle x lognormal noise
        if D[_SIGMA] > 0:
            for k in range(K1):
                ep.work[i, k] = work_hod[hod0, k] * random_lognormal(bg, D[_MU], D[_SIGMA])
        else:
            ep.work[i] = work_hod[hod0]
        # (2) free GPUs, (3) outages
        o_start, o_end = _availability(bg, av, hod0, ep.free[i], (o_start, o_end, ep.n_outages), i)
        # (4) GPU-hours until the first GPU failure
        fail_left_gpu_h[i] = D[_FAIL] * random_standard_exponential(bg) if D[_FAIL] > 0 else math.inf
        for r in range(R):
            for h in range(H):
                ep.ci[i, r, h] = ci_all[r, s + h]
    return o_start, o_end


@njit(cache=True)
def draw_availability(fns, state, hod0, availability, free, outages):
    """Steps (2) and (3) of an episode alone, for the fleet (its jobs share the regions' pools): the free GPUs
    ``free`` (R, K + 1) and the outages of row 0 of ``outages = (start_s, end_s, n_outages)``, drawn with the
    generator at ``state`` from ``availability`` (``AvailabilityTables``, plain); returns the outage arrays
    (larger ones when they had to grow)."""
    return _availability(bitgen(state, fns), AvailabilityTables(*availability), hod0, free, outages, 0)


@njit(cache=True, inline="always")
def _availability(bg, av, hod0, free, outages, i):
    """(2) the free GPUs per region and step into ``free`` (R, K + 1), sim.availability.free_gpus_table's
    operations in its order; (3) row ``i``'s outages (``outages``: start, end, count arrays): a Poisson count per
    region, sorted uniform starts, exponential durations. Returns the outage arrays."""
    D, pw, shift_hod = av.params, av.powers, av.shift
    o_start, o_end, n_out = outages
    R, K1 = av.pools_gpus.shape
    corr = D[_CORR]
    if D[_SCALE] > 0:
        common = np.empty((1, K1))
        if corr > 0:
            for k in range(K1):
                common[0, k] = random_standard_normal(bg)
        eps = np.empty((R, K1))
        for r in range(R):
            for k in range(K1):
                eps[r, k] = random_standard_normal(bg)
        z = _latent(eps, D, pw)
        if corr > 0:
            zc = _latent(common, D, pw)
            a, b = math.sqrt(corr), math.sqrt(1.0 - corr)
            for r in range(R):
                for k in range(K1):
                    z[r, k] = a * zc[0, k] + b * z[r, k]
        if shift_hod.shape[0] > 0:
            for r in range(R):
                for k in range(K1):
                    z[r, k] = z[r, k] - shift_hod[hod0, k]
        free[:] = _free_from_latent(z, av.quantile_z, av.quantile_fraction, D[_SCALE], av.pools)
    else:
        free[:] = av.pools_gpus
    for r in range(R):
        n_out[i, r] = 0
        if D[_OUT_N] > 0:
            n = random_poisson(bg, D[_OUT_N])
            at = np.empty(n)
            for q in range(n):
                at[q] = random_uniform(bg, 0.0, D[_HORIZON])
            at = np.sort(at)
            if n > o_start.shape[2]:
                o_start, o_end = _grown(o_start, n), _grown(o_end, n)
            for q in range(n):
                o_start[i, r, q] = at[q]
                o_end[i, r, q] = at[q] + D[_OUT_S] * random_standard_exponential(bg)
            n_out[i, r] = n
    return o_start, o_end


@njit(cache=True)
def _latent(eps, D, pw):
    """sim.availability._ar1 of the rows of ``eps`` (unit-variance AR(1) with the scenario's phi)."""
    if D[_PHI] >= 1e-12:
        return _ar1_rows(eps, D[_ROOT], pw, int(D[_BLOCK]))
    z = eps * D[_ROOT]  # phi ~ 0: white noise (NumPy's _ar1 returns u)
    z[:, 0] = eps[:, 0]
    return z


@njit(cache=True)
def _grown(a, n):
    out = np.zeros((a.shape[0], a.shape[1], n))
    out[:, :, : a.shape[2]] = a
    return out
