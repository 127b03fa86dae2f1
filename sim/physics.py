"""The physics of one job for one piece of time, compiled and inlined into every engine loop (``sim.core.advance``
for the single-job environments, ``sim.fleet_core.advance_fleet`` for the fleet).

A job is a row of the state (``fv`` floats, ``iv`` ints, ``acc`` this step's accounting; columns in
``sim.layout``); it reads its :class:`sim.layout.JobTables` ``tab`` and its environment's :class:`sim.layout.Pool`
``pool``. The helpers change the scheduler state (``go``: checked against ``tab.allowed``), start phases,
apply faults, apply a decision (``decide``), cut the next piece of time (``piece``), book it (``book_piece``)
and end a step (``end_step``). The physics is described in ``sim/simulator.py``.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from sim import rules
from sim.layout import (
    COMPLETED,
    EV_BOUNDARY,
    EV_COMPLETION,
    EV_GPU_FAILURE,
    EV_NONE,
    EV_OUTAGE,
    EV_PHASE_END,
    EV_TRANSFER_FAILURE,
    F_CKPT_MB,
    F_COMPLETED_AT_S,
    F_FAIL_LEFT_GPU_H,
    F_PHASE_END_S,
    F_POWER_W,
    F_PROGRESS_MB,
    F_T_S,
    F_XFER_FAIL_AT_S,
    I_AFTER_SUSPEND,
    I_DEST,
    I_DRAINING,
    I_ERROR,
    I_GPU_CAP,
    I_K,
    I_LEVEL,
    I_N_GPUS,
    I_N_TRANS,
    I_PEND,
    I_REGION,
    I_STAGE,
    I_STATE,
    I_TRANS_0,
    I_VIOLATING,
    J_PER_KWH,
    M_CAPJ,
    M_CAPN,
    M_CAPS,
    M_DONE,
    M_EGR,
    M_EMB,
    M_FAC,
    M_GPUF,
    M_GPUH,
    M_HOST,
    M_IT,
    M_LATE,
    M_LOST,
    M_MIG,
    M_OPC,
    M_OUTF,
    M_PRE,
    M_RB,
    M_STALL,
    M_TIME0,
    M_TX,
    M_TXC,
    M_TXE,
    M_TXF,
    M_TXGB,
    M_TXS,
    MIGRATION,
    P_CKPT_GB,
    P_CKPT_INT,
    P_DEADLINE,
    P_DURABLE_AFTER_WRITE,
    P_ELASTIC,
    P_GROUP,
    P_IO,
    P_NOTICE,
    P_NSTEPS,
    P_REPLACE,
    P_REQ,
    P_RESTORE,
    P_STALL,
    P_THROTTLE,
    P_TOTAL,
    P_XFAIL,
    P_XKWH,
    PEND_GPU_FAILURE,
    QUEUED,
    RECOVERING,
    S_PER_H,
    SCALING,
    SUSPEND,
    TOLERANCE,
    TRANS_SLOTS,
    WAITING,
)
from sim.rng import random
from sim.rules import WAIT

# ---------------------------------------------------------------- arithmetic and memory helpers


@intrinsic
def prefetch(typingctx, arr, idx):
    """Start loading the cache line of ``arr[idx]`` (``idx``: a tuple of ``arr.ndim`` ints; LLVM's ``prefetch``, which
    never faults): a hint to the CPU, no value changes. The step reads a few entries of each environment's episode
    tables (megabytes at N = 1024, out of cache between steps); prefetched a few environments ahead, they arrive
    while the CPU works instead of stalling it (perf: advance's share of the vector bench 16% -> 13%)."""
    if not (isinstance(arr, types.Array) and isinstance(idx, types.UniTuple) and idx.count == arr.ndim):
        return None

    def codegen(context, builder, sig, args):
        aryty, idxty = sig.args
        ary = context.make_array(aryty)(context, builder, args[0])
        inds = [context.cast(builder, v, idxty.dtype, types.intp) for v in cgutils.unpack_tuple(builder, args[1])]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, inds)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)  # named for this LLVM's pointers
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # read, keep in all cache levels, data
        return context.get_dummy_value()

    return types.none(arr, idx), codegen


@njit(cache=True, inline="always")
def floor_div(x, m):
    """``int(x // m)`` for a float 0 <= x < 2**53 and an integral m > 0, without the ``fmod`` call numba's ``//``
    makes (a C call per use): the rounded ``x / m`` is the floor or one above it, and ``n * m`` is exact."""
    n = int(x / m)
    if n * m > x:
        n -= 1
    return n


@njit(cache=True, inline="always")
def mod(x, m):
    """``x % m`` for the same x and m, the same float: ``fmod``'s result is representable, so ``x - n * m`` is exact."""
    return x - floor_div(x, m) * m


# the shared rules (sim/rules.py), compiled from the same source
usable_gpus = njit(cache=True, inline="always")(rules.usable_gpus)
continue_target = njit(cache=True, inline="always")(rules.continue_target)
level_under_cap = njit(cache=True, inline="always")(rules.level_under_cap)

# ---------------------------------------------------------------- GPUs a job can use


@njit(cache=True, inline="always")
def region_down(pool, r, t):
    """Whether region ``r`` of ``pool`` is in an outage at ``t`` (s)."""
    os_, oe = pool.outage_start_s, pool.outage_end_s
    for j in range(pool.n_outages[r]):
        if os_[r, j] <= t < oe[r, j]:
            return True
    return False


@njit(cache=True, inline="always")
def usable(free, P):
    """GPUs of ``free`` the job with parameters ``P`` can use (its request, parallel group, elasticity)."""
    return usable_gpus(free, int(P[P_REQ]), int(P[P_GROUP]), P[P_ELASTIC] != 0.0)


@njit(cache=True, inline="always")
def job_usable(iv, free, P):
    """``usable`` for the job ``iv`` under its GPU-count choice ``I_GPU_CAP`` (0: all it requested): it runs on at
    most that many (CarbonScaler's lever; the speed follows the job's scaling curve ``JobTables.speed``)."""
    req = int(P[P_REQ])
    cap = iv[I_GPU_CAP]
    if 0 < cap < req:
        req = cap
    return usable_gpus(free, req, int(P[P_GROUP]), P[P_ELASTIC] != 0.0)


@njit(cache=True, inline="always")
def free_gpus(pool, r, t, k, P):
    """GPUs free in region ``r`` at ``t`` (s) of decision step ``k``: none during an outage."""
    if region_down(pool, r, t):
        return 0
    n_steps = int(P[P_NSTEPS])
    return pool.free[r, k if k < n_steps else n_steps]


# ---------------------------------------------------------------- transitions and phases


@njit(cache=True, inline="always")
def go(iv, new, allowed):
    """Move the job to state ``new``; an illegal transition is recorded in ``I_ERROR`` (the first one)."""
    s = iv[I_STATE]
    if not allowed[s, new]:
        if iv[I_ERROR] == 0:
            iv[I_ERROR] = s * 8 + new + 1
    m = iv[I_N_TRANS]
    if m < TRANS_SLOTS:  # kept for the transition log (read only when logging)
        iv[I_TRANS_0 + m] = s * 8 + new
        iv[I_N_TRANS] = m + 1
    iv[I_STATE] = new


@njit(cache=True, inline="always")
def start_running(fv, iv, pool, tab):
    P = tab.params
    n = job_usable(iv, free_gpus(pool, iv[I_REGION], fv[F_T_S], iv[I_K], P), P)
    if n == 0:
        if iv[I_STATE] != WAITING:
            go(iv, WAITING, tab.allowed)
        iv[I_N_GPUS] = 0
        return
    iv[I_N_GPUS] = n
    go(iv, SCALING, tab.allowed)
    fv[F_PHASE_END_S] = fv[F_T_S] + P[P_RESTORE]


@njit(cache=True, inline="always")
def start_migration(fv, iv, acc, dst, tab, rng_fns, rng_state):
    go(iv, MIGRATION, tab.allowed)
    iv[I_N_GPUS] = 0
    iv[I_DEST] = dst
    dur = tab.xfer_s[iv[I_REGION], dst]
    fv[F_PHASE_END_S] = fv[F_T_S] + dur
    fv[F_XFER_FAIL_AT_S] = math.inf
    p = tab.params[P_XFAIL]
    if p > 0 and random(rng_fns, rng_state) < p:  # rng.random() of the env's generator, twice if it fails
        fv[F_XFER_FAIL_AT_S] = fv[F_T_S] + random(rng_fns, rng_state) * dur
    acc[M_MIG] += 1


@njit(cache=True, inline="always")
def suspend(fv, iv, tab):
    go(iv, SUSPEND, tab.allowed)
    iv[I_DRAINING] = 0
    fv[F_PHASE_END_S] = fv[F_T_S] + tab.params[P_IO]


@njit(cache=True, inline="always")
def fault(fv, iv, acc, slot, pool, tab):
    """A fault counted in metric column ``slot`` (GPU failure, outage, preemption): roll back to the last durable
    checkpoint, then recover on what is usable (one GPU fewer after a GPU failure without a spare) or wait.

    Faults as clouds deliver them (spec V4, when ``durable_after_write``; the fleet keeps the earlier timing):

    - a periodic checkpoint (every ``ckpt_interval_mb``) is durable only once its write (``io_s``) has ended:
      the training time since its boundary, (progress - boundary) x the profiled time per mini-batch at the
      current clock and GPU count, must be >= ``io_s``, else the previous one is the last durable checkpoint;
    - a spot reclaim (``M_PRE``) comes with the provider's notice (``reclaim_notice_s``): a rule, not an
      action, makes the job checkpoint on notice; when the write fits in the notice (``io_s <= notice``) it ends
      at the reclaim, holding the progress of ``io_s`` earlier, so only the last ``io_s`` of training is lost;
    - after a GPU failure with a spare GPU in the pool, the job restarts on all its GPUs once the replacement is
      provisioned: its recovery lasts ``gpu_replace_s`` + restore (without a spare it restarts at once on one
      GPU fewer, as before).
    """
    P, allowed = tab.params, tab.allowed
    acc[slot] += 1
    interval = P[P_CKPT_INT]
    progress = fv[F_PROGRESS_MB]
    durable = math.floor(progress / interval) * interval
    ck = fv[F_CKPT_MB]
    if P[P_DURABLE_AFTER_WRITE] != 0.0 and iv[I_N_GPUS] > 0:
        n_run = iv[I_N_GPUS]
        per_mb_s = tab.t_mb_s[iv[I_REGION], iv[I_LEVEL]] / tab.speed[n_run] + P[P_STALL]
        while durable > ck and (progress - durable) * per_mb_s < P[P_IO]:
            durable -= interval  # that checkpoint's write had not ended: the one before is the last durable
        if slot == M_PRE and P[P_IO] <= P[P_NOTICE]:
            on_notice = progress - P[P_IO] / per_mb_s  # checkpoint taken io_s before the reclaim, ending at it
            if on_notice > durable:
                durable = on_notice
    if ck >= durable:
        durable = ck
    lost = progress - durable
    if lost > 0:
        acc[M_LOST] += lost
        acc[M_RB] += 1
    fv[F_PROGRESS_MB] = durable
    fv[F_CKPT_MB] = durable
    iv[I_DRAINING] = 0
    if iv[I_STATE] != RECOVERING:
        go(iv, RECOVERING, allowed)
    region, t, k = iv[I_REGION], fv[F_T_S], iv[I_K]
    free_now = free_gpus(pool, region, t, k, P)
    wait_s = 0.0
    if slot == M_GPUF:
        spare = free_now - iv[I_N_GPUS]
        n = iv[I_N_GPUS] - (0 if spare > 0 else 1)
        if spare > 0:
            wait_s = P[P_REPLACE]  # the spare is provisioned in place of the failed GPU before the restart
        u = job_usable(iv, free_now, P)
        if u < n:
            n = u
        iv[I_N_GPUS] = n - n % int(P[P_GROUP])
    else:
        iv[I_N_GPUS] = job_usable(iv, free_now, P)
    if iv[I_N_GPUS] <= 0:
        iv[I_N_GPUS] = 0
        go(iv, WAITING, allowed)
    else:
        fv[F_PHASE_END_S] = t + wait_s + P[P_RESTORE]


@njit(cache=True, inline="always")
def decide(fv, iv, acc, target, level, pool, tab, rng_fns, rng_state):
    """Apply a decision at the start of a step: ``target`` region (or ``WAIT``), clock ``level``."""
    s = iv[I_STATE]
    if s == COMPLETED:
        return
    if s == TOLERANCE:
        if target == iv[I_REGION]:
            iv[I_DRAINING] = 0
            free_now = free_gpus(pool, iv[I_REGION], fv[F_T_S], iv[I_K], tab.params)
            n = job_usable(iv, free_now, tab.params)
            if n < iv[I_N_GPUS] and (iv[I_GPU_CAP] == 0 or usable(free_now, tab.params) < iv[I_N_GPUS]):
                fault(fv, iv, acc, M_PRE, pool, tab)  # the pool shrank under it (not the policy's choice)
            elif level != iv[I_LEVEL] or n != iv[I_N_GPUS]:
                go(iv, SCALING, tab.allowed)
                iv[I_N_GPUS] = n
                iv[I_LEVEL] = level
                go(iv, TOLERANCE, tab.allowed)
            return
        iv[I_AFTER_SUSPEND] = target
        iv[I_LEVEL] = level
        p = fv[F_PROGRESS_MB]
        if p == math.floor(p):
            suspend(fv, iv, tab)
        else:
            iv[I_DRAINING] = 1
        return
    iv[I_LEVEL] = level
    if s == WAITING or s == QUEUED:
        if target == WAIT:
            if s == QUEUED:
                go(iv, WAITING, tab.allowed)
        elif target == iv[I_REGION]:
            start_running(fv, iv, pool, tab)
        else:
            start_migration(fv, iv, acc, target, tab, rng_fns, rng_state)


@njit(cache=True, inline="always")
def handle(fv, iv, acc, event, pool, tab, rng_fns, rng_state):
    """Apply one event (``sim.states.Event``); a GPU failure parks for its draw instead."""
    P, allowed = tab.params, tab.allowed
    if event == EV_OUTAGE:
        fault(fv, iv, acc, M_OUTF, pool, tab)
    elif event == EV_TRANSFER_FAILURE:  # the checkpoint is still at the source
        acc[M_TXF] += 1
        go(iv, RECOVERING, allowed)
        fv[F_XFER_FAIL_AT_S] = math.inf
        iv[I_N_GPUS] = job_usable(iv, free_gpus(pool, iv[I_REGION], fv[F_T_S], iv[I_K], P), P)
        if iv[I_N_GPUS] == 0:
            go(iv, WAITING, allowed)
        else:
            fv[F_PHASE_END_S] = fv[F_T_S] + P[P_RESTORE]
    elif event == EV_GPU_FAILURE:
        iv[I_PEND] = PEND_GPU_FAILURE  # the caller draws the next failure time, then the fault is applied
    elif event == EV_BOUNDARY:
        fv[F_PROGRESS_MB] = float(np.rint(fv[F_PROGRESS_MB]))
        suspend(fv, iv, tab)
    elif event == EV_COMPLETION:
        fv[F_PROGRESS_MB] = P[P_TOTAL]
        fv[F_COMPLETED_AT_S] = fv[F_T_S]
        go(iv, COMPLETED, allowed)
        iv[I_N_GPUS] = 0
    else:  # a timed phase ends
        s = iv[I_STATE]
        if s == SUSPEND:
            fv[F_CKPT_MB] = fv[F_PROGRESS_MB]
            iv[I_N_GPUS] = 0
            dst = iv[I_AFTER_SUSPEND]
            if dst == WAIT or dst == iv[I_REGION]:
                go(iv, WAITING, allowed)
            else:
                start_migration(fv, iv, acc, dst, tab, rng_fns, rng_state)
        elif s == MIGRATION:
            acc[M_TX] += 1
            acc[M_TXGB] += P[P_CKPT_GB]
            acc[M_EGR] += tab.egress_usd[iv[I_REGION], iv[I_DEST]]
            iv[I_REGION] = iv[I_DEST]
            start_running(fv, iv, pool, tab)
        elif s == SCALING or s == RECOVERING:
            if s == RECOVERING:
                go(iv, SCALING, allowed)
            go(iv, TOLERANCE, allowed)


# ---------------------------------------------------------------- a piece of time


@njit(cache=True, inline="always")
def piece(fv, iv, t, t_end, h, work_mult, cap_w_now, tab, pool):
    """The next piece of a step from ``t`` (s, in hour ``h``): it ends at the hour's or the step's end or at the
    first event. The job's state, region and GPUs are ``iv``'s.

    Returns ``dt`` (s), the event ending it (``EV_NONE``: none) and the rates over it as a tuple: board power at
    the clock ``power_w``, GPU power with the checkpoint stall's idle share ``gpu_w``, host power ``host_w`` (W),
    the stalled fraction of the time and the progress ``rate`` (mini-batches/s). The fleet passes a work
    multiplier of 1 and no cap.
    """
    s, r, n = iv[I_STATE], iv[I_REGION], iv[I_N_GPUS]
    P = tab.params
    dt = (h + 1) * S_PER_H
    dt = (t_end if t_end <= dt else dt) - t
    event = EV_NONE
    power_w = 0.0
    gpu_w = 0.0
    host_w = 0.0
    stall_frac = 0.0
    rate = 0.0
    if s == TOLERANCE:
        lvl = iv[I_LEVEL]
        p_gpu_w_r = tab.p_gpu_w[r]
        if P[P_THROTTLE] != 0.0:
            lvl = level_under_cap(p_gpu_w_r, n, cap_w_now, lvl)
        p_l = p_gpu_w_r[lvl]
        power_w = n * p_l
        stall_mb_s = P[P_STALL]
        compute_s = work_mult * tab.t_mb_s[r, lvl] / tab.speed[n]
        per_mb_s = compute_s + stall_mb_s
        rate = 1.0 / per_mb_s
        if stall_mb_s > 0.0:
            stall_frac = stall_mb_s / per_mb_s
            gpu_w = power_w + n * (tab.idle_w[r] - p_l) * stall_frac
        else:
            gpu_w = power_w
        host_w = n * tab.host_busy_w[r]
        progress = fv[F_PROGRESS_MB]
        if iv[I_DRAINING] != 0:
            fl = math.floor(progress)
            goal = progress if progress == fl else fl + 1.0
            done_event = EV_BOUNDARY
        else:
            goal = P[P_TOTAL]
            done_event = EV_COMPLETION
        d = (goal - progress) / rate
        if d <= dt:
            dt, event = d, done_event
        d = fv[F_FAIL_LEFT_GPU_H] * S_PER_H / n
        if d < dt:
            dt, event = d, EV_GPU_FAILURE
    elif s == SUSPEND or s == SCALING or s == RECOVERING:
        power_w = n * tab.idle_w[r]
        gpu_w = power_w
        host_w = n * tab.host_idle_w[r]
        d = fv[F_PHASE_END_S] - t
        if d <= dt:
            dt, event = d, EV_PHASE_END
    elif s == MIGRATION:
        d = fv[F_PHASE_END_S] - t
        if d <= dt:
            dt, event = d, EV_PHASE_END
        d = fv[F_XFER_FAIL_AT_S] - t
        if d < dt:
            dt, event = d, EV_TRANSFER_FAILURE
    if n > 0:
        os_ = pool.outage_start_s
        for jo in range(pool.n_outages[r]):
            start = os_[r, jo]
            if t <= start < t + dt:
                dt, event = start - t, EV_OUTAGE
                break
    if dt < 0.0:
        dt = 0.0
    return dt, event, (power_w, gpu_w, host_w, stall_frac, rate)


@njit(cache=True, inline="always")
def book_piece(fv, iv, acc, t, dt, h, rates, ci_i, cap_w_now, tab):
    """Account a piece of ``dt`` s from ``t`` with ``piece``'s ``rates`` (energy, carbon at the hour's intensity
    ``ci_i[r, h]``, progress, cap violation, transfer, lateness, time in state) and move the clock; returns the
    new time (s)."""
    power_w, gpu_w, host_w, stall_frac, rate = rates
    s, r, n = iv[I_STATE], iv[I_REGION], iv[I_N_GPUS]
    P = tab.params
    ci_now = ci_i[r, h]
    if power_w > 0.0:
        it_kwh = (gpu_w + host_w) * dt / J_PER_KWH
        fac_kwh = it_kwh * tab.pue[r]
        c_g = fac_kwh * ci_now
        gpu_h = n * dt / S_PER_H
        acc[M_IT] += it_kwh
        acc[M_FAC] += fac_kwh
        acc[M_OPC] += c_g
        acc[M_GPUH] += gpu_h
        acc[M_HOST] += host_w * dt / J_PER_KWH
        acc[M_EMB] += gpu_h * tab.embodied_g_per_gpu_h[r]
        if s == TOLERANCE:
            acc[M_STALL] += dt * stall_frac
            done = rate * dt
            fv[F_PROGRESS_MB] += done
            fv[F_FAIL_LEFT_GPU_H] -= gpu_h
            over = power_w > cap_w_now
            if over:
                acc[M_CAPS] += dt
                acc[M_CAPJ] += (power_w - cap_w_now) * dt
                if iv[I_VIOLATING] == 0:
                    acc[M_CAPN] += 1
            iv[I_VIOLATING] = 1 if over else 0
            acc[M_DONE] += done
    elif s == MIGRATION:
        dest = iv[I_DEST]
        tx_kwh = P[P_XKWH] * dt / tab.xfer_s[r, dest]
        acc[M_TXE] += tx_kwh
        acc[M_TXC] += tx_kwh * 0.5 * (ci_now + ci_i[dest, h])
        acc[M_TXS] += dt
    t_next = t + dt
    deadline_s = P[P_DEADLINE]
    if t_next > deadline_s:
        c_at = fv[F_COMPLETED_AT_S]
        late = (t_next if t_next <= c_at else c_at) - (t if t >= deadline_s else deadline_s)
        if late > 0:
            acc[M_LATE] += late / S_PER_H
    acc[M_TIME0 + s] += dt
    fv[F_POWER_W] = power_w
    fv[F_T_S] = t_next
    return t_next


@njit(cache=True, inline="always")
def end_step(fv, iv, acc, ea):
    """Book a finished decision step: its accounting into the episode's ``ea``, power off unless the job holds
    GPUs, the step counter on. Returns 1 if the step hit an illegal transition, else 0."""
    for m in range(acc.shape[0]):
        ea[m] = ea[m] + acc[m]
    s = iv[I_STATE]
    if s != TOLERANCE:
        iv[I_VIOLATING] = 0
        if s != SUSPEND and s != SCALING and s != RECOVERING:
            fv[F_POWER_W] = 0.0
    iv[I_K] += 1
    iv[I_STAGE] = 0
    return 1 if iv[I_ERROR] != 0 else 0
