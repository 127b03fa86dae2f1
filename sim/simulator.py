"""One training job moving between regions: the scenario's tables, its episodes and a view of one row of the core.

The physics (below) is ``sim.core.advance``, the one event loop every environment steps; :class:`Simulator`
derives the scenario's fixed tables, draws episodes and reads and writes one row of a :class:`sim.core.Batch` by
name (``sim.t_s``, ``sim.progress_mb``, ...), for tests, the single environment and its readers.

The job's progress is counted in mini-batches. Inside a decision step the simulator advances
from event to event (a phase ending, the job completing, a mini-batch boundary before a
checkpoint, a GPU failure, an outage, a failed transfer, an hour boundary where the grid
intensity changes) and integrates energy, carbon and progress exactly over each piece, so
nothing is rounded to step boundaries.

Physics (units in names):
- running on n of N requested GPUs at clock f: mini-batches/s = 1 / (w * t(f) * S(N) / S(n) + stall_s / K),
  GPU power = n * P(f) (``sim.gpu.GpuModel``), w = work multiplier of the step (phases, noise), S(n) the job's
  speed-up on n GPUs (``job.scaling_curve``, linear by default; a parallel group runs only on multiples of
  ``job.parallel_group_gpus``);
- periodic checkpoints (every K mini-batches) stall training for the GPU -> host snapshot (CheckFreq, FAST '21):
  stall_s = checkpoint_gb / parallel_group_gpus / snapshot_gb_per_s at n * idle_w, spread evenly over the K
  mini-batches of the interval (exact per interval); the write to storage is asynchronous;
- host power (CPUs, memory; ``sim.hardware``) = n * server busy W / GPUs per server while running, n * idle share
  while a checkpoint is written or restored; counted in IT energy and reported as ``host_energy_kwh``;
- writing a checkpoint: checkpoint_gb * 8 / storage_gbps seconds at n * idle_w; restoring one takes that plus
  ``model.restart_s`` (container start, collective init, data staging);
- WAN transfer: ``Network.transfer_s`` (bytes / throughput + RTT), no GPUs held, network energy
  ``transfer_kwh_per_gb`` per GB spread evenly over the transfer, charged half to each end's grid;
- facility energy = IT energy * PUE of the region; carbon = facility energy * intensity of the
  hour (plus the transfer carbon above);
- embodied carbon (``embodied_carbon_g``, not in ``carbon_g``) = GPU-hours * (per-GPU + server share) per hour;
- a fault rolls progress back to the last durable checkpoint and reports the mini-batches lost.

"""

from __future__ import annotations

import math

import numpy as np

from sim.carbon import CarbonTable
from sim.core import Batch, job_usable_gpus, pool_free_gpus, pool_region_down
from sim.episode import EpisodeDraw
from sim.gpu import GpuModel
from sim.hardware import host_server
from sim.layout import (
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
    I_K,
    I_LEVEL,
    I_N_GPUS,
    I_REGION,
    I_STATE,
    I_VIOLATING,
    METRICS,
    M,
    Metrics,
)
from sim.network import Network
from sim.rules import WAIT
from sim.scenario import Scenario
from sim.states import State
from sim.tables import EpisodeTables, StaticTables

__all__ = ["METRICS", "M", "Metrics", "Simulator", "WAIT"]

_S_PER_H = 3600.0
_EPS_S = 1e-9
_COMPLETED = int(State.COMPLETED)


def _field(j: int, floats: bool, kind=float, doc: str = ""):
    """A read/write property for state column ``j`` of this simulator's row (``kind`` converts what is read)."""

    if floats:

        def get(self):
            return kind(self._f[j])

        def set_(self, value):
            self._f[j] = value

    else:

        def get(self):
            return kind(self._i[j])

        def set_(self, value):
            self._i[j] = int(value)

    return property(get, set_, doc=doc)


class Simulator:
    """Simulates one job of ``scenario`` in its regions: row ``row`` of a :class:`sim.core.Batch` (its own batch of
    one unless ``bind`` points it at a row of a larger one).

    :param scenario: validated scenario (regions, job, faults).
    :param carbon: hourly intensity with rows in the scenario's zone order.
    :param network: zone-to-zone network in the scenario's zone order.
    :param gpu_models: one per region (the region's GPU type running the job's workload).
    """

    def __init__(self, scenario: Scenario, carbon: CarbonTable, network: Network, gpu_models: list[GpuModel]):
        self.scenario = scenario
        job = scenario.job
        self.n_regions = R = len(scenario.regions)
        if carbon.zones != scenario.zones:
            raise ValueError(f"carbon table zones {carbon.zones} != scenario zones {scenario.zones}")
        self.carbon = carbon
        self.network = network
        self.gpu_models = gpu_models
        self.step_s = scenario.step_s
        self.horizon_s = scenario.episode_hours * _S_PER_H
        self.n_steps = int(math.ceil(self.horizon_s / self.step_s - 1e-9))
        self.n_hours = int(math.ceil(self.horizon_s / _S_PER_H)) + 1
        self.total_mb = float(job.minibatches)
        self.ckpt_interval_mb = float(job.checkpoint_interval_minibatches)
        self.requested_gpus = job.gpus
        self.elastic = job.elastic
        self.home = scenario.home_index
        self.pue = [r.pue for r in scenario.regions]
        self.pool = [r.gpus for r in scenario.regions]
        self.n_levels = scenario.clock_levels
        self.clocks_mhz = np.array([m.clock_levels_mhz(self.n_levels) for m in gpu_models])  # (R, L)
        # per region and clock level: seconds per mini-batch on all N GPUs, and busy watts per GPU
        self.t_mb_s = [
            [job.work_scale * float(m.time_per_minibatch_s(f)) for f in self.clocks_mhz[r]]
            for r, m in enumerate(gpu_models)
        ]
        self.p_gpu_w = [[float(m.power_w(f)) for f in self.clocks_mhz[r]] for r, m in enumerate(gpu_models)]
        self.idle_w = [float(m.idle_w) for m in gpu_models]
        self.ckpt_gb = job.checkpoint_gb
        self.io_s = self.ckpt_gb * 8.0 / job.storage_gbps  # one checkpoint write, or the I/O of one restore
        self._init_overheads(scenario, gpu_models)
        self.xfer_s = [[float(network.transfer_s(i, j, self.ckpt_gb)) for j in range(R)] for i in range(R)]
        self.egress_usd = (network.egress_usd_per_gb * self.ckpt_gb).tolist()
        self.xfer_kwh = self.ckpt_gb * scenario.transfer_kwh_per_gb
        self.deadline_s = math.inf if job.deadline_hours is None else job.deadline_hours * _S_PER_H
        self.faults = scenario.faults
        self.throttle = scenario.cap_enforcement == "throttle"
        self.tables = StaticTables(self)  # the same numbers as read-only arrays, for every reader above the core
        # the constants of the episode draw (sim.episode)
        self.draw = EpisodeDraw(
            self.faults, self.pool, self.step_s, self.horizon_s, self.n_steps, self.n_hours, carbon, scenario.job
        )
        self.start_hour = 0
        self.rng: np.random.Generator | None = None
        self.bind(Batch(self.tables, 1), 0)

    def _init_overheads(self, scenario: Scenario, gpu_models: list[GpuModel]) -> None:
        """Host power, embodied carbon, checkpoint stall, scaling and restart terms (each switchable)."""
        job, md, N = scenario.job, scenario.model, scenario.job.gpus
        servers = [host_server(r.gpu) if (md.host_power or md.embodied_carbon) else None for r in scenario.regions]
        # host W per GPU held: busy while training, idle while a checkpoint is written or restored
        self.host_busy_w = [s.busy_w / s.gpus_per_server if md.host_power else 0.0 for s in servers]
        self.host_idle_w = [s.idle_w / s.gpus_per_server if md.host_power else 0.0 for s in servers]
        self.embodied_g_per_gpu_h = [s.embodied_g_per_gpu_h if md.embodied_carbon else 0.0 for s in servers]
        self.group = job.parallel_group_gpus if md.scaling_efficiency else 1
        # speed on n GPUs as a fraction of the speed on all N (S(n) / S(N)); index n = 0..N
        if md.scaling_efficiency and job.scaling_curve:
            xs, ys = zip(*job.scaling_curve)
            s_n = np.interp(np.arange(N + 1), xs, ys)
            s_n[0] = 0.0
            self.speed = (s_n / s_n[N]).tolist()
        else:
            self.speed = [n / N for n in range(N + 1)]
        # the lowest energy per mini-batch on any runnable count relative to all N: n / speed[n] / N (oracle bound)
        self.energy_floor = min(n / (self.speed[n] * N) for n in range(self.group, N + 1, self.group))
        stall_s = self.ckpt_gb / self.group / job.snapshot_gb_per_s if md.checkpoint_stall else 0.0
        self.stall_per_mb_s = stall_s / self.ckpt_interval_mb
        self.restore_s = self.io_s + md.restart_s

    # ------------------------------------------------------------------ episode set-up

    def bind(self, batch: Batch, row: int) -> None:
        """Read and step row ``row`` of ``batch`` from now on (a batch built on this scenario's tables)."""
        self.batch, self.row = batch, row
        self._f, self._i = batch.core.f[row, 0], batch.core.i[row, 0]  # views: this row's state columns
        self._rows = np.array([row], dtype=np.int64)
        self._targets = np.zeros(batch.n_envs, dtype=np.int64)
        self._levels = np.zeros(batch.n_envs, dtype=np.int64)
        self._acc_stamp = -1
        self._log_read = (0, 0)
        self._segments: list[tuple[float, float, int, int, float, int, int]] = []
        self._transitions: list[tuple[float, int, int]] = []

    def __setstate__(self, state: dict) -> None:
        """After a copy or unpickling: the row views point into the copied batch, not the original's."""
        self.__dict__.update(state)
        self._f, self._i = self.batch.core.f[self.row, 0], self.batch.core.i[self.row, 0]

    def check_start(self, start_hour: int) -> None:
        """Raise if an episode cannot start at hour index ``start_hour`` of the carbon table."""
        if not 0 <= start_hour <= self.carbon.n_hours - self.n_hours:
            raise ValueError(
                f"start_hour {start_hour} leaves less than {self.n_hours} h of carbon data "
                f"(table has {self.carbon.n_hours} h from {self.carbon.start_h})"
            )

    def reset(self, start_hour: int, rng: np.random.Generator) -> None:
        """Start an episode at hour index ``start_hour`` of the carbon table, the job Queued at home; all its
        randomness from ``rng`` (the episode's tables drawn by ``sim.episode`` in the model's order)."""
        self.check_start(start_hour)
        self.batch.set_rng(self.row, rng)
        self.batch.begin(self._rows, np.array([start_hour], dtype=np.int64), self.draw)
        self.began(start_hour, rng)

    def began(self, start_hour: int, rng: np.random.Generator) -> None:
        """Note that this row began an episode at ``start_hour`` drawn with ``rng`` (``Batch.begin`` did the rest)."""
        self.rng = rng
        self.start_hour = start_hour
        self._segments, self._transitions = [], []
        self._log_read = (0, 0)

    @property
    def episode(self) -> EpisodeTables:
        """This episode's drawn tables (a read-only copy of the row's episode arrays)."""
        ep, i = self.batch.episodes, self.row
        return EpisodeTables(ep.ci[i].copy(), ep.cap_w[i].copy(), ep.work[i].copy(), ep.free[i].copy(), self.outages)

    # ------------------------------------------------------------------ state (this row of the batch, by name)

    t_s = _field(F_T_S, True, doc="simulated time since the episode start [s]")
    progress_mb = _field(F_PROGRESS_MB, True, doc="work done since the last rollback [mini-batches]")
    ckpt_mb = _field(F_CKPT_MB, True, doc="progress in the last durable checkpoint [mini-batches]")
    phase_end_s = _field(F_PHASE_END_S, True, doc="end of the current timed phase [s]")
    xfer_fail_at_s = _field(F_XFER_FAIL_AT_S, True, doc="when the transfer in flight fails (inf: never) [s]")
    completed_at_s = _field(F_COMPLETED_AT_S, True, doc="completion time (inf until completed) [s]")
    power_w = _field(F_POWER_W, True, doc="GPU board power at the end of the last step [W]")
    fail_left_gpu_h = _field(F_FAIL_LEFT_GPU_H, True, doc="GPU-hours of running until the next GPU failure")
    k = _field(I_K, False, int, "decision steps taken")
    state = _field(I_STATE, False, int, "scheduler state (sim.states.State)")
    region = _field(I_REGION, False, int, "region holding the job or its checkpoint")
    dest = _field(I_DEST, False, int, "destination of the current or last migration")
    n_gpus = _field(I_N_GPUS, False, int, "GPUs held")
    level = _field(I_LEVEL, False, int, "clock level index chosen")
    after_suspend = _field(I_AFTER_SUSPEND, False, int, "where a suspending job goes next (WAIT: stay paused)")
    draining = _field(I_DRAINING, False, bool, "finishing the mini-batch in flight before a checkpoint")
    violating = _field(I_VIOLATING, False, bool, "over the power cap at the end of the last piece")

    def _accounting(self) -> None:
        acc = self.batch.core
        self._step_acc = acc.step_acc[self.row, 0].tolist()
        self._episode_acc = acc.episode_acc[self.row, 0].tolist()
        self._acc_stamp = self.batch.stamp

    @property
    def step_acc(self) -> list[float]:
        """This step's accounting (columns ``METRICS``): a list made once per step (edits stay until the next)."""
        if self._acc_stamp != self.batch.stamp:
            self._accounting()
        return self._step_acc

    @property
    def episode_acc(self) -> list[float]:
        """This episode's accounting so far (columns ``METRICS``), a new list after each step."""
        if self._acc_stamp != self.batch.stamp:
            self._accounting()
        return self._episode_acc

    @property
    def record(self) -> bool:
        """Log every piece of simulated time (``segments``) and transition (``transitions``)."""
        return self.batch.logging

    @record.setter
    def record(self, on: bool) -> None:
        if bool(on) != self.batch.logging:
            self.batch.set_logging(bool(on))
        self._segments, self._transitions = [], []
        self._log_read = (0, 0)

    def _read_log(self) -> None:
        """Append what the core logged since the last read to ``segments`` and ``transitions`` (as Python tuples)."""
        b, i = self.batch, self.row
        n_seg, n_tr = int(b.n_seg[i]), int(b.n_trans[i])
        seen_seg, seen_tr = self._log_read
        for t, dt, r, s, gpu_w, n, dest in b.seg[i, seen_seg:n_seg].tolist():
            self._segments.append((t, dt, int(r), int(s), gpu_w, int(n), int(dest)))
        for t, src, dst in b.trans[i, seen_tr:n_tr].tolist():
            self._transitions.append((t, int(src), int(dst)))
        self._log_read = (n_seg, n_tr)

    @property
    def segments(self) -> list[tuple[float, float, int, int, float, int, int]]:
        """With ``record``: this episode's pieces ``(t_s, dt_s, region, state, gpu_w, n_gpus, dest)`` so far (GPU
        power for energy; host power is n_gpus x the state's host W per GPU)."""
        self._read_log()
        return self._segments

    @property
    def transitions(self) -> list[tuple[float, int, int]]:
        """With ``record``: this episode's scheduler transitions ``(t_s, src, dst)`` so far."""
        self._read_log()
        return self._transitions

    @property
    def free(self) -> np.ndarray:
        """(R, K + 1) GPUs free to this tenant per region and step (writable: tests shape scenarios with it)."""
        return self.batch.episodes.free[self.row]

    @property
    def ci(self) -> np.ndarray:
        """(R, H) grid intensity of this episode [g/kWh]."""
        return self.batch.episodes.ci[self.row]

    @property
    def cap_w(self) -> np.ndarray:
        """(H,) the job's power cap per hour [W]."""
        return self.batch.episodes.cap_w[self.row]

    @property
    def work(self) -> np.ndarray:
        """(K + 1,) work multiplier per decision step."""
        return self.batch.episodes.work[self.row]

    @property
    def outages(self) -> tuple[tuple[tuple[float, float], ...], ...]:
        """Per region, this episode's outage spans ``(start_s, end_s)`` (read from the row, without copying the
        other episode tables)."""
        ep, i = self.batch.episodes, self.row
        spans = zip(ep.outage_start_s[i].tolist(), ep.outage_end_s[i].tolist(), ep.n_outages[i].tolist())
        return tuple(tuple(zip(s[:n], e[:n])) for s, e, n in spans)

    # ------------------------------------------------------------------ queries (the core's compiled rules)

    def _outage_rows(self):
        ep = self.batch.episodes
        return ep.outage_start_s[self.row], ep.outage_end_s[self.row], ep.n_outages[self.row]

    def region_down(self, r: int, t_s: float | None = None) -> bool:
        return bool(pool_region_down(self.free, *self._outage_rows(), r, self.t_s if t_s is None else t_s))

    def free_gpus(self, r: int) -> int:
        """GPUs open to this job in region ``r`` now (0 during an outage); includes those it holds."""
        return int(pool_free_gpus(self.free, *self._outage_rows(), r, self.t_s, self.k, self.tables.params))

    def usable_gpus(self, r: int) -> int:
        """GPUs the job can run on in region ``r`` now (``sim.rules.usable_gpus``)."""
        return int(job_usable_gpus(self.free_gpus(r), self.tables.params))

    def usable_and_up(self) -> tuple[list[int], list[float]]:
        """Per region, ``usable_gpus`` and 1.0 when healthy or 0.0 during an outage."""
        usable = [self.usable_gpus(r) for r in range(self.n_regions)]
        up = [0.0 if self.region_down(r) else 1.0 for r in range(self.n_regions)]
        return usable, up

    def intensity_now(self, r: int) -> float:
        return float(self.ci[r, min(int(self.t_s // _S_PER_H), self.n_hours - 1)])

    @property
    def done(self) -> bool:
        return self.state == _COMPLETED

    @property
    def truncated(self) -> bool:
        return self.t_s >= self.horizon_s - _EPS_S and not self.done

    @staticmethod
    def metrics(acc: list[float]) -> Metrics:
        return Metrics(acc)

    # ------------------------------------------------------------------ time advance

    def step(self, target: int, level: int) -> None:
        """Apply a decision (region index, or ``WAIT``; clock level index) and advance one decision step."""
        self._targets[self.row] = target
        self._levels[self.row] = level
        self.batch.step(self._rows, self._targets, self._levels)
