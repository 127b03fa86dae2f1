"""Array-state core: the one simulation engine, N environments x J jobs stepped by one compiled loop.

State lives in two arrays with named columns (:class:`CoreState`): floats ``(n_envs, n_jobs, N_FLOAT)`` and
ints ``(n_envs, n_jobs, N_INT)``; accounting is ``(n_envs, n_jobs, n_metrics)`` with the columns of
``METRICS``. The tables fixed for a scenario (:class:`StaticTables`) and for an episode
(:class:`EpisodeArrays`) are separate, read-only to the step. :class:`Batch` holds them together with each
environment's generator; ``CarbonMigration-v0`` is a batch of one (``sim.simulator.Simulator`` reads and writes
its row by name), the vector environment a batch of N.

``advance`` runs, for every listed environment, the event loop of the model (the physics is described in
``sim/simulator.py``). It reproduces, bit for bit, the scalar simulator it replaced (``tests/test_golden.py``:
whole episodes recorded before the redesign; ``tests/test_vector_env.py``: env ``i`` of a batch equals a batch
of one seeded ``s + i``). It is compiled with numba (``cache=True``: the first use on a machine compiles for
about 30 s of CPU, later processes load the cached machine code in well under a second).
Random draws come from each environment's own ``numpy.random.Generator``, in the model's order:
``rng.random()`` (a transfer-failure coin and time) is called inside the compiled loop through the bit
generator's C ``next_double`` (``sim.rng``: the generator passed as addresses), which is what
``Generator.random()`` calls; for the rare draw with another distribution (the next GPU-failure time,
``rng.exponential``) the kernel parks the environment (``I_PEND``) and the caller draws it in Python and calls
``advance`` again on the parked ones.

Jobs are independent today (each job of an environment sees the whole free pool); sharing GPUs between jobs
is the multi-job fleet's business (issue 8). The gym environments use ``n_jobs = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from sim import rules
from sim.episode import EpisodeDraw, draw_rows
from sim.errors import ConfigError
from sim.rng import integers, random, rng_handles
from sim.rules import WAIT
from sim.states import Event, State, check_transition
from sim.tables import PARAMS, EpisodeArrays, EpisodeTables, StaticTables  # noqa: F401  (the tables the core reads)

# ---------------------------------------------------------------- accounting columns (CoreState.step_acc / episode_acc)

METRICS = (
    "it_energy_kwh",
    "facility_energy_kwh",
    "operational_carbon_g",
    "transfer_energy_kwh",
    "transfer_carbon_g",
    "gpu_hours",
    "minibatches_done",
    "lost_minibatches",
    "rollbacks",
    "migrations",
    "transfers",
    "transfer_failures",
    "transfer_gb",
    "transfer_s",
    "egress_usd",
    "cap_violations",
    "cap_violation_s",
    "cap_excess_j",
    "gpu_failures",
    "outage_faults",
    "preemptions",
    "lateness_h",
    "host_energy_kwh",
    "embodied_carbon_g",
    "checkpoint_stall_s",
) + tuple(f"time_{s.name.lower()}_s" for s in State)
M = {name: i for i, name in enumerate(METRICS)}


class Metrics(Mapping):
    """Read-only ``{metric name: value}`` view of one accounting row (a list), plus ``carbon_g`` (operational +
    transfer). One object, not a 30-entry dict per step; keep a copy of the row if the row is reused."""

    __slots__ = ("_acc",)
    KEYS = METRICS + ("carbon_g",)

    def __init__(self, acc):
        self._acc = acc

    def __getitem__(self, key: str) -> float:
        if key == "carbon_g":
            return self._acc[_OPC] + self._acc[_TXC]
        return self._acc[M[key]]

    def __iter__(self):
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return repr(dict(self))


# ---------------------------------------------------------------- state layout (columns of CoreState.f / .i)

FLOAT_FIELDS = (
    ("t_s", "s", "simulated time since the episode start"),
    ("progress_mb", "mini-batches", "work done (since the last rollback)"),
    ("ckpt_mb", "mini-batches", "progress in the last durable checkpoint"),
    ("phase_end_s", "s", "end of the current timed phase (checkpoint write, transfer, restore)"),
    ("xfer_fail_at_s", "s", "when the transfer in flight fails (inf: it does not)"),
    ("completed_at_s", "s", "completion time (inf until completed)"),
    ("power_w", "W", "GPU board power drawn at the end of the last step"),
    ("fail_left_gpu_h", "GPU-h", "GPU-hours of running left until the next GPU failure"),
    ("t_end_s", "s", "end of the decision step being simulated"),
    ("draw", "-", "random number handed in for a parked draw"),
)
INT_FIELDS = (
    ("k", "-", "decision steps taken"),
    ("state", "-", "scheduler state (sim.states.State)"),
    ("region", "-", "region index holding the job or its checkpoint"),
    ("dest", "-", "destination of the current or last migration"),
    ("n_gpus", "GPUs", "GPUs held"),
    ("level", "-", "clock level index chosen"),
    ("after_suspend", "-", "where a suspending job goes next (-1 = stay paused)"),
    ("draining", "bool", "finishing the mini-batch in flight before a checkpoint"),
    ("violating", "bool", "over the power cap at the end of the last piece"),
    ("stage", "-", "0: next call starts a step; 1: inside a step (parked on a draw)"),
    ("pend", "-", "parked on a draw: 0 none, 1 the next GPU failure time"),
    ("error", "-", "an illegal transition src * 8 + dst + 1 (0: none)"),
    ("n_trans", "-", "transitions since the last handler began (the first 3 kept below, for the log)"),
    ("trans_0", "-", "a transition src * 8 + dst"),
    ("trans_1", "-", "the next transition"),
    ("trans_2", "-", "the next transition"),
)
for _j, (_name, _unit, _doc) in enumerate(FLOAT_FIELDS):
    globals()["F_" + _name.upper()] = _j
for _j, (_name, _unit, _doc) in enumerate(INT_FIELDS):
    globals()["I_" + _name.upper()] = _j
N_FLOAT, N_INT = len(FLOAT_FIELDS), len(INT_FIELDS)
# explicit names for the compiled code and linters (the loops above define the same values)
(F_T_S, F_PROGRESS_MB, F_CKPT_MB, F_PHASE_END_S, F_XFER_FAIL_AT_S, F_COMPLETED_AT_S, F_POWER_W) = range(7)
(F_FAIL_LEFT_GPU_H, F_T_END_S, F_DRAW) = range(7, 10)
(I_K, I_STATE, I_REGION, I_DEST, I_N_GPUS, I_LEVEL, I_AFTER_SUSPEND, I_DRAINING, I_VIOLATING) = range(9)
(I_STAGE, I_PEND, I_ERROR, I_N_TRANS, I_TRANS_0) = range(9, 14)
_TRANS_SLOTS = 3  # a handler makes at most two transitions (e.g. Recovering -> Scaling -> Tolerance)
PEND_NONE, PEND_GPU_FAILURE, PEND_LOG = 0, 1, 2  # parked: not, on a GPU-failure draw, on a full piece log
SEGMENT_FIELDS = ("t_s", "dt_s", "region", "state", "gpu_w", "n_gpus", "dest")  # a logged piece (Batch.segments)

N_METRICS = len(METRICS)
_M = {name: j for j, name in enumerate(METRICS)}
(_IT, _FAC, _OPC, _TXE, _TXC, _GPUH, _DONE, _LOST, _RB, _MIG, _TX, _TXF, _TXGB, _TXS, _EGR) = range(15)
(_CAPN, _CAPS, _CAPJ, _GPUF, _OUTF, _PRE, _LATE, _HOST, _EMB, _STALL) = range(15, 25)
assert METRICS[_STALL] == "checkpoint_stall_s" and METRICS[_GPUF] == "gpu_failures"
_TIME0 = _M["time_queued_s"]

_QUEUED, _TOLERANCE, _SUSPEND, _MIGRATION, _SCALING, _WAITING, _RECOVERING, _COMPLETED = (int(s) for s in State)
_EV_NONE, _EV_PHASE_END, _EV_COMPLETION, _EV_BOUNDARY = (
    int(Event.NONE),
    int(Event.PHASE_END),
    int(Event.COMPLETION),
    int(Event.MINIBATCH_BOUNDARY),
)
_EV_GPU_FAILURE, _EV_TRANSFER_FAILURE, _EV_OUTAGE = (
    int(Event.GPU_FAILURE),
    int(Event.TRANSFER_FAILURE),
    int(Event.OUTAGE),
)
_S_PER_H = 3600.0
_J_PER_KWH = 3.6e6
_EPS_S = 1e-9
_WAIT = WAIT
_AHEAD = 4  # environments ahead whose table entries are prefetched (a step of one takes ~100 ns)

(_P_STEP, _P_HORIZON, _P_NSTEPS, _P_NHOURS, _P_TOTAL, _P_CKPT_INT, _P_REQ, _P_GROUP, _P_ELASTIC) = range(9)
(_P_IO, _P_RESTORE, _P_STALL, _P_XKWH, _P_DEADLINE, _P_CKPT_GB, _P_THROTTLE, _P_XFAIL) = range(9, 17)


class CoreState:
    """Mutable state of ``n_envs`` environments x ``n_jobs`` jobs (Jumanji-style: arrays with an env and a job axis).

    ``f``: float64 ``(n_envs, n_jobs, N_FLOAT)``, ``i``: int64 ``(n_envs, n_jobs, N_INT)``; each column is
    available by name as an ``(n_envs, n_jobs)`` view (``state.t_s``, ``state.region``, ...):

    {fields}

    ``step_acc`` / ``episode_acc``: float64 ``(n_envs, n_jobs, n_metrics)``, this step's and this episode's
    accounting, columns ``sim.simulator.METRICS`` (units in the names).
    """

    def __init__(self, n_envs: int, n_jobs: int = 1):
        self.n_envs, self.n_jobs = n_envs, n_jobs
        self.f = np.zeros((n_envs, n_jobs, N_FLOAT))
        self.i = np.zeros((n_envs, n_jobs, N_INT), dtype=np.int64)
        self.step_acc = np.zeros((n_envs, n_jobs, N_METRICS))
        self.episode_acc = np.zeros((n_envs, n_jobs, N_METRICS))


CoreState.__doc__ = CoreState.__doc__.format(
    fields="\n    ".join(
        [f"- ``{n}`` (float, {u}): {d}" for n, u, d in FLOAT_FIELDS]
        + [f"- ``{n}`` (int, {u}): {d}" for n, u, d in INT_FIELDS]
    )
)
for _j, (_name, _unit, _doc) in enumerate(FLOAT_FIELDS):
    setattr(CoreState, _name, property(lambda self, j=_j: self.f[:, :, j], doc=f"{_doc} [{_unit}]"))
for _j, (_name, _unit, _doc) in enumerate(INT_FIELDS):
    setattr(CoreState, _name, property(lambda self, j=_j: self.i[:, :, j], doc=f"{_doc} [{_unit}]"))


# ---------------------------------------------------------------- compiled physics (one env, one job at a time)


@njit(cache=True, inline="always")
def _down(os_, oe, no, r, t):
    for j in range(no[r]):
        if os_[r, j] <= t < oe[r, j]:
            return True
    return False


@intrinsic
def _prefetch(typingctx, arr, idx):
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
def _floor_div(x, m):
    """``int(x // m)`` for a float 0 <= x < 2**53 and an integral m > 0, without the ``fmod`` call numba's ``//``
    makes (a C call per use): the rounded ``x / m`` is the floor or one above it, and ``n * m`` is exact."""
    n = int(x / m)
    if n * m > x:
        n -= 1
    return n


@njit(cache=True, inline="always")
def _mod(x, m):
    """``x % m`` for the same x and m, the same float: ``fmod``'s result is representable, so ``x - n * m`` is exact."""
    return x - _floor_div(x, m) * m


# the shared rules (sim/rules.py), compiled from the same source
usable_gpus = njit(cache=True, inline="always")(rules.usable_gpus)
continue_target = njit(cache=True, inline="always")(rules.continue_target)
level_under_cap = njit(cache=True, inline="always")(rules.level_under_cap)


@njit(cache=True, inline="always")
def _usable(free, P):
    return usable_gpus(free, int(P[_P_REQ]), int(P[_P_GROUP]), P[_P_ELASTIC] != 0.0)


@njit(cache=True, inline="always")
def _free_gpus(fr, os_, oe, no, r, t, k, P):
    if _down(os_, oe, no, r, t):
        return 0
    n_steps = int(P[_P_NSTEPS])
    return fr[r, k if k < n_steps else n_steps]


@njit(cache=True, inline="always")
def _go(iv, new, allowed):
    s = iv[I_STATE]
    if not allowed[s, new]:
        if iv[I_ERROR] == 0:
            iv[I_ERROR] = s * 8 + new + 1
    m = iv[I_N_TRANS]
    if m < _TRANS_SLOTS:  # kept for the transition log (read only when logging)
        iv[I_TRANS_0 + m] = s * 8 + new
        iv[I_N_TRANS] = m + 1
    iv[I_STATE] = new


@njit(cache=True, inline="always")
def _start_running(fv, iv, fr, os_, oe, no, P, allowed):
    n = _usable(_free_gpus(fr, os_, oe, no, iv[I_REGION], fv[F_T_S], iv[I_K], P), P)
    if n == 0:
        if iv[I_STATE] != _WAITING:
            _go(iv, _WAITING, allowed)
        iv[I_N_GPUS] = 0
        return
    iv[I_N_GPUS] = n
    _go(iv, _SCALING, allowed)
    fv[F_PHASE_END_S] = fv[F_T_S] + P[_P_RESTORE]


@njit(cache=True, inline="always")
def _start_migration(fv, iv, acc, dst, xfer_s, P, allowed, rng_fns, rng_state):
    _go(iv, _MIGRATION, allowed)
    iv[I_N_GPUS] = 0
    iv[I_DEST] = dst
    dur = xfer_s[iv[I_REGION], dst]
    fv[F_PHASE_END_S] = fv[F_T_S] + dur
    fv[F_XFER_FAIL_AT_S] = math.inf
    p = P[_P_XFAIL]
    if p > 0 and random(rng_fns, rng_state) < p:  # rng.random() of the env's generator, twice if it fails
        fv[F_XFER_FAIL_AT_S] = fv[F_T_S] + random(rng_fns, rng_state) * dur
    acc[_MIG] += 1


@njit(cache=True, inline="always")
def _suspend(fv, iv, P, allowed):
    _go(iv, _SUSPEND, allowed)
    iv[I_DRAINING] = 0
    fv[F_PHASE_END_S] = fv[F_T_S] + P[_P_IO]


@njit(cache=True, inline="always")
def _fault(fv, iv, acc, slot, fr, os_, oe, no, P, allowed):
    acc[slot] += 1
    interval = P[_P_CKPT_INT]
    progress = fv[F_PROGRESS_MB]
    durable = math.floor(progress / interval) * interval
    ck = fv[F_CKPT_MB]
    if ck >= durable:
        durable = ck
    lost = progress - durable
    if lost > 0:
        acc[_LOST] += lost
        acc[_RB] += 1
    fv[F_PROGRESS_MB] = durable
    fv[F_CKPT_MB] = durable
    iv[I_DRAINING] = 0
    if iv[I_STATE] != _RECOVERING:
        _go(iv, _RECOVERING, allowed)
    region, t, k = iv[I_REGION], fv[F_T_S], iv[I_K]
    free_now = _free_gpus(fr, os_, oe, no, region, t, k, P)
    if slot == _GPUF:
        spare = free_now - iv[I_N_GPUS]
        n = iv[I_N_GPUS] - (0 if spare > 0 else 1)
        u = _usable(free_now, P)
        if u < n:
            n = u
        iv[I_N_GPUS] = n - n % int(P[_P_GROUP])
    else:
        iv[I_N_GPUS] = _usable(free_now, P)
    if iv[I_N_GPUS] <= 0:
        iv[I_N_GPUS] = 0
        _go(iv, _WAITING, allowed)
    else:
        fv[F_PHASE_END_S] = t + P[_P_RESTORE]


@njit(cache=True, inline="always")
def _decide(fv, iv, acc, target, level, fr, os_, oe, no, xfer_s, P, allowed, rng_fns, rng_state):
    s = iv[I_STATE]
    if s == _COMPLETED:
        return
    if s == _TOLERANCE:
        if target == iv[I_REGION]:
            iv[I_DRAINING] = 0
            n = _usable(_free_gpus(fr, os_, oe, no, iv[I_REGION], fv[F_T_S], iv[I_K], P), P)
            if n < iv[I_N_GPUS]:
                _fault(fv, iv, acc, _PRE, fr, os_, oe, no, P, allowed)
            elif level != iv[I_LEVEL] or n != iv[I_N_GPUS]:
                _go(iv, _SCALING, allowed)
                iv[I_N_GPUS] = n
                iv[I_LEVEL] = level
                _go(iv, _TOLERANCE, allowed)
            return
        iv[I_AFTER_SUSPEND] = target
        iv[I_LEVEL] = level
        p = fv[F_PROGRESS_MB]
        if p == math.floor(p):
            _suspend(fv, iv, P, allowed)
        else:
            iv[I_DRAINING] = 1
        return
    iv[I_LEVEL] = level
    if s == _WAITING or s == _QUEUED:
        if target == _WAIT:
            if s == _QUEUED:
                _go(iv, _WAITING, allowed)
        elif target == iv[I_REGION]:
            _start_running(fv, iv, fr, os_, oe, no, P, allowed)
        else:
            _start_migration(fv, iv, acc, target, xfer_s, P, allowed, rng_fns, rng_state)


@njit(cache=True, inline="always")
def _handle(fv, iv, acc, event, fr, os_, oe, no, xfer_s, egress, P, allowed, rng_fns, rng_state):
    """Apply one event (``sim.states.Event``); a GPU failure parks for its draw instead."""
    if event == _EV_OUTAGE:
        _fault(fv, iv, acc, _OUTF, fr, os_, oe, no, P, allowed)
    elif event == _EV_TRANSFER_FAILURE:  # the checkpoint is still at the source
        acc[_TXF] += 1
        _go(iv, _RECOVERING, allowed)
        fv[F_XFER_FAIL_AT_S] = math.inf
        iv[I_N_GPUS] = _usable(_free_gpus(fr, os_, oe, no, iv[I_REGION], fv[F_T_S], iv[I_K], P), P)
        if iv[I_N_GPUS] == 0:
            _go(iv, _WAITING, allowed)
        else:
            fv[F_PHASE_END_S] = fv[F_T_S] + P[_P_RESTORE]
    elif event == _EV_GPU_FAILURE:
        iv[I_PEND] = PEND_GPU_FAILURE  # the caller draws the next failure time, then the fault is applied
    elif event == _EV_BOUNDARY:
        fv[F_PROGRESS_MB] = float(np.rint(fv[F_PROGRESS_MB]))
        _suspend(fv, iv, P, allowed)
    elif event == _EV_COMPLETION:
        fv[F_PROGRESS_MB] = P[_P_TOTAL]
        fv[F_COMPLETED_AT_S] = fv[F_T_S]
        _go(iv, _COMPLETED, allowed)
        iv[I_N_GPUS] = 0
    else:  # a timed phase ends
        s = iv[I_STATE]
        if s == _SUSPEND:
            fv[F_CKPT_MB] = fv[F_PROGRESS_MB]
            iv[I_N_GPUS] = 0
            dst = iv[I_AFTER_SUSPEND]
            if dst == _WAIT or dst == iv[I_REGION]:
                _go(iv, _WAITING, allowed)
            else:
                _start_migration(fv, iv, acc, dst, xfer_s, P, allowed, rng_fns, rng_state)
        elif s == _MIGRATION:
            acc[_TX] += 1
            acc[_TXGB] += P[_P_CKPT_GB]
            acc[_EGR] += egress[iv[I_REGION], iv[I_DEST]]
            iv[I_REGION] = iv[I_DEST]
            _start_running(fv, iv, fr, os_, oe, no, P, allowed)
        elif s == _SCALING or s == _RECOVERING:
            if s == _RECOVERING:
                _go(iv, _SCALING, allowed)
            _go(iv, _TOLERANCE, allowed)


@njit(cache=True, inline="always")
def _log_transitions(iv, t, log, n_log, i):
    """Append the transitions kept in ``iv`` since ``I_N_TRANS`` was cleared as ``(t_s, src, dst)`` rows."""
    m = iv[I_N_TRANS]
    for q in range(m if m < _TRANS_SLOTS else _TRANS_SLOTS):
        code = iv[I_TRANS_0 + q]
        row = log[n_log[i]]
        row[0], row[1], row[2] = t, code // 8, code % 8
        n_log[i] += 1
    iv[I_N_TRANS] = 0


@njit(cache=True, inline="always")
def _piece(fv, iv, t, t_end, h, s, r, n, work_mult, throttle, cap_w_now, P, t_mb_s_r, p_gpu_w_r, idle_w_r,
           host_busy_w_r, host_idle_w_r, speed, os_, no):  # fmt: skip
    """The next piece of a step from ``t`` (s): it ends at the hour's or the step's end or at the first event.

    Returns ``dt`` (s), the event ending it (``_EV_NONE``: none), and the rates over it: board power at the
    clock ``power_w``, GPU power with the checkpoint stall's idle share ``gpu_w``, host power ``host_w`` (W),
    the stalled fraction of the time and the progress ``rate`` (mini-batches/s). Shared by ``advance`` and the
    fleet loop (``sim.fleet_core``), which passes a work multiplier of 1 and no throttle.
    """
    dt = (h + 1) * _S_PER_H
    dt = (t_end if t_end <= dt else dt) - t
    event = _EV_NONE
    power_w = 0.0
    gpu_w = 0.0
    host_w = 0.0
    stall_frac = 0.0
    rate = 0.0
    if s == _TOLERANCE:
        lvl = iv[I_LEVEL]
        if throttle:
            lvl = level_under_cap(p_gpu_w_r, n, cap_w_now, lvl)
        p_l = p_gpu_w_r[lvl]
        power_w = n * p_l
        stall_mb_s = P[_P_STALL]
        compute_s = work_mult * t_mb_s_r[lvl] / speed[n]
        per_mb_s = compute_s + stall_mb_s
        rate = 1.0 / per_mb_s
        if stall_mb_s > 0.0:
            stall_frac = stall_mb_s / per_mb_s
            gpu_w = power_w + n * (idle_w_r - p_l) * stall_frac
        else:
            gpu_w = power_w
        host_w = n * host_busy_w_r
        progress = fv[F_PROGRESS_MB]
        if iv[I_DRAINING] != 0:
            fl = math.floor(progress)
            goal = progress if progress == fl else fl + 1.0
            done_event = _EV_BOUNDARY
        else:
            goal = P[_P_TOTAL]
            done_event = _EV_COMPLETION
        d = (goal - progress) / rate
        if d <= dt:
            dt, event = d, done_event
        d = fv[F_FAIL_LEFT_GPU_H] * _S_PER_H / n
        if d < dt:
            dt, event = d, _EV_GPU_FAILURE
    elif s == _SUSPEND or s == _SCALING or s == _RECOVERING:
        power_w = n * idle_w_r
        gpu_w = power_w
        host_w = n * host_idle_w_r
        d = fv[F_PHASE_END_S] - t
        if d <= dt:
            dt, event = d, _EV_PHASE_END
    elif s == _MIGRATION:
        d = fv[F_PHASE_END_S] - t
        if d <= dt:
            dt, event = d, _EV_PHASE_END
        d = fv[F_XFER_FAIL_AT_S] - t
        if d < dt:
            dt, event = d, _EV_TRANSFER_FAILURE
    if n > 0:
        for jo in range(no[r]):
            start = os_[r, jo]
            if t <= start < t + dt:
                dt, event = start - t, _EV_OUTAGE
                break
    if dt < 0.0:
        dt = 0.0
    return dt, event, power_w, gpu_w, host_w, stall_frac, rate


@njit(cache=True, inline="always")
def _book_piece(fv, iv, acc, t, dt, h, s, r, n, power_w, gpu_w, host_w, stall_frac, rate, ci_i, cap_w_now, pue_r,
                emb_g_r, xfer_s, P):  # fmt: skip
    """Account a piece of ``dt`` s from ``t`` (energy, carbon at the hour's intensity ``ci_i[r, h]``, progress,
    cap violation, transfer, lateness, time in state) and move the clock; returns the new time (s)."""
    ci_now = ci_i[r, h]
    if power_w > 0.0:
        it_kwh = (gpu_w + host_w) * dt / _J_PER_KWH
        fac_kwh = it_kwh * pue_r
        c_g = fac_kwh * ci_now
        gpu_h = n * dt / _S_PER_H
        acc[_IT] += it_kwh
        acc[_FAC] += fac_kwh
        acc[_OPC] += c_g
        acc[_GPUH] += gpu_h
        acc[_HOST] += host_w * dt / _J_PER_KWH
        acc[_EMB] += gpu_h * emb_g_r
        if s == _TOLERANCE:
            acc[_STALL] += dt * stall_frac
            done = rate * dt
            fv[F_PROGRESS_MB] += done
            fv[F_FAIL_LEFT_GPU_H] -= gpu_h
            over = power_w > cap_w_now
            if over:
                acc[_CAPS] += dt
                acc[_CAPJ] += (power_w - cap_w_now) * dt
                if iv[I_VIOLATING] == 0:
                    acc[_CAPN] += 1
            iv[I_VIOLATING] = 1 if over else 0
            acc[_DONE] += done
    elif s == _MIGRATION:
        dest = iv[I_DEST]
        tx_kwh = P[_P_XKWH] * dt / xfer_s[r, dest]
        acc[_TXE] += tx_kwh
        acc[_TXC] += tx_kwh * 0.5 * (ci_now + ci_i[dest, h])
        acc[_TXS] += dt
    t_next = t + dt
    deadline_s = P[_P_DEADLINE]
    if t_next > deadline_s:
        c_at = fv[F_COMPLETED_AT_S]
        late = (t_next if t_next <= c_at else c_at) - (t if t >= deadline_s else deadline_s)
        if late > 0:
            acc[_LATE] += late / _S_PER_H
    acc[_TIME0 + s] += dt
    fv[F_POWER_W] = power_w
    fv[F_T_S] = t_next
    return t_next


@njit(cache=True, inline="always")
def _end_step(fv, iv, acc, ea):
    """Book a finished decision step: its accounting into the episode's ``ea``, power off unless the job holds
    GPUs, the step counter on. Returns 1 if the step hit an illegal transition, else 0. Shared with the fleet loop."""
    for m in range(acc.shape[0]):
        ea[m] = ea[m] + acc[m]
    s = iv[I_STATE]
    if s != _TOLERANCE:
        iv[I_VIOLATING] = 0
        if s != _SUSPEND and s != _SCALING and s != _RECOVERING:
            fv[F_POWER_W] = 0.0
    iv[I_K] += 1
    iv[I_STAGE] = 0
    return 1 if iv[I_ERROR] != 0 else 0


# _nrt=False: compiled without numba's reference counting (nothing here allocates). With it, every view taken per
# environment (f[i, j], free[i], t_mb_s[r], ...) costs an atomic incref/decref pair that numba's refcount pruning
# does not remove once the helpers are inlined: ~150 of ~230 ns per env and step (N = 1024). numba's own string
# helpers use the same flag.
@njit(cache=True, _nrt=False)
def advance(
    envs,
    targets,
    levels,
    f,
    iv_all,
    step_acc,
    ep_acc,
    ci,
    cap_w,
    work,
    free,
    o_start,
    o_end,
    n_out,
    T,
    P,
    allowed,
    rng_fns,
    rng_states,
    seg,
    n_seg,
    trans,
    n_trans,
):
    """Advance each environment in ``envs`` (job 0..J-1) by one decision step or, if it is parked, from the parked
    point (on a GPU-failure draw: with ``f[..., F_DRAW]``). Returns how many are parked now and how many hit an
    illegal transition (``I_ERROR``).

    Logging is on when ``seg`` has room (``(n_envs, capacity, 7)``, fields ``SEGMENT_FIELDS``): every piece is
    appended at ``seg[i, n_seg[i]]`` and every transition as ``(t_s, src, dst)`` at ``trans[i, n_trans[i]]``; an
    environment whose log is full parks (``PEND_LOG``) for the caller to grow it. Logging assumes one job. When
    some of an environment's jobs park, the others finish their step; the resuming call steps only the parked ones.
    Off (capacity 0), it costs one test per piece."""
    parked = 0
    errors = 0
    logging = seg.shape[1] > 0
    pue, p_gpu_w, t_mb_s, idle_w, host_busy_w, host_idle_w, emb_g, speed, xfer_s, egress = T
    n_steps = int(P[_P_NSTEPS])
    for e in range(envs.shape[0]):
        i = envs[e]
        if e + _AHEAD < envs.shape[0]:  # the episode-table entries a later env's step will read first
            i2 = envs[e + _AHEAD]
            k2, h2 = iv_all[i2, 0, I_K], _floor_div(f[i2, 0, F_T_S], _S_PER_H)
            _prefetch(ci, (i2, iv_all[i2, 0, I_REGION], h2))
            _prefetch(ci, (i2, iv_all[i2, 0, I_DEST], h2))
            if targets[i2] >= 0:  # where a migration decided now goes (its transfer books both intensities)
                _prefetch(ci, (i2, targets[i2], h2))
            _prefetch(cap_w, (i2, h2))
            _prefetch(work, (i2, k2))
            _prefetch(free, (i2, iv_all[i2, 0, I_REGION], k2 if k2 < n_steps else n_steps))
        # a call that resumes an env's parked jobs must not start another step for its jobs that finished theirs
        resuming = False
        for j in range(f.shape[1]):
            if iv_all[i, j, I_PEND] != PEND_NONE:
                resuming = True
        for j in range(f.shape[1]):
            fv, iv, acc = f[i, j], iv_all[i, j], step_acc[i, j]
            fr, os_, oe, no = free[i], o_start[i], o_end[i], n_out[i]
            if iv[I_STAGE] == 0 and resuming:
                continue
            if iv[I_STAGE] == 0:  # a new step: fresh accounting, then the decision
                acc[:] = 0.0
                t_end = fv[F_T_S] + P[_P_STEP]
                if P[_P_HORIZON] < t_end:
                    t_end = P[_P_HORIZON]
                fv[F_T_END_S] = t_end
                iv[I_STAGE] = 1
                iv[I_N_TRANS] = 0
                _decide(fv, iv, acc, targets[i], levels[i], fr, os_, oe, no, xfer_s, P, allowed, rng_fns, rng_states[i])
                if logging:
                    _log_transitions(iv, fv[F_T_S], trans[i], n_trans, i)
            elif iv[I_PEND] == PEND_GPU_FAILURE:  # resume: the next failure time was drawn, now the fault
                iv[I_PEND] = PEND_NONE
                fv[F_FAIL_LEFT_GPU_H] = fv[F_DRAW]
                iv[I_N_TRANS] = 0
                _fault(fv, iv, acc, _GPUF, fr, os_, oe, no, P, allowed)
                if logging:
                    _log_transitions(iv, fv[F_T_S], trans[i], n_trans, i)
            else:  # resume after the log was grown
                iv[I_PEND] = PEND_NONE
            # the event loop from the current time to the step's end (or until parked): pieces from _piece,
            # booked by _book_piece (both inlined by numba, shared with the fleet loop)
            parked_now = False
            t_end = fv[F_T_END_S]
            t_stop = t_end - _EPS_S
            throttle = P[_P_THROTTLE] != 0.0
            t = fv[F_T_S]
            s = iv[I_STATE]
            while t < t_stop and s != _COMPLETED:
                if logging and (n_seg[i] >= seg.shape[1] or n_trans[i] + _TRANS_SLOTS > trans.shape[1]):
                    iv[I_PEND] = PEND_LOG  # room for this piece and its event's transitions first
                    parked_now = True
                    break
                r = iv[I_REGION]
                h = _floor_div(t, _S_PER_H)
                n = iv[I_N_GPUS]
                dt, event, power_w, gpu_w, host_w, stall_frac, rate = _piece(
                    fv, iv, t, t_end, h, s, r, n, work[i, iv[I_K]], throttle, cap_w[i, h], P, t_mb_s[r], p_gpu_w[r],
                    idle_w[r], host_busy_w[r], host_idle_w[r], speed, os_, no,
                )  # fmt: skip
                if logging:
                    row = seg[i, n_seg[i]]
                    row[0], row[1], row[2], row[3], row[4], row[5], row[6] = t, dt, r, s, gpu_w, n, iv[I_DEST]
                    n_seg[i] += 1
                t = _book_piece(
                    fv, iv, acc, t, dt, h, s, r, n, power_w, gpu_w, host_w, stall_frac, rate, ci[i], cap_w[i, h],
                    pue[r], emb_g[r], xfer_s, P,
                )  # fmt: skip
                if event != _EV_NONE:
                    iv[I_N_TRANS] = 0
                    _handle(fv, iv, acc, event, fr, os_, oe, no, xfer_s, egress, P, allowed, rng_fns, rng_states[i])
                    if logging:
                        _log_transitions(iv, t, trans[i], n_trans, i)
                    if iv[I_PEND] != PEND_NONE:
                        parked_now = True
                        break
                    s = iv[I_STATE]
            if parked_now:
                parked += 1
                continue
            errors += _end_step(fv, iv, acc, ep_acc[i, j])  # the step is over: book it
    return parked, errors


@njit(cache=True)
def begin_rows(rows, starts, n_start, fns, states, D, shift_hod, pw, qz, qf, pools, pools_gpus, cap_hod, work_hod,
               ci_all, ep_ci, ep_cap, ep_work, ep_free, o_start, o_end, n_out, f, iv_all, step_acc, ep_acc, f0, i0,
               n_seg, n_trans):  # fmt: skip
    """``sim.episode.draw_rows`` for ``rows``, a negative start hour first drawn as ``rng.integers(0, n_start)``
    (written back into ``starts``); then their state rows reset (every job Queued at home with ``f0`` / ``i0``, the
    drawn GPU-hours to the first failure, no accounting, empty logs). Returns the outage arrays."""
    for e in range(rows.shape[0]):
        if starts[e] < 0:  # rows draw their own start hours: one row's draws never touch another's generator
            starts[e] = integers(fns, states[rows[e]], n_start)
    fail = np.empty(f.shape[0])
    o_start, o_end = draw_rows(rows, starts, fns, states, D, shift_hod, pw, qz, qf, pools, pools_gpus, cap_hod,
                               work_hod, ci_all, ep_ci, ep_cap, ep_work, ep_free, o_start, o_end, n_out,
                               fail)  # fmt: skip
    for e in range(rows.shape[0]):
        i = rows[e]
        for j in range(f.shape[1]):
            f[i, j] = f0
            f[i, j, F_FAIL_LEFT_GPU_H] = fail[i]
            iv_all[i, j] = i0
            step_acc[i, j] = 0.0
            ep_acc[i, j] = 0.0
        n_seg[i] = 0
        n_trans[i] = 0
    return o_start, o_end


# ---------------------------------------------------------------- the engine: N environments of one scenario


class Batch:
    """``n_envs`` environments x ``n_jobs`` jobs of one scenario on the compiled core: the scenario's
    :class:`StaticTables`, each environment's episode tables (:class:`EpisodeArrays`), the state
    (:class:`CoreState`) and each environment's ``numpy.random.Generator``. The single environment is
    ``n_envs = 1`` (``sim.simulator.Simulator`` is a view of one row), the vector environment ``n_envs = N``.

    Optional log (``set_logging(True)``): every piece of simulated time of every environment as a row of
    ``SEGMENT_FIELDS`` and every scheduler transition as ``(t_s, src, dst)``, for tests that recompute the
    accounting from the pieces; off by default (one test per piece in the compiled loop).
    """

    _LOG_ROOM = 64  # free log rows ensured before each step (a step adds a few; a full log parks and grows)

    def __init__(self, tables: StaticTables, n_envs: int, n_jobs: int = 1):
        self.tables = tables
        self.n_envs = n_envs
        self.core = CoreState(n_envs, n_jobs)
        self.episodes = EpisodeArrays(n_envs, tables)
        self.T = (
            tables.pue,
            tables.p_gpu_w,
            tables.t_mb_s,
            tables.idle_w,
            tables.host_busy_w,
            tables.host_idle_w,
            tables.embodied_g_per_gpu_h,
            tables.speed,
            tables.xfer_s,
            tables.egress_usd,
        )
        self.rngs: list[np.random.Generator | None] = [None] * n_envs
        self.rng_states = np.zeros(n_envs, dtype=np.uint64)
        self.rng_fns: np.ndarray | None = None
        lam = tables.gpu_failure_per_gpu_hour
        self.gpu_failure_scale = 1.0 / lam if lam > 0 else math.inf
        # a fresh episode's state row: Queued at home, top clock level, nothing done, no phase or failure pending
        self.f0 = np.zeros(N_FLOAT)
        self.f0[[F_PHASE_END_S, F_XFER_FAIL_AT_S, F_COMPLETED_AT_S]] = math.inf
        self.i0 = np.zeros(N_INT, dtype=np.int64)
        home = tables.home
        self.i0[[I_STATE, I_REGION, I_DEST, I_LEVEL, I_AFTER_SUSPEND]] = (
            _QUEUED,
            home,
            home,
            tables.n_levels - 1,
            home,
        )
        self.seg = np.zeros((n_envs, 0, len(SEGMENT_FIELDS)))
        self.trans = np.zeros((n_envs, 0, 3))
        self.n_seg = np.zeros(n_envs, dtype=np.int64)
        self.n_trans = np.zeros(n_envs, dtype=np.int64)
        self.stamp = 0  # counts steps and starts (lets readers cache what they derived from the state)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["rng_fns"] = None  # C function addresses: taken again from the generators after a copy
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for i, rng in enumerate(self.rngs):
            if rng is not None:  # the copied generators live elsewhere: their state addresses are new
                self.rng_fns, self.rng_states[i] = rng_handles(rng)

    @property
    def logging(self) -> bool:
        return self.seg.shape[1] > 0

    def set_logging(self, on: bool) -> None:
        """Log pieces and transitions from now on (``on``), or stop; the logs restart at the next ``start``."""
        cap = self._LOG_ROOM * 4 if on else 0
        self.seg = np.zeros((self.n_envs, cap, len(SEGMENT_FIELDS)))
        self.trans = np.zeros((self.n_envs, cap, 3))
        self.n_seg[:] = 0
        self.n_trans[:] = 0

    def _grow_logs(self) -> None:
        cap = self.seg.shape[1]
        if (self.n_seg.max() + self._LOG_ROOM > cap) or (self.n_trans.max() + self._LOG_ROOM > self.trans.shape[1]):
            self.seg = np.concatenate([self.seg, np.zeros_like(self.seg)], axis=1)
            self.trans = np.concatenate([self.trans, np.zeros_like(self.trans)], axis=1)

    def set_rng(self, i: int, rng: np.random.Generator) -> None:
        """Row ``i`` draws its randomness from ``rng`` from now on (its episodes, transfer failures, GPU failures)."""
        if rng is self.rngs[i]:  # the same generator as last episode: its addresses are known
            return
        self.rngs[i] = rng
        fns, self.rng_states[i] = rng_handles(rng)  # a few us, once per generator
        if self.rng_fns is None:
            self.rng_fns = fns
        elif fns is not self.rng_fns:
            raise ConfigError(
                f"env {i}: its generator's bit generator is {type(rng.bit_generator).__name__}; "
                "all environments of a batch need the same kind (Gymnasium's is PCG64)"
            )

    def begin(self, rows: np.ndarray, starts: np.ndarray, draw: EpisodeDraw, n_start_hours: int = 0) -> None:
        """Rows ``rows`` begin episodes at hour indices ``starts`` of the carbon table (every job Queued at home),
        drawn by ``draw`` (``sim.episode``) with each row's generator (``set_rng``), in one compiled call. A start
        of -1 is drawn first, uniform over ``n_start_hours`` (``rng.integers``), and written into ``starts``."""
        core, ep = self.core, self.episodes
        ep.outage_start_s, ep.outage_end_s = begin_rows(
            rows, starts, n_start_hours, self.rng_fns, self.rng_states, *draw.args(), ep.ci, ep.cap_w, ep.work, ep.free,
            ep.outage_start_s, ep.outage_end_s, ep.n_outages, core.f, core.i, core.step_acc, core.episode_acc,
            self.f0, self.i0, self.n_seg, self.n_trans,
        )  # fmt: skip
        self.stamp += 1

    def args(self) -> tuple:
        """``advance``'s arguments after ``envs, targets, levels``."""
        core, ep, tab = self.core, self.episodes, self.tables
        return (
            core.f,
            core.i,
            core.step_acc,
            core.episode_acc,
            ep.ci,
            ep.cap_w,
            ep.work,
            ep.free,
            ep.outage_start_s,
            ep.outage_end_s,
            ep.n_outages,
            self.T,
            tab.params,
            tab.allowed,
            self.rng_fns,
            self.rng_states,
            self.seg,
            self.n_seg,
            self.trans,
            self.n_trans,
        )

    def step(self, envs: np.ndarray, targets: np.ndarray, levels: np.ndarray) -> None:
        """Advance the rows ``envs`` one decision step with ``targets[i]`` (region index or ``WAIT``) and clock level
        ``levels[i]`` (arrays over all rows); raises ``IllegalTransition`` if the state machine was broken."""
        if self.logging:
            self._grow_logs()
        parked, errors = advance(envs, targets, levels, *self.args())
        if parked:
            errors += self.finish(targets, levels)
        self.stamp += 1
        if errors:
            self.raise_illegal()

    def finish(self, targets: np.ndarray, levels: np.ndarray) -> int:
        """Resume the parked rows until none is: draw each GPU-failure time from the row's own generator (the
        model's order: ``rng.exponential``), grow full logs. Returns the illegal transitions met."""
        errors = 0
        core = self.core
        while True:
            waiting = np.flatnonzero((core.i[:, :, I_PEND] != PEND_NONE).any(axis=1))
            if waiting.size == 0:
                return errors
            for i in waiting.tolist():
                for j in np.flatnonzero(core.i[i, :, I_PEND] == PEND_GPU_FAILURE).tolist():  # in job order
                    core.f[i, j, F_DRAW] = self.rngs[i].exponential(self.gpu_failure_scale)
            if self.logging:
                self._grow_logs()
            errors += advance(waiting, targets, levels, *self.args())[1]

    def raise_illegal(self) -> None:
        code = int(self.core.i[:, :, I_ERROR].max()) - 1
        check_transition(code // 8, code % 8)
