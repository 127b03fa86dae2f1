"""CarbonFleet-v0: many training jobs from the Philly trace sharing regional GPU pools (SPEC E4, issue 10)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import fleet_kernels as fk
from envs.carbon_migration import CI_SCALE_G_PER_KWH, PolicyView, start_hour_option
from loaders.carbon import carbon_table
from loaders.philly import fleet_jobs, load_philly, philly_window
from sim import layout as core
from sim.carbon import CarbonTable
from sim.episode import EpisodeDraw, draw_availability
from sim.errors import ConfigError
from sim.fleet_core import FleetRows, FleetTables, reset_jobs
from sim.fleet_jobs import FleetJobs, fifo_deadlines, with_deadlines
from sim.forecast import forecast_matrix
from sim.hardware import host_server
from sim.layout import METRICS, PARAMS, CoreState, EpisodeRows, Generators
from sim.network import Network
from sim.network_data import load_network
from sim.reward import REWARD_TERMS, weights
from sim.rng import rng_handles
from sim.rules import continue_target, is_timed
from sim.scenario import SAFETY_LIMIT_X_DEADLINE, FleetScenario, load_fleet_scenario, reward_with_overrides
from sim.states import ALLOWED, State

_S_PER_H = 3600.0
_J_PER_KWH = 3.6e6
_M = {name: i for i, name in enumerate(METRICS)}
_QUEUED, _COMPLETED = int(State.QUEUED), 7
N_REGION_FEATURES = 6
N_QUEUE_FEATURES = 6
OBS_LOW, OBS_HIGH = -1.0, 5.0
_SPLITS = ("train", "validation", "test")
GPU_CHOICES = 4  # GPU-count choices per slot with gpu_scaling: a quarter, half, three quarters, all of the request


# The single job's cited scaling curve (scenarios/paper.yaml job.scaling_curve; data/derived/constants.csv
# job.scaling_curve): BERT-large SQuAD v1.1 fine-tuning on a DGX-1, weak scaling 4 GPUs 3.82x, 8 GPUs 7.62x one GPU
# (NVIDIA/DeepLearningExamples @729963d, TensorFlow/LanguageModeling/BERT/README.md). Every fleet workload scales
# so (an assumption for ResNet-50, BERT-base and ShuffleNet V2), and past 8 GPUs along the last segment's slope,
# 0.95 GPU of speed-up per GPU added (an assumption: the source stops at one server).
FLEET_SCALING_CURVE = ((1, 1.0), (4, 3.82), (8, 7.62))


def fleet_speed_table(gpus: np.ndarray, scaling_efficiency: bool = True) -> np.ndarray:
    """(J, G + 1) speed of each job on n = 0..G GPUs relative to its full request, S(n) / S(gpus) on the speed-up
    curve :data:`FLEET_SCALING_CURVE` (linear, n / gpus, with ``scaling_efficiency`` off); 0 on no GPU, and n above
    a job's request counts as its request (the engine never gives it more)."""
    gpus = np.asarray(gpus, dtype=np.int64)
    n = np.arange(int(gpus.max()) + 1, dtype=float)
    if scaling_efficiency:
        xs, ys = (np.array(v, dtype=float) for v in zip(*FLEET_SCALING_CURVE))
        slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        s_n = np.where(n <= xs[-1], np.interp(n, xs, ys), ys[-1] + slope * (n - xs[-1]))
        s_n[0] = 0.0
    else:
        s_n = n
    upto = np.minimum(n[None, :], gpus[:, None]).astype(np.int64)
    return s_n[upto] / s_n[gpus][:, None]


def job_features(n_regions: int) -> int:
    """Features per job slot: present, 3 state flags, region one-hot, 6 scalars."""
    return 4 + n_regions + 6


@dataclass(frozen=True)
class FleetWorld:
    """What is static about a fleet scenario on one split: its carbon table and network (loaded once)."""

    scenario: FleetScenario
    split: str
    carbon: CarbonTable
    network: Network
    n_steps: int
    n_hours: int

    @property
    def n_start_hours(self) -> int:
        return self.carbon.n_hours - self.n_hours + 1


_WORLDS: dict[tuple, FleetWorld] = {}
_TRACE: list = []


def fleet_world(
    scenario: FleetScenario,
    split: str = "train",
    data_dir: str | None = None,
    period: tuple[str, str] | None = None,
) -> FleetWorld:
    """The split's carbon table (real traces from ``../shared/data``; ``period``: explicit UTC dates
    ``(start, end)`` instead of the split's, e.g. a held-out year) and the zones' network, cached per process."""
    if period is None and split not in scenario.splits:
        raise ConfigError(f"{scenario.source}: unknown split {split!r}; expected one of {', '.join(_SPLITS)}")
    key = (repr(scenario), split if period is None else None, data_dir or scenario.data_dir, period)
    if key not in _WORLDS:
        start, end = scenario.splits[split] if period is None else period
        carbon = carbon_table(scenario.zones, str(start), str(end), scenario.signal, data_dir=key[2])
        # an episode's arrays (carbon, pools, outages) cover its safety limit, not only the horizon: episodes start
        # early enough in the split that the limit ends within it
        limit_s = scenario.safety_limit_s
        n_steps = int(math.ceil(limit_s / scenario.step_s - 1e-9))
        n_hours = int(math.ceil(limit_s / _S_PER_H)) + 1
        world = FleetWorld(scenario, split, carbon, load_network(scenario.zones), n_steps, n_hours)
        if world.n_start_hours < 1:
            raise ConfigError(
                f"{scenario.source}: {'split ' + repr(split) if period is None else 'period'} [{start}, {end}) is "
                f"shorter than one episode's safety limit ({limit_s / _S_PER_H:g} h = "
                f"{SAFETY_LIMIT_X_DEADLINE:g} x horizon_hours {scenario.horizon_hours:g})"
            )
        _WORLDS[key] = world
    return _WORLDS[key]


def philly_trace():
    """The Philly trace, loaded once per process."""
    if not _TRACE:
        _TRACE.append(load_philly())
    return _TRACE[0]


_WINDOWS: dict[str, object] = {}


def philly_rows(scenario: FleetScenario):
    """The trace rows a Philly fleet draws its jobs from (``loaders.philly.philly_window``), once per process and
    jobs section: the same every episode, and their selection (a sort of the trace's cluster ids) cost most of a
    reset."""
    key = repr(scenario.jobs)
    if key not in _WINDOWS:
        _WINDOWS[key] = philly_window(philly_trace(), scenario.jobs, scenario.source)
    return _WINDOWS[key]


class CarbonFleetEnv(gym.Env):
    """
    ## Description

    ``J`` deep-learning training jobs (arrivals, GPU counts and durations resampled from the Microsoft Philly
    trace, mapped to measured workloads; ``sim/fleet_jobs.py``) share the GPU pools of ``R`` cloud regions with
    real hourly carbon intensity. Every decision step (15 min) the policy places the ``K`` most urgent jobs:
    run in a region (migrating there if elsewhere: checkpoint, WAN transfer, restore), or wait, at a GPU clock
    level. Queued jobs wait for GPUs; a pool is shared by all jobs in service order (jobs holding GPUs first,
    then by least slack), so no job ever holds more GPUs than its region has free; other tenants' load and
    shortages shrink the pools (the scenario's spot process), GPU failures, outages and failed transfers roll
    jobs back to their last durable checkpoint, with the single job's cloud timing (a spare GPU's provisioning
    time, a spot reclaim's notice, a checkpoint durable once written; ``sim.physics.fault``). A region's power
    cap (``power_cap_w``, provisioned from the pool: ``docs/fleet.md``) is shared in the same service order: with
    ``cap_enforcement: throttle`` a job runs at the highest clock level its share fits (``sim/fleet_core.py``).
    Physics per job as in ``CarbonMigration-v0``.

    ## Slot selection

    | rule | value |
    |---|---|
    | open jobs | arrived (arrival <= now) and not completed |
    | slots | the ``K`` open jobs with the least slack; ties by job index (arrival order) |
    | slack | deadline - now - remaining mini-batches x s per mini-batch at the top clock, fastest region |
    | padding | slots beyond the open jobs: feature ``present`` = 0; only ``wait`` and level 0 valid |
    | jobs outside the slots | keep their last decision; a job never in a slot runs at home at the top clock |
    | service order of the pools | jobs holding GPUs, then the others; each by least slack (``sim/fleet_core.py``) |
    | ``step_jobs(..., fifo=True)`` | the same, but jobs not holding GPUs by arrival (FIFO) |

    ## Action Space

    ``MultiDiscrete([R + 1, L] * K)``: for slot ``s``, ``action[2s]`` is the target region ``0..R-1`` or
    ``R`` = wait (pause, holding no GPUs), ``action[2s + 1]`` the clock level ``0..L-1`` (lowest to highest).
    ``action_masks()``: ``K * (R + 1 + L)`` booleans (MaskablePPO's layout): a region is valid when it is up
    and has free GPUs; during a timed phase (checkpoint write, transfer, restore) only the phase's own target is;
    ``wait`` is always valid otherwise. A masked choice is ignored (the job keeps its course) and counted in
    ``info["invalid_actions"]``.

    GPU count (CarbonScaler's lever, as in ``CarbonMigration-v0``): with ``gpu_scaling=True`` each slot has a third
    component ``c = 0..C-1`` (``C = GPU_CHOICES``): the job runs on at most ``ceil(GPUs x (c + 1) / C)`` of the GPUs
    it requested (``C - 1``: all), at the speed of its scaling curve; the masks are ``K * (R + 1 + L + C)``.
    ``step_jobs(..., gpus=...)`` sets a GPU count per job directly.

    ## Observation Space

    ``Box(-1, 5, (R * 6 + K * (10 + R) + 6,), float32)``, three blocks, each feature clipped to [-1, 5]:

    | block | feature | scale |
    |---|---|---|
    | region r (x R) | intensity now | g/kWh / 1000 |
    | | forecast, next hour | g/kWh / 1000 |
    | | forecast, mean over the forecast horizon | g/kWh / 1000 |
    | | GPUs free and not held by the fleet | / pool capacity |
    | | health (1 up, 0 outage) | - |
    | | fleet IT power (GPU boards + hosts) / regional power cap | 0 when uncapped |
    | slot s (x K) | present (1 job, 0 padding) | - |
    | | running / waiting or queued / in a timed phase | one-hot |
    | | region holding the job or its checkpoint | one-hot (R) |
    | | GPUs requested | / largest pool |
    | | GPUs held | / requested |
    | | remaining mini-batches | / total |
    | | time to the deadline | / horizon |
    | | slack (as in the slot rule) | / horizon |
    | | clock level | / (L - 1) |
    | queue | open jobs holding no GPUs | / J |
    | | GPUs they request | / all pools |
    | | jobs not arrived yet | / J |
    | | jobs completed | / J |
    | | jobs running | / J |
    | | time | / horizon |

    ## Rewards

    The single job's reward table (``sim/reward.py``), summed over the jobs, with the scenario's ``reward`` weights
    in the same order and meaning: progress (``progress_per_job`` x each job's fraction done this step, summed)
    minus carbon (kg, operational and transfer), facility energy (kWh), lateness (hours past each job's deadline;
    at the safety limit also the hours each unfinished job's remaining work takes at home at the top clock, as the
    single job's),
    regional cap excess (kJ over each region's cap), migrations (count) and embodied carbon (kg).
    ``info["reward_terms"]`` gives each weighted term as added to the reward.

    ## Episode End

    Terminated when every job completed; truncated at the safety limit, ``SAFETY_LIMIT_X_DEADLINE`` (2) x
    ``horizon_hours`` (every deadline is at most the horizon, so the limit is at least twice every deadline, as the
    single job's ``episode_hours``). Arrivals and deadlines lie within the horizon; the episode's carbon, pools and
    outages cover the limit (episodes start at least a limit before the split's end). A job unfinished at the limit
    is charged its remaining work in :meth:`episode_metrics` (``work_charged_rate``).

    ## Info

    Fleet: ``carbon_kg``, ``energy_kwh``, ``jobs_completed``, ``migrations``, ``lost_minibatches``,
    ``rollbacks``, ``cap_violation_s``, ``gpus_in_use`` (R,), ``free_gpus`` (R,), ``invalid_actions``,
    ``t_s``; per job (arrays of J): ``job_state``, ``job_region``, ``job_gpus``, ``job_progress_mb``,
    ``job_carbon_kg``, ``job_energy_kwh``; ``reward_terms`` (``sim.reward.REWARD_TERMS``); at the episode end
    also ``fleet_episode`` (the metrics of :meth:`episode_metrics`).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenario: str | FleetScenario = "fleet",
        split: str = "train",
        data_dir: str | None = None,
        n_slots: int = 16,
        reward: dict | None = None,
        period: tuple[str, str] | None = None,
        gpu_scaling: bool = False,
        invalid_action: str = "ignore",
    ):
        if invalid_action not in ("ignore", "raise"):
            raise ConfigError(f"invalid_action={invalid_action!r}; expected 'ignore' or 'raise'")
        self.invalid_action = invalid_action
        self.scenario = scenario if isinstance(scenario, FleetScenario) else load_fleet_scenario(scenario)
        if reward is not None:  # reward weights replaced for this environment (e.g. a training config's)
            rw = reward_with_overrides(self.scenario.reward, reward, "CarbonFleetEnv(reward=...)")
            self.scenario = dataclasses.replace(self.scenario, reward=rw)
        sc = self.scenario
        if n_slots < 1:
            raise ConfigError(f"n_slots={n_slots}: must be >= 1")
        n_jobs = sc.jobs.n_jobs if sc.jobs.source == "philly" else len(sc.jobs.listed)
        if n_jobs > fk.PAIRWISE_MAX_N:  # the compiled step's sums (envs/fleet_kernels.py) go this far
            raise ConfigError(f"{sc.source}: jobs.n_jobs={n_jobs}: at most {fk.PAIRWISE_MAX_N} jobs per fleet")
        self.world = fleet_world(sc, split, data_dir, period)
        self.split = split
        self.R, self.L, self.K = len(sc.regions), sc.clock_levels, n_slots
        self.J = sc.jobs.n_jobs if sc.jobs.source == "philly" else len(sc.jobs.listed)
        self.n_steps, self.n_hours = self.world.n_steps, self.world.n_hours
        # horizon_s: arrivals before it, deadlines at most it, the observation's time scale; limit_s: the safety
        # limit where the episode is truncated (n_steps steps), twice the horizon (sim.scenario.safety_limit_s)
        self.step_s, self.horizon_s, self.limit_s = sc.step_s, sc.horizon_s, sc.safety_limit_s
        self._step_s, self._horizon_s = float(sc.step_s), float(sc.horizon_s)  # as the compiled step takes them
        self.pool = np.array([r.gpus for r in sc.regions], dtype=np.int64)
        self._draw = EpisodeDraw(
            sc.faults, self.pool.tolist(), self.step_s, self.limit_s, self.n_steps, self.n_hours, self.world.carbon
        )
        self.cap_w = np.array([r.power_cap_w for r in sc.regions], dtype=float)
        R, L, K = self.R, self.L, self.K
        n_obs = R * N_REGION_FEATURES + K * job_features(R) + N_QUEUE_FEATURES
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, (n_obs,), np.float32)
        # GPU-count choices per slot (gpu_scaling): c = 0..C-1 runs the job on at most ceil(GPUs x (c + 1) / C)
        self.C = GPU_CHOICES if gpu_scaling else 0
        per_slot = [R + 1, L, self.C] if gpu_scaling else [R + 1, L]
        self.action_space = spaces.MultiDiscrete(np.array(per_slot * K, dtype=np.int64))
        self.jobs: FleetJobs | None = None
        servers = [host_server(r.gpu) for r in sc.regions]
        md = sc.model
        self._host_idle_w = np.array([s.idle_w / s.gpus_per_server if md.host_power else 0.0 for s in servers])
        self._emb_g = np.array([s.embodied_g_per_gpu_h if md.embodied_carbon else 0.0 for s in servers])
        self._allowed = ALLOWED
        # kernel state (sim.layout.CoreState: one environment, J jobs) and scratch
        self.core = CoreState(1, self.J)
        self._f, self._i = self.core.f, self.core.i
        self._step_acc, self._ep_acc = self.core.step_acc, self.core.episode_acc
        self._order = np.zeros((1, self.J), dtype=np.int64)
        self._key = np.zeros((1, self.J))
        self._used = np.zeros((1, R), dtype=np.int64)
        self._rest = np.zeros((1, R), dtype=np.int64)
        self._peak = np.zeros(R, dtype=np.int64)
        self._pw_used = np.zeros((1, R))
        self._pw_rest = np.zeros((1, R))
        self._pw_peak = np.zeros(R)
        self._targets = np.zeros((1, self.J), dtype=np.int64)
        self._levels = np.zeros((1, self.J), dtype=np.int64)
        self._slots = np.full(K, -1, dtype=np.int64)
        self._obs = np.zeros(n_obs, dtype=np.float32)
        self._mask = np.zeros(K * (R + 1 + L + self.C), dtype=bool)
        # compiled step's buffers (envs/fleet_kernels.py): per region, scalar results, the GPU log
        self._out = fk.FleetOut(
            power=np.zeros(R),
            in_use=np.zeros(R, dtype=np.int64),
            free_now=np.zeros(R, dtype=np.int64),
            excess=np.zeros(R),
            slots=self._slots,
            mask=self._mask,
            obs=self._obs,
            gpu_log=np.zeros((self.n_steps, R), dtype=np.int64),
            scal=np.zeros(fk.N_SCAL),
            iscal=np.zeros(fk.N_ISCAL, dtype=np.int64),
            terms=np.zeros(len(REWARD_TERMS)),
        )
        self._power, self._in_use, self._free_now = self._out.power, self._out.in_use, self._out.free_now
        self._scal, self._iscal, self._gpu_log = self._out.scal, self._out.iscal, self._out.gpu_log
        self._no_action = np.zeros((K, 2), dtype=np.int64)
        self._w = np.array(weights(self.scenario.reward))  # order sim.reward.REWARD_WEIGHTS
        self._ended: str | None = "before reset()"

    # ------------------------------------------------------------------ episode set-up

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        start = self._start_hour_option(options)  # checked before the generator is touched
        super().reset(seed=seed)
        rng = self.np_random
        sc, R, J = self.scenario, self.R, self.J
        job_seed = int(rng.integers(0, 2**31 - 1))
        if sc.jobs.source == "philly":
            jobs = fleet_jobs(sc, job_seed, window=philly_rows(sc))
        else:
            jobs = fleet_jobs(sc, job_seed)
        self.jobs = jobs
        if start is None:
            start = int(rng.integers(0, self.world.n_start_hours))
        self.start_hour = int(start)
        carbon = self.world.carbon
        self.ci = np.ascontiguousarray(carbon.intensity_g_per_kwh[:, start : start + self.n_hours])[None]
        self.start_utc = carbon.start_h + np.timedelta64(self.start_hour, "h")
        f = sc.faults
        # the regions' free GPUs and outages, drawn as for a single job's episode (sim.episode, compiled)
        self.free = np.empty((1, R, self.n_steps + 1), dtype=np.int64)
        self._n_out = np.zeros((1, R), dtype=np.int64)
        fns, state = rng_handles(rng)
        outages = (np.zeros((1, R, 4)), np.zeros((1, R, 4)), self._n_out)
        hod0 = self._draw.hour_of_day(self.start_hour)
        self._o_start, self._o_end = draw_availability(
            fns, np.uint64(state), hod0, self._draw.availability, self.free[0], outages
        )
        fc = forecast_matrix(carbon.intensity_g_per_kwh, self.start_hour, self.n_hours, sc.forecast, rng)
        self.forecast = fc  # (R, hours, F) g/kWh
        self._fc_next = fc[:, :, 0] / CI_SCALE_G_PER_KWH
        self._fc_mean = fc.mean(axis=2) / CI_SCALE_G_PER_KWH
        self._build_job_tables(jobs)
        self._down = self.outage_mask()
        # state: every job Queued at its home, top clock (sim.layout.fresh_state), its first GPU failure drawn
        lam = f.gpu_failure_per_gpu_hour
        self._fail_rate = float(lam)
        reset_jobs(self.core, jobs.home, self.L - 1, rng.exponential(1.0 / lam, J) if lam > 0 else math.inf)
        self._order[0] = np.arange(J)  # a permutation for priority_order to start from
        self._targets[0] = jobs.home
        self._levels[0] = self.L - 1
        self._rng_keep = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))  # transfer-failure coins
        self._rng_fns, addr = rng_handles(self._rng_keep)
        self._rng_states = np.array([addr], dtype=np.uint64)
        self._scal[:] = 0.0  # reward, cap violation s, cap excess J, ...
        self._iscal[:] = 0  # invalid actions, steps logged, ...
        self._ended = None
        self._gpus_j = np.ascontiguousarray(jobs.gpus, dtype=np.int64)
        # the compiled step's bundles (the episode's arrays; built once per reset; plain tuples, see sim.layout)
        tables = FleetTables(
            self._P,
            self._t_mb_s,
            self._p_gpu_w,
            self._idle_w,
            jobs.host_power_w,
            self._host_idle_w,
            jobs.pue,
            self._emb_g,
            self._speed,
            self._xfer_s,
            self._egress,
            self._allowed,
        )
        H, K1 = self.n_hours, self.n_steps + 1
        episode = EpisodeRows(
            self.ci, np.full((1, H), math.inf), np.ones((1, K1)), self.free, self._o_start, self._o_end, self._n_out
        )
        gens = Generators(self._rng_fns, self._rng_states)
        self._engine = (
            tuple(self.core.rows()),
            tuple(tables),
            tuple(episode),
            tuple(gens),
            (self._targets, self._levels),
        )
        self._fleet = tuple(
            FleetRows(
                self._order,
                self._key,
                self._avail,
                self._used,
                self._rest,
                self._peak,
                self._arrival,
                self._fastest_mb_s,
                self._fail_rate,
                self.cap_w,
                self._pw_used,
                self._pw_rest,
                self._pw_peak,
            )
        )
        self._view = tuple(
            fk.FleetView(
                self._gpus_j,
                self.pool,
                self.cap_w,
                self._down,
                self._fc_next,
                self._fc_mean,
                self._step_s,
                self._horizon_s,
                self.n_steps,
                self.L,
                self.C,
                self._w,
                np.ascontiguousarray(jobs.minibatch_s[np.arange(J), jobs.home, self.L - 1]),
            )
        )
        self._out_t = tuple(self._out)
        self._out.terms[:] = 0.0
        self.fifo_completed_s: np.ndarray | None = None
        if sc.jobs.deadline == "fifo":
            self._set_fifo_deadlines()
        fblk, iblk = self._info_blocks()
        fk.refresh(self._engine, self._view, self._out_t, self._fleet, (fblk, iblk))
        return self._obs.copy(), self._info(fblk, iblk)

    def _set_fifo_deadlines(self) -> None:
        """Deadlines by the ``fifo`` rule (``sim.fleet_jobs.fifo_deadlines``): play the FIFO reference (every job
        targets its home region at the top clock, the pools serve waiting jobs in arrival order) on this episode
        from a copy of its initial state and fault coins, then put both back. The reference's decisions and
        service order do not depend on the deadlines, so it is the trajectory ``stay`` plays."""
        arrays = (self._f, self._i, self._step_acc, self._ep_acc, self._order, self._targets, self._levels)
        saved = [a.copy() for a in arrays]
        coins = self._rng_keep.bit_generator.state
        self._targets[0] = self.jobs.home
        self._levels[0] = self.L - 1
        fblk, iblk = self._info_blocks()
        for _ in range(self.n_steps):
            if fk.step_fleet(
                self._no_action, False, True, self._engine, self._fleet, self._view, self._out_t, (fblk, iblk)
            ):
                raise RuntimeError("the FIFO reference hit an illegal transition")
            if self._iscal[fk.I_DONE] or self._iscal[fk.I_TRUNCATED]:
                break
        self.fifo_completed_s = self._f[0, :, core.F_COMPLETED_AT_S].copy()
        for a, s in zip(arrays, saved):
            a[...] = s
        self._rng_keep.bit_generator.state = coins
        self._scal[:] = 0.0
        self._iscal[:] = 0
        self._out.terms[:] = 0.0
        jobs = self.jobs
        d = fifo_deadlines(jobs.arrival_s, self.fifo_completed_s, self.scenario.jobs.slack_factor, self.horizon_s)
        self.jobs = with_deadlines(jobs, d)
        self._P[:, PARAMS.index("deadline_s")] = d

    def _info_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Fresh blocks for the info's per-job arrays (the caller may keep them)."""
        return np.empty((3, self.J)), np.empty(3 * self.J + 2 * self.R + self.K, dtype=np.int64)

    def _build_job_tables(self, jobs: FleetJobs) -> None:
        sc, R, J = self.scenario, self.R, self.J
        md, net = sc.model, self.world.network
        ckpt = jobs.checkpoint_gb
        io_s = ckpt * 8.0 / jobs.storage_gbps
        stall = ckpt / jobs.snapshot_gb_per_s if md.checkpoint_stall else np.zeros(J)
        vals = {
            "step_s": np.full(J, self.step_s),
            "horizon_s": np.full(J, self.limit_s),  # the engine's end of time: the safety limit
            "n_steps": np.full(J, float(self.n_steps)),
            "n_hours": np.full(J, float(self.n_hours)),
            "total_mb": jobs.minibatches.astype(float),
            "ckpt_interval_mb": jobs.checkpoint_interval_minibatches.astype(float),
            "requested_gpus": jobs.gpus.astype(float),
            "group": np.ones(J),
            "elastic": np.ones(J),
            "io_s": io_s,
            "restore_s": io_s + md.restart_s,
            "stall_per_mb_s": stall / jobs.checkpoint_interval_minibatches,
            "xfer_kwh": ckpt * sc.transfer_kwh_per_gb,
            "deadline_s": jobs.deadline_s,
            "ckpt_gb": ckpt,
            # regional caps (sim.fleet_core): with cap_enforcement: throttle a job's clock drops to fit its budget
            "throttle": np.full(J, 1.0 if sc.cap_enforcement == "throttle" else 0.0),
            "transfer_failure_prob": np.full(J, sc.faults.transfer_failure_prob),
            # faults as clouds deliver them, as the single job (spec V4, sim.physics.fault): a failed GPU's spare
            # is provisioned before the restart, a spot reclaim comes with the provider's notice, a periodic
            # checkpoint is durable once its write has ended
            "gpu_replace_s": np.full(J, sc.faults.gpu_replace_s),
            "reclaim_notice_s": np.full(J, sc.faults.reclaim_notice_s),
            "durable_after_write": np.ones(J),
        }
        self._P = np.ascontiguousarray(np.stack([vals[k] for k in PARAMS], axis=1))
        self._t_mb_s = np.ascontiguousarray(jobs.minibatch_s)
        self._p_gpu_w = np.ascontiguousarray(jobs.gpu_power_w)
        self._idle_w = np.ascontiguousarray(jobs.idle_w)
        self._speed = np.ascontiguousarray(fleet_speed_table(jobs.gpus, md.scaling_efficiency))  # sub-linear
        size = ckpt[:, None, None]
        off = ~np.eye(R, dtype=bool)
        self._xfer_s = np.ascontiguousarray(
            np.where(off, size * 8.0 / net.throughput_gbps[None] + net.rtt_ms[None] / 1000.0, 0.0)
        )
        self._egress = np.ascontiguousarray(net.egress_usd_per_gb[None] * size)
        self._fastest_mb_s = jobs.minibatch_s[:, :, -1].min(axis=1)
        self._arrival = np.ascontiguousarray(jobs.arrival_s)
        self._avail = np.zeros((1, R, self.n_steps + 1), dtype=np.int64)

    # ------------------------------------------------------------------ stepping

    def step(self, action):
        """One decision step with the ``K`` slots' choices (see the class docstring)."""
        if self._ended is not None:
            raise gym.error.ResetNeeded(f"CarbonFleetEnv.step() called {self._ended}; call reset() first")
        a = self._check_action(action)
        if self.invalid_action == "raise":
            self._raise_masked(a)
        return self._advance(a, True)

    def _check_action(self, action) -> np.ndarray:
        """``action`` as a (K, w) int64 array per slot: [target, level] (w = 2), with ``gpu_scaling`` also
        [target, level, GPU count] (w = 3); ValueError naming the first bad slot."""
        K, R, L, C = self.K, self.R, self.L, self.C
        widths = (3, 2) if C else (2,)
        if type(action) is np.ndarray and action.ndim == 1 and action.dtype.kind in "iu":  # fast path
            w = action.size // K
            if w in widths and action.size == w * K:
                a = action.reshape(K, w)
                if a.min() >= 0 and a[:, 0].max() <= R and a[:, 1].max() < L and (w == 2 or a[:, 2].max() < C):
                    return a.astype(np.int64, copy=False)
        expected = f"expected {2 * K} integers, [target 0..{R} ({R} = wait), clock level 0..{L - 1}] per slot"
        if C:
            expected += f", or {3 * K} with a GPU count 0..{C - 1} ({C - 1} = all) third"
        try:
            a = np.asarray(action)
        except Exception:
            raise ValueError(f"action {action!r} is not array-like; {expected}") from None
        w = next((w for w in widths if a.shape in ((w * K,), (K, w))), None)
        if w is None:
            raise ValueError(f"action of shape {a.shape}; {expected} (shape ({2 * K},))")
        if not np.issubdtype(a.dtype, np.integer):
            whole = np.issubdtype(a.dtype, np.floating) and np.isfinite(a) & (np.mod(a, 1) == 0)
            if not np.all(whole):
                s = int(np.flatnonzero(~np.broadcast_to(whole, a.shape).reshape(-1))[0]) // w
                pair = a.reshape(K, w)[s].tolist()
                raise ValueError(f"slot {s}: action {pair} (dtype {a.dtype}) is not integer-valued; {expected}")
        a = a.reshape(K, w).astype(np.int64)
        bad = (a[:, 0] < 0) | (a[:, 0] > R) | (a[:, 1] < 0) | (a[:, 1] >= L)
        if w == 3:
            bad |= (a[:, 2] < 0) | (a[:, 2] >= C)
        if bad.any():
            s = int(np.flatnonzero(bad)[0])
            raise ValueError(f"slot {s}: action {a[s].tolist()} out of range; {expected}")
        return a

    def _raise_masked(self, a: np.ndarray) -> None:
        """``invalid_action="raise"``: a masked in-range choice of a slot holding a job raises, naming the slot and
        what was valid (padding slots are ignored, as in the default mode)."""
        R1, L = self.R + 1, self.L
        m = self._mask.reshape(self.K, R1 + L + self.C)
        slots = np.arange(self.K)
        masked = ~m[slots, a[:, 0]] | ~m[slots, R1 + a[:, 1]]
        if a.shape[1] == 3:
            masked |= ~m[slots, R1 + L + a[:, 2]]
        bad = np.flatnonzero(masked & (self._slots >= 0))
        if bad.size:
            s = int(bad[0])
            targets, levels = np.flatnonzero(m[s, :R1]).tolist(), np.flatnonzero(m[s, R1 : R1 + L]).tolist()
            valid = f"valid targets {targets}, levels {levels}"
            if self.C:
                valid += f", GPU counts {np.flatnonzero(m[s, R1 + L :]).tolist()}"
            raise ValueError(f"slot {s}: action {a[s].tolist()} is masked now ({valid})")

    def _start_hour_option(self, options) -> int | None:
        return start_hour_option(options, self.world)

    def step_jobs(self, targets: np.ndarray, levels: np.ndarray, fifo: bool = False, gpus: np.ndarray | None = None):
        """One decision step with a decision for every job (``targets`` (J,): region or ``sim.rules.WAIT``;
        ``levels`` (J,); ``gpus`` (J,): at most this many GPUs each, 0 or None: all it requested): the interface of
        the fleet baselines. Same physics and service order as ``step``, or with ``fifo`` the pools serve jobs not
        holding GPUs in arrival order instead of by slack."""
        if self._ended is not None:
            raise gym.error.ResetNeeded(f"CarbonFleetEnv.step() called {self._ended}; call reset() first")
        self._targets[0] = targets
        self._levels[0] = np.clip(levels, 0, self.L - 1)
        if gpus is not None:  # the GPU-count lever (sim.physics.job_usable); 0: all
            caps = np.clip(np.asarray(gpus, dtype=np.int64), 0, self.jobs.gpus)
            self._i[0, :, core.I_GPU_CAP] = np.where(caps < self.jobs.gpus, caps, 0)
        return self._advance(self._no_action, False, fifo)

    def _advance(self, a: np.ndarray, slot_actions: bool, fifo: bool = False):
        """The compiled step (``envs.fleet_kernels.step_fleet``): decisions, physics, accounting, observation."""
        if self._ended is not None:
            raise gym.error.ResetNeeded(f"CarbonFleetEnv.step() called {self._ended}; call reset() first")
        fblk, iblk = self._info_blocks()
        errors = fk.step_fleet(a, slot_actions, fifo, self._engine, self._fleet, self._view, self._out_t, (fblk, iblk))
        if errors:
            j = int(np.flatnonzero(self._i[0, :, core.I_ERROR])[0])
            code = int(self._i[0, j, core.I_ERROR]) - 1
            raise RuntimeError(f"job {j}: illegal transition {State(code // 8).name} -> {State(code % 8).name}")
        n = self._iscal.tolist()
        done, truncated = bool(n[fk.I_DONE]), bool(n[fk.I_TRUNCATED])
        if done:
            self._ended = "after the episode terminated (every job completed)"
        elif truncated:
            self._ended = "after the episode was truncated (safety limit reached)"
        info = self._info(fblk, iblk)
        if done or truncated:
            info["fleet_episode"] = self.episode_metrics()
        return self._obs.copy(), float(self._scal[fk.S_REWARD]), done, truncated, info

    # ------------------------------------------------------------------ views

    @property
    def t_s(self) -> float:
        return float(self._i[0, 0, core.I_K]) * self.step_s

    @property
    def k(self) -> int:
        return int(self._i[0, 0, core.I_K])

    def remaining_minibatches(self) -> np.ndarray:
        return self._P[:, PARAMS.index("total_mb")] - self._f[0, :, core.F_PROGRESS_MB]

    def completed_at_s(self) -> np.ndarray:
        """(J,) s after the episode start each job completed (inf: not yet)."""
        return self._f[0, :, core.F_COMPLETED_AT_S].copy()

    def job_state(self) -> np.ndarray:
        return self._i[0, :, core.I_STATE].copy()

    def job_region(self) -> np.ndarray:
        return self._i[0, :, core.I_REGION].copy()

    def job_gpus(self) -> np.ndarray:
        return self._i[0, :, core.I_N_GPUS].copy()

    def free_now(self) -> np.ndarray:
        """(R,) GPUs of each pool open to the fleet now (0 during an outage)."""
        kk = min(self.k, self.n_steps)
        return np.where(self.region_up(), self.free[0, :, kk], 0)

    def region_up(self) -> np.ndarray:
        """(R,) bool: no outage at the start of the current decision step."""
        return ~self._down[:, min(self.k, self.n_steps)]

    def outage_mask(self) -> np.ndarray:
        """(R, steps + 1) bool: the region is down at the start of each decision step."""
        t = np.arange(self.n_steps + 1) * self.step_s
        down = np.zeros((self.R, t.size), dtype=bool)
        for r in range(self.R):
            for q in range(self._n_out[0, r]):
                down[r] |= (self._o_start[0, r, q] <= t) & (t < self._o_end[0, r, q])
        return down

    def gpus_in_use(self) -> np.ndarray:
        """(R,) GPUs the fleet's jobs hold in each region now."""
        return np.bincount(self._i[0, :, core.I_REGION], self._i[0, :, core.I_N_GPUS], self.R).astype(np.int64)

    def intensity_now(self) -> np.ndarray:
        return self.ci[0, :, min(int(self.t_s // _S_PER_H), self.n_hours - 1)]

    def open_jobs(self) -> np.ndarray:
        """(J,) bool: arrived and not completed."""
        return (self.jobs.arrival_s <= self.t_s + 1e-9) & (self._i[0, :, core.I_STATE] != _COMPLETED)

    def slack_s(self) -> np.ndarray:
        return self.jobs.deadline_s - self.t_s - self.remaining_minibatches() * self._fastest_mb_s

    def action_masks(self) -> np.ndarray:
        if self._ended == "before reset()":
            raise gym.error.ResetNeeded("CarbonFleetEnv.action_masks() called before reset(); call reset() first")
        return self._mask.copy()

    def _info(self, fblk: np.ndarray, iblk: np.ndarray) -> dict:
        """The info dict: scalars from the compiled step's results, per-job arrays as rows of its fresh blocks."""
        J, R = self.J, self.R
        v, n = self._scal.tolist(), self._iscal.tolist()
        return {
            "t_s": self.t_s,
            "carbon_kg": v[fk.S_CARBON_KG],
            "energy_kwh": v[fk.S_ENERGY_KWH],
            "jobs_completed": n[fk.I_COMPLETED],
            "migrations": int(v[fk.S_MIGRATIONS]),
            "lost_minibatches": v[fk.S_LOST_MB],
            "rollbacks": int(v[fk.S_ROLLBACKS]),
            "cap_violation_s": v[fk.S_CAP_VIOLATION_S],
            "gpus_in_use": iblk[3 * J : 3 * J + R],
            "free_gpus": iblk[3 * J + R : 3 * J + 2 * R],
            "invalid_actions": n[fk.I_INVALID],
            "slots": iblk[3 * J + 2 * R :],
            "job_state": iblk[:J],
            "job_region": iblk[J : 2 * J],
            "job_gpus": iblk[2 * J : 3 * J],
            "job_progress_mb": fblk[0],
            "job_carbon_kg": fblk[1],
            "job_energy_kwh": fblk[2],
            "reward_terms": dict(zip(REWARD_TERMS, self._out.terms.tolist())),
        }

    def episode_metrics(self) -> dict:
        """The fleet table's row for the episode so far (units in the names; see ``evaluation/fleet.py``)."""
        jobs, ea = self.jobs, self._ep_acc[0]
        st = self._i[0, :, core.I_STATE]
        done = st == _COMPLETED
        c_at = self._f[0, :, core.F_COMPLETED_AT_S]
        met = done & (c_at <= jobs.deadline_s + 1e-6)
        queued_s = ea[:, _M["time_waiting_s"]] + ea[:, _M["time_queued_s"]]
        n_log = int(self._iscal[fk.I_N_LOG])
        held = self._gpu_log[:n_log].sum() * self.step_s if n_log else 0.0
        cap_gpu_s = float(self.free[0, :, : max(n_log, 1)].sum()) * self.step_s
        # Equal work (spec V1, as baselines.runner.equal_work): a job unfinished at the safety limit is charged, and
        # counted in work_charged_rate, its remaining mini-batches as if run right after the limit in its home
        # region on its whole request at the top clock: energy = time x GPUs x (board W + host busy W per GPU) x
        # PUE, carbon at the home region's mean intensity over the episode's period; it is late by the hours past
        # its deadline booked while it ran plus that run time
        left_mb = np.where(done, 0.0, self.remaining_minibatches())
        j_all, home, top = np.arange(self.J), jobs.home, self.L - 1
        run_s = left_mb * jobs.minibatch_s[j_all, home, top]
        it_kwh = run_s * jobs.gpus * (jobs.gpu_power_w[j_all, home, top] + jobs.host_power_w[home]) / _J_PER_KWH
        fac_kwh = it_kwh * jobs.pue[home]
        charged_g = fac_kwh * self.ci[0].mean(axis=1)[home]
        late_h = ea[:, _M["lateness_h"]].sum() + float(np.sum(run_s)) / _S_PER_H
        carbon_g = ea[:, _M["operational_carbon_g"]] + ea[:, _M["transfer_carbon_g"]]
        return {
            "carbon_kg": float((carbon_g.sum() + charged_g.sum()) / 1000.0),
            "energy_kwh": float(
                (ea[:, _M["facility_energy_kwh"]] + ea[:, _M["transfer_energy_kwh"]]).sum() + fac_kwh.sum()
            ),
            "jobs": self.J,
            "jobs_completed": int(done.sum()),
            "completed_rate": float(done.mean()),
            "work_charged_rate": float((~done).mean()),
            "deadline_met_rate": float(met.mean()),
            "late_h": float(late_h),
            "charged_carbon_kg": float(charged_g.sum() / 1000.0),
            # a charged job completes after the limit plus its charged run (as the single job's jct_h)
            "jct_h_mean": float(np.mean(np.where(done, c_at, self.t_s + run_s) - jobs.arrival_s) / _S_PER_H),
            "queue_h_mean": float(queued_s.mean() / _S_PER_H),
            "migrations": int(ea[:, _M["migrations"]].sum()),
            "gpu_util": float(held / cap_gpu_s) if cap_gpu_s > 0 else 0.0,
            "cap_violation_s": float(self._scal[fk.S_CAP_VIOLATION_S]),
            "lost_minibatches": float(ea[:, _M["lost_minibatches"]].sum()),
        }

    def gpus_in_use_log(self) -> np.ndarray:
        """(steps so far, R) GPUs held per region at the end of each step."""
        n_log = int(self._iscal[fk.I_N_LOG])
        if n_log == 0:
            return np.zeros((0, self.R))  # (as the list of rows it replaced gave)
        return self._gpu_log[:n_log].copy()

    def job_view(self, j: int, mask: np.ndarray | None = None) -> PolicyView:
        """Job ``j``'s decision facts in the single-job policies' terms (``envs.carbon_migration.PolicyView``):
        its own tables, the pools as it sees them (free GPUs minus those other jobs hold), the fleet's forecasts."""
        jobs, R, L = self.jobs, self.R, self.L
        h = min(int(self.t_s // _S_PER_H), self.n_hours - 1)
        st, reg = int(self._i[0, j, core.I_STATE]), int(self._i[0, j, core.I_REGION])
        ng = int(self._i[0, j, core.I_N_GPUS])
        up = self.region_up()
        others = self.gpus_in_use()
        others[reg] -= ng
        free_j = np.maximum(self.free_now() - others, 0)
        usable = np.minimum(free_j, jobs.gpus[j])
        if mask is None:
            mask = np.zeros(R + 1 + L, dtype=bool)
            if is_timed(st):
                tgt = continue_target(
                    st, reg, int(self._i[0, j, core.I_DEST]), int(self._i[0, j, core.I_AFTER_SUSPEND]), R
                )
                mask[tgt] = True
            else:
                mask[:R] = up & (usable > 0)
                mask[R] = True
            mask[R + 1 :] = True
        return PolicyView(
            t_s=self.t_s,
            hour_of_day=int((self.start_utc.astype(int) + self.t_s / _S_PER_H) % 24),
            state=State(st),
            region=reg,
            n_regions=R,
            n_levels=L,
            mask=mask,
            intensity_g_per_kwh=self.ci[0, :, h],
            forecast_g_per_kwh=self.forecast[:, h, :],
            usable_gpus=usable,
            down=~up,
            transfer_s=self._xfer_s[j, reg],
            io_s=float(self._P[j, PARAMS.index("io_s")]),
            clocks_mhz=jobs.clocks_mhz[j],
            t_mb_s=jobs.minibatch_s[j],
            p_gpu_w=jobs.gpu_power_w[j],
            idle_w=jobs.idle_w[j],
            pue=jobs.pue,
            level=int(self._i[0, j, core.I_LEVEL]),
            n_gpus=ng,
            requested_gpus=int(jobs.gpus[j]),
            power_w=float(self._f[0, j, core.F_POWER_W]),
            cap_w=math.inf,
            progress_mb=float(self._f[0, j, core.F_PROGRESS_MB]),
            total_mb=float(jobs.minibatches[j]),
            work=1.0,
            deadline_s=float(jobs.deadline_s[j]),
            horizon_s=self.horizon_s,
            step_s=self.step_s,
            checkpoint_gb=float(jobs.checkpoint_gb[j]),
            transfer_kwh_per_gb=self.scenario.transfer_kwh_per_gb,
        )
