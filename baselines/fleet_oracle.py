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
   (``speed``; linear without it) as in the simulator (the policy then caps its GPUs at the planned count, so it
   does not grow into GPUs planned for others). Under a regional power cap (``power_cap_w``) a cell's clock level
   is one whose power (GPUs x (board + host W)) fits what the jobs planned there leave of the cap, and a leaving
   job keeps its lowest-clock power through the step it leaves in (the engine would throttle or keep it queued
   otherwise). Plans end ``margin_s`` before the deadline where the window allows (a deadline shield's reserve).
3. Per job, the cells of least rank, rank = carbon (intensity x facility energy per mini-batch) + the LP bound's
   shadow price of the pool's capacity x the GPU-hours of a mini-batch (``FleetBound.price_kg_per_gpu_h``: what
   the capacity is worth to the other jobs), by Lagrangian relaxation of the job's work: at a price ``lam`` of a
   mini-batch each step takes the region and level of most ``mini-batches x (lam - rank)`` (none if that is not
   positive); ``lam`` is bisected to the least price whose steps cover the job, and those steps are used cheapest
   first (the last one partly). So a job whose cheapest cells are too slow (a small pool for a many-GPU job)
   takes faster ones rather than none.
4. Jobs are planned in order of least window slack first (window minus their work at the top clock in the
   fastest region). A job that finds no covering choice is planned on the pools alone and the jobs whose cells
   it then over-fills are planned again after it (at most ``max_evictions`` times); a job still without a plan
   is left to the policy's deadline shield (:attr:`CellPlan.unplanned`).
5. Large-neighbourhood search (``improve_moves``; Shaw, CP 1998): a move rips up a random job and
   ``improve_set - 1`` random jobs whose windows overlap its own, plans them again (point 3, on carbon alone) in a
   random order into the capacity the others leave, and keeps the new plans only if they emit less in total
   (else the old ones are restored). The moves draw from ``seed``: same seed, same plan.

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
    improve_moves: int = 0,
    improve_set: int = 4,
    seed: int = 0,
    power_cap_w: np.ndarray | None = None,
    price_kg_per_wh: np.ndarray | None = None,
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
    :param improve_moves: rip-up-and-re-plan moves after the first plan (module docstring, point 5); 0: none.
    :param improve_set: jobs ripped up per move.
    :param seed: the moves' random generator (same seed, same plan).
    :param power_cap_w: (R,) each region's power cap, W of GPU boards + hosts (``inf`` or None: none): a step's
        planned jobs draw at most the cap at their planned clocks (the engine would throttle them), and a job
        leaving a region keeps its lowest-clock power there through the step it leaves in.
    """
    ci = np.asarray(intensity_g_per_kwh, dtype=float)
    free = np.asarray(free_gpus, dtype=float)
    R, S = free.shape
    J, L = jobs.n_jobs, jobs.n_levels
    price = np.zeros((R, S)) if price_kg_per_gpu_h is None else np.asarray(price_kg_per_gpu_h, dtype=float)
    if price_kg_per_wh is not None:  # both prices ride in one array: GPU-hours, then Wh
        price = np.stack([price, np.asarray(price_kg_per_wh, dtype=float)])
    held = np.zeros((R, S))  # GPUs the planned jobs hold (or release) per region and step
    cap_w = np.full(R, np.inf) if power_cap_w is None else np.asarray(power_cap_w, dtype=float)
    full_w = np.repeat(cap_w[:, None], S, axis=1)
    pw_left = full_w.copy()  # W of each cap the planned jobs leave

    def hold(p, sign: int) -> None:
        np.add.at(held, (p[5], p[6]), sign * p[7])
        np.add.at(pw_left, (p[5], p[6]), -sign * p[9])

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
                jobs, j, ci, free, held, price, step_s, float(overhead_s[j]), int(first[j]), k1, speed, pw_left
            )
        if new is None and evictions < max_evictions:
            # no room left for it: plan it on the pools alone, then evict the jobs in its way and plan them again
            alone = (float(overhead_s[j]), int(first[j]), int(last[j]), speed, full_w)
            new = _plan_job(jobs, j, ci, free, none, price, step_s, *alone)
            if new is not None:
                over = np.zeros((R, S), dtype=bool)
                over[new[5], new[6]] = True
                hold(new, 1)
                over &= (held > free + 1e-9) | (pw_left < -1e-6)
                for i, p in enumerate(plans):
                    if p is not None and over[p[5], p[6]].any():
                        hold(p, -1)
                        plans[i] = None
                        queue.append(i)
                        evictions += 1
                plans[j] = new
                continue
        if new is not None:
            hold(new, 1)
        plans[j] = new

    def replan(i: int):
        for k1 in dict.fromkeys((int(early[i]), int(last[i]))):
            p = _plan_job(
                jobs, i, ci, free, held, none, step_s, float(overhead_s[i]), int(first[i]), k1, speed, pw_left
            )
            if p is not None:
                return p
        return None

    # large-neighbourhood search: rip up a job and a few jobs whose windows overlap its own, plan them again in a
    # random order on their carbon alone, keep the new plans only if they emit less in total
    rng = np.random.default_rng(seed)
    overlaps = (first[:, None] < last[None, :]) & (first[None, :] < last[:, None])
    for _ in range(improve_moves):
        j = int(rng.integers(J))
        if plans[j] is None:
            continue
        others = np.flatnonzero(overlaps[j] & (np.arange(J) != j) & np.array([p is not None for p in plans]))
        ripped = [j, *rng.permutation(others)[: improve_set - 1].tolist()]
        old = [plans[i] for i in ripped]
        for p in old:
            hold(p, -1)
        new_plans: list = []
        for i in rng.permutation(ripped).tolist():
            p = replan(i)
            if p is None:
                break
            hold(p, 1)
            new_plans.append((i, p))
        if len(new_plans) == len(ripped) and sum(p[1] for _, p in new_plans) < sum(p[1] for p in old) - 1e-12:
            for i, p in new_plans:
                plans[i] = p
        else:
            for _, p in new_plans:
                hold(p, -1)
            for p in old:
                hold(p, 1)
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
        gpus[j, kk] = np.rint(np.minimum(p[10], jobs.gpus[j])).astype(np.int64)
        carbon_kg += kg
    return CellPlan(region, level, mb, gpus, carbon_kg, unplanned)


def _plan_job(jobs, j, ci, free, held, price, step_s, overhead_s, k0, k1, speed=None, pw_left=None):
    """Job ``j``'s cheapest cells given ``held`` and ``pw_left`` (module docstring, points 1-3). Returns (rank
    score, kg, steps, regions, levels, held rows, held cols, held GPUs, mini-batches per step, held W, GPUs run)
    or None."""
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
    cost = ci[:, None, k0:k1] * e_all[:, :, None] * fac[:, None, :]  # (R, L, n) g per mini-batch
    it_w = jobs.gpu_power_w[j] + jobs.host_power_w[:, None]  # (R, L) W per busy GPU
    gpu_h = t_all[:, :, None] * g / 3600.0 * fac[:, None, :]  # (R, L, n) GPU-hours per mini-batch
    if price.ndim == 2:
        rank = cost + 1000.0 * price[:, None, k0:k1] * gpu_h
    else:  # and the power cap's price per Wh of the mini-batch
        rank = cost + 1000.0 * (price[0][:, None, k0:k1] + price[1][:, None, k0:k1] * it_w[:, :, None]) * gpu_h
    ok = room[:, None, :]
    if pw_left is not None:  # the planned clock's power fits the cap's rest, and the lowest clock's the next step's
        pw_nxt = np.concatenate(
            [pw_left[:, k0 + 1 : k1 + 1], np.full((free.shape[0], max(k1 + 1 - S, 0)), np.inf)], axis=1
        )
        ok = ok & (avail[:, None, :] * it_w[:, :, None] <= pw_left[:, None, k0:k1] + 1e-6)
        ok = ok & (avail[:, None, :] * it_w[:, :1, None] <= pw_nxt[:, None, :] + 1e-6)
    work = np.where(ok, usable_s / t_all[:, :, None] * share[:, None, :], 0.0)  # (R, L, n) mb/step
    n = k1 - k0
    work, rank, cost = work.reshape(-1, n), rank.reshape(-1, n), cost.reshape(-1, n)
    need = float(jobs.minibatches[j])
    if work.max(axis=0).sum() < need * (1 + 1e-12):
        return None
    cols = np.arange(n)

    def choose(lam: float):
        # each step's option (region x level) of most value at lam g per mini-batch of progress, none if <= 0
        val = np.where(work > 0, work * (lam - rank), -np.inf)
        b = np.argmax(val, axis=0)
        use = val[b, cols] > 0
        return b, use, float(work[b, cols][use].sum())

    lo, hi = 0.0, max(float(rank[work > 0].max()), 1e-12) * 2.0
    while choose(hi)[2] < need:
        lo, hi = hi, hi * 2.0
    for _ in range(60):  # the least price of progress whose choices cover the job (Lagrangian relaxation)
        mid = 0.5 * (lo + hi)
        if choose(mid)[2] >= need:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-4 * hi:  # near enough: the switch below settles the steps between lo and hi
            break
    # from the choices just below that price (short of the job), switch the steps whose choice changes at it, least
    # extra carbon per extra mini-batch first, until the job is covered (identical steps switch together at one
    # price: only as many as needed switch)
    b_lo, use_lo, have = choose(lo)
    b, use, _ = choose(hi)
    w_lo = np.where(use_lo, work[b_lo, cols], 0.0)
    q_lo = np.where(use_lo, rank[b_lo, cols], 0.0)
    diff = np.flatnonzero(use & (~use_lo | (b != b_lo)))
    dw = work[b[diff], diff] - w_lo[diff]
    dq = work[b[diff], diff] * rank[b[diff], diff] - w_lo[diff] * q_lo[diff]
    gain = dw > 0
    diff, dw, dq = diff[gain], dw[gain], dq[gain]
    o = np.argsort(dq / dw, kind="stable")
    n_up = min(int(np.searchsorted(np.cumsum(dw[o]), need - have - _EPS)) + 1, o.size)
    b_fin, use_fin = b_lo.copy(), use_lo.copy()
    b_fin[diff[o[:n_up]]], use_fin[diff[o[:n_up]]] = b[diff[o[:n_up]]], True
    if work[b_fin, cols][use_fin].sum() < need - _EPS:  # numerical corner: the choices at the covering price
        b_fin, use_fin = b, use
    b = b_fin
    steps = np.flatnonzero(use_fin)
    q_best, c_best, w_best = rank[b[steps], steps], cost[b[steps], steps], work[b[steps], steps]
    o = np.argsort(q_best, kind="stable")  # the cheapest steps first, until the job is covered
    steps, q_best, c_best, w_best = steps[o], q_best[o], c_best[o], w_best[o]
    done = np.cumsum(w_best)
    m = int(np.searchsorted(done, need - _EPS)) + 1
    take = steps[:m]
    per = w_best[:m].copy()
    per[-1] -= done[m - 1] - need  # the last step is used partly
    score = float(np.sum(per * q_best[:m]))
    kg = float(np.sum(per * c_best[:m])) / 1000.0
    rr, ll = b[take] // L, b[take] % L
    gg = avail[rr, take]
    order = np.argsort(take)
    take, rr, ll, gg, per = take[order] + k0, rr[order], ll[order], gg[order], per[order]
    # the step after each run (or move) in a region: the job still holds its GPUs there while it leaves
    nxt = take + 1
    nxt_region = np.full(take.size, -1)
    nxt_region[:-1] = np.where(take[1:] == nxt[:-1], rr[1:], -1)
    leaves = (nxt < S) & (nxt_region != rr)
    # (also after its last step: a job a little behind its plan completes early in the next one, holding its GPUs)
    # a job that runs on fewer GPUs than in the step before, in the same region, still holds the former count at
    # the step's start (the pools count its most GPUs in the step)
    stay = np.zeros(take.size, dtype=bool)
    stay[1:] = (take[1:] == take[:-1] + 1) & (rr[1:] == rr[:-1])
    prev = np.concatenate([[0.0], gg[:-1]])
    gh = np.where(stay, np.maximum(gg, prev), gg)
    hr = np.concatenate([rr, rr[leaves]])
    hc = np.concatenate([take, nxt[leaves]])
    hg = np.concatenate([gh, gg[leaves]])
    hw = np.concatenate([gh * it_w[rr, ll], gg[leaves] * it_w[rr[leaves], 0]])
    return (score, kg, take, rr, ll, hr, hc, hg, per, hw, gg)
