"""The one layout of the array core: state columns, accounting columns, job parameters and the bundles of arrays
the compiled code takes (``sim.core``, ``sim.fleet_core``, ``envs.kernels``, ``envs.fleet_kernels``).

Every index below is derived from a field table (``FLOAT_FIELDS``, ``INT_FIELDS``, ``METRICS``,
``PARAMS``): add a column to its table and use ``F_`` / ``I_`` / ``M_`` / ``P_`` + its upper-cased
name. Nothing else writes an index by hand.

Bundles (``typing.NamedTuple`` of arrays, each field with its shape and unit below) travel to compiled code as
plain tuples (``tuple(bundle)``): numba types a plain tuple in C (~0.1 us per array) but a named tuple in Python
(~10 us a call), so the entry points take the plain form and name it again inside (``StateRows(*state)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from sim.states import Event, State

# ---------------------------------------------------------------- accounting columns (step_acc / episode_acc)

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
N_METRICS = len(METRICS)
M_IT = M["it_energy_kwh"]
M_FAC = M["facility_energy_kwh"]
M_OPC = M["operational_carbon_g"]
M_TXE = M["transfer_energy_kwh"]
M_TXC = M["transfer_carbon_g"]
M_GPUH = M["gpu_hours"]
M_DONE = M["minibatches_done"]
M_LOST = M["lost_minibatches"]
M_RB = M["rollbacks"]
M_MIG = M["migrations"]
M_TX = M["transfers"]
M_TXF = M["transfer_failures"]
M_TXGB = M["transfer_gb"]
M_TXS = M["transfer_s"]
M_EGR = M["egress_usd"]
M_CAPN = M["cap_violations"]
M_CAPS = M["cap_violation_s"]
M_CAPJ = M["cap_excess_j"]
M_GPUF = M["gpu_failures"]
M_OUTF = M["outage_faults"]
M_PRE = M["preemptions"]
M_LATE = M["lateness_h"]
M_HOST = M["host_energy_kwh"]
M_EMB = M["embodied_carbon_g"]
M_STALL = M["checkpoint_stall_s"]
M_TIME0 = M["time_queued_s"]  # time in state s is column M_TIME0 + s


class Metrics(Mapping):
    """Read-only ``{metric name: value}`` view of one accounting row (a list), plus ``carbon_g`` (operational +
    transfer). One object, not a 30-entry dict per step; keep a copy of the row if the row is reused."""

    __slots__ = ("_acc",)
    KEYS = METRICS + ("carbon_g",)

    def __init__(self, acc):
        self._acc = acc

    def __getitem__(self, key: str) -> float:
        if key == "carbon_g":
            return self._acc[M_OPC] + self._acc[M_TXC]
        return self._acc[M[key]]

    def __iter__(self):
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return repr(dict(self))


# ---------------------------------------------------------------- state columns (StateRows.f / .i)

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
    ("gpu_cap", "GPUs", "GPUs the policy allows the job (the GPU-count action); 0: all it requested"),
)
FLOAT_NAMES = tuple(n for n, _, _ in FLOAT_FIELDS)
INT_NAMES = tuple(n for n, _, _ in INT_FIELDS)
N_FLOAT, N_INT = len(FLOAT_FIELDS), len(INT_FIELDS)
F_T_S = FLOAT_NAMES.index("t_s")
F_PROGRESS_MB = FLOAT_NAMES.index("progress_mb")
F_CKPT_MB = FLOAT_NAMES.index("ckpt_mb")
F_PHASE_END_S = FLOAT_NAMES.index("phase_end_s")
F_XFER_FAIL_AT_S = FLOAT_NAMES.index("xfer_fail_at_s")
F_COMPLETED_AT_S = FLOAT_NAMES.index("completed_at_s")
F_POWER_W = FLOAT_NAMES.index("power_w")
F_FAIL_LEFT_GPU_H = FLOAT_NAMES.index("fail_left_gpu_h")
F_T_END_S = FLOAT_NAMES.index("t_end_s")
F_DRAW = FLOAT_NAMES.index("draw")
I_K = INT_NAMES.index("k")
I_STATE = INT_NAMES.index("state")
I_REGION = INT_NAMES.index("region")
I_DEST = INT_NAMES.index("dest")
I_N_GPUS = INT_NAMES.index("n_gpus")
I_LEVEL = INT_NAMES.index("level")
I_AFTER_SUSPEND = INT_NAMES.index("after_suspend")
I_DRAINING = INT_NAMES.index("draining")
I_VIOLATING = INT_NAMES.index("violating")
I_STAGE = INT_NAMES.index("stage")
I_PEND = INT_NAMES.index("pend")
I_ERROR = INT_NAMES.index("error")
I_N_TRANS = INT_NAMES.index("n_trans")
I_TRANS_0 = INT_NAMES.index("trans_0")
I_GPU_CAP = INT_NAMES.index("gpu_cap")
TRANS_SLOTS = 3  # a handler makes at most two transitions (e.g. Recovering -> Scaling -> Tolerance)
PEND_NONE, PEND_GPU_FAILURE, PEND_LOG = 0, 1, 2  # parked: not, on a GPU-failure draw, on a full piece log
SEGMENT_FIELDS = ("t_s", "dt_s", "region", "state", "gpu_w", "n_gpus", "dest")  # a logged piece (Logs.seg)

# ---------------------------------------------------------------- job parameters (JobTables.params)

# a job's scalars, one float64 vector (StaticTables.params; the fleet's per job, envs.fleet)


PARAMS = (
    "step_s",
    "horizon_s",
    "n_steps",
    "n_hours",
    "total_mb",
    "ckpt_interval_mb",
    "requested_gpus",
    "group",
    "elastic",
    "io_s",
    "restore_s",
    "stall_per_mb_s",
    "xfer_kwh",
    "deadline_s",
    "ckpt_gb",
    "throttle",
    "transfer_failure_prob",
    "gpu_replace_s",
    "reclaim_notice_s",
    "durable_after_write",
)

P_STEP = PARAMS.index("step_s")
P_HORIZON = PARAMS.index("horizon_s")
P_NSTEPS = PARAMS.index("n_steps")
P_NHOURS = PARAMS.index("n_hours")
P_TOTAL = PARAMS.index("total_mb")
P_CKPT_INT = PARAMS.index("ckpt_interval_mb")
P_REQ = PARAMS.index("requested_gpus")
P_GROUP = PARAMS.index("group")
P_ELASTIC = PARAMS.index("elastic")
P_IO = PARAMS.index("io_s")
P_RESTORE = PARAMS.index("restore_s")
P_STALL = PARAMS.index("stall_per_mb_s")
P_XKWH = PARAMS.index("xfer_kwh")
P_DEADLINE = PARAMS.index("deadline_s")
P_CKPT_GB = PARAMS.index("ckpt_gb")
P_THROTTLE = PARAMS.index("throttle")
P_XFAIL = PARAMS.index("transfer_failure_prob")
P_REPLACE = PARAMS.index("gpu_replace_s")
P_NOTICE = PARAMS.index("reclaim_notice_s")
P_DURABLE_AFTER_WRITE = PARAMS.index("durable_after_write")

# ---------------------------------------------------------------- scheduler states and events as ints

QUEUED, TOLERANCE, SUSPEND, MIGRATION, SCALING, WAITING, RECOVERING, COMPLETED = (int(s) for s in State)
EV_NONE, EV_PHASE_END, EV_COMPLETION, EV_BOUNDARY = (
    int(Event.NONE),
    int(Event.PHASE_END),
    int(Event.COMPLETION),
    int(Event.MINIBATCH_BOUNDARY),
)
EV_GPU_FAILURE, EV_TRANSFER_FAILURE, EV_OUTAGE = (
    int(Event.GPU_FAILURE),
    int(Event.TRANSFER_FAILURE),
    int(Event.OUTAGE),
)
S_PER_H = 3600.0
J_PER_KWH = 3.6e6
EPS_S = 1e-9  # times closer than this are the same instant


# ---------------------------------------------------------------- bundles of arrays (the compiled boundary)


class JobTables(NamedTuple):
    """What one job's physics reads and never writes (R regions, L clock levels, G GPUs requested)."""

    params: np.ndarray  # (len(PARAMS),) the job's scalars, order PARAMS (units in the names)
    t_mb_s: np.ndarray  # (R, L) s per mini-batch on all requested GPUs
    p_gpu_w: np.ndarray  # (R, L) W busy power per GPU
    idle_w: np.ndarray  # (R,) W idle power per GPU
    host_busy_w: np.ndarray  # (R,) W host power per GPU while training
    host_idle_w: np.ndarray  # (R,) W host power per GPU while idle
    pue: np.ndarray  # (R,) facility / IT energy
    embodied_g_per_gpu_h: np.ndarray  # (R,) g CO2eq amortised per GPU-hour
    speed: np.ndarray  # (G + 1,) speed on n GPUs / speed on all G (the scaling curve)
    xfer_s: np.ndarray  # (R, R) s to move the checkpoint between regions
    egress_usd: np.ndarray  # (R, R) USD per checkpoint moved
    allowed: np.ndarray  # (8, 8) bool: legal scheduler transitions (sim.states.ALLOWED)


class Pool(NamedTuple):
    """The GPUs one environment's job may use: its free-GPU table and outages (R regions, K steps, O outages)."""

    free: np.ndarray  # (R, K + 1) int GPUs free per region and decision step
    outage_start_s: np.ndarray  # (R, O) s from the episode start
    outage_end_s: np.ndarray  # (R, O) s
    n_outages: np.ndarray  # (R,) int outages in use per region


class StateRows(NamedTuple):
    """Mutable state of n environments x J jobs (columns ``FLOAT_FIELDS`` / ``INT_FIELDS`` / ``METRICS``)."""

    f: np.ndarray  # (n, J, N_FLOAT) float64
    i: np.ndarray  # (n, J, N_INT) int64
    step_acc: np.ndarray  # (n, J, N_METRICS) this step's accounting (units in METRICS)
    episode_acc: np.ndarray  # (n, J, N_METRICS) this episode's accounting


class EpisodeRows(NamedTuple):
    """Each environment's drawn episode tables, read-only to the step (R regions, H hours, K steps, O outages)."""

    ci: np.ndarray  # (n, R, H) g/kWh grid intensity per hour of the episode
    cap_w: np.ndarray  # (n, H) W the job's power cap (inf: uncapped)
    work: np.ndarray  # (n, K + 1) work-per-mini-batch multiplier
    free: np.ndarray  # (n, R, K + 1) int GPUs free
    outage_start_s: np.ndarray  # (n, R, O) s
    outage_end_s: np.ndarray  # (n, R, O) s
    n_outages: np.ndarray  # (n, R) int


class Generators(NamedTuple):
    """Each environment's ``numpy.random.Generator`` by address (``sim.rng.rng_handles``)."""

    fns: np.ndarray  # (3,) uint64 the bit generator's C functions
    states: np.ndarray  # (n,) uint64 each generator's state address


class Logs(NamedTuple):
    """Optional log of every piece and transition (capacity 0: off)."""

    seg: np.ndarray  # (n, capacity, len(SEGMENT_FIELDS)) pieces
    n_seg: np.ndarray  # (n,) int rows used
    trans: np.ndarray  # (n, capacity, 3) transitions (t_s, src, dst)
    n_trans: np.ndarray  # (n,) int rows used


class CoreState:
    """Mutable state of ``n_envs`` environments x ``n_jobs`` jobs (Jumanji-style: arrays with an env and a job axis).

    ``f``: float64 ``(n_envs, n_jobs, N_FLOAT)``, ``i``: int64 ``(n_envs, n_jobs, N_INT)``; each column is
    available by name as an ``(n_envs, n_jobs)`` view (``state.t_s``, ``state.region``, ...):

    {fields}

    ``step_acc`` / ``episode_acc``: float64 ``(n_envs, n_jobs, n_metrics)``, this step's and this episode's
    accounting, columns ``METRICS`` (units in the names). ``rows()``: the :class:`StateRows` bundle.
    """

    def __init__(self, n_envs: int, n_jobs: int = 1):
        self.n_envs, self.n_jobs = n_envs, n_jobs
        self.f = np.zeros((n_envs, n_jobs, N_FLOAT))
        self.i = np.zeros((n_envs, n_jobs, N_INT), dtype=np.int64)
        self.step_acc = np.zeros((n_envs, n_jobs, N_METRICS))
        self.episode_acc = np.zeros((n_envs, n_jobs, N_METRICS))

    def rows(self) -> StateRows:
        return StateRows(self.f, self.i, self.step_acc, self.episode_acc)


def fresh_state(home: int, top_level: int) -> tuple[np.ndarray, np.ndarray]:
    """A fresh episode's state row ``(f0, i0)``: Queued at ``home``, clock level ``top_level``, nothing done, no
    phase, transfer failure or completion pending (the GPU-hours to the first failure are drawn separately)."""
    f0 = np.zeros(N_FLOAT)
    f0[[F_PHASE_END_S, F_XFER_FAIL_AT_S, F_COMPLETED_AT_S]] = np.inf
    i0 = np.zeros(N_INT, dtype=np.int64)
    i0[[I_STATE, I_REGION, I_DEST, I_LEVEL, I_AFTER_SUSPEND]] = (QUEUED, home, home, top_level, home)
    return f0, i0


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
