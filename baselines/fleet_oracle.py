"""The fleet oracle's plan: every job's work placed in whole decision steps with perfect foresight of intensity
and free GPUs, one job after the other into the capacity the jobs before it left (``cell_schedule``).

Why not the LP's rounding (``baselines.fleet_bound.lp_schedule``): the LP's hourly plan splits a job's hour
between regions and clock levels and counts hourly GPU-hours, so rounding it to 15-minute steps forced jobs to
run late at the top clock wherever they were; played in the simulator it met 87-91 % of the ``fifo`` deadlines
(2023 test split, seeds 0-2). Here:

1. A job's cells are the decision steps from the first one that starts at or after its arrival to the last one
   that ends by its deadline (the simulator's arrival gate), each with ``step_s - overhead_s`` usable seconds (a
   restore after a pause or a move: checkpoint I/O, transfer, restart).
2. In each step the job may use a region where the free GPUs (none during an outage), minus what the jobs planned
   before it hold there then and in the next step, leave it at least one GPU: a job holds its GPUs through the
   step it leaves a region in (the pools count what a job held at any time in a step, and serve jobs holding
   GPUs first), so that step is charged too. On fewer GPUs than it asks for it runs slower, on its scaling curve
   (``speed``; linear without it) as in the simulator, and the step is then closed to later jobs (the simulator
   lets a job take every free GPU up to its request). Plans end ``margin_s`` before the deadline where the window
   allows (a deadline shield's reserve: a job on its plan then does not trip the shield).
3. For each clock floor ``m = 0 .. L - 1``: each cell's level (>= m) and each step's region with the least rank
   per mini-batch, rank = carbon (intensity x facility energy per mini-batch) + the LP bound's shadow price of
   the pool's capacity x the GPU-hours of a mini-batch (``FleetBound.price_kg_per_gpu_h``: what the capacity is
   worth to the other jobs); then the steps by rank, best first, until their mini-batches cover the job. The
   best-ranked covering choice is the job's plan.
4. Jobs are planned in order of least window slack first (window minus their work at the top clock in the
   fastest region). A job that finds no covering choice is planned on the pools alone and the jobs whose cells
   it then over-fills are planned again after it (at most ``max_evictions`` times); a job still without a plan
   is left to the policy's deadline shield (:attr:`CellPlan.unplanned`).

The plan's ``carbon_kg`` counts busy energy at the planned intensity, as the LP bound does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.fleet_jobs import FleetJobs

_EPS = 1e-9


@dataclass(frozen=True)
class CellPlan:
    """Per job and decision step: ``region`` (``-1`` = not planned to run), ``level`` and the planned mini-batches
    (counting ``overhead_s`` short). Shapes ``(J, S)``."""

    region: np.ndarray  # (J, S) int64
    level: np.ndarray  # (J, S) int64, -1 where not planned
    minibatches: np.ndarray  # (J, S) float64
    held_gpus: np.ndarray  # (J, S) int64, GPUs the job holds in the step (its request, or fewer: elastic)
    carbon_kg: float
    unplanned: np.ndarray  # (J,) bool: no clock choice fitted the job into its window

    @property
    def planned_left(self) -> np.ndarray:
        """(J, S) planned mini-batches from step k on."""
        return np.cumsum(self.minibatches[:, ::-1], axis=1)[:, ::-1]


def cell_schedule(
    jobs: FleetJobs,
    intensity_g_per_kwh: np.ndarray,
    free_gpus: np.ndarray,
    step_s: float,
    overhead_s: np.ndarray,
    price_kg_per_gpu_h: np.ndarray | None = None,
    order: np.ndarray | None = None,
    max_evictions: int = 2000,
    margin_s: np.ndarray | None = None,
    speed: np.ndarray | None = None,
) -> CellPlan:
    """Plan every job (module docstring).

    :param intensity_g_per_kwh: (R, S) gCO2/kWh in each decision step.
    :param free_gpus: (R, S) GPUs of each pool open to the fleet in each step (0 during an outage).
    :param step_s: s per decision step.
    :param overhead_s: (J,) s of each step not counted as usable (restore, checkpoint I/O, transfer).
    :param price_kg_per_gpu_h: (R, S) the LP bound's shadow price of each pool's capacity, added to a cell's
        carbon when ranking cells (``FleetBound.price_kg_per_gpu_h`` per step); None: carbon alone.
    :param order: the order jobs are planned in (default: least window slack first).
    :param max_evictions: plans undone to make room for a job that found none, at most.
    :param speed: (J, G + 1) each job's speed on n GPUs relative to its full request (the engine's scaling table,
        ``envs.fleet.fleet_speed_table``); None: linear. On fewer GPUs a cell does ``speed[n]`` of the full rate at
        ``n / (gpus x speed[n])`` of the full energy (and GPU-time) per mini-batch.
    :param margin_s: (J,) s before its deadline a job's plan should end by (a deadline shield's reserve: a job on
        its plan then never needs the shield); a job that cannot is planned up to its deadline.
    """
    ci = np.asarray(intensity_g_per_kwh, dtype=float)
    free = np.asarray(free_gpus, dtype=float)
    R, S = free.shape
    J, L = jobs.n_jobs, jobs.n_levels
    price = np.zeros((R, S)) if price_kg_per_gpu_h is None else np.asarray(price_kg_per_gpu_h, dtype=float)
    held = np.zeros((R, S))  # GPUs the planned jobs hold (or release) per region and step
    first = np.ceil(jobs.arrival_s / step_s - _EPS).astype(np.int64)
    last = np.minimum(np.floor(jobs.deadline_s / step_s + _EPS).astype(np.int64), S)  # steps first..last-1
    margin = np.zeros(J) if margin_s is None else np.asarray(margin_s, dtype=float)
    early = np.minimum(np.floor((jobs.deadline_s - margin) / step_s + _EPS).astype(np.int64), last)
    fastest_s = jobs.minibatch_s[:, :, L - 1].min(axis=1)
    slack_s = (last - first) * step_s - jobs.minibatches * fastest_s
    plans: list = [None] * J
    none = np.zeros((R, S))
    queue = list(np.argsort(slack_s, kind="stable") if order is None else order)
    evictions = 0
    while queue:
        j = int(queue.pop(0))
        new = None
        for k1 in dict.fromkeys((int(early[j]), int(last[j]))):  # with the margin, else up to the deadline
            new = new or _plan_job(
                jobs, j, ci, free, held, price, step_s, float(overhead_s[j]), int(first[j]), k1, speed
            )
        if new is None and evictions < max_evictions:
            # no room left for it: plan it on the pools alone, then evict the jobs in its way and plan them again
            new = _plan_job(
                jobs, j, ci, free, none, price, step_s, float(overhead_s[j]), int(first[j]), int(last[j]), speed
            )
            if new is not None:
                over = np.zeros((R, S), dtype=bool)
                over[new[5], new[6]] = True
                np.add.at(held, (new[5], new[6]), new[7])
                over &= held > free + 1e-9
                for i, p in enumerate(plans):
                    if p is not None and over[p[5], p[6]].any():
                        np.subtract.at(held, (p[5], p[6]), p[7])
                        plans[i] = None
                        queue.append(i)
                        evictions += 1
                plans[j] = new
                continue
        if new is not None:
            np.add.at(held, (new[5], new[6]), new[7])
        plans[j] = new
    region = np.full((J, S), -1, dtype=np.int64)
    level = np.full((J, S), -1, dtype=np.int64)
    mb = np.zeros((J, S))
    gpus = np.zeros((J, S), dtype=np.int64)
    unplanned = np.zeros(J, dtype=bool)
    carbon_kg = 0.0
    for j, p in enumerate(plans):
        if p is None:
            unplanned[j] = True
            continue
        _, kg, kk, rr, ll = p[:5]
        region[j, kk], level[j, kk] = rr, ll
        mb[j, kk] = p[8]
        gpus[j, kk] = np.rint(np.minimum(p[7][: kk.size], jobs.gpus[j])).astype(np.int64)
        carbon_kg += kg
    return CellPlan(region, level, mb, gpus, carbon_kg, unplanned)


def _plan_job(jobs, j, ci, free, held, price, step_s, overhead_s, k0, k1, speed=None):
    """Job ``j``'s cheapest cells given ``held`` (module docstring, points 1-3). Returns (rank score, kg, steps,
    regions, levels, held rows, held cols, held GPUs, mini-batches per step) or None."""
    if k1 <= k0:
        return None
    L, S = jobs.n_levels, free.shape[1]
    k1 = min(k1, S)
    usable_s = max(step_s - overhead_s, 0.0)
    g = float(jobs.gpus[j])
    left = np.clip(free - held, 0, None)
    # GPUs the job could hold in each step: what is left there then and in the next step (it may have to hold
    # them through the next step while it leaves; at the horizon there is no next step)
    nxt = np.concatenate([left[:, k0 + 1 : k1 + 1], np.full((free.shape[0], max(k1 + 1 - S, 0)), np.inf)], axis=1)
    avail = np.minimum(np.minimum(left[:, k0:k1], nxt), g)  # (R, n)
    room = avail >= 1
    if speed is None:
        share = avail / g  # linear scaling on fewer GPUs
        fac = np.ones_like(avail)
    else:  # the scaling curve: faster than linear on fewer GPUs, at less energy and GPU-time per mini-batch
        share = speed[j][np.clip(avail, 0, g).astype(np.int64)]
        fac = np.where(share > 0, avail / g / np.maximum(share, 1e-300), 1.0)
    e_all = jobs.energy_per_minibatch_kwh[j]  # (R, L) kWh per mini-batch
    t_all = jobs.minibatch_s[j]  # (R, L) s per mini-batch on the full request
    cols = np.arange(k1 - k0)
    best = None
    for m in range(L):
        lvs = np.arange(m, L)
        cost_l = ci[:, None, k0:k1] * e_all[:, lvs, None] * fac[:, None, :]  # (R, l, n) g per mini-batch
        rank_l = cost_l + 1000.0 * price[:, None, k0:k1] * (t_all[:, lvs, None] * g / 3600.0) * fac[:, None, :]
        li = np.argmin(rank_l, axis=1)  # (R, n) each cell's best level (index into lvs)
        rank = np.where(room, np.take_along_axis(rank_l, li[:, None, :], axis=1)[:, 0], np.inf)
        cost = np.take_along_axis(cost_l, li[:, None, :], axis=1)[:, 0]
        lv = lvs[li]
        r_best = np.argmin(rank, axis=0)  # (n,) first (lowest index) region among ties
        q_best, c_best, l_best = rank[r_best, cols], cost[r_best, cols], lv[r_best, cols]
        ok = np.isfinite(q_best)
        steps = np.flatnonzero(ok)[np.argsort(q_best[ok], kind="stable")]
        w = usable_s / t_all[r_best[steps], l_best[steps]] * share[r_best[steps], steps]
        work = np.cumsum(w)
        n = int(np.searchsorted(work, jobs.minibatches[j] - _EPS)) + 1
        if n > steps.size:
            continue
        take = steps[:n]
        per = w[:n].copy()
        per[-1] -= work[n - 1] - jobs.minibatches[j]  # the last step is used partly
        score = float(np.sum(per * q_best[take]))
        if best is None or score < best[0] - 1e-12:
            kg = float(np.sum(per * c_best[take])) / 1000.0
            best = (score, kg, take, r_best[take], l_best[take], avail[r_best[take], take], per)
    if best is None:
        return None
    score, kg, take, rr, ll, gg, per = best
    order = np.argsort(take)
    take, rr, ll, gg, per = take[order] + k0, rr[order], ll[order], gg[order], per[order]
    # the step after each run (or move) in a region: the job still holds its GPUs there while it leaves
    nxt = take + 1
    nxt_region = np.full(take.size, -1)
    nxt_region[:-1] = np.where(take[1:] == nxt[:-1], rr[1:], -1)
    leaves = (nxt < S) & (nxt_region != rr)
    # a job on fewer GPUs than it asks for takes every GPU it finds in the simulator: nobody else fits there then
    gg_hold = np.where(gg < g, np.maximum(free[rr, take] - held[rr, take], gg), gg)
    hr = np.concatenate([rr, rr[leaves]])
    hc = np.concatenate([take, nxt[leaves]])
    hg = np.concatenate([gg_hold, gg[leaves]])
    return (score, kg, take, rr, ll, hr, hc, hg, per)
