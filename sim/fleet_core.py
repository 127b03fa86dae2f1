"""Fleet kernel: ``n_envs`` environments x ``J`` jobs that share each region's GPU pool (CarbonFleet-v0, issue 10).

The physics is ``sim.core``'s, reused by import (its inline helpers ``_go``, ``_start_running``,
``_start_migration``, ``_suspend``, ``_fault``, ``_decide``, ``_handle``, its state layout and metric columns);
what differs from ``sim.core.advance``:

- **Per-job parameters and tables.** ``P`` is ``(J, len(PARAMS))`` (each job its own GPU request, mini-batches,
  deadline, checkpoint size, I/O and restore time) and the GPU tables are per job: ``t_mb_s`` / ``p_gpu_w``
  ``(J, R, L)`` (the job's workload on each region's GPU), ``idle_w`` ``(J, R)``, ``speed`` ``(J, G + 1)``,
  ``xfer_s`` / ``egress_usd`` ``(J, R, R)`` (its checkpoint over the WAN). The helpers read one row ``P[j]``,
  ``xfer_s[j]``, ... exactly as they read the single job's.
- **Arrival gate.** A job takes part from the first decision step that starts at or after its arrival; before
  that its clock only moves with the others (state Queued, no accounting, no decision applied).
- **Shared pools, in priority order.** Per environment and step, jobs are served in ``order``
  (:func:`priority_order`: jobs holding GPUs first, then the rest, each by least slack, or FIFO). Job ``j`` sees as its
  pool in region ``r``: ``a = free[r, k]`` minus the most GPUs each job served before it held in ``r`` at any
  time in this step (``used``); of that it keeps what it holds, and grows only into GPUs that no job served
  after it holds at the step's start (``rest``). The result goes into the scratch table ``avail`` that the
  helpers read as ``fr``. So at every instant the GPUs held in a region never exceed its free GPUs, a job
  never takes GPUs from another job, and when the pool shrinks (other tenants take GPUs back, an outage) the
  last served are the ones preempted: a job holding more than its pool now allows is preempted first
  (``_fault`` with the preemption counter: rollback to its last durable checkpoint), whatever it was about
  to do.
- **GPU failures** are drawn in the loop by inverse transform from the environment's generator
  (``-log(1 - u) / rate`` GPU-hours, the exponential law of ``Simulator._draw_failure_gpu_h``) instead of
  parking for a draw in Python: the fleet has no scalar twin to match bit for bit, and a park in the middle
  of the job loop would have to save ``used``.
- **No per-job power cap and no work noise**: a fleet's power budget is per region (the environment compares
  the fleet's power there with the cap), and trace jobs have no phase or noise model.
"""

from __future__ import annotations

import math

from numba import njit

from sim.core import (  # the physics of one job, shared with the single-job core
    _COMPLETED,
    _EV_NONE,
    _GPUF,
    _PRE,
    F_FAIL_LEFT_GPU_H,
    F_PROGRESS_MB,
    F_T_END_S,
    F_T_S,
    I_K,
    I_N_GPUS,
    I_PEND,
    I_REGION,
    I_STATE,
    PEND_NONE,
    _book_piece,
    _decide,
    _end_step,
    _fault,
    _handle,
    _piece,
    _usable,
)
from sim.rng import random
from sim.tables import PARAMS

_S_PER_H = 3600.0
_J_PER_KWH = 3.6e6
_EPS_S = 1e-9
(_P_STEP, _P_HORIZON, _P_NSTEPS, _P_NHOURS, _P_TOTAL) = range(5)
_P_REQ, _P_STALL, _P_XKWH, _P_DEADLINE = PARAMS.index("requested_gpus"), 11, 12, 13
assert PARAMS[_P_STALL] == "stall_per_mb_s" and PARAMS[_P_DEADLINE] == "deadline_s"
_NOT_HOLDING = 1e12  # s added to the slack of a job holding no GPUs (any real slack is far smaller)


@njit(cache=True, _nrt=False)  # allocates nothing (see sim.core.advance)
def priority_order(envs, f, iv_all, P, fastest_mb_s, order, key, fifo=False):
    """``order[i]`` := the jobs of environment ``i`` in service order: jobs holding GPUs first, then the others,
    each group by least slack (time to the deadline minus the remaining mini-batches at the top clock in the
    fastest region, ``fastest_mb_s`` (J,) s), ties by job index (= arrival order). ``order`` must hold a
    permutation (the last step's order): an insertion sort from it costs about J when little changed, and the
    result does not depend on it (keys tie-broken by index). ``fifo``: arrival order (job index) instead of slack
    within each group (a carbon-agnostic FIFO queue). ``key`` is scratch (n_envs, J); no allocation."""
    J = f.shape[1]
    for e in range(envs.shape[0]):
        i = envs[e]
        for j in range(J):
            slack = P[j, _P_DEADLINE] - f[i, j, F_T_S] - (P[j, _P_TOTAL] - f[i, j, F_PROGRESS_MB]) * fastest_mb_s[j]
            if fifo:
                slack = 0.0  # ties, broken by index: arrival order
            key[i, j] = slack if iv_all[i, j, I_N_GPUS] > 0 else slack + _NOT_HOLDING
        for j in range(1, J):
            jj = order[i, j]
            kj = key[i, jj]
            m = j - 1
            while m >= 0:
                jm = order[i, m]
                km = key[i, jm]
                if km < kj or (km == kj and jm < jj):
                    break
                order[i, m + 1] = jm
                m -= 1
            order[i, m + 1] = jj


@njit(cache=True, inline="always")
def _hold(peak, iv):
    """Record the GPUs ``iv``'s job holds now in its region as a candidate for the step's peak there."""
    n = iv[I_N_GPUS]
    if n > peak[iv[I_REGION]]:
        peak[iv[I_REGION]] = n


@njit(cache=True, _nrt=False)  # no reference counting: allocates nothing (see sim.core.advance)
def advance_fleet(
    envs,
    targets,
    levels,
    order,
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
):
    """Advance every job of each environment in ``envs`` by one decision step, in the service order ``order``
    (n_envs, J). ``targets`` / ``levels`` (n_envs, J): the decision per job (target region, ``sim.rules.WAIT``
    = pause). Scratch: ``avail`` (n_envs, R, steps + 1), ``used`` / ``rest`` (n_envs, R), ``peak`` (R,).
    Returns the number of jobs that hit an illegal transition (``I_ERROR``)."""
    errors = 0
    R = free.shape[1]
    for e in range(envs.shape[0]):
        i = envs[e]
        fr, os_, oe, no = avail[i], o_start[i], o_end[i], n_out[i]
        for r in range(R):
            used[i, r] = 0
            rest[i, r] = 0
        for j in range(order.shape[1]):  # GPUs held at the step's start, by region
            rest[i, iv_all[i, j, I_REGION]] += iv_all[i, j, I_N_GPUS]
        for q in range(order.shape[1]):
            j = order[i, q]
            fv, iv, acc = f[i, j], iv_all[i, j], step_acc[i, j]
            Pj = P[j]
            xs, eg, tm, pg, iw, sp = xfer_s[j], egress[j], t_mb_s[j], p_gpu_w[j], idle_w[j], speed[j]
            acc[:] = 0.0
            n_steps = int(Pj[_P_NSTEPS])
            kk = iv[I_K] if iv[I_K] < n_steps else n_steps
            own_r, own_n = iv[I_REGION], iv[I_N_GPUS]
            rest[i, own_r] -= own_n
            for r in range(R):
                # the pool this job sees: free minus the peaks of the jobs served before it (a); it keeps what
                # it holds within that, and grows only into GPUs no later job holds (b = a - their holdings)
                a = free[i, r, kk] - used[i, r]
                b = a - rest[i, r]
                if r == own_r and b < own_n:
                    b = own_n if own_n < a else a
                fr[r, kk] = b if b > 0 else 0
                peak[r] = 0
            t_end = fv[F_T_S] + Pj[_P_STEP]
            if Pj[_P_HORIZON] < t_end:
                t_end = Pj[_P_HORIZON]
            fv[F_T_END_S] = t_end
            if fv[F_T_S] + _EPS_S < arrival_s[j]:  # not arrived: the clock moves, nothing else
                fv[F_T_S] = t_end
                iv[I_K] += 1
                continue
            if iv[I_STATE] == _COMPLETED:  # done: holds nothing, nothing happens (what the full path would do)
                iv[I_K] += 1
                continue
            _hold(peak, iv)
            s = iv[I_STATE]
            if iv[I_N_GPUS] > 0 and s != _COMPLETED:  # the pool shrank under it: preempted first
                if iv[I_N_GPUS] > _usable(fr[iv[I_REGION], kk], Pj) or fr[iv[I_REGION], kk] <= 0:
                    _fault(fv, iv, acc, _PRE, fr, os_, oe, no, Pj, allowed)
            _decide(fv, iv, acc, targets[i, j], levels[i, j], fr, os_, oe, no, xs, Pj, allowed, rng_fns, rng_states[i])
            _hold(peak, iv)
            # the event loop of sim.core.advance for one job (its per-job tables; no cap, no work noise)
            t_stop = t_end - _EPS_S
            t = fv[F_T_S]
            s = iv[I_STATE]
            while t < t_stop and s != _COMPLETED:
                r = iv[I_REGION]
                h = int(t // _S_PER_H)
                n = iv[I_N_GPUS]
                dt, event, power_w, gpu_w, host_w, stall_frac, rate = _piece(
                    fv, iv, t, t_end, h, s, r, n, 1.0, False, math.inf, Pj, tm[r], pg[r], iw[r], host_busy_w[r],
                    host_idle_w[r], sp, os_, no,
                )  # fmt: skip
                t = _book_piece(
                    fv, iv, acc, t, dt, h, s, r, n, power_w, gpu_w, host_w, stall_frac, rate, ci[i], math.inf, pue[r],
                    emb_g[r], xs, Pj,
                )  # fmt: skip
                if event != _EV_NONE:
                    _handle(fv, iv, acc, event, fr, os_, oe, no, xs, eg, Pj, allowed, rng_fns, rng_states[i])
                    if iv[I_PEND] != PEND_NONE:  # a GPU failed: draw the next failure time here, then the fault
                        iv[I_PEND] = PEND_NONE
                        u = random(rng_fns, rng_states[i])
                        fv[F_FAIL_LEFT_GPU_H] = -math.log(1.0 - u) / fail_per_gpu_h
                        _fault(fv, iv, acc, _GPUF, fr, os_, oe, no, Pj, allowed)
                    _hold(peak, iv)
                    s = iv[I_STATE]
            errors += _end_step(fv, iv, acc, ep_acc[i, j])  # the step is over: book it, as sim.core.advance does
            for r in range(R):
                used[i, r] += peak[r]
    return errors
