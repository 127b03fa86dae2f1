"""Compiled halves of ``CarbonFleet-v0``'s step around ``sim.fleet_core.advance_fleet``: slot actions -> job
decisions, and state -> regional cap accounting, reward, observation, action mask and info values, written into
preallocated buffers (issue 9: the step allocates nothing but the info's fresh blocks).

These are the operations of the NumPy code they replaced, in the same order, down to the summation order of
``ndarray.sum`` (:func:`pairwise_sum`), so every value is bit for bit what it was (``tests/test_fleet_golden.py``).
The observation layout is documented in ``envs.fleet.CarbonFleetEnv``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from envs.kernels import CI_SCALE_G_PER_KWH
from sim.fleet_core import FleetRows, FleetTables, advance_fleet, book_regional_cap, fleet_totals, priority_order
from sim.layout import (
    COMPLETED,
    F_PROGRESS_MB,
    I_AFTER_SUSPEND,
    I_DEST,
    I_GPU_CAP,
    I_K,
    I_LEVEL,
    I_N_GPUS,
    I_REGION,
    I_STATE,
    M_DONE,
    M_EMB,
    M_FAC,
    M_LATE,
    M_LOST,
    M_MIG,
    M_OPC,
    M_RB,
    M_TXC,
    M_TXE,
    MIGRATION,
    P_DEADLINE,
    P_TOTAL,
    QUEUED,
    RECOVERING,
    SCALING,
    SUSPEND,
    TOLERANCE,
    WAITING,
    EpisodeRows,
    StateRows,
)
from sim.reward import fleet_reward, weigh
from sim.rules import WAIT

_OBS_LOW, _OBS_HIGH = -1.0, 5.0
_ARRIVED_EPS_S = 1e-9  # as CarbonFleetEnv.open_jobs
_PW_BLOCK = 128  # NumPy's PW_BLOCKSIZE

# ``scal`` (float64) and ``iscal`` (int64): the step's scalar results, read once by the environment
SCALARS = (
    "reward",
    "carbon_kg",
    "energy_kwh",
    "migrations",
    "lost_mb",
    "rollbacks",
    "cap_violation_s",
    "cap_excess_j",
)
INT_SCALARS = ("invalid", "completed", "done", "truncated", "n_log")
S_REWARD, S_CARBON_KG, S_ENERGY_KWH = (SCALARS.index(n) for n in ("reward", "carbon_kg", "energy_kwh"))
S_MIGRATIONS, S_LOST_MB, S_ROLLBACKS = (SCALARS.index(n) for n in ("migrations", "lost_mb", "rollbacks"))
S_CAP_VIOLATION_S, S_CAP_EXCESS_J = SCALARS.index("cap_violation_s"), SCALARS.index("cap_excess_j")
N_SCAL = len(SCALARS)
I_INVALID, I_COMPLETED, I_DONE, I_TRUNCATED, I_N_LOG = (INT_SCALARS.index(n) for n in INT_SCALARS)
N_ISCAL = len(INT_SCALARS)
_ENV0 = np.zeros(1, dtype=np.int64)  # the environment a CarbonFleetEnv steps (row 0 of its arrays)


class FleetView(NamedTuple):
    """What the fleet's observation, mask and reward read besides the engine (J jobs, R regions, H hours,
    K steps)."""

    gpus: np.ndarray  # (J,) int GPUs each job requests
    pool: np.ndarray  # (R,) int GPUs per region
    cap_w: np.ndarray  # (R,) W regional power cap (inf: none)
    down: np.ndarray  # (R, K + 1) bool region down at the start of each step
    fc_next: np.ndarray  # (R, H) forecast for the next hour / CI scale
    fc_mean: np.ndarray  # (R, H) mean forecast over the horizon / CI scale
    step_s: float  # s per decision step
    horizon_s: float  # s per episode
    n_steps: int  # decision steps per episode
    n_levels: int  # clock levels
    n_gpu_choices: int  # C GPU-count choices per slot (0: no GPU-count component)
    weights: np.ndarray  # (len(REWARD_WEIGHTS),) reward weights, order sim.reward.REWARD_WEIGHTS
    home_top_mb_s: np.ndarray  # (J,) s per mini-batch at home at the top clock (the lateness of unfinished work)


class FleetOut(NamedTuple):
    """What the fleet's step writes (R regions, K slots, L levels, D features)."""

    power: np.ndarray  # (R,) W the fleet's power by region
    in_use: np.ndarray  # (R,) int GPUs the fleet holds by region
    free_now: np.ndarray  # (R,) int GPUs of each pool open now (0 in an outage)
    excess: np.ndarray  # (R,) W over each regional cap
    slots: np.ndarray  # (K,) int the job in each slot (-1: padding)
    mask: np.ndarray  # (K * (R + 1 + L),) bool action mask
    obs: np.ndarray  # (D,) float32 observation
    gpu_log: np.ndarray  # (steps, R) int GPUs held by region at each step's end
    scal: np.ndarray  # (len(SCALARS),) the step's scalar results
    iscal: np.ndarray  # (len(INT_SCALARS),) int
    terms: np.ndarray  # (len(REWARD_TERMS),) the step's signed reward terms (sim.reward)


@njit(cache=True, _nrt=False)
def _pw_block(a, lo, n):
    """NumPy's ``DOUBLE_pairwise_sum`` for ``n <= 128``: fewer than 8 summed in order, else in 8 lanes."""
    if n < 8:
        res = -0.0
        for q in range(n):
            res += a[lo + q]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    q = 8
    while q < n - n % 8:
        r0 += a[lo + q]
        r1 += a[lo + q + 1]
        r2 += a[lo + q + 2]
        r3 += a[lo + q + 3]
        r4 += a[lo + q + 4]
        r5 += a[lo + q + 5]
        r6 += a[lo + q + 6]
        r7 += a[lo + q + 7]
        q += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while q < n:
        res += a[lo + q]
        q += 1
    return res


# Larger ranges are split in two halves rounded down to a multiple of 8, recursively. Numba cannot cache a
# recursive function reliably (a cached self-call crashed), so the recursion is spelled out to a fixed depth.
@njit(cache=True, _nrt=False, inline="always")
def _half(n):
    n2 = n // 2
    return n2 - n2 % 8


@njit(cache=True, _nrt=False)
def _pw2(a, lo, n):
    if n <= _PW_BLOCK:
        return _pw_block(a, lo, n)
    m = _half(n)
    return _pw_block(a, lo, m) + _pw_block(a, lo + m, n - m)


@njit(cache=True, _nrt=False)
def _pw3(a, lo, n):
    if n <= _PW_BLOCK:
        return _pw_block(a, lo, n)
    m = _half(n)
    return _pw2(a, lo, m) + _pw2(a, lo + m, n - m)


@njit(cache=True, _nrt=False)
def _pw4(a, lo, n):
    if n <= _PW_BLOCK:
        return _pw_block(a, lo, n)
    m = _half(n)
    return _pw3(a, lo, m) + _pw3(a, lo + m, n - m)


@njit(cache=True, _nrt=False)
def _pw5(a, lo, n):
    if n <= _PW_BLOCK:
        return _pw_block(a, lo, n)
    m = _half(n)
    return _pw4(a, lo, m) + _pw4(a, lo + m, n - m)


@njit(cache=True, _nrt=False)
def _pw6(a, lo, n):
    if n <= _PW_BLOCK:
        return _pw_block(a, lo, n)
    m = _half(n)
    return _pw5(a, lo, m) + _pw5(a, lo + m, n - m)


@njit(cache=True, _nrt=False)
def _pw7(a, lo, n):
    if n <= _PW_BLOCK:
        return _pw_block(a, lo, n)
    m = _half(n)
    return _pw6(a, lo, m) + _pw6(a, lo + m, n - m)


@njit(cache=True, _nrt=False)
def pairwise_sum(a, lo, n):
    """``a[lo:lo + n].sum()`` as NumPy computes it for float64 (``DOUBLE_pairwise_sum``: blocks of at most 128
    summed in 8 lanes, larger ranges split in halves rounded to 8), so the result has the same bits; for
    ``n <= PAIRWISE_MAX_N`` (checked by the environment)."""
    return _pw7(a, lo, n)


def pairwise_depth(n: int) -> int:
    """Levels of NumPy's pairwise summation of ``n`` numbers (1: one block)."""
    if n <= _PW_BLOCK:
        return 1
    m = n // 2 - (n // 2) % 8
    return 1 + max(pairwise_depth(m), pairwise_depth(n - m))


PAIRWISE_MAX_N = 7688  # every n up to this has pairwise_depth(n) <= 7 (_pw7 .. _pw_block); n = 7689 has 8


@njit(cache=True, _nrt=False)
def array_sum(a):
    """``float(a.sum())`` of a 1-D float64 array (the reduction starts from 0.0, then adds the pairwise sum)."""
    return 0.0 + pairwise_sum(a, 0, a.shape[0])


@njit(cache=True, _nrt=False)
def apply_slots(a, v, o, targets, levels, iv0):
    """The slots' choices ``a`` (K, 2) or (K, 3) become their jobs' decisions (``targets`` / ``levels`` (J,), and
    with a third column the GPU-count choice c: at most ceil(GPUs x (c + 1) / C) GPUs, ``I_GPU_CAP`` of ``iv0``
    (J, N_INT)); a choice out of range or masked (``o.mask`` flat, K x (R + 1 + L + C)) leaves the job's course and
    counts in ``o.iscal[I_INVALID]``; padding slots are ignored. ``v``: :class:`FleetView`, ``o``: :class:`FleetOut`."""
    R, L, C = v.pool.shape[0], v.n_levels, v.n_gpu_choices
    W = R + 1 + L + C
    for s in range(o.slots.shape[0]):
        j = o.slots[s]
        if j < 0:
            continue
        t, lev = a[s, 0], a[s, 1]
        c = a[s, 2] if a.shape[1] > 2 else C - 1
        row = s * W  # the slot's row of the flat mask
        ok_c = C == 0 or (0 <= c < C and o.mask[row + R + 1 + L + c])
        if not (0 <= t <= R and 0 <= lev < L and o.mask[row + t] and o.mask[row + R + 1 + lev] and ok_c):
            o.iscal[I_INVALID] += 1
            continue
        targets[j] = WAIT if t == R else t
        levels[j] = lev
        if C > 0:
            cap = (v.gpus[j] * (c + 1) + C - 1) // C
            iv0[j, I_GPU_CAP] = cap if cap < v.gpus[j] else 0


@njit(cache=True, _nrt=False)
def _slack(P, fastest_mb_s, fv, j, t_s):
    """CarbonFleetEnv.slack_s for job j: deadline - now - remaining mini-batches x fastest s per mini-batch."""
    return P[j, P_DEADLINE] - t_s - (P[j, P_TOTAL] - fv[F_PROGRESS_MB]) * fastest_mb_s[j]


@njit(cache=True, _nrt=False)
def _clip32(x):
    """np.clip(x, -1, 5) (NaN stays NaN), rounded to float32 as the observation's assignment does."""
    if x < _OBS_LOW:
        x = _OBS_LOW
    elif x > _OBS_HIGH:
        x = _OBS_HIGH
    return np.float32(x)


@njit(cache=True, inline="always")
def _choose_slots(st, P, fl, gpus, slots, t_s):
    """``slots`` := the K open jobs with the least slack, ties by index (a stable sort's order), by insertion;
    padding -1. Returns ``(open in slots, open jobs holding no GPUs, the GPUs they request, not arrived,
    completed, running)``."""
    f0, i0 = st.f[0], st.i[0]
    J, K = f0.shape[0], slots.shape[0]
    n = 0
    n_idle = 0
    idle_gpus = 0
    not_arrived = 0
    n_done = 0
    n_running = 0
    for j in range(J):
        s = i0[j, I_STATE]
        arrived = fl.arrival_s[j] <= t_s + _ARRIVED_EPS_S
        if not arrived:
            not_arrived += 1
        if s == COMPLETED:
            n_done += 1
        elif s == TOLERANCE:
            n_running += 1
        if not arrived or s == COMPLETED:
            continue
        if i0[j, I_N_GPUS] == 0:
            n_idle += 1
            idle_gpus += gpus[j]
        sk = _slack(P, fl.fastest_mb_s, f0[j], j, t_s)
        p = n
        while p > 0 and sk < _slack(P, fl.fastest_mb_s, f0[slots[p - 1]], slots[p - 1], t_s):
            p -= 1
        if p >= K:
            continue
        last = n if n < K else K - 1
        for q in range(last, p, -1):
            slots[q] = slots[q - 1]
        slots[p] = j
        if n < K:
            n += 1
    for s in range(n, K):
        slots[s] = -1
    return n, n_idle, idle_gpus, not_arrived, n_done, n_running


@njit(cache=True, inline="always")
def _fill_mask(i0, view, out, n, kk):
    """The action mask of the K slots (``n`` of them hold jobs): a timed phase allows only its own target
    (``sim.rules.continue_target``), else the regions up with free GPUs and wait; any level; padding: wait, 0."""
    R, L, K = view.pool.shape[0], view.n_levels, out.slots.shape[0]
    mask, down, free_now = out.mask, view.down, out.free_now
    W = R + 1 + L + view.n_gpu_choices
    for s in range(K):
        row = s * W
        for c in range(W):
            mask[row + c] = False
        if s >= n:  # padding: wait, level 0, all GPUs
            mask[row + R] = True
            mask[row + R + 1] = True
            if W > R + 1 + L:
                mask[row + W - 1] = True
            continue
        j = out.slots[s]
        st = i0[j, I_STATE]
        if st == SUSPEND or st == MIGRATION or st == SCALING or st == RECOVERING:
            if st == MIGRATION:
                tgt = i0[j, I_DEST]
            elif st == SUSPEND:
                after = i0[j, I_AFTER_SUSPEND]
                tgt = R if after == WAIT else after
            else:
                tgt = i0[j, I_REGION]
            mask[row + tgt] = True
        else:
            for r in range(R):
                mask[row + r] = (not down[r, kk]) and free_now[r] > 0
            mask[row + R] = True
        for c in range(R + 1, W):
            mask[row + c] = True


@njit(cache=True, inline="always")
def _region_features(ci0, view, out, h, kk):
    """Per region: intensity now, forecasts, spare GPUs / pool, health, fleet power / cap."""
    pool, obs = view.pool, out.obs
    for r in range(pool.shape[0]):
        b = r * 6
        obs[b] = _clip32(ci0[r, h] / CI_SCALE_G_PER_KWH)
        obs[b + 1] = _clip32(view.fc_next[r, h])
        obs[b + 2] = _clip32(view.fc_mean[r, h])
        spare = out.free_now[r] - out.in_use[r]
        obs[b + 3] = _clip32((spare if spare > 0 else 0) / (pool[r] if pool[r] > 1 else 1))
        obs[b + 4] = _clip32(0.0 if view.down[r, kk] else 1.0)
        cap = view.cap_w[r]
        obs[b + 5] = _clip32(out.power[r] / cap if np.isfinite(cap) else 0.0)


@njit(cache=True, inline="always")
def _slot_features(st, P, fl, view, out, n, t_s, pool_max):
    """Per slot: present, state flags, region one-hot, GPUs requested and held, remaining work, deadline,
    slack, clock level (zeros for padding)."""
    R, L, K = view.pool.shape[0], view.n_levels, out.slots.shape[0]
    f0, i0, obs, horizon_s = st.f[0], st.i[0], out.obs, view.horizon_s
    nf = 4 + R + 6
    lv_div = L - 1 if L - 1 > 1 else 1
    for s in range(K):
        b = R * 6 + s * nf
        for c in range(nf):
            obs[b + c] = 0.0
        if s >= n:
            continue
        j = out.slots[s]
        st_j = i0[j, I_STATE]
        fv = f0[j]
        total = P[j, P_TOTAL]
        gpus = view.gpus[j]
        obs[b] = 1.0
        obs[b + 1] = 1.0 if st_j == TOLERANCE else 0.0
        waiting = st_j == WAITING or st_j == QUEUED
        obs[b + 2] = 1.0 if waiting else 0.0
        obs[b + 3] = 0.0 if (st_j == TOLERANCE or waiting) else 1.0
        obs[b + 4 + i0[j, I_REGION]] = 1.0
        obs[b + 4 + R] = _clip32(gpus / pool_max)
        obs[b + 5 + R] = _clip32(i0[j, I_N_GPUS] / gpus)
        obs[b + 6 + R] = _clip32((P[j, P_TOTAL] - fv[F_PROGRESS_MB]) / total)
        obs[b + 7 + R] = _clip32((P[j, P_DEADLINE] - t_s) / horizon_s)
        obs[b + 8 + R] = _clip32(_slack(P, fl.fastest_mb_s, fv, j, t_s) / horizon_s)
        obs[b + 9 + R] = _clip32(i0[j, I_LEVEL] / lv_div)


@njit(cache=True, _nrt=False)
def observe(engine, fleet, view, out):
    """Slots, action mask and observation for the decision now (environment 0 of the state arrays), as
    ``CarbonFleetEnv._refresh`` computed them. Expects ``out.power`` / ``out.in_use`` filled by
    ``sim.fleet_core.fleet_totals``; fills ``out.free_now``. Returns the jobs completed. Bundles (plain):
    ``engine`` (``StateRows``, ``FleetTables``, ``EpisodeRows``, ...), ``fleet`` ``FleetRows``, ``view``
    :class:`FleetView`, ``out`` :class:`FleetOut`."""
    st, T, ep = StateRows(*engine[0]), FleetTables(*engine[1]), EpisodeRows(*engine[2])
    fl, v, o = FleetRows(*fleet), FleetView(*view), FleetOut(*out)
    J, R = st.f.shape[1], v.pool.shape[0]
    k = st.i[0, 0, I_K]
    t_s = k * v.step_s
    kk = k if k < v.n_steps else v.n_steps
    n_hours = ep.ci.shape[2]
    h = int(t_s // 3600.0)
    if h > n_hours - 1:
        h = n_hours - 1
    n, n_idle, idle_gpus, not_arrived, n_done, n_running = _choose_slots(st, T.params, fl, v.gpus, o.slots, t_s)
    pool_max, pool_sum = v.pool[0], 0
    for r in range(R):
        up = not v.down[r, kk]
        o.free_now[r] = ep.free[0, r, kk] if up else 0
        if v.pool[r] > pool_max:
            pool_max = v.pool[r]
        pool_sum += v.pool[r]
    _fill_mask(st.i[0], v, o, n, kk)
    _region_features(ep.ci[0], v, o, h, kk)
    _slot_features(st, T.params, fl, v, o, n, t_s, pool_max)
    # queue
    obs = o.obs
    b = R * 6 + o.slots.shape[0] * (4 + R + 6)
    obs[b] = _clip32(n_idle / J)
    obs[b + 1] = _clip32(idle_gpus / pool_sum)
    obs[b + 2] = _clip32(not_arrived / J)
    obs[b + 3] = _clip32(n_done / J)
    obs[b + 4] = _clip32(n_running / J)
    x = t_s / v.horizon_s
    obs[b + 5] = _clip32(1.0 if 1.0 < x else x)
    return n_done


@njit(cache=True, _nrt=False)
def _col_sum(acc, c):
    """``acc[:, c].sum()`` of a (J, metrics) array."""
    return 0.0 + pairwise_sum(acc[:, c], 0, acc.shape[0])


@njit(cache=True, inline="always")
def _progress_fraction(acc, P):
    """The fleet's progress this step: each job's (mini-batches done - lost) / its total, summed over jobs."""
    x = 0.0
    for j in range(acc.shape[0]):
        x += (acc[j, M_DONE] - acc[j, M_LOST]) / P[j, P_TOTAL]
    return x


@njit(cache=True, _nrt=False)
def book_step(st, P, view, out):
    """Regional power cap (``sim.fleet_core.book_regional_cap``: seconds over, excess energy J) and the step's
    reward terms and reward (``sim.reward``: the single job's table, summed over the fleet's jobs)."""
    acc = st.step_acc[0]
    step_s, scal = view.step_s, out.scal
    late_h = _col_sum(acc, M_LATE)
    if st.i[0, 0, I_K] >= view.n_steps:  # truncated at the safety limit: as the single job (envs.kernels._reward),
        for j in range(acc.shape[0]):  # the hours the work left would still take at home at full speed are late
            if st.i[0, j, I_STATE] != COMPLETED:
                late_h += (P[j, P_TOTAL] - st.f[0, j, F_PROGRESS_MB]) * view.home_top_mb_s[j] / 3600.0
    n_over = book_regional_cap(out.power, view.cap_w, out.excess, step_s)
    scal[S_CAP_VIOLATION_S] += step_s * float(n_over)
    excess_j = array_sum(out.excess) * step_s
    scal[S_CAP_EXCESS_J] += excess_j
    q = (
        (_progress_fraction(acc, P), 1.0),
        ((_col_sum(acc, M_OPC) + _col_sum(acc, M_TXC)) / 1000.0, 1.0),
        (_col_sum(acc, M_FAC) + _col_sum(acc, M_TXE), 1.0),
        (late_h, 1.0),
        (excess_j, 1000.0),
        (_col_sum(acc, M_MIG), 1.0),
        (_col_sum(acc, M_EMB), 1000.0),
    )
    scal[S_REWARD] = fleet_reward(weigh(view.weights, q, out.terms))


@njit(cache=True, _nrt=False)
def fill_info(st, out, fblk, iblk):
    """The info's per-job arrays into fresh blocks: ``fblk`` (3, J) float64 rows progress, carbon kg, energy kWh;
    ``iblk`` (3 J + 2 R + K,) int64: job state, region, GPUs, GPUs in use (R), free GPUs (R), slots (K); and the
    fleet's episode totals into ``out.scal``."""
    f, iv_all = st.f, st.i
    slots, in_use, free_now, scal = out.slots, out.in_use, out.free_now, out.scal
    J, R, K = f.shape[1], in_use.shape[0], slots.shape[0]
    ea = st.episode_acc[0]
    for j in range(J):
        fblk[0, j] = f[0, j, F_PROGRESS_MB]
        fblk[1, j] = (ea[j, M_OPC] + ea[j, M_TXC]) / 1000.0
        fblk[2, j] = ea[j, M_FAC] + ea[j, M_TXE]
        iblk[j] = iv_all[0, j, I_STATE]
        iblk[J + j] = iv_all[0, j, I_REGION]
        iblk[2 * J + j] = iv_all[0, j, I_N_GPUS]
    for r in range(R):
        iblk[3 * J + r] = in_use[r]
        iblk[3 * J + R + r] = free_now[r]
    for s in range(K):
        iblk[3 * J + 2 * R + s] = slots[s]
    scal[S_CARBON_KG] = array_sum(fblk[1])
    scal[S_ENERGY_KWH] = array_sum(fblk[2])
    scal[S_MIGRATIONS] = _col_sum(ea, M_MIG)
    scal[S_LOST_MB] = _col_sum(ea, M_LOST)
    scal[S_ROLLBACKS] = _col_sum(ea, M_RB)


@njit(cache=True, _nrt=False)
def refresh(engine, view, out, fleet, blocks):
    """After a reset or a step: the fleet's totals by region, the next slots, mask and observation, and the info
    values into ``blocks = (fblk, iblk)``. Returns the jobs completed."""
    st, T = StateRows(*engine[0]), FleetTables(*engine[1])
    o = FleetOut(*out)
    fleet_totals(st, T, o.power, o.in_use)
    n_done = observe(engine, fleet, view, out)
    fill_info(st, o, blocks[0], blocks[1])
    return n_done


@njit(cache=True, _nrt=False)
def step_fleet(a, slot_actions, fifo, engine, fleet, view, out, blocks):
    """One decision step of a CarbonFleetEnv in one compiled call: the slots' actions ``a`` (when
    ``slot_actions``; else the engine's targets / levels are already the decisions), the service order,
    ``advance_fleet``, then (unless a job hit an illegal transition) cap accounting and reward, the GPU log, the
    episode-end flags, the next slots, mask and observation, and the info values into ``blocks = (fblk, iblk)``
    and ``out.scal``. ``engine``: plain ``(StateRows, FleetTables, EpisodeRows, Generators, (targets, levels))``.
    Returns ``advance_fleet``'s error count."""
    st, T = StateRows(*engine[0]), FleetTables(*engine[1])
    v, o = FleetView(*view), FleetOut(*out)
    targets, levels = engine[4]
    envs = _ENV0
    if slot_actions:
        apply_slots(a, v, o, targets[0], levels[0], st.i[0])
    priority_order(envs, engine[0], T.params, fleet, fifo)
    errors = advance_fleet(envs, targets, levels, engine[:4], fleet)
    if errors:
        return errors
    fleet_totals(st, T, o.power, o.in_use)
    book_step(st, T.params, v, o)
    row = o.iscal[I_N_LOG]
    if row < o.gpu_log.shape[0]:  # (n_steps rows: the episode ends at the horizon; no bounds checks here)
        for r in range(o.in_use.shape[0]):
            o.gpu_log[row, r] = o.in_use[r]
        o.iscal[I_N_LOG] = row + 1
    n_done = observe(engine, fleet, view, out)
    done = n_done == st.f.shape[1]
    o.iscal[I_COMPLETED] = n_done
    o.iscal[I_DONE] = done
    o.iscal[I_TRUNCATED] = (not done) and st.i[0, 0, I_K] >= v.n_steps
    fill_info(st, o, blocks[0], blocks[1])
    return 0
