"""A lower bound on a fleet's operational carbon, and an executable schedule derived from it (``oracle``).

The bound is the linear-programming relaxation of scheduling every job over the time-expanded network of
regions x periods (the fleet table uses the 15-minute decision step), solved by SciPy's HiGHS. Variable
``x[j, r, k, l]`` is the share of job ``j``'s mini-batches done in region ``r`` during period ``k`` at clock
level ``l``:

    minimise   sum x * E[j, r, l] * CI[r, k] / 1000                       (kg; E = whole-job facility kWh)
    subject to sum_{r,k,l} x[j, ...] = 1                                   every job completes
               sum_{r,l} x * T[j, r, l] <= overlap[j, k]                   a job runs at most its window's
                                                                           share of each period (T = job time)
               sum_{j,l} x * T[j, r, l] * gpus[j] <= capacity[r, k]        the pool's GPU-time in the period
               x >= 0, and x = 0 outside the job's window

Why it is a lower bound for any schedule the simulator can run that completes every job by its deadline: every
such schedule gives a feasible ``x``:

- with linear scaling a job on ``n`` of its ``g`` GPUs does ``n / g`` of its full rate at the same energy per
  mini-batch, so its mini-batches in a period cost ``x * T * g`` GPU-seconds there, at most the GPUs it holds
  (never more than the pool's free GPUs, ``sim/fleet_core.py``) times the time the pool is up in the period;
- a job runs only between the first decision step that starts at or after its arrival (the simulator's
  arrival gate, ``arrival_gate=True``) and its deadline, and at most one region at a time;
- the objective counts only busy power (GPU + host, x PUE) at the chosen clock, at the hour's intensity the
  simulator books; idle, checkpoint-stall, restore, transfer and rollback energy are >= 0 and left out.

Regional power caps (``power_cap_w`` (R,) W of IT power, GPU boards + hosts before PUE, as
``sim/fleet_core.py`` compares them; ``inf``: none). The engine throttles a job to the highest level whose power
fits its budget (the cap minus the power of the jobs served before it and the lowest-clock power of those after
it), and runs it at level 0 when none fits, so only level 0 may exceed a cap. Hence, at every instant, if any job
in a region runs above level 0 the region's power is within its cap, so the power of the jobs above level 0 is
always at most the cap, and so is its average over a period:

               sum_{j, l >= 1} x * T[j, r, l] * gpus[j] * (P_gpu[j, r, l] + P_host[r]) / period <= cap[r]

and a level >= 1 whose power on a single GPU exceeds the cap is never run (its cells are dropped).

Sub-linear scaling (``speed_floor`` (J,), for a job whose speed on ``n`` of its ``g`` GPUs is ``speed[n]`` of its
full speed, ``min_n n / (g x speed[n])`` <= 1): on ``n`` GPUs a mini-batch takes ``t / speed[n]`` (never less than
``t``: the time rows stand) on ``n`` GPUs, so its GPU-time, energy and power-time are their full-request values x
``n / (g x speed[n])``, at least x the floor. The bound scales the objective, the capacity and the power rows by it
(1 with linear scaling).

Clock levels that are both slower and costlier than another level are dropped (never useful). The capacity
passed in must be an upper bound on the GPU-time free to the fleet in each period, in GPUs x the period (e.g.
the free GPUs of each decision step x the share of the step the region is up, :func:`step_capacity`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from sim.fleet_jobs import FleetJobs

_S_PER_H = 3600.0
_EPS = 1e-9


@dataclass(frozen=True)
class FleetBound:
    """The LP's optimum: ``carbon_kg`` (``inf`` if no schedule can complete every job) and its plan."""

    carbon_kg: float
    status: str  # optimal | infeasible
    share: np.ndarray  # (J, R, H, L) float64, share of each job done per region, hour, level (zeros if infeasible)
    n_variables: int
    solve_s: float  # wall time of the HiGHS call
    # (R, H) kg per GPU-hour: the LP's shadow price of each pool's capacity in each hour (the dual of its row; 0
    # where the pool is not full), what one more GPU-hour there would save; zeros if infeasible
    price_kg_per_gpu_h: np.ndarray | None = None
    # (R, H) kg per Wh: the shadow price of each region's power cap in each period (0 where it does not bind)
    price_kg_per_wh: np.ndarray | None = None


@dataclass(frozen=True)
class FleetSchedule:
    """A placement by steps of ``step_s``: in step ``k`` job ``j`` holds ``held_gpus[j, k]`` GPUs (at most its
    request) in ``region[j, k]`` (``-1``: none); elastic, as the simulator: fewer GPUs, proportionally slower."""

    region: np.ndarray  # (J, S) int64, -1 = not running
    held_gpus: np.ndarray  # (J, S) int64, GPUs held for the step, 0 when not running
    level: np.ndarray  # (J, S) int64 clock level, -1 = not running
    minibatches: np.ndarray  # (J, S) float64, mini-batches done in the step
    carbon_kg: float  # sum minibatches * energy per mini-batch * intensity
    energy_kwh: float
    completed: np.ndarray  # (J,) bool, every mini-batch done (by the deadline: nothing runs outside the window)
    step_s: float = _S_PER_H

    @property
    def all_completed(self) -> bool:
        return bool(self.completed.all())


def n_hours(jobs: FleetJobs) -> int:
    return n_steps(jobs, _S_PER_H)


def window_overlap_s(jobs: FleetJobs, n_steps: int, step_s: float) -> np.ndarray:
    """(J, S) float64: seconds of each step ``[k, k+1) * step_s`` inside each job's window ``[arrival, deadline)``."""
    start = np.arange(n_steps) * step_s
    lo = np.maximum(jobs.arrival_s[:, None], start[None, :])
    hi = np.minimum(jobs.deadline_s[:, None], start[None, :] + step_s)
    return np.clip(hi - lo, 0.0, None)


def window_overlap_h(jobs: FleetJobs, hours: int) -> np.ndarray:
    """(J, H) float64: hours of each hour ``[h, h+1)`` inside each job's window ``[arrival, deadline)``."""
    return window_overlap_s(jobs, hours, _S_PER_H) / _S_PER_H


def useful_levels(jobs: FleetJobs) -> np.ndarray:
    """(J, R, L) bool: levels not dominated by a faster level with no more energy per mini-batch."""
    e = jobs.energy_per_minibatch_kwh
    faster_min = np.minimum.accumulate(e[:, :, ::-1], axis=2)[:, :, ::-1]  # min over levels >= l
    keep = np.ones_like(e, dtype=bool)
    keep[:, :, :-1] = e[:, :, :-1] < faster_min[:, :, 1:]
    return keep


def hourly_capacity(free_gpus: np.ndarray, step_s: float, hours: int) -> np.ndarray:
    """(R, H) the most GPUs free in each hour, from a per-step series ``free_gpus`` (R, steps) of ``step_s``
    seconds: an upper bound on what any schedule can hold in that hour, as the LP needs."""
    free = np.asarray(free_gpus, dtype=float)
    steps_per_h = _S_PER_H / step_s
    if not float(steps_per_h).is_integer() or free.shape[1] < hours * steps_per_h:
        raise ValueError(
            f"free_gpus: need whole steps per hour and >= {hours} h of steps; got step_s={step_s}, "
            f"{free.shape[1]} steps"
        )
    n = int(steps_per_h)
    return free[:, : hours * n].reshape(free.shape[0], hours, n).max(axis=2)


def step_capacity(
    free_gpus: np.ndarray, outage_start_s: np.ndarray, outage_end_s: np.ndarray, n_outages: np.ndarray, step_s: float
) -> np.ndarray:
    """(R, S) GPUs free in each decision step (``free_gpus`` (R, >= S)) times the share of the step the region is
    up (outages ``[start, end)`` per region, ``n_outages`` (R,) of them): the most GPU-time the fleet can hold
    there, in GPUs x the step, as the bound needs (a pool is empty during an outage)."""
    free = np.asarray(free_gpus, dtype=float)
    R, S = free.shape[0], free.shape[1]
    lo = np.arange(S) * step_s
    down = np.zeros((R, S))
    for r in range(R):
        for q in range(int(n_outages[r])):
            down[r] += np.clip(
                np.minimum(outage_end_s[r, q], lo + step_s) - np.maximum(outage_start_s[r, q], lo), 0, None
            )
    return free * np.clip(1.0 - down / step_s, 0.0, 1.0)


def n_steps(jobs: FleetJobs, step_s: float) -> int:
    return int(np.ceil(jobs.horizon_s / step_s - _EPS))


def _check_tables(
    jobs: FleetJobs, intensity_g_per_kwh: np.ndarray, capacity_gpus: np.ndarray, step_s: float = _S_PER_H
) -> int:
    if not (step_s > 0 and float(_S_PER_H / step_s).is_integer()):
        raise ValueError(f"step_s: must divide an hour into whole steps, got {step_s}")
    steps = n_steps(jobs, step_s)
    want = (jobs.n_regions, steps)
    for name, a in (("intensity_g_per_kwh", intensity_g_per_kwh), ("capacity_gpus", capacity_gpus)):
        if np.shape(a) != want:
            raise ValueError(f"{name}: expected shape (regions, steps of {step_s:g} s) = {want}, got {np.shape(a)}")
        if not np.all(np.isfinite(a)) or np.any(np.asarray(a) < 0):
            raise ValueError(f"{name}: expected finite values >= 0")
    return steps


def fleet_lower_bound(
    jobs: FleetJobs,
    intensity_g_per_kwh: np.ndarray,
    capacity_gpus: np.ndarray,
    step_s: float = _S_PER_H,
    arrival_gate: bool = False,
    power_cap_w: np.ndarray | None = None,
    speed_floor: np.ndarray | None = None,
) -> FleetBound:
    """Solve the LP relaxation (module docstring) with HiGHS, over periods of ``step_s`` seconds (an hour by
    default; the decision step for the tighter bound the fleet table reports).

    :param intensity_g_per_kwh: (R, S) gCO2/kWh of each region in each period from the episode start.
    :param capacity_gpus: (R, S) GPUs of each pool free to the fleet in each period (an upper bound).
    :param arrival_gate: a job's window starts at the first period that starts at or after its arrival (the
        simulator's arrival gate: a job takes part from the first decision step at or after it arrives).
    :param power_cap_w: (R,) each region's power cap, W of GPU + host power before PUE (``inf``: none).
    :param speed_floor: (J,) each job's least ``n / (gpus x speed[n])`` over the GPU counts it may run on (None: 1,
        linear scaling).
    """
    periods = _check_tables(jobs, intensity_g_per_kwh, capacity_gpus, step_s)
    J, R, L = jobs.n_jobs, jobs.n_regions, jobs.n_levels
    window_jobs = jobs
    if arrival_gate:
        window_jobs = dataclasses.replace(jobs, arrival_s=np.ceil(jobs.arrival_s / step_s - _EPS) * step_s)
    overlap = window_overlap_s(window_jobs, periods, step_s) / step_s
    levels = useful_levels(jobs)
    cap_w = np.full(R, np.inf) if power_cap_w is None else np.asarray(power_cap_w, dtype=float)
    if np.shape(cap_w) != (R,) or np.any(cap_w <= 0):
        raise ValueError(f"power_cap_w: expected ({R},) values > 0 (inf: no cap), got {cap_w!r}")
    gpu_w = jobs.gpu_power_w + jobs.host_power_w[None, :, None]  # (J, R, L) W per busy GPU, before PUE
    capped_level = np.arange(L)[None, None, :] >= 1
    levels = levels & ~(capped_level & (gpu_w > cap_w[None, :, None]))  # throttled even alone on one GPU
    cell = (overlap[:, None, :, None] > 0) & levels[:, :, None, :] & (np.asarray(capacity_gpus)[None, :, :, None] > 0)
    j, r, h, lv = np.nonzero(cell)
    n = j.size
    job_p = jobs.work_s[j, r, lv] / step_s  # periods on the full request for the whole job
    floor = np.ones(J) if speed_floor is None else np.asarray(speed_floor, dtype=float)
    if floor.shape != (J,) or np.any(floor <= 0) or np.any(floor > 1 + 1e-12):
        raise ValueError(f"speed_floor: expected ({J},) values in (0, 1], got {floor!r}")
    cost = jobs.energy_kwh[j, r, lv] * floor[j] * np.asarray(intensity_g_per_kwh)[r, h] / 1000.0
    gpu_p = job_p * jobs.gpus[j] * floor[j]  # GPU-periods of the whole job, at least

    a_eq = sp.csr_array((np.ones(n), (j, np.arange(n))), shape=(J, n))
    time_rows, time_row = np.unique(j * periods + h, return_inverse=True)
    cap_rows, cap_row = np.unique(r * periods + h, return_inverse=True)
    a_ub = sp.vstack(
        [
            sp.csr_array((job_p, (time_row, np.arange(n))), shape=(time_rows.size, n)),
            sp.csr_array((gpu_p, (cap_row, np.arange(n))), shape=(cap_rows.size, n)),
        ],
        format="csr",
    )
    b_ub = np.concatenate(
        [overlap.ravel()[time_rows], np.asarray(capacity_gpus, dtype=float).ravel()[cap_rows]],
    )
    pw = np.flatnonzero((lv >= 1) & np.isfinite(cap_w[r]))  # the cells a power cap limits
    if pw.size:
        pw_rows, pw_row = np.unique(r[pw] * periods + h[pw], return_inverse=True)
        watts = gpu_p[pw] * gpu_w[j[pw], r[pw], lv[pw]]  # average W over the period
        a_ub = sp.vstack([a_ub, sp.csr_array((watts, (pw_row, pw)), shape=(pw_rows.size, n))], format="csr")
        b_ub = np.concatenate([b_ub, cap_w[pw_rows // periods]])
    t0 = time.perf_counter()
    share = np.zeros((J, R, periods, L))
    price = np.zeros((R, periods))
    if n == 0 and J > 0:  # no cell can run any job (HiGHS refuses an empty LP)
        return FleetBound(np.inf, "infeasible", share, n, 0.0, price, np.zeros((R, periods)))
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(J), bounds=(0, None), method="highs")
    solve_s = time.perf_counter() - t0
    if res.status == 2:
        return FleetBound(np.inf, "infeasible", share, n, solve_s, price, np.zeros((R, periods)))
    if res.status != 0:
        raise RuntimeError(f"HiGHS did not solve the fleet LP: {res.message}")
    share[j, r, h, lv] = np.clip(res.x, 0.0, None)
    cap_duals = -np.asarray(res.ineqlin.marginals)[time_rows.size : time_rows.size + cap_rows.size]
    price.ravel()[cap_rows] = np.clip(cap_duals, 0.0, None) * (_S_PER_H / step_s)  # kg per GPU-hour
    price_w = np.zeros((R, periods))
    if pw.size:  # the power rows: W averaged over the period, so kg per W x period -> kg per Wh
        pw_duals = -np.asarray(res.ineqlin.marginals)[time_rows.size + cap_rows.size :]
        price_w.ravel()[pw_rows] = np.clip(pw_duals, 0.0, None) * (_S_PER_H / step_s)
    return FleetBound(float(res.fun), "optimal", share, n, solve_s, price, price_w)


def evaluate_schedule(
    jobs: FleetJobs,
    region: np.ndarray,
    held_gpus: np.ndarray,
    level: np.ndarray,
    minibatches: np.ndarray,
    intensity_g_per_kwh: np.ndarray,
    capacity_gpus: np.ndarray,
    step_s: float = _S_PER_H,
) -> FleetSchedule:
    """Check a schedule of ``step_s``-second steps and account its carbon. Raises ValueError naming the job and
    step if it runs outside the job's window or faster than its rate, or the region and step if a pool holds more
    GPUs than it has. Tables are per step, shape (R, S)."""
    steps = _check_tables(jobs, intensity_g_per_kwh, capacity_gpus, step_s)
    region, level = np.asarray(region, dtype=np.int64), np.asarray(level, dtype=np.int64)
    held = np.asarray(held_gpus, dtype=np.int64)
    mb = np.asarray(minibatches, dtype=float)
    overlap_s = window_overlap_s(jobs, steps, step_s)
    J = jobs.n_jobs
    running = region >= 0
    jj, kk = np.nonzero(running)
    rr, ll = region[jj, kk], level[jj, kk]
    if np.any(mb[~running] != 0) or np.any(mb < 0) or np.any(held[~running] != 0):
        raise ValueError("minibatches, held_gpus: only where a region is given, never negative")
    if np.any(held[jj, kk] < 1) or np.any(held[jj, kk] > jobs.gpus[jj]):
        raise ValueError("held_gpus: a running job holds between 1 and its requested GPUs")
    share = held[jj, kk] / jobs.gpus[jj]  # linear scaling on fewer GPUs
    rate_cap = share * overlap_s[jj, kk] / jobs.minibatch_s[jj, rr, ll]
    bad = np.flatnonzero(mb[jj, kk] > rate_cap * (1 + 1e-9) + 1e-9)
    if bad.size:
        k = bad[0]
        raise ValueError(
            f"job {jj[k]} step {kk[k]}: {mb[jj[k], kk[k]]:.6g} mini-batches exceed its {rate_cap[k]:.6g} "
            "(window share of the step / time per mini-batch)"
        )
    used = np.zeros((jobs.n_regions, steps))
    np.add.at(used, (rr, kk), held[jj, kk])
    over = np.argwhere(used > np.asarray(capacity_gpus) + 1e-9)
    if over.size:
        r0, k0 = over[0]
        raise ValueError(f"region {r0} step {k0}: {used[r0, k0]:g} GPUs held, pool has {capacity_gpus[r0, k0]:g}")
    e_kwh = mb[jj, kk] * jobs.energy_per_minibatch_kwh[jj, rr, ll]
    carbon_kg = float(np.sum(e_kwh * np.asarray(intensity_g_per_kwh)[rr, kk]) / 1000.0)
    done = np.zeros(J)
    np.add.at(done, jj, mb[jj, kk])
    completed = done >= jobs.minibatches * (1 - 1e-9)
    return FleetSchedule(region, held, level, mb, carbon_kg, float(e_kwh.sum()), completed, float(step_s))


def lp_schedule(
    jobs: FleetJobs,
    bound: FleetBound,
    intensity_g_per_kwh: np.ndarray,
    capacity_gpus: np.ndarray,
    step_s: float = _S_PER_H,
    margin_s: float = _S_PER_H,
) -> FleetSchedule:
    """Round the LP's hourly plan to an executable placement in steps of ``step_s`` seconds (a divisor of an
    hour; tables per step, shape (R, S)): GPUs held for whole steps, pools respected.

    Step by step, in this order:

    - jobs that must run now to finish (waiting this step and ``margin_s`` more would leave less window than their
      work at the top clock in the fastest region, on the GPUs the widest pool has free; the margin absorbs
      shortages), by slack: a region with room for the whole request (the LP's of this hour first, then the
      cleanest), else the one with most free GPUs (elastic), at the cheapest level that still finishes;
    - jobs with LP work left (this hour's, plus any the pools did not let them do earlier), most first: the
      LP's region of this hour with any free GPUs (on fewer GPUs if need be: the LP counts GPU-hours), else the
      cleanest with room, at the LP's fastest level there (else the energy-optimal one), for that work at most;
    - the others, to fill, where a region with room is as clean as the LP's average for the job.
    """
    steps = _check_tables(jobs, intensity_g_per_kwh, capacity_gpus, step_s)
    per_h = int(round(_S_PER_H / step_s))
    J, L = jobs.n_jobs, jobs.n_levels
    ci = np.asarray(intensity_g_per_kwh, dtype=float)
    cap = np.asarray(capacity_gpus, dtype=float)
    overlap_s = window_overlap_s(jobs, steps, step_s)
    left_s = np.cumsum(overlap_s[:, ::-1], axis=1)[:, ::-1]  # window seconds from step k to the deadline
    fastest_s = jobs.minibatch_s[:, :, L - 1].min(axis=1)  # (J,) s per mini-batch, fastest region, top clock
    planned_mb = bound.share * jobs.minibatches[:, None, None, None]  # (J, R, H, L)
    optimal = jobs.energy_optimal_level
    lp_kwh = bound.share * jobs.energy_kwh[:, :, None, :]
    hourly_ci = ci[:, ::per_h][:, : bound.share.shape[2]]
    lp_ci = (lp_kwh * hourly_ci[None, :, :, None]).sum(axis=(1, 2, 3)) / np.maximum(lp_kwh.sum(axis=(1, 2, 3)), 1e-300)
    remaining = jobs.minibatches.astype(float)
    region = np.full((J, steps), -1, dtype=np.int64)
    held = np.zeros((J, steps), dtype=np.int64)
    level = np.full((J, steps), -1, dtype=np.int64)
    mb = np.zeros((J, steps))
    budget = np.zeros(J)
    for k in range(steps):
        h = k // per_h
        plan_jr = planned_mb[:, :, h, :].sum(axis=2)  # (J, R)
        if k % per_h == 0:
            budget = budget + plan_jr.sum(axis=1)  # LP mini-batches of this hour, and any left from earlier ones
        free = np.floor(cap[:, k] + 1e-9)
        active = (overlap_s[:, k] > 0) & (remaining > 1e-9)
        # at the top clock in the fastest region, on as many GPUs as the largest pool has free now
        widest = np.minimum(jobs.gpus, max(free.max(), 1.0)) / jobs.gpus
        slack_s = left_s[:, k] - remaining * fastest_s / widest
        must = active & (slack_s < overlap_s[:, k] + margin_s - 1e-6)
        planned = active & ~must & (budget > 1e-9)
        fill = active & ~must & ~planned
        order = [*np.flatnonzero(must)[np.argsort(slack_s[must], kind="stable")]]
        order += [*np.flatnonzero(planned)[np.argsort(-budget[planned], kind="stable")]]
        order += [*np.flatnonzero(fill)[np.argsort(slack_s[fill], kind="stable")]]
        for j in order:
            choices = np.lexsort((ci[:, k], -plan_jr[j]))  # most LP work this hour first, then cleanest
            full = [r for r in choices if free[r] >= jobs.gpus[j] and (not fill[j] or ci[r, k] <= lp_ci[j])]
            part = [r for r in choices if free[r] >= 1 and not fill[j]]  # elastic: fewer GPUs, slower
            lp_part = [r for r in part if plan_jr[j, r] > 1e-9] if planned[j] else []
            if not (full or part):
                continue
            if must[j] and not full:  # fastest progress: the most free GPUs (then the cleanest)
                part = sorted(part, key=lambda r: (-free[r], ci[r, k]))
            # a planned job keeps to the LP's regions, on fewer GPUs if need be (the LP counts GPU-hours)
            r = lp_part[0] if lp_part else (full[0] if full else part[0])
            n_gpus = int(min(jobs.gpus[j], free[r]))
            if must[j]:  # the least energy per mini-batch among the levels that still finish in the window
                fits = remaining[j] * jobs.minibatch_s[j, r] <= left_s[j, k]
                lv = (
                    int(np.argmin(np.where(fits, jobs.energy_per_minibatch_kwh[j, r], np.inf))) if fits.any() else L - 1
                )
            else:
                lp_levels = np.flatnonzero(planned_mb[j, r, h] > 1e-9)
                lv = lp_levels[-1] if lp_levels.size else optimal[j, r]
            rate = n_gpus / jobs.gpus[j] * overlap_s[j, k] / jobs.minibatch_s[j, r, lv]
            work = min(remaining[j], rate, budget[j] if planned[j] else rate)
            region[j, k], held[j, k], level[j, k], mb[j, k] = r, n_gpus, lv, work
            remaining[j] -= work
            budget[j] = max(0.0, budget[j] - work)
            free[r] -= n_gpus
    return evaluate_schedule(jobs, region, held, level, mb, intensity_g_per_kwh, capacity_gpus, step_s)
