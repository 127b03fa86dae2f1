"""Fleet kernel: ``n_envs`` environments x ``J`` jobs that share each region's GPU pool (CarbonFleet-v0, issue 10).

The physics is ``sim.physics``' (``decide``, ``piece``, ``book_piece``, ``handle``, ``fault``, ``end_step``), the
layout and bundles ``sim.layout``'s, the initial state ``sim.layout.fresh_state``; what differs from
``sim.core.advance``:

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
- **Regional power caps, shared in service order** (``cap_w`` (R,), W of IT power: GPU boards + hosts, before
  PUE; ``inf``: none). As a facility's power capping does it (Meta's Dynamo, ISCA 2016, throttles the lowest
  priority first; Google's Thunderbolt, OSDI 2020), each job's budget in region ``r`` is the cap minus the most
  power the jobs served before it drew there at any time in this step (``pw_used``, as ``used`` for GPUs) and
  minus the lowest-clock power of the jobs served after it that hold GPUs there at the step's start (``pw_rest``,
  as ``rest``: a job never takes the power a later-served job needs to keep its GPUs at the lowest clock): with
  ``throttle`` set (``cap_enforcement: throttle``) a running job runs at the highest clock level at or below its
  chosen one whose power (GPUs x board W + GPUs x host busy W) fits its budget, re-chosen every piece
  (``sim.rules.level_under_cap``), the lowest level if none fits. A job starts (or grows) on no more GPUs than
  the power left can run at its lowest clock (``_job_pool``): the rest of the pool stays dark, and a job finding
  none waits. What the fleet still draws over a cap (the holders do not fit even at the lowest clock) is booked by
  ``book_regional_cap``. The cap never takes GPUs a job holds.
  No work noise: trace jobs have no phase or noise model.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from sim.layout import (
    COMPLETED,
    EPS_S,
    EV_NONE,
    F_FAIL_LEFT_GPU_H,
    F_POWER_W,
    F_PROGRESS_MB,
    F_T_END_S,
    F_T_S,
    I_K,
    I_N_GPUS,
    I_PEND,
    I_REGION,
    I_STATE,
    M_GPUF,
    M_PRE,
    P_DEADLINE,
    P_HORIZON,
    P_NSTEPS,
    P_STEP,
    P_THROTTLE,
    P_TOTAL,
    PEND_NONE,
    RECOVERING,
    S_PER_H,
    SCALING,
    SUSPEND,
    TOLERANCE,
    CoreState,
    EpisodeRows,
    Generators,
    JobTables,
    Pool,
    StateRows,
    fresh_state,
)
from sim.physics import book_piece, decide, end_step, fault, handle, piece, usable
from sim.rng import random

_NOT_HOLDING = 1e12  # s added to the slack of a job holding no GPUs (any real slack is far smaller)


class FleetTables(NamedTuple):
    """``sim.layout.JobTables`` of J jobs: a job axis first where jobs differ (R regions, L levels, G GPUs)."""

    params: np.ndarray  # (J, len(PARAMS)) each job's scalars
    t_mb_s: np.ndarray  # (J, R, L) s per mini-batch on all the job's GPUs
    p_gpu_w: np.ndarray  # (J, R, L) W busy power per GPU
    idle_w: np.ndarray  # (J, R) W idle power per GPU
    host_busy_w: np.ndarray  # (R,) W host power per GPU while training
    host_idle_w: np.ndarray  # (R,) W host power per GPU while idle
    pue: np.ndarray  # (R,)
    embodied_g_per_gpu_h: np.ndarray  # (R,) g CO2eq per GPU-hour
    speed: np.ndarray  # (J, G + 1) speed on n GPUs / on all the job's GPUs
    xfer_s: np.ndarray  # (J, R, R) s to move the job's checkpoint
    egress_usd: np.ndarray  # (J, R, R) USD per checkpoint moved
    allowed: np.ndarray  # (8, 8) bool legal transitions


class FleetRows(NamedTuple):
    """The fleet's own inputs and scratch for ``advance_fleet`` (n environments, J jobs, R regions, K steps)."""

    order: np.ndarray  # (n, J) int service order (priority_order)
    key: np.ndarray  # (n, J) scratch: each job's sort key
    avail: np.ndarray  # (n, R, K + 1) int scratch: the pool the job being served sees
    used: np.ndarray  # (n, R) int scratch: peaks of the jobs served so far
    rest: np.ndarray  # (n, R) int scratch: GPUs held by the jobs not served yet
    peak: np.ndarray  # (R,) int scratch: this job's peak per region in the step
    arrival_s: np.ndarray  # (J,) s each job's arrival
    fastest_mb_s: np.ndarray  # (J,) s per mini-batch at the top clock in the fastest region
    fail_per_gpu_h: float  # GPU failures per GPU-hour
    cap_w: np.ndarray  # (R,) W regional power cap on IT power (inf: none)
    pw_used: np.ndarray  # (n, R) scratch: W peaks of the jobs served so far
    pw_rest: np.ndarray  # (n, R) scratch: W at the lowest clock of the jobs not served yet that hold GPUs there
    pw_peak: np.ndarray  # (R,) scratch: this job's W peak per region in the step


@njit(cache=True, inline="always")
def job_tables(T, j):
    """Job ``j``'s rows of the fleet's tables ``T`` as the physics reads them (views, no copies)."""
    return JobTables(
        T.params[j],
        T.t_mb_s[j],
        T.p_gpu_w[j],
        T.idle_w[j],
        T.host_busy_w,
        T.host_idle_w,
        T.pue,
        T.embodied_g_per_gpu_h,
        T.speed[j],
        T.xfer_s[j],
        T.egress_usd[j],
        T.allowed,
    )


def reset_jobs(state: CoreState, homes: np.ndarray, top_level: int, fail_left_gpu_h) -> None:
    """Environment 0's jobs start their episode: each Queued at its home (``sim.layout.fresh_state``) at clock
    ``top_level`` with ``fail_left_gpu_h`` (J,) GPU-hours to its first failure, no accounting."""
    state.step_acc[:] = 0.0
    state.episode_acc[:] = 0.0
    for j, home in enumerate(np.asarray(homes).tolist()):
        state.f[0, j], state.i[0, j] = fresh_state(home, top_level)
    state.f[0, :, F_FAIL_LEFT_GPU_H] = fail_left_gpu_h


@njit(cache=True, _nrt=False)  # allocates nothing (see sim.core.advance)
def priority_order(envs, state, P, fleet, fifo=False):
    """``fleet.order[i]`` := the jobs of environment ``i`` in service order: jobs holding GPUs first, then the
    others, each group by least slack (time to the deadline minus the remaining mini-batches at the top clock in
    the fastest region, ``fleet.fastest_mb_s``), ties by job index (= arrival order). ``order`` must hold a
    permutation (the last step's order): an insertion sort from it costs about J when little changed, and the
    result does not depend on it (keys tie-broken by index). ``fifo``: arrival order (job index) instead of slack
    within each group (a carbon-agnostic FIFO queue). ``state``: ``StateRows``, ``fleet``: ``FleetRows`` (plain
    tuples); ``P``: (J, len(PARAMS))."""
    st, fl = StateRows(*state), FleetRows(*fleet)
    f, iv_all = st.f, st.i
    order, key, fastest_mb_s = fl.order, fl.key, fl.fastest_mb_s
    J = f.shape[1]
    for e in range(envs.shape[0]):
        i = envs[e]
        for j in range(J):
            slack = P[j, P_DEADLINE] - f[i, j, F_T_S] - (P[j, P_TOTAL] - f[i, j, F_PROGRESS_MB]) * fastest_mb_s[j]
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


@njit(cache=True, inline="always")
def _job_pool(i, j, st, T, ep, fleet, kk):
    """Job ``j``'s view of environment ``i``'s pools (``fleet.avail[i]``, column ``kk``): free minus the peaks of
    the jobs served before it (a); it keeps what it holds within that, and grows only into GPUs no later job holds
    (b = a - their holdings). Under a power cap it sees no more GPUs than the region's power left (the cap minus
    the peaks of the jobs served before it and the lowest-clock power of the later holders) can run at its lowest
    clock, never fewer than it holds there (a facility keeps a job queued rather than start what it cannot power).
    Clears ``fleet.peak``."""
    own_r, own_n = st.i[i, j, I_REGION], st.i[i, j, I_N_GPUS]
    fleet.rest[i, own_r] -= own_n
    fleet.pw_rest[i, own_r] -= own_n * (T.p_gpu_w[j, own_r, 0] + T.host_busy_w[own_r])
    fr = fleet.avail[i]
    for r in range(fr.shape[0]):
        a = ep.free[i, r, kk] - fleet.used[i, r]
        b = a - fleet.rest[i, r]
        if r == own_r and b < own_n:
            b = own_n if own_n < a else a
        room_w = fleet.cap_w[r] - fleet.pw_used[i, r] - fleet.pw_rest[i, r]  # inf: no cap
        per_gpu_w = T.p_gpu_w[j, r, 0] + T.host_busy_w[r]
        if T.params[j, P_THROTTLE] != 0.0 and room_w < b * per_gpu_w:  # cap_enforcement: throttle
            g = int(room_w // per_gpu_w) if room_w > 0.0 else 0
            if r == own_r and g < own_n:
                g = own_n  # what it holds stays (its excess is booked), never preempted for power
            if g < b:
                b = g
        fr[r, kk] = b if b > 0 else 0
        fleet.peak[r] = 0
        fleet.pw_peak[r] = 0.0


@njit(cache=True, inline="always")
def _run_fleet_job(i, fv, iv, acc, t_end, ci_i, pool, tab, gens, fleet):
    """The event loop of ``sim.core`` for one job of the fleet (its own tables; no work noise), each piece under
    the job's share of its region's power cap (the cap minus the peaks of the jobs served before it, minus its
    hosts' busy power: the GPU budget ``piece`` throttles to); records its IT power peak per region in
    ``fleet.pw_peak``. A GPU failure draws the next failure time here (inverse transform) instead of parking."""
    t_stop = t_end - EPS_S
    t = fv[F_T_S]
    s = iv[I_STATE]
    while t < t_stop and s != COMPLETED:
        h = int(t // S_PER_H)
        r = iv[I_REGION]
        budget_w = fleet.cap_w[r] - fleet.pw_used[i, r] - fleet.pw_rest[i, r] - iv[I_N_GPUS] * tab.host_busy_w[r]
        dt, event, rates = piece(fv, iv, t, t_end, h, 1.0, budget_w, tab, pool)
        it_w = rates[0] + rates[2]  # board + host W in region r over this piece
        if it_w > fleet.pw_peak[r]:
            fleet.pw_peak[r] = it_w
        t = book_piece(fv, iv, acc, t, dt, h, rates, ci_i, budget_w, tab)
        if event != EV_NONE:
            handle(fv, iv, acc, event, pool, tab, gens.fns, gens.states[i])
            if iv[I_PEND] != PEND_NONE:  # a GPU failed: draw the next failure time here, then the fault
                iv[I_PEND] = PEND_NONE
                u = random(gens.fns, gens.states[i])
                lam = fleet.fail_per_gpu_h  # 0: a failure placed by hand in a fleet without failures
                fv[F_FAIL_LEFT_GPU_H] = -math.log(1.0 - u) / lam if lam > 0.0 else math.inf
                fault(fv, iv, acc, M_GPUF, pool, tab)
            _hold(fleet.peak, iv)
            s = iv[I_STATE]


@njit(cache=True, _nrt=False)  # no reference counting: allocates nothing (see sim.core.advance)
def advance_fleet(envs, targets, levels, engine, fleet):
    """Advance every job of each environment in ``envs`` by one decision step, in the service order
    ``fleet.order`` (n_envs, J). ``targets`` / ``levels`` (n_envs, J): the decision per job (target region,
    ``sim.rules.WAIT`` = pause). ``engine``: plain ``(StateRows, FleetTables, EpisodeRows, Generators)``;
    ``fleet``: plain :class:`FleetRows`. Returns the number of jobs that hit an illegal transition (``I_ERROR``)."""
    st, T, ep = StateRows(*engine[0]), FleetTables(*engine[1]), EpisodeRows(*engine[2])
    gens, fl = Generators(*engine[3]), FleetRows(*fleet)
    f, iv_all = st.f, st.i
    errors = 0
    R = ep.free.shape[1]
    for e in range(envs.shape[0]):
        i = envs[e]
        pool = Pool(fl.avail[i], ep.outage_start_s[i], ep.outage_end_s[i], ep.n_outages[i])
        for r in range(R):
            fl.used[i, r] = 0
            fl.rest[i, r] = 0
            fl.pw_used[i, r] = 0.0
            fl.pw_rest[i, r] = 0.0
        for j in range(fl.order.shape[1]):  # GPUs held at the step's start, by region, and their lowest-clock W
            r, n = iv_all[i, j, I_REGION], iv_all[i, j, I_N_GPUS]
            fl.rest[i, r] += n
            fl.pw_rest[i, r] += n * (T.p_gpu_w[j, r, 0] + T.host_busy_w[r])
        for q in range(fl.order.shape[1]):
            j = fl.order[i, q]
            fv, iv, acc = f[i, j], iv_all[i, j], st.step_acc[i, j]
            tab = job_tables(T, j)
            Pj = tab.params
            acc[:] = 0.0
            n_steps = int(Pj[P_NSTEPS])
            kk = iv[I_K] if iv[I_K] < n_steps else n_steps
            _job_pool(i, j, st, T, ep, fl, kk)
            t_end = fv[F_T_S] + Pj[P_STEP]
            if Pj[P_HORIZON] < t_end:
                t_end = Pj[P_HORIZON]
            fv[F_T_END_S] = t_end
            if fv[F_T_S] + EPS_S < fl.arrival_s[j]:  # not arrived: the clock moves, nothing else
                fv[F_T_S] = t_end
                iv[I_K] += 1
                continue
            if iv[I_STATE] == COMPLETED:  # done: holds nothing, nothing happens (what the full path would do)
                iv[I_K] += 1
                continue
            _hold(fl.peak, iv)
            fr = pool.free
            if iv[I_N_GPUS] > 0:  # the pool shrank under it: preempted first
                if iv[I_N_GPUS] > usable(fr[iv[I_REGION], kk], Pj) or fr[iv[I_REGION], kk] <= 0:
                    fault(fv, iv, acc, M_PRE, pool, tab)
            decide(fv, iv, acc, targets[i, j], levels[i, j], pool, tab, gens.fns, gens.states[i])
            _hold(fl.peak, iv)
            _run_fleet_job(i, fv, iv, acc, t_end, ep.ci[i], pool, tab, gens, fl)
            errors += end_step(fv, iv, acc, st.episode_acc[i, j])  # the step is over: book it, as sim.core does
            for r in range(R):
                fl.used[i, r] += fl.peak[r]
                fl.pw_used[i, r] += fl.pw_peak[r]
    return errors


# ---------------------------------------------------------------- the fleet's regional accounting


@njit(cache=True, _nrt=False)
def fleet_totals(st, T, power, in_use):
    """``power`` (R,) := environment 0's fleet IT power by region at the step's end (GPU boards + hosts, before
    PUE: what a regional cap limits; jobs by index, from 0.0); ``in_use`` (R,) := the GPUs it holds there.
    ``st``: ``StateRows``, ``T``: ``FleetTables``."""
    f, iv_all = st.f, st.i
    for r in range(power.shape[0]):
        power[r] = 0.0
        in_use[r] = 0
    for j in range(f.shape[1]):
        r = iv_all[0, j, I_REGION]
        n = iv_all[0, j, I_N_GPUS]
        s = iv_all[0, j, I_STATE]
        host_w = 0.0
        if s == TOLERANCE:
            host_w = n * T.host_busy_w[r]
        elif s == SUSPEND or s == SCALING or s == RECOVERING:
            host_w = n * T.host_idle_w[r]
        power[r] += f[0, j, F_POWER_W] + host_w
        in_use[r] += n


@njit(cache=True, inline="always")
def book_regional_cap(power, cap_w, excess, step_s):
    """Each region's power cap against the fleet's power there at the end of the step: ``excess`` (R,) W over,
    returns ``(regions over, excess W)``; the caller books ``step_s`` x each (seconds over, J over)."""
    n_over = 0
    for r in range(power.shape[0]):
        x = power[r] - cap_w[r]
        excess[r] = x if x > 0.0 else 0.0  # np.maximum(x, 0.0) for a number
        if excess[r] > 0:
            n_over += 1
    return n_over
