"""CarbonMigration-v0: move one running training job between cloud regions by grid carbon intensity."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from envs.batch import CI_SCALE_G_PER_KWH, EnvRows
from loaders.world import World, build_world
from sim.errors import ConfigError
from sim.layout import M, Metrics
from sim.reward import REWARD_TERMS, REWARD_WEIGHTS
from sim.rules import continue_target
from sim.scenario import Scenario, load_scenario, reward_with_overrides
from sim.states import N_STATES, State
from sim.tables import EpisodeTables, StaticTables

XFER_SCALE_S = 3600.0  # transfer times in hours
N_TIME_FEATURES = 4
N_JOB_FEATURES = 8


# episode counters whose change means a fault happened (PolicyView.faults)
FAULT_COUNTERS = ("gpu_failures", "outage_faults", "preemptions", "transfer_failures", "rollbacks")


@dataclass(frozen=True)
class PolicyView:
    """Public facts at a decision point (units in names). Arrays are per region unless noted.

    ``t_mb_s`` / ``p_gpu_w`` are (regions, clock levels): seconds per mini-batch on all requested
    GPUs and busy watts per GPU, from the calibrated GPU model (the profile a real scheduler measures).
    """

    t_s: float
    hour_of_day: int
    state: State
    region: int
    n_regions: int
    n_levels: int
    mask: np.ndarray
    intensity_g_per_kwh: np.ndarray
    forecast_g_per_kwh: np.ndarray  # (regions, forecast hours)
    usable_gpus: np.ndarray
    down: np.ndarray
    transfer_s: np.ndarray  # WAN time from the job's region
    io_s: float  # one checkpoint write or restore
    clocks_mhz: np.ndarray  # (regions, levels)
    t_mb_s: np.ndarray
    p_gpu_w: np.ndarray
    idle_w: np.ndarray
    pue: np.ndarray
    level: int
    n_gpus: int
    requested_gpus: int
    power_w: float
    cap_w: float
    progress_mb: float
    total_mb: float
    work: float  # work multiplier measured on the step just run (1 = profile, and before the first step)
    deadline_s: float
    horizon_s: float
    step_s: float
    checkpoint_gb: float
    transfer_kwh_per_gb: float
    step_index: int = 0  # decision steps taken this episode (the index of the step now being decided)
    faults: float = 0.0  # faults met so far: GPU failures, outages, reclaimed GPUs, failed transfers, rollbacks

    @property
    def wait(self) -> int:
        """The action index meaning 'pause'."""
        return self.n_regions

    @property
    def remaining_mb(self) -> float:
        return self.total_mb - self.progress_mb


class CarbonMigrationEnv(gym.Env):
    """
    ## Description

    One deep-learning training job runs in one of several cloud regions whose grids have real hourly
    carbon intensity (Electricity Maps / EIA traces). Every decision step (default 15 min) the policy
    picks where the job should be (stay, migrate to another region, or pause) and the GPU clock. A
    migration checkpoints at a mini-batch boundary, moves the training state over the measured WAN
    (Skyplane), restores and resumes at that exact mini-batch; a region short of GPUs runs the job
    elastically on fewer. GPU failures, outages and failed transfers roll back to the last checkpoint.
    Energy and carbon are integrated exactly inside each step (``sim/core.py``; this environment is one row of
    the array core that the vector environment steps N rows of, ``envs/batch.py``). This implements
    the setting of Park et al., *Carbon-Aware and Fault-Tolerant Migration of Deep Learning Workloads
    in the Geo-distributed Cloud*, IEEE CLOUD 2024.

    ## Action Space

    ``MultiDiscrete([R + 1, L])``: ``action[0]`` is the target region ``0..R-1`` (the current region
    means stay / run there) or ``R`` = wait (pause, holding no GPUs); ``action[1]`` is the clock level
    ``0..L-1`` (evenly spaced supported SM clocks, lowest to highest). ``action_masks()`` returns the
    ``R + 1 + L`` booleans MaskablePPO expects: a region is masked when it has no free GPUs or an
    outage, and during a timed phase (checkpoint write, transfer, restore) only the phase's own
    target is valid. A masked target is ignored (the job keeps its current course) and counted in
    ``info["invalid_actions"]``, or raises when ``invalid_action="raise"``.

    GPU count (CarbonScaler's lever; Hanafy et al., "CarbonScaler: Leveraging Cloud Workload Elasticity for
    Optimizing Carbon-Efficiency", POMACS 2023): with ``gpu_scaling=True`` the space is ``MultiDiscrete([R + 1, L,
    G])`` and the masks ``R + 1 + L + G`` long; ``action[2] = g`` runs the job on at most ``(g + 1)`` parallel
    groups (``G = requested / group``; ``G - 1``: all requested GPUs), at the speed of the job's scaling curve
    (``job.scaling_curve``). Any environment also accepts 3-integer actions; 2 integers mean all GPUs. A rigid
    (non-elastic) job runs on all its GPUs whatever ``g``.

    ## Observation Space

    ``Box`` of float32, all features in ``[low, high]`` below; R regions, F forecast hours.

    | index                | feature                                                  | min | max | unit |
    |----------------------|----------------------------------------------------------|-----|-----|------|
    | 0, 1                 | sin, cos of UTC hour of day                              | -1  | 1   | -    |
    | 2, 3                 | sin, cos of day of week                                  | -1  | 1   | -    |
    | 4 + r*(F+5) + 0      | region r intensity now / 1000                            | 0   | 5   | kg/kWh |
    | 4 + r*(F+5) + 1..F   | region r forecast for the next F hours / 1000            | 0   | 5   | kg/kWh |
    | 4 + r*(F+5) + F+1    | region r usable GPUs / GPUs requested                    | 0   | 1   | -    |
    | 4 + r*(F+5) + F+2    | region r healthy (1) or in an outage (0)                 | 0   | 1   | -    |
    | 4 + r*(F+5) + F+3    | transfer time from the job's region to r / 3600          | 0   | 24  | h    |
    | 4 + r*(F+5) + F+4    | 1 if the job (or its checkpoint) is in region r          | 0   | 1   | -    |
    | J + 0                | progress: mini-batches done / total                      | 0   | 1   | -    |
    | J + 1                | time to deadline / episode length (negative when late)   | -1  | 1   | -    |
    | J + 2                | elapsed time / episode length                            | 0   | 1   | -    |
    | J + 3                | clock level / (L - 1)                                    | 0   | 1   | -    |
    | J + 4                | job power / power cap (0 when uncapped)                  | 0   | 4   | -    |
    | J + 5                | GPUs held / GPUs requested                               | 0   | 1   | -    |
    | J + 6                | work multiplier of the step just run (1 before the first) | 0   | 4   | -    |
    | J + 7                | lost mini-batches so far / total                         | 0   | 1   | -    |
    | J + 8 .. J + 15      | one-hot scheduler state (QUEUED .. COMPLETED)            | 0   | 1   | -    |

    with ``J = 4 + R*(F+5)``.

    ## Rewards

    ``reward = w_g * progress_fraction - (w_c * carbon_kg + w_e * facility_kwh + w_l * late_h + w_p * cap_excess_kJ
    + w_m * migrations + w_b * embodied_kg)`` per step: the reward table ``sim/reward.py`` (shared with
    ``CarbonFleet-v0``), weights from the scenario's ``reward`` section (``sim.scenario.RewardSpec``; default 1 per
    kg CO2eq, 30 per hour late, 0.01 per kJ over the cap); ``info["reward_terms"]`` gives each weighted term as
    added to the reward (``REWARD_TERMS``). When the episode is truncated with work left, the hours that work
    would still take at full speed count as late.

    ## Starting State

    The job is Queued in its home region with no progress, at an hour drawn uniformly (by the reset
    seed) from the chosen split's time range, or at ``options={"start_hour": i}``.

    ## Episode End

    Terminated when the job completes; truncated after ``episode_hours`` of simulated time. ``step()`` before the
    first ``reset()`` or after the episode ended raises ``gymnasium.error.ResetNeeded`` until ``reset()``.

    ## Arguments

    ``gymnasium.make("CarbonMigration-v0", scenario="paper", split="train", data_dir=None,
    period=None, render_mode=None, invalid_action="ignore", reward=None)``: ``scenario`` is a shipped
    name, a YAML path or a :class:`Scenario`; ``split`` is ``train``/``validation``/``test``;
    ``gpu_scaling=True`` adds the GPU-count action component;
    ``period=("2023-01-01", "2023-03-01")`` overrides the split's dates; ``data_dir`` points at a
    folder of carbon-intensity files; ``reward`` overrides reward weights (a dict checked like the YAML's
    ``reward`` section: known keys, finite numbers >= 0). ``reset(options=...)`` accepts only ``start_hour``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    reward_term_names = REWARD_TERMS
    reward_weight_names = REWARD_WEIGHTS

    def __init__(
        self,
        scenario: str | Scenario = "paper",
        split: str = "train",
        data_dir: str | None = None,
        period: tuple[str, str] | None = None,
        render_mode: str | None = None,
        invalid_action: str = "ignore",
        reward: dict | None = None,
        world: World | None = None,
        gpu_scaling: bool = False,
    ):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ConfigError(f"render_mode={render_mode!r}; expected one of {self.metadata['render_modes']} or None")
        if invalid_action not in ("ignore", "raise"):
            raise ConfigError(f"invalid_action={invalid_action!r}; expected 'ignore' or 'raise'")
        sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.world = world or build_world(sc, split, data_dir=data_dir, period=period)
        self.scenario = sc = self.world.scenario
        self.sim = self.world.simulator()
        self.render_mode = render_mode
        self.invalid_action = invalid_action
        self.reward_weights = reward_with_overrides(sc.reward, reward, "CarbonMigrationEnv")
        self.R = R = len(sc.regions)
        self.L = L = sc.clock_levels
        self.F = F = sc.forecast.horizon_hours
        tab = self.sim.tables
        # GPU-count choices: g = 0..G-1 runs on (g + 1) parallel groups, G - 1 on all requested (CarbonScaler's lever)
        self.G = G = max(1, int(tab.requested_gpus) // max(1, int(tab.group)))
        self.gpu_scaling = bool(gpu_scaling)
        self.n_gpu_masks = G if self.gpu_scaling else 0
        self.action_space = spaces.MultiDiscrete([R + 1, L, G] if self.gpu_scaling else [R + 1, L])
        self.region_block = F + 5
        self.job_at = N_TIME_FEATURES + R * self.region_block
        n_obs = self.job_at + N_JOB_FEATURES + N_STATES
        low = np.zeros(n_obs, dtype=np.float32)
        high = np.ones(n_obs, dtype=np.float32)
        low[:N_TIME_FEATURES] = -1.0
        for r in range(R):
            b = N_TIME_FEATURES + r * self.region_block
            high[b : b + F + 1] = 5.0
            high[b + F + 3] = 24.0
        j = self.job_at
        low[j + 1] = -1.0
        high[j + 4] = 4.0
        high[j + 6] = 4.0
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.xfer_h = np.minimum(np.array(self.sim.xfer_s, dtype=np.float32) / XFER_SCALE_S, 24.0)  # (R, R) h
        self.level_div = max(L - 1, 1)
        self._clocks_mhz = self.sim.clocks_mhz.tolist()  # (R, L) as lists: cheap scalar lookups
        self._region_names = list(sc.region_names)
        self.total_mb = self.sim.total_mb
        self.horizon_s = self.sim.horizon_s
        self.start_hour = 0
        self._hist = None
        self._ended: str | None = _NOT_RESET  # why step() may not be called now, or None when it may
        self._attach(EnvRows(self, 1), 0)

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        start = self._start_hour_option(options)
        super().reset(seed=seed)
        self._rows.begin([self._row], [start], [self.np_random])  # draws the start hour when None
        self._begin(self.sim.start_hour)
        return self._obs.copy(), self._info()

    def step(self, action):
        if self._ended is not None:
            raise ResetNeeded(f"CarbonMigrationEnv.step() called {self._ended}; call reset() first")
        target, level, gpus = self._check_action(action)
        rows, i = self._rows, self._row
        if self.invalid_action == "raise" and not self._mask[target]:
            raise ValueError(
                f"action {[target, level]} is masked now (state {State(self.sim.state).name}, "
                f"valid targets {np.flatnonzero(self._mask[: self.R + 1]).tolist()})"
            )
        rows.targets[i] = target
        rows.levels[i] = level
        rows.gpus[i] = gpus
        rows.step(self._idx)  # one compiled call: masked target -> physics -> observation, mask, reward
        reward = float(rows.rewards[i])
        terminated = bool(rows.term[i])
        truncated = bool(rows.trunc[i])
        self._record(self.sim.k)
        if terminated or truncated:  # a finished job or an exhausted horizon has no next step until reset
            self._ended = _AFTER_COMPLETION if terminated else _AFTER_TRUNCATION
        return self._obs.copy(), reward, terminated, truncated, self._info()

    @property
    def invalid_actions(self) -> int:
        """Masked actions ignored this episode."""
        return int(self._rows.invalid[self._row])

    @property
    def tables(self) -> StaticTables:
        """The scenario's fixed tables (GPU model, PUE, network, job constants) as read-only arrays."""
        return self.sim.tables

    @property
    def episode(self) -> EpisodeTables | None:
        """This episode's drawn tables (intensity, cap, work multipliers, free GPUs, outages); ``None`` before
        ``reset()``. Clairvoyant: for the oracle and for tests, not for a deployable policy (see ``view()``)."""
        return self.sim.episode

    def action_masks(self) -> np.ndarray:
        """Valid choices as ``R + 1 + L`` booleans: targets (regions, wait) then clock levels (then ``G`` GPU-count
        choices with ``gpu_scaling``)."""
        if self._ended is _NOT_RESET:
            raise ResetNeeded("CarbonMigrationEnv.action_masks() called before reset(); call reset() first")
        return self._mask.copy()

    # ------------------------------------------------------------------ the row this environment is

    def _attach(self, rows: EnvRows, i: int) -> None:
        """Be row ``i`` of ``rows`` (its own rows of one, or a row of a vector environment's)."""
        self._rows, self._row = rows, i
        self._idx = np.array([i], dtype=np.int64)
        self._obs, self._mask = rows.obs[i], rows.masks[i]
        rows.sims[i] = self.sim

    def __setstate__(self, state: dict) -> None:
        """After a copy or unpickling: the observation and mask views point into the copied rows."""
        self.__dict__.update(state)
        self._obs, self._mask = self._rows.obs[self._row], self._rows.masks[self._row]

    def _begin(self, start: int) -> None:
        """Python-side bookkeeping of an episode that row ``self._row`` has just started at hour ``start``."""
        self._ended = None
        self.start_hour = start
        self._hist = []  # one (t_h, region, clock_mhz, power_w, cap_w, state) tuple per decision step
        self._record(self.sim.k, force=True)

    def view(self) -> PolicyView:
        """What a non-clairvoyant policy may legitimately know now, in physical units (see baselines/).

        No peeking (spec V2): the view holds measured past speed (``work``: the multiplier of the step just run),
        forecasts, the current intensity, free GPUs and outages as they stand now, and announced faults; never
        a draw of the step about to run (its work multiplier, faults or transfers)."""
        sim = self.sim
        h = min(int(sim.t_s // 3600.0), sim.n_hours - 1)
        R, F = self.R, self.F
        # this hour's intensity and forecast features of the observation, back in g/kWh
        ci = self._rows.templates[self._row, h, N_TIME_FEATURES : self.job_at].reshape(R, self.region_block)
        return PolicyView(
            t_s=sim.t_s,
            hour_of_day=int((int(self._rows.hour0[self._row]) + sim.t_s / 3600.0) % 24),
            state=State(sim.state),
            region=sim.region,
            n_regions=R,
            n_levels=self.L,
            mask=self.action_masks(),
            intensity_g_per_kwh=ci[:, 0] * CI_SCALE_G_PER_KWH,
            forecast_g_per_kwh=ci[:, 1 : F + 1] * CI_SCALE_G_PER_KWH,
            usable_gpus=np.array(sim.usable_and_up()[0]),
            down=np.array([sim.region_down(r) for r in range(R)]),
            transfer_s=np.array(sim.xfer_s[sim.region]),
            io_s=sim.io_s,
            clocks_mhz=sim.clocks_mhz,
            t_mb_s=np.array(sim.t_mb_s),
            p_gpu_w=np.array(sim.p_gpu_w),
            idle_w=np.array(sim.idle_w),
            pue=np.array(sim.pue),
            level=sim.level,
            n_gpus=sim.n_gpus,
            requested_gpus=sim.requested_gpus,
            power_w=sim.power_w,
            cap_w=sim.cap_w[h],
            progress_mb=sim.progress_mb,
            total_mb=self.total_mb,
            work=float(sim.work[sim.k - 1]) if sim.k > 0 else 1.0,  # measured on the step just run (V2)
            deadline_s=sim.deadline_s,
            horizon_s=self.horizon_s,
            step_s=sim.step_s,
            checkpoint_gb=sim.ckpt_gb,
            transfer_kwh_per_gb=self.scenario.transfer_kwh_per_gb,
            step_index=sim.k,
            faults=sum(sim.episode_acc[M[c]] for c in FAULT_COUNTERS),
        )

    # ------------------------------------------------------------------ helpers

    def _start_hour_option(self, options) -> int | None:
        return start_hour_option(options, self.world)

    def _continue_target(self) -> int:
        sim = self.sim
        return continue_target(sim.state, sim.region, sim.dest, sim.after_suspend, self.R)

    def _check_action(self, action) -> tuple[int, int, int]:
        """``(target, level, gpu choice)`` of a 2- or 3-integer action (2: all requested GPUs, choice -1)."""
        if type(action) is np.ndarray and action.shape == (2,) and action.dtype.kind in "iu":  # fast path
            target, level = action.tolist()
            if 0 <= target <= self.R and 0 <= level < self.L:
                return target, level, -1
        G = self.G
        expected = (
            f"expected 2 integers [target 0..{self.R} ({self.R} = wait), clock level 0..{self.L - 1}] (or a third, "
            f"the GPU choice 0..{G - 1}: (g + 1) x {int(self.sim.tables.group)} GPUs)"
        )
        try:
            a = np.asarray(action)
        except Exception:
            raise ValueError(f"action {action!r} is not array-like; {expected}") from None
        if a.shape not in ((2,), (3,)):
            raise ValueError(f"action {action!r} has shape {a.shape}; {expected}")
        if not np.issubdtype(a.dtype, np.integer):
            if not np.issubdtype(a.dtype, np.floating) or not np.all(np.mod(a, 1) == 0):
                raise ValueError(f"action {action!r} (dtype {a.dtype}) is not integer-valued; {expected}")
        target, level = int(a[0]), int(a[1])
        gpus = int(a[2]) if a.shape == (3,) else -1
        if not (0 <= target <= self.R and 0 <= level < self.L and -1 <= gpus < G):
            raise ValueError(f"action {a.tolist()} out of range; {expected}")
        return target, level, gpus

    def _info(self) -> dict[str, Any]:
        sim = self.sim
        sa, ea = sim.step_acc, sim.episode_acc
        step, episode = Metrics(sa), Metrics(ea)
        region = sim.region
        done = sim.state == _COMPLETED  # sim.done, without the property call
        info = {
            "t_s": sim.t_s,
            "state": _STATE_NAMES[sim.state],
            "region": self._region_names[region],
            "region_index": region,
            "n_gpus": sim.n_gpus,
            "clock_mhz": self._clocks_mhz[region][sim.level],
            "power_w": sim.power_w,
            "progress_mb": sim.progress_mb,
            "remaining_mb": self.total_mb - sim.progress_mb,
            "invalid_actions": self.invalid_actions,
            "deadline_met": done and sim.completed_at_s <= sim.deadline_s,
            "completed": done,
            "step_metrics": step,
            "episode_metrics": episode,
            "reward_terms": dict(zip(REWARD_TERMS, self._rows.terms[self._row].tolist())),
        }
        if done:
            info["jct_h"] = sim.completed_at_s / 3600.0
        return info

    def _record(self, k: int, force: bool = False) -> None:
        hist = self._hist
        if k != len(hist) and not force:  # ``force``: a history that starts mid-episode (envs.vector)
            return
        sim = self.sim
        h = int(sim.t_s // 3600)
        cap = sim.cap_w[h if h < sim.n_hours else sim.n_hours - 1]
        hist.append(
            (
                sim.t_s / 3600.0,
                sim.region,
                self._clocks_mhz[sim.region][sim.level],
                sim.power_w,
                cap if cap < math.inf else math.nan,
                int(sim.state),
            )
        )

    def history(self) -> dict[str, np.ndarray]:
        """The episode so far, one entry per decision step: t_h, region, clock_mhz, power_w, cap_w, state."""
        rows = self._hist[: self.sim.k + 1]
        cols = list(zip(*rows))
        return {
            "t_h": np.array(cols[0], dtype=float),
            "region": np.array(cols[1], dtype=int),
            "clock_mhz": np.array(cols[2], dtype=float),
            "power_w": np.array(cols[3], dtype=float),
            "cap_w": np.array(cols[4], dtype=float),
            "state": np.array(cols[5], dtype=int),
        }

    # ------------------------------------------------------------------ rendering

    def render(self):
        if self.render_mode == "ansi":
            sim = self.sim
            r = sim.region
            return (
                f"t={sim.t_s / 3600:7.2f} h  {State(sim.state).name:<10} region={self.scenario.regions[r].name:<8}"
                f" CI={sim.intensity_now(r):6.1f} g/kWh  gpus={sim.n_gpus:>3}"
                f"  clock={sim.clocks_mhz[r, sim.level]:6.0f} MHz  power={sim.power_w:8.1f} W"
                f"  progress={100 * sim.progress_mb / self.total_mb:5.1f}%"
                f"  carbon={sim.metrics(sim.episode_acc)['carbon_g'] / 1000:8.3f} kg"
            )
        if self.render_mode == "rgb_array":
            from envs.plotting import episode_figure, figure_to_rgb

            fig = episode_figure(self)
            return figure_to_rgb(fig)
        return None


RESET_OPTIONS = ("start_hour",)


def start_hour_option(options: Any, world: Any) -> int | None:
    """``options["start_hour"]`` of ``reset(options=...)`` checked (an integer hour index inside ``world``'s split),
    or None when absent; any other key is refused with the closest valid one. ``world``: a ``World`` or the
    fleet's ``FleetWorld`` (both have ``n_start_hours`` and ``carbon``). Shared by both envs."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise TypeError(f"reset(options=...) must be a dict such as {{'start_hour': 0}}, got {options!r}")
    unknown = [k for k in options if k not in RESET_OPTIONS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), RESET_OPTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"reset(options=...): unknown key {unknown[0]!r}{hint}; valid keys: {', '.join(RESET_OPTIONS)}"
        )
    if "start_hour" not in options:
        return None
    h, n = options["start_hour"], world.n_start_hours
    integral = isinstance(h, (int, np.integer)) or (isinstance(h, (float, np.floating)) and float(h).is_integer())
    if isinstance(h, (bool, np.bool_)) or not integral or not 0 <= h < n:
        raise ValueError(
            f"reset(options=...): start_hour must be an integer hour index 0..{n - 1} into the split's "
            f"carbon table (from {world.carbon.start_h} UTC), got {h!r}"
        )
    return int(h)


_NOT_RESET = "before reset()"
_AFTER_COMPLETION = "after the episode terminated (job completed)"
_AFTER_TRUNCATION = "after the episode was truncated (episode_hours reached)"
_STATE_NAMES = [s.name for s in State]
_COMPLETED = int(State.COMPLETED)
