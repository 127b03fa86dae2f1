"""One training job moving between regions: exact event-driven accounting inside each decision step.

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

Hot path: Python floats and lists prepared at ``reset``; no pandas, no per-step arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from operator import add as _add

import numpy as np

from sim.availability import free_gpus_table
from sim.carbon import CarbonTable
from sim.gpu import GpuModel
from sim.hardware import host_server
from sim.network import Network
from sim.rules import WAIT, level_under_cap, usable_gpus
from sim.scenario import Scenario
from sim.states import ALLOWED, Event, State, check_transition
from sim.tables import EpisodeTables, StaticTables

_S_PER_H = 3600.0
_J_PER_KWH = 3.6e6
_EPS_S = 1e-9

# Accounting slots: a flat list per step and per episode (cheap to update in the hot path).
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
(
    _IT,
    _FAC,
    _OPC,
    _TXE,
    _TXC,
    _GPUH,
    _DONE,
    _LOST,
    _RB,
    _MIG,
    _TX,
    _TXF,
    _TXGB,
    _TXS,
    _EGR,
    _CAPN,
    _CAPS,
    _CAPJ,
    _GPUF,
    _OUTF,
    _PRE,
    _LATE,
    _HOST,
    _EMB,
    _STALL,
) = range(25)
_TIME0 = M["time_queued_s"]
_N_METRICS = len(METRICS)


# scheduler states as plain ints: IntEnum arithmetic and attribute lookups are slow in the hot loop
_QUEUED, _TOLERANCE, _SUSPEND, _MIGRATION, _SCALING, _WAITING, _RECOVERING, _COMPLETED = (int(s) for s in State)

_ALLOWED_ROWS = ALLOWED.tolist()
# named events as plain ints for the hot loop (sim.states.Event documents each)
_EV_NONE, _EV_PHASE_END, _EV_GPU_FAILURE, _EV_TRANSFER_FAILURE, _EV_OUTAGE, _EV_COMPLETION, _EV_BOUNDARY = (
    int(e) for e in Event
)  # legal transitions as nested lists: one cheap lookup in _go


class Metrics(Mapping):
    """Read-only ``{metric name: value}`` view of one accounting list, plus ``carbon_g`` (operational +
    transfer). Building it is one object, not a 30-entry dict per step; the simulator starts new lists every
    step, so a view keeps the values it was made with."""

    __slots__ = ("_acc",)
    KEYS = METRICS + ("carbon_g",)

    def __init__(self, acc: list[float]):
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


# ``WAIT`` (from sim.rules): the ``Simulator.step`` target meaning "pause here" (the env maps its action index R to it)


class Simulator:
    """Simulates one job of ``scenario`` in its regions.

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
        self._fixed_tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # by UTC hour of day at the start
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
        self.step_acc = [0.0] * len(METRICS)
        self.episode_acc = [0.0] * len(METRICS)
        self.transitions: list[tuple[float, int, int]] = []
        self.segments: list[tuple[float, float, int, int, float, int, int]] = []
        self.record = False  # log transitions and (t_s, dt_s, region, state, gpu_w, n_gpus, dest) pieces
        self.tables = StaticTables(self)  # the same numbers as read-only arrays, for every reader above the core
        self.episode: EpisodeTables | None = None  # this episode's drawn tables (set by reset)

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

    def _fixed_episode_tables(self, hour_of_day0: int) -> tuple[np.ndarray, np.ndarray]:
        """The power cap per hour and the phase-cycle work multiplier per step of an episode starting at
        ``hour_of_day0`` UTC: no randomness, so built once per hour of day and shared (read-only)."""
        cache = self._fixed_tables
        if hour_of_day0 not in cache:
            job = self.scenario.job
            cap = np.full(self.n_hours, float(job.power_cap_w))
            hod = (hour_of_day0 + np.arange(self.n_hours)) % 24
            for win in job.cap_windows:
                inside = (win.start_hour_utc <= hod) & (hod < win.end_hour_utc)
                cap[inside] = np.minimum(cap[inside], win.cap_w)
            steps = self.n_steps + 1
            w = np.ones(steps)
            if job.phase_hours > 0:
                phase = (np.arange(steps) * self.step_s / (job.phase_hours * _S_PER_H)).astype(int)
                w *= np.asarray(job.phase_multipliers)[phase % len(job.phase_multipliers)]
            cap.setflags(write=False)
            w.setflags(write=False)
            cache[hour_of_day0] = cap, w
        return cache[hour_of_day0]

    def draw_episode(self, start_hour: int, rng: np.random.Generator) -> tuple[EpisodeTables, float]:
        """The episode starting at hour index ``start_hour`` of the carbon table: its tables and the GPU-hours of
        running until the first GPU failure, drawn from ``rng`` in this order (part of the model's definition):
        work noise, free GPUs, outages, failure."""
        job, f = self.scenario.job, self.faults
        if not 0 <= start_hour <= self.carbon.n_hours - self.n_hours:
            raise ValueError(
                f"start_hour {start_hour} leaves less than {self.n_hours} h of carbon data "
                f"(table has {self.carbon.n_hours} h from {self.carbon.start_h})"
            )
        ci_table = self.carbon.intensity_g_per_kwh[:, start_hour : start_hour + self.n_hours]
        hour_of_day0 = int((self.carbon.start_h + np.timedelta64(start_hour, "h")).astype(int) % 24)
        cap, phase_w = self._fixed_episode_tables(hour_of_day0)
        # work multiplier per decision step: phase cycle times lognormal noise (mean 1)
        steps = self.n_steps + 1
        w = phase_w
        if job.noise_std > 0:
            w = phase_w * rng.lognormal(-0.5 * job.noise_std**2, job.noise_std, steps)
        # GPUs free to this tenant per region and decision step (spot-calibrated process)
        if f.shortage_scale > 0:
            free = free_gpus_table(
                rng,
                self.pool,
                steps,
                self.step_s,
                f.shortage_scale,
                f.shortage_region_correlation,
                f.shortage_daily_amplitude,
                hour_of_day0,
                f.shortage_peak_hour_utc,
            )
        else:
            free = np.repeat(np.array(self.pool, dtype=np.int64)[:, None], steps, axis=1)
        # outages: Poisson arrivals per region, exponential durations
        outages = []
        for _ in range(self.n_regions):
            spans = []
            if f.outage_per_region_day > 0:
                n = rng.poisson(f.outage_per_region_day * self.horizon_s / 86400.0)
                for s in np.sort(rng.uniform(0, self.horizon_s, n)):
                    spans.append((float(s), float(s + rng.exponential(f.outage_mean_hours * _S_PER_H))))
            outages.append(tuple(spans))
        lam = f.gpu_failure_per_gpu_hour
        fail_left_gpu_h = rng.exponential(1.0 / lam) if lam > 0 else math.inf
        return EpisodeTables(ci_table, cap, w, free, tuple(outages)), fail_left_gpu_h

    def reset(self, start_hour: int, rng: np.random.Generator) -> None:
        """Start an episode at hour index ``start_hour`` of the carbon table; all randomness from ``rng``."""
        ep, self.fail_left_gpu_h = self.draw_episode(start_hour, rng)
        self.use_episode(start_hour, rng, ep)

    def use_episode(self, start_hour: int, rng: np.random.Generator, ep: EpisodeTables) -> None:
        """Start an episode on the drawn tables ``ep`` (kept as arrays, and as lists for this class's hot path),
        the job Queued at home; ``rng`` draws the episode's remaining randomness."""
        self.rng = rng
        self.start_hour = start_hour
        self.episode = ep
        self.ci_table, self.cap_table = ep.ci_g_per_kwh, ep.cap_w
        self.work_table, self.free_table = ep.work, ep.free_gpus
        self.ci = ep.ci_g_per_kwh.tolist()
        self.cap_w = ep.cap_w.tolist()
        self.work = ep.work.tolist()
        self.free = ep.free_gpus.tolist()
        self.outages: list[list[tuple[float, float]]] = [list(spans) for spans in ep.outages]

        self.t_s = 0.0
        self.k = 0
        self.state = _QUEUED
        self.region = self.home
        self.dest = self.home
        self.n_gpus = 0
        self.level = self.n_levels - 1
        self.progress_mb = 0.0
        self.ckpt_mb = 0.0
        self.phase_end_s = math.inf
        self.after_suspend = self.home  # where a suspending job goes next (WAIT = stay paused)
        self.draining = False  # finishing the mini-batch in flight before a checkpoint
        self.xfer_fail_at_s = math.inf
        self.completed_at_s = math.inf
        self.violating = False
        self.power_w = 0.0
        self.episode_acc = [0.0] * len(METRICS)
        self.step_acc = [0.0] * len(METRICS)
        self.transitions = []
        self.segments = []

    def _draw_failure_gpu_h(self) -> float:
        lam = self.faults.gpu_failure_per_gpu_hour
        return self.rng.exponential(1.0 / lam) if lam > 0 else math.inf

    # ------------------------------------------------------------------ queries

    def region_down(self, r: int, t_s: float | None = None) -> bool:
        if not self.outages[r]:
            return False
        t = self.t_s if t_s is None else t_s
        for start, end in self.outages[r]:
            if start <= t < end:
                return True
        return False

    def free_gpus(self, r: int) -> int:
        """GPUs open to this job in region ``r`` now (0 during an outage); includes those it holds."""
        if self.region_down(r):
            return 0
        k = self.k
        return self.free[r][k if k < self.n_steps else self.n_steps]

    def _usable(self, free: int) -> int:
        """GPUs the job can run on out of ``free`` (``sim.rules.usable_gpus``)."""
        return usable_gpus(free, self.requested_gpus, self.group, self.elastic)

    def usable_gpus(self, r: int) -> int:
        return self._usable(self.free_gpus(r))

    def usable_and_up(self) -> tuple[list[int], list[float]]:
        """Per region, ``usable_gpus`` and 1.0 when healthy or 0.0 during an outage (one pass for both)."""
        k = self.k if self.k < self.n_steps else self.n_steps
        usable, up = [], []
        for r in range(self.n_regions):
            if self.region_down(r):
                usable.append(0)
                up.append(0.0)
            else:
                usable.append(self._usable(self.free[r][k]))
                up.append(1.0)
        return usable, up

    def intensity_now(self, r: int) -> float:
        return self.ci[r][min(int(self.t_s // _S_PER_H), self.n_hours - 1)]

    @property
    def done(self) -> bool:
        return self.state == _COMPLETED

    @property
    def truncated(self) -> bool:
        return self.t_s >= self.horizon_s - _EPS_S and not self.done

    @staticmethod
    def metrics(acc: list[float]) -> Metrics:
        return Metrics(acc)

    # ------------------------------------------------------------------ transitions

    def _go(self, new: State) -> None:
        if not _ALLOWED_ROWS[self.state][new]:  # the table lookup inline; check_transition builds the error
            check_transition(self.state, new)
        if self.record:
            self.transitions.append((self.t_s, int(self.state), int(new)))
        self.state = new

    def _start_running(self) -> None:
        """Allocate GPUs in the current region and restore the checkpoint (a timed Scaling), or wait."""
        n = self.usable_gpus(self.region)
        if n == 0:
            if self.state != _WAITING:
                self._go(_WAITING)
            self.n_gpus = 0
            return
        self.n_gpus = n
        self._go(_SCALING)
        self.phase_end_s = self.t_s + self.restore_s

    def _start_migration(self, dst: int) -> None:
        self._go(_MIGRATION)
        self.n_gpus = 0
        self.dest = dst
        dur = self.xfer_s[self.region][dst]
        self.phase_end_s = self.t_s + dur
        self.xfer_fail_at_s = math.inf
        p = self.faults.transfer_failure_prob
        if p > 0 and self.rng.random() < p:
            self.xfer_fail_at_s = self.t_s + self.rng.random() * dur
        self.step_acc[_MIG] += 1

    def _suspend(self) -> None:
        """Write the checkpoint that the move (or pause) needs; progress is integral here."""
        self._go(_SUSPEND)
        self.draining = False
        self.phase_end_s = self.t_s + self.io_s

    def _fault(self, slot: int) -> None:
        """Roll back to the last durable checkpoint and recover (or wait if the region cannot run)."""
        acc = self.step_acc
        acc[slot] += 1
        durable = max(self.ckpt_mb, math.floor(self.progress_mb / self.ckpt_interval_mb) * self.ckpt_interval_mb)
        lost = self.progress_mb - durable
        if lost > 0:
            acc[_LOST] += lost
            acc[_RB] += 1
        self.progress_mb = self.ckpt_mb = durable
        self.draining = False
        if self.state != _RECOVERING:  # a fault during a restore restarts the restore
            self._go(_RECOVERING)
        if slot == _GPUF:  # the failed GPU is replaced from the free pool if one is spare, else the job shrinks
            spare = self.free_gpus(self.region) - self.n_gpus
            n = min(self.n_gpus - (0 if spare > 0 else 1), self.usable_gpus(self.region))
            self.n_gpus = n - n % self.group  # whole parallel groups only
        else:
            self.n_gpus = self.usable_gpus(self.region)
        if self.n_gpus <= 0:
            self.n_gpus = 0
            self._go(_WAITING)
        else:
            self.phase_end_s = self.t_s + self.restore_s

    # ------------------------------------------------------------------ decisions

    def _decide(self, target: int, level: int) -> None:
        s = self.state
        if s == _COMPLETED:
            return
        if s == _TOLERANCE:
            if target == self.region:
                self.draining = False  # a pending move that has not reached its mini-batch boundary is off
                n = self.usable_gpus(self.region)
                if n < self.n_gpus:  # GPUs reclaimed (spot) or outage: a fault
                    self._fault(_PRE)
                elif level != self.level or n != self.n_gpus:
                    self._go(_SCALING)  # re-set the clock / GPU count at a mini-batch boundary
                    self.n_gpus, self.level = n, level
                    self._go(_TOLERANCE)
                return
            self.after_suspend = target
            self.level = level
            if self.progress_mb == math.floor(self.progress_mb):
                self._suspend()
            else:
                self.draining = True
            return
        self.level = level
        if s in (_WAITING, _QUEUED):
            if target == WAIT:
                if s == _QUEUED:
                    self._go(_WAITING)
            elif target == self.region:
                self._start_running()
            else:
                self._start_migration(target)
        # timed phases (Suspend, Migration, Scaling, Recovering) run to their end; only the clock is taken

    # ------------------------------------------------------------------ time advance

    def step(self, target: int, level: int) -> None:
        """Apply a decision (region index, or ``WAIT``; clock level index) and advance one decision step."""
        self.step_acc = acc = [0.0] * _N_METRICS
        self._decide(target, level)
        t_end = self.t_s + self.step_s
        if self.horizon_s < t_end:  # min(t_end, horizon) without the builtin call
            t_end = self.horizon_s
        t_stop = t_end - _EPS_S
        # Speed: everything the loop reads that only ``_decide``/``_handle`` may change is re-read from self
        # each piece; tables fixed for the episode are hoisted into locals once.
        ci_tab, cap_w, pue, p_gpu_w, t_mb_s, idle_w = (
            self.ci,
            self.cap_w,
            self.pue,
            self.p_gpu_w,
            self.t_mb_s,
            self.idle_w,
        )
        host_busy_w, host_idle_w, emb_g, speed, stall_mb_s = (
            self.host_busy_w,
            self.host_idle_w,
            self.embodied_g_per_gpu_h,
            self.speed,
            self.stall_per_mb_s,
        )
        outages, deadline_s, record, throttle = self.outages, self.deadline_s, self.record, self.throttle
        t = self.t_s
        s = self.state
        while t < t_stop and s != _COMPLETED:
            r = self.region
            h = int(t // _S_PER_H)
            dt = (h + 1) * _S_PER_H
            dt = (t_end if t_end <= dt else dt) - t  # min(t_end, next hour boundary) - t
            event = _EV_NONE
            power_w = 0.0  # GPU board power drawn now (what the cap limits)
            gpu_w = 0.0  # GPU power for energy: the stall share of the time at idle power
            host_w = 0.0  # the servers' CPUs and memory
            stall_frac = 0.0
            rate = 0.0
            n = self.n_gpus
            if s == _TOLERANCE:
                lvl = self.level
                p_r = p_gpu_w[r]
                if throttle:
                    lvl = level_under_cap(p_r, n, cap_w[h], lvl)
                power_w = n * p_r[lvl]
                compute_s = self.work[self.k] * t_mb_s[r][lvl] / speed[n]  # seconds per mini-batch on n GPUs
                per_mb_s = compute_s + stall_mb_s
                rate = 1.0 / per_mb_s
                if stall_mb_s > 0.0:
                    stall_frac = stall_mb_s / per_mb_s
                    gpu_w = power_w + n * (idle_w[r] - p_r[lvl]) * stall_frac
                else:
                    gpu_w = power_w
                host_w = n * host_busy_w[r]
                progress = self.progress_mb
                if self.draining:
                    fl = math.floor(progress)
                    goal = progress if progress == fl else fl + 1.0
                    done_event = _EV_BOUNDARY
                else:
                    goal = self.total_mb
                    done_event = _EV_COMPLETION
                d = (goal - progress) / rate
                if d <= dt:
                    dt, event = d, done_event
                d = self.fail_left_gpu_h * _S_PER_H / n
                if d < dt:
                    dt, event = d, _EV_GPU_FAILURE
            elif s == _SUSPEND or s == _SCALING or s == _RECOVERING:
                power_w = gpu_w = n * idle_w[r]
                host_w = n * host_idle_w[r]
                d = self.phase_end_s - t
                if d <= dt:
                    dt, event = d, _EV_PHASE_END
            elif s == _MIGRATION:
                d = self.phase_end_s - t
                if d <= dt:
                    dt, event = d, _EV_PHASE_END
                d = self.xfer_fail_at_s - t
                if d < dt:
                    dt, event = d, _EV_TRANSFER_FAILURE
            if n > 0:  # outage in the region holding the job's GPUs
                for start, _end in outages[r]:
                    if t <= start < t + dt:
                        dt, event = start - t, _EV_OUTAGE
                        break
            if dt < 0.0:
                dt = 0.0

            # ---- integrate this piece
            if record:  # GPU power for energy; host power is n * the state's host W per GPU
                self.segments.append((t, dt, r, int(s), gpu_w, n, self.dest))
            ci = ci_tab[r][h]
            if power_w > 0.0:
                it_kwh = (gpu_w + host_w) * dt / _J_PER_KWH
                fac_kwh = it_kwh * pue[r]
                c_g = fac_kwh * ci
                gpu_h = n * dt / _S_PER_H
                acc[_IT] += it_kwh
                acc[_FAC] += fac_kwh
                acc[_OPC] += c_g
                acc[_GPUH] += gpu_h
                acc[_HOST] += host_w * dt / _J_PER_KWH
                acc[_EMB] += gpu_h * emb_g[r]
                if s == _TOLERANCE:
                    acc[_STALL] += dt * stall_frac
                    done = rate * dt
                    self.progress_mb += done
                    self.fail_left_gpu_h -= gpu_h
                    cap = cap_w[h]
                    over = power_w > cap
                    if over:
                        acc[_CAPS] += dt
                        acc[_CAPJ] += (power_w - cap) * dt
                        if not self.violating:
                            acc[_CAPN] += 1
                    self.violating = over
                    acc[_DONE] += done
            elif s == _MIGRATION:  # (a migration holds no GPUs: power_w is 0)
                dest = self.dest
                tx_kwh = self.xfer_kwh * dt / self.xfer_s[r][dest]
                acc[_TXE] += tx_kwh
                acc[_TXC] += tx_kwh * 0.5 * (ci + ci_tab[dest][h])
                acc[_TXS] += dt
            t_next = t + dt
            if t_next > deadline_s:
                late = min(t_next, self.completed_at_s) - max(t, deadline_s)
                if late > 0:
                    acc[_LATE] += late / _S_PER_H
            acc[_TIME0 + s] += dt
            self.power_w = power_w
            self.t_s = t = t_next
            if event != _EV_NONE:
                self._handle(event)
                s = self.state
        # a fresh list (callers may keep the previous one); map(add) is the element-wise sum in C
        self.episode_acc = list(map(_add, self.episode_acc, acc))
        if s != _TOLERANCE:
            self.violating = False
            if s != _SUSPEND and s != _SCALING and s != _RECOVERING:
                self.power_w = 0.0
        self.k += 1

    def _handle(self, event: int) -> None:
        """Apply one ``sim.states.Event`` at the current time."""
        s = self.state
        if event == _EV_OUTAGE:
            self._fault(_OUTF)
        elif event == _EV_TRANSFER_FAILURE:  # the checkpoint is still at the source
            self.step_acc[_TXF] += 1
            self._go(_RECOVERING)
            self.xfer_fail_at_s = math.inf
            self.n_gpus = self.usable_gpus(self.region)
            if self.n_gpus == 0:
                self._go(_WAITING)
            else:
                self.phase_end_s = self.t_s + self.restore_s
        elif event == _EV_GPU_FAILURE:
            self.fail_left_gpu_h = self._draw_failure_gpu_h()
            self._fault(_GPUF)
        elif event == _EV_BOUNDARY:  # the pending checkpoint can be written now
            self.progress_mb = float(round(self.progress_mb))
            self._suspend()
        elif event == _EV_COMPLETION:
            self.progress_mb = self.total_mb
            self.completed_at_s = self.t_s
            self._go(_COMPLETED)
            self.n_gpus = 0
        elif s == _SUSPEND:  # Event.PHASE_END from here on: the timed phase ``s`` is over
            self.ckpt_mb = self.progress_mb
            self.n_gpus = 0
            dst = self.after_suspend
            if dst == WAIT or dst == self.region:
                self._go(_WAITING)
            else:
                self._start_migration(dst)
        elif s == _MIGRATION:
            acc = self.step_acc
            acc[_TX] += 1
            acc[_TXGB] += self.ckpt_gb
            acc[_EGR] += self.egress_usd[self.region][self.dest]
            self.region = self.dest
            self._start_running()
        elif s == _SCALING or s == _RECOVERING:
            if s == _RECOVERING:
                self._go(_SCALING)
            self._go(_TOLERANCE)
