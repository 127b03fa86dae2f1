"""Compiled halves of ``CarbonFleet-v0``'s step around ``sim.fleet_core.advance_fleet``: slot actions -> job
decisions, and state -> regional cap accounting, reward, observation, action mask and info values, written into
preallocated buffers (issue 9: the step allocates nothing but the info's fresh blocks).

These are the operations of the NumPy code they replaced, in the same order, down to the summation order of
``ndarray.sum`` (:func:`pairwise_sum`), so every value is bit for bit what it was (``tests/test_fleet_golden.py``).
The observation layout is documented in ``envs.fleet.CarbonFleetEnv``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.core import F_POWER_W, F_PROGRESS_MB, I_AFTER_SUSPEND, I_DEST, I_K, I_LEVEL, I_N_GPUS, I_REGION, I_STATE
from sim.fleet_core import advance_fleet, priority_order
from sim.rules import WAIT
from sim.tables import PARAMS

_QUEUED, _TOLERANCE, _SUSPEND, _MIGRATION, _SCALING, _WAITING, _RECOVERING, _COMPLETED = range(8)
_P_TOTAL, _P_DEADLINE = PARAMS.index("total_mb"), PARAMS.index("deadline_s")
_OBS_LOW, _OBS_HIGH = -1.0, 5.0
_ARRIVED_EPS_S = 1e-9  # as CarbonFleetEnv.open_jobs
_PW_BLOCK = 128  # NumPy's PW_BLOCKSIZE

# ``scal`` (float64) and ``iscal`` (int64): the step's scalar results, read once by the environment
(S_REWARD, S_CARBON_KG, S_ENERGY_KWH, S_MIGRATIONS, S_LOST_MB, S_ROLLBACKS, S_CAP_VIOLATION_S, S_CAP_EXCESS_J) = range(
    8
)
N_SCAL = 8
(I_INVALID, I_COMPLETED, I_DONE, I_TRUNCATED, I_N_LOG) = range(5)
N_ISCAL = 5
# ``cols``: metric columns the kernels read (sim.simulator.METRICS order)
(C_OPC, C_TXC, C_FAC, C_TXE, C_LATE, C_MIG, C_LOST, C_ROLLBACKS) = range(8)


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
def apply_slots(a, slots, mask, n_regions, n_levels, targets, levels, iscal):
    """The slots' choices ``a`` (K, 2) become their jobs' decisions (``targets`` / ``levels`` (J,)); a choice
    out of range or masked (``mask`` flat, K x (R + 1 + L)) leaves the job's course and counts in
    ``iscal[I_INVALID]``; padding slots are ignored."""
    R, L = n_regions, n_levels
    for s in range(slots.shape[0]):
        j = slots[s]
        if j < 0:
            continue
        t, lev = a[s, 0], a[s, 1]
        row = s * (R + 1 + L)  # the slot's row of the flat mask
        if not (0 <= t <= R and 0 <= lev < L and mask[row + t] and mask[row + R + 1 + lev]):
            iscal[I_INVALID] += 1
            continue
        targets[j] = WAIT if t == R else t
        levels[j] = lev


@njit(cache=True, _nrt=False)
def _slack(P, fastest_mb_s, fv, j, t_s):
    """CarbonFleetEnv.slack_s for job j: deadline - now - remaining mini-batches x fastest s per mini-batch."""
    return P[j, _P_DEADLINE] - t_s - (P[j, _P_TOTAL] - fv[F_PROGRESS_MB]) * fastest_mb_s[j]


@njit(cache=True, _nrt=False)
def _clip32(x):
    """np.clip(x, -1, 5) (NaN stays NaN), rounded to float32 as the observation's assignment does."""
    if x < _OBS_LOW:
        x = _OBS_LOW
    elif x > _OBS_HIGH:
        x = _OBS_HIGH
    return np.float32(x)


@njit(cache=True, _nrt=False)
def observe(
    f,
    iv_all,
    arrival_s,
    P,
    fastest_mb_s,
    gpus,
    pool,
    cap_w,
    down,
    free,
    ci,
    fc_next,
    fc_mean,
    step_s,
    horizon_s,
    n_steps,
    n_levels,
    ci_scale,
    power,
    in_use,
    free_now,
    slots,
    mask,
    obs,
):
    """Slots, action mask and observation for the decision now (environment 0 of the state arrays), as
    ``CarbonFleetEnv._refresh`` computed them. Expects ``power`` / ``in_use`` (R,) filled by :func:`fleet_totals`;
    fills ``free_now`` (R,)."""
    J, R, K = f.shape[1], pool.shape[0], slots.shape[0]
    L = n_levels
    f0, i0 = f[0], iv_all[0]
    k = i0[0, I_K]
    t_s = k * step_s
    kk = k if k < n_steps else n_steps
    n_hours = ci.shape[2]
    h = int(t_s // 3600.0)
    if h > n_hours - 1:
        h = n_hours - 1
    # slots: the K open jobs with the least slack, ties by index (a stable sort's order), by insertion
    n = 0
    n_idle = 0
    idle_gpus = 0
    not_arrived = 0
    n_done = 0
    n_running = 0
    for j in range(J):
        st = i0[j, I_STATE]
        arrived = arrival_s[j] <= t_s + _ARRIVED_EPS_S
        if not arrived:
            not_arrived += 1
        if st == _COMPLETED:
            n_done += 1
        elif st == _TOLERANCE:
            n_running += 1
        if not arrived or st == _COMPLETED:
            continue
        if i0[j, I_N_GPUS] == 0:
            n_idle += 1
            idle_gpus += gpus[j]
        sk = _slack(P, fastest_mb_s, f0[j], j, t_s)
        p = n
        while p > 0 and sk < _slack(P, fastest_mb_s, f0[slots[p - 1]], slots[p - 1], t_s):
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
    pool_max, pool_sum = pool[0], 0
    for r in range(R):
        up = not down[r, kk]
        free_now[r] = free[0, r, kk] if up else 0
        if pool[r] > pool_max:
            pool_max = pool[r]
        pool_sum += pool[r]
    # action mask
    W = R + 1 + L
    for s in range(K):
        row = s * W
        for c in range(W):
            mask[row + c] = False
        if s >= n:  # padding: wait, level 0
            mask[row + R] = True
            mask[row + R + 1] = True
            continue
        j = slots[s]
        st = i0[j, I_STATE]
        if st == _SUSPEND or st == _MIGRATION or st == _SCALING or st == _RECOVERING:
            # during a timed phase only its own target (sim.rules.continue_target)
            if st == _MIGRATION:
                tgt = i0[j, I_DEST]
            elif st == _SUSPEND:
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
    # observation: regions
    for r in range(R):
        b = r * 6
        obs[b] = _clip32(ci[0, r, h] / ci_scale)
        obs[b + 1] = _clip32(fc_next[r, h])
        obs[b + 2] = _clip32(fc_mean[r, h])
        spare = free_now[r] - in_use[r]
        obs[b + 3] = _clip32((spare if spare > 0 else 0) / (pool[r] if pool[r] > 1 else 1))
        obs[b + 4] = _clip32(0.0 if down[r, kk] else 1.0)
        cap = cap_w[r]
        obs[b + 5] = _clip32(power[r] / cap if np.isfinite(cap) else 0.0)
    # slots
    nf = 4 + R + 6
    lv_div = L - 1 if L - 1 > 1 else 1
    for s in range(K):
        b = R * 6 + s * nf
        for c in range(nf):
            obs[b + c] = 0.0
        if s >= n:
            continue
        j = slots[s]
        st = i0[j, I_STATE]
        fv = f0[j]
        total = P[j, _P_TOTAL]
        obs[b] = 1.0
        obs[b + 1] = 1.0 if st == _TOLERANCE else 0.0
        waiting = st == _WAITING or st == _QUEUED
        obs[b + 2] = 1.0 if waiting else 0.0
        obs[b + 3] = 0.0 if (st == _TOLERANCE or waiting) else 1.0
        obs[b + 4 + i0[j, I_REGION]] = 1.0
        obs[b + 4 + R] = _clip32(gpus[j] / pool_max)
        obs[b + 5 + R] = _clip32(i0[j, I_N_GPUS] / gpus[j])
        obs[b + 6 + R] = _clip32((P[j, _P_TOTAL] - fv[F_PROGRESS_MB]) / total)
        obs[b + 7 + R] = _clip32((P[j, _P_DEADLINE] - t_s) / horizon_s)
        obs[b + 8 + R] = _clip32(_slack(P, fastest_mb_s, fv, j, t_s) / horizon_s)
        obs[b + 9 + R] = _clip32(i0[j, I_LEVEL] / lv_div)
    # queue
    b = R * 6 + K * nf
    obs[b] = _clip32(n_idle / J)
    obs[b + 1] = _clip32(idle_gpus / pool_sum)
    obs[b + 2] = _clip32(not_arrived / J)
    obs[b + 3] = _clip32(n_done / J)
    obs[b + 4] = _clip32(n_running / J)
    x = t_s / horizon_s
    obs[b + 5] = _clip32(1.0 if 1.0 < x else x)
    return n_done


@njit(cache=True, _nrt=False)
def fleet_totals(f, iv_all, power, in_use):
    """``power`` (R,) := the fleet's power by region (``np.bincount`` order: jobs by index, from 0.0); ``in_use``
    (R,) := the GPUs it holds there."""
    for r in range(power.shape[0]):
        power[r] = 0.0
        in_use[r] = 0
    for j in range(f.shape[1]):
        r = iv_all[0, j, I_REGION]
        power[r] += f[0, j, F_POWER_W]
        in_use[r] += iv_all[0, j, I_N_GPUS]


@njit(cache=True, _nrt=False)
def _col_sum(acc, c):
    """``acc[:, c].sum()`` of a (J, metrics) array."""
    return 0.0 + pairwise_sum(acc[:, c], 0, acc.shape[0])


@njit(cache=True, _nrt=False)
def book_step(step_acc, cols, cap_w, power, excess, step_s, w, scal):
    """Regional power cap (the fleet's power at the end of the step against each region's cap: seconds over,
    excess energy J) and the step's reward, as ``CarbonFleetEnv._advance`` computed them."""
    acc = step_acc[0]
    n_over = 0
    for r in range(power.shape[0]):
        x = power[r] - cap_w[r]
        excess[r] = x if x > 0.0 else 0.0  # np.maximum(x, 0.0) for a number
        if excess[r] > 0:
            n_over += 1
    scal[S_CAP_VIOLATION_S] += step_s * float(n_over)
    excess_j = array_sum(excess) * step_s
    scal[S_CAP_EXCESS_J] += excess_j
    carbon_kg = (_col_sum(acc, cols[C_OPC]) + _col_sum(acc, cols[C_TXC])) / 1000.0
    energy = _col_sum(acc, cols[C_FAC]) + _col_sum(acc, cols[C_TXE])
    cost = (
        w[0] * carbon_kg
        + w[1] * energy
        + w[2] * _col_sum(acc, cols[C_LATE])
        + w[3] * excess_j / 1000.0
        + w[4] * _col_sum(acc, cols[C_MIG])
    )
    scal[S_REWARD] = -cost


@njit(cache=True, _nrt=False)
def fill_info(f, iv_all, ep_acc, cols, slots, in_use, free_now, fblk, iblk, scal):
    """The info's per-job arrays into fresh blocks: ``fblk`` (3, J) float64 rows progress, carbon kg, energy kWh;
    ``iblk`` (3 J + 2 R + K,) int64: job state, region, GPUs, GPUs in use (R), free GPUs (R), slots (K); and the
    fleet's episode totals into ``scal``."""
    J, R, K = f.shape[1], in_use.shape[0], slots.shape[0]
    ea = ep_acc[0]
    for j in range(J):
        fblk[0, j] = f[0, j, F_PROGRESS_MB]
        fblk[1, j] = (ea[j, cols[C_OPC]] + ea[j, cols[C_TXC]]) / 1000.0
        fblk[2, j] = ea[j, cols[C_FAC]] + ea[j, cols[C_TXE]]
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
    scal[S_MIGRATIONS] = _col_sum(ea, cols[C_MIG])
    scal[S_LOST_MB] = _col_sum(ea, cols[C_LOST])
    scal[S_ROLLBACKS] = _col_sum(ea, cols[C_ROLLBACKS])


@njit(cache=True, _nrt=False)
def step_fleet(
    a,
    slot_actions,
    fifo,
    n_levels,
    envs,
    targets,
    levels,
    order,
    key,
    f,
    iv_all,
    step_acc,
    ep_acc,
    ci,
    free,
    avail,
    used,
    rest,
    peak,
    o_start,
    o_end,
    n_out,
    arrival_s,
    P,
    t_mb_s,
    p_gpu_w,
    idle_w,
    host_busy_w,
    host_idle_w,
    pue,
    emb_g,
    speed,
    xfer_s,
    egress,
    allowed,
    fail_per_gpu_h,
    rng_fns,
    rng_states,
    fastest_mb_s,
    gpus,
    pool,
    cap_w,
    down,
    fc_next,
    fc_mean,
    step_s,
    horizon_s,
    n_steps,
    ci_scale,
    cols,
    w,
    power,
    in_use,
    free_now,
    excess,
    slots,
    mask,
    obs,
    gpu_log,
    scal,
    iscal,
    fblk,
    iblk,
):
    """One decision step of a CarbonFleetEnv in one compiled call: the slots' actions ``a`` (when ``slot_actions``;
    else ``targets`` / ``levels`` are already the decisions), the service order, ``advance_fleet``, then (unless a
    job hit an illegal transition) cap accounting and reward, the GPU log, the episode-end flags, the next slots,
    mask and observation, and the info values into ``fblk`` / ``iblk`` / ``scal``. Returns ``advance_fleet``'s
    error count."""
    if slot_actions:
        apply_slots(a, slots, mask, pool.shape[0], n_levels, targets[0], levels[0], iscal)
    priority_order(envs, f, iv_all, P, fastest_mb_s, order, key, fifo)
    errors = advance_fleet(
        envs, targets, levels, order, f, iv_all, step_acc, ep_acc, ci, free, avail, used, rest, peak, o_start, o_end,
        n_out, arrival_s, P, t_mb_s, p_gpu_w, idle_w, host_busy_w, host_idle_w, pue, emb_g, speed, xfer_s, egress,
        allowed, fail_per_gpu_h, rng_fns, rng_states,
    )  # fmt: skip
    if errors:
        return errors
    fleet_totals(f, iv_all, power, in_use)
    book_step(step_acc, cols, cap_w, power, excess, step_s, w, scal)
    row = iscal[I_N_LOG]
    if row < gpu_log.shape[0]:  # (n_steps rows: the episode ends at the horizon; no bounds checks here)
        for r in range(in_use.shape[0]):
            gpu_log[row, r] = in_use[r]
        iscal[I_N_LOG] = row + 1
    n_done = observe(
        f, iv_all, arrival_s, P, fastest_mb_s, gpus, pool, cap_w, down, free, ci, fc_next, fc_mean, step_s, horizon_s,
        n_steps, n_levels, ci_scale, power, in_use, free_now, slots, mask, obs,
    )  # fmt: skip
    done = n_done == f.shape[1]
    iscal[I_COMPLETED] = n_done
    iscal[I_DONE] = done
    iscal[I_TRUNCATED] = (not done) and iv_all[0, 0, I_K] >= n_steps
    fill_info(f, iv_all, ep_acc, cols, slots, in_use, free_now, fblk, iblk, scal)
    return 0
