"""The learned fleet agent's action design: one shared per-job policy applied to every open job each step.

Why per-job actions (issue 25): the earlier slot agent (``CarbonFleetEnv.step``) re-ranked its ``K`` slots by
urgency every step, so what a slot learnt to do concerned another job at the next step (MaskablePPO 141 kg at
30 % deadlines against packing's 67 kg). Here a decision always belongs to the job it is about: every decision
step, each open job outside a timed phase (checkpoint, transfer, restore) gets its own observation
(:func:`job_observations`: its state, work and deadline, and every region as it sees it: carbon per mini-batch
now and forecast, GPUs it could get, time to finish there) and one network with shared weights picks its
``[target, clock level]`` (``target`` ``R`` = wait). The decisions of all jobs go to
``CarbonFleetEnv.step_jobs`` behind :func:`baselines.fleet_policies.fleet_deadline_shield`, as the fleet
baselines do. A job in a timed phase keeps its course. Shared weights make the policy independent of the number
of jobs, and every job-step is a training sample (about 7k per training episode).

- :func:`job_observations`: features, masks and which jobs decide now, for all jobs at once (NumPy).
- :class:`FleetAgentPolicy`: a trained network as a fleet policy (``evaluate.py --scenario fleet``).
- :class:`FleetJobEnv`: the same decisions as a Gymnasium env for Stable-Baselines3 (one gym step = one job's
  decision; the fleet steps once every open job has decided), for RL fine-tuning with MaskablePPO. It can be
  pickled: its state is the episode's seed and the decisions so far, replayed on unpickling (the compiled fleet
  holds raw generator addresses that do not survive a process), which makes a resumed training run exact.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from baselines.fleet_policies import FleetPolicy, fleet_deadline_shield, overhead_s, shield_reserve_s
from envs.fleet import CarbonFleetEnv
from sim.layout import I_LEVEL
from sim.rules import TIMED_STATES, WAIT
from sim.states import N_STATES

_S_PER_H = 3600.0
_S_PER_DAY = 86400.0
_TIMED = np.array(TIMED_STATES)
_COMPLETED = 7
OBS_CLIP = 5.0


def n_job_features(n_regions: int, n_levels: int) -> int:
    """Length of one job's observation (see :func:`job_observations`)."""
    return N_STATES + n_regions + 9 + 16 * n_regions + 2 * n_levels + 5


def past_intensity(env: CarbonFleetEnv, h: int) -> np.ndarray:
    """(R, 24) g/kWh of the last 24 hours up to this one (measured, not forecast): the episode's own hours, before
    its start the carbon table's hours before the episode's start hour (the same trace)."""
    ci = env.world.carbon.intensity_g_per_kwh
    a = env.start_hour + h
    lo = max(a - 23, 0)
    out = ci[:, lo : a + 1]
    return np.concatenate([np.repeat(out[:, :1], 24 - out.shape[1], axis=1), out], axis=1) if out.shape[1] < 24 else out


def slack_column(n_regions: int) -> int:
    """The column of :func:`job_observations` holding a job's slack (days)."""
    return N_STATES + n_regions + 7


def predicted_intensity(env: CarbonFleetEnv, h: int) -> np.ndarray:
    """(R, hours left + 1) g/kWh the agent expects from hour ``h`` on, knowing only now and the past: hour ``h``
    as measured, the next ``F`` hours as forecast at ``h``, every later hour as the same hour of the last measured
    day (persistence of the diurnal cycle, the usual naive day-ahead forecast; e.g. Maji et al., *CarbonCast*,
    BuildSys 2022, compare against it)."""
    fc = env.forecast[:, h, :]
    past = past_intensity(env, h)  # [:, 23] is hour h
    n = env.n_hours - h
    k = np.arange(1, n)
    pred = past[:, (k - 1) % 24]
    F = min(fc.shape[1], n - 1)
    pred[:, :F] = fc[:, :F]
    return np.concatenate([env.ci[0, :, h : h + 1], pred], axis=1)


def _window_cuts(env: CarbonFleetEnv, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Per job, the predicted carbon per mini-batch (top clock) of every hour from ``h`` to its deadline's hour,
    sorted: ``(J, K)`` over the cheapest region of each hour and ``(J, R, K)`` per region (``inf`` past the
    deadline). Cached per hour on the env (it changes only when the hour or the episode does)."""
    cache = getattr(env, "_agent_cuts", None)
    if cache is not None and cache[0] is env.forecast and cache[1] == h:
        return cache[2], cache[3]
    pred = predicted_intensity(env, h)  # (R, K)
    jobs, L = env.jobs, env.L
    e_top = jobs.energy_per_minibatch_kwh[:, :, L - 1]  # (J, R)
    cost = e_top[:, :, None] * pred[None]  # (J, R, K)
    end_h = np.floor((jobs.deadline_s - shield_reserve_s(env)) / _S_PER_H).astype(np.int64) - h  # last hour index
    past_deadline = np.arange(pred.shape[1])[None] > end_h[:, None]  # (J, K)
    per_region = np.sort(np.where(past_deadline[:, None], np.inf, cost), axis=2)
    cheapest = np.sort(np.where(past_deadline, np.inf, cost.min(axis=1)), axis=1)
    env._agent_cuts = (env.forecast, h, cheapest, per_region)
    return cheapest, per_region


def job_observations(env: CarbonFleetEnv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every job's observation ``(J, F)`` float32, action mask ``(J, R + 1 + L)`` bool (targets: regions then
    wait; then levels) and ``decide`` ``(J,)`` bool: open (arrived, not completed) and not in a timed phase.

    Only what a scheduler knows now: intensity now and the forecast (never the future), the pools' free GPUs now,
    each job's state, work left and deadline. Per job: state one-hot (8), region holding it (R), holds GPUs, GPUs
    held / requested, requested / 16, work left / total, time to the deadline (days), time to finish at the top
    clock in the fastest region (days), their ratio, slack (days, after a restart's overhead), clock level; per
    region (R each): carbon per mini-batch now, next hour's and the forecast's mean, each over the job's cheapest
    now (carbon per mini-batch at the top clock); intensity now and forecast mean (g/kWh / 1000); GPUs it could
    get there / requested (no more than the power left under the region's cap starts); up; time to finish there
    / time to the deadline; spare GPUs / pool; power left under the cap / the cap (1 uncapped); the forecast's
    least carbon per mini-batch (over the job's cheapest now); the last 24 hours' mean and least intensity
    (g/kWh / 1000, measured: the diurnal pattern a forecast of 6 h does not show) and where the intensity now lies
    between their least and most (0..1); carbon per mini-batch now over the job's predicted cut-off (the
    carbon of the n-th cheapest hour left before its deadline, n its hours of work at the top clock, hours
    predicted by :func:`predicted_intensity`: below 1, now is among the hours it should run in), over the hours'
    cheapest regions and in that region alone; per level (L each):
    energy and time per mini-batch over the top clock's, in its cheapest region now; global: time / horizon,
    hour of day (sin, cos), open jobs / J, its hours of work / hours left (predicted window). Features are
    clipped to [-5, 5].
    """
    jobs, R, L, J = env.jobs, env.R, env.L, env.J
    t = env.t_s
    st, reg, held = env.job_state(), env.job_region(), env.job_gpus()
    up = env.region_up()
    free, inuse = env.free_now(), env.gpus_in_use()
    spare = np.maximum(free - inuse, 0)
    here = reg[:, None] == np.arange(R)[None]
    gpus = jobs.gpus.astype(float)
    # under a regional power cap a region starts no more GPUs than its power left runs at the lowest clock
    # (sim/fleet_core.py _job_pool); the power now is the fleet's at the last step's end
    room_w = env.cap_w - env._power
    low_w = jobs.gpu_power_w[:, :, 0] + jobs.host_power_w[None, :]  # (J, R) W per GPU at the lowest clock
    powered = np.where(np.isfinite(room_w)[None], np.floor(np.maximum(room_w, 0.0)[None] / low_w), np.inf)
    usable = np.minimum(np.minimum(spare[None], powered) + np.where(here, held[:, None], 0), gpus[:, None])
    usable = usable * up[None]  # (J, R)
    open_ = env.open_jobs()
    timed = np.isin(st, _TIMED)
    decide = open_ & ~timed
    remaining = env.remaining_minibatches()
    left_s = jobs.deadline_s - t
    mb_top = jobs.minibatch_s[:, :, L - 1]  # (J, R) s per mini-batch on the full request
    fin_s = remaining[:, None] * mb_top * gpus[:, None] / np.maximum(usable, 1.0)
    fin_s = np.where(usable > 0, fin_s, np.inf)
    need_s = remaining * mb_top.min(axis=1)
    over = overhead_s(env)
    h = min(int(t // _S_PER_H), env.n_hours - 1)
    ci, fc = env.ci[0, :, h], env.forecast[:, h, :]
    past = past_intensity(env, h)
    e_top = jobs.energy_per_minibatch_kwh[:, :, L - 1]  # (J, R)
    now = ci[None] * e_top
    best = np.maximum(now.min(axis=1, keepdims=True), 1e-12)
    rb = np.argmin(now, axis=1)
    e_l = jobs.energy_per_minibatch_kwh[np.arange(J), rb]  # (J, L)
    t_l = jobs.minibatch_s[np.arange(J), rb]
    hod = (env.start_utc.astype(int) + t / _S_PER_H) % 24
    cheapest, per_region = _window_cuts(env, h)
    K = cheapest.shape[1]
    n_cut = np.clip(np.ceil(need_s / _S_PER_H).astype(np.int64), 1, K) - 1  # the n-th cheapest hour
    cut = cheapest[np.arange(J), n_cut]  # (J,) inf: no hour left before the deadline
    cut_r = per_region[np.arange(J), :, n_cut]  # (J, R)
    n_window = np.isfinite(cheapest).sum(axis=1)
    cols = [
        np.eye(N_STATES)[st],
        here.astype(float),
        (held > 0)[:, None],
        (held / gpus)[:, None],
        (gpus / 16.0)[:, None],
        (remaining / jobs.minibatches)[:, None],
        (left_s / _S_PER_DAY)[:, None],
        (need_s / _S_PER_DAY)[:, None],
        np.clip(need_s / np.maximum(left_s, 1.0), 0.0, OBS_CLIP)[:, None],
        ((left_s - need_s - over) / _S_PER_DAY)[:, None],
        (env._i[0, :, I_LEVEL] / max(L - 1, 1))[:, None],
        now / best,
        fc[None, :, 0] * e_top / best,
        fc[None].mean(axis=2) * e_top / best,
        np.broadcast_to(ci / 1000.0, (J, R)),
        np.broadcast_to(fc.mean(axis=1) / 1000.0, (J, R)),
        usable / gpus[:, None],
        np.broadcast_to(up.astype(float), (J, R)),
        np.where(np.isfinite(fin_s), fin_s / np.maximum(left_s, 1.0)[:, None], OBS_CLIP),
        np.broadcast_to(spare / np.maximum(env.pool, 1), (J, R)),
        np.broadcast_to(
            np.where(np.isfinite(room_w), room_w / np.where(np.isfinite(env.cap_w), env.cap_w, 1.0), 1.0), (J, R)
        ),
        fc[None].min(axis=2) * e_top / best,
        np.broadcast_to(past.mean(axis=1) / 1000.0, (J, R)),
        np.broadcast_to(past.min(axis=1) / 1000.0, (J, R)),
        np.broadcast_to((ci - past.min(axis=1)) / np.maximum(np.ptp(past, axis=1), 1.0), (J, R)),
        e_l / e_l[:, L - 1 : L],
        np.where(np.isfinite(cut), 1.0, 0.0)[:, None] * now / np.where(np.isfinite(cut), cut, 1.0)[:, None],
        np.where(np.isfinite(cut_r), now / np.where(np.isfinite(cut_r), cut_r, 1.0), 0.0),
        t_l / t_l[:, L - 1 : L],
        np.broadcast_to(
            [t / env.horizon_s, math.sin(2 * math.pi * hod / 24), math.cos(2 * math.pi * hod / 24), 0.0], (J, 4)
        ),
        (need_s / _S_PER_H / np.maximum(n_window, 1))[:, None],
    ]
    obs = np.concatenate(cols, axis=1)
    obs[:, -2] = open_.sum() / J
    obs = np.clip(obs, -OBS_CLIP, OBS_CLIP).astype(np.float32)
    mask = np.zeros((J, R + 1 + L), dtype=bool)
    mask[:, :R] = up[None] & ((usable > 0) | (here & (held[:, None] > 0)))
    mask[:, R] = True
    mask[:, R + 1 :] = True
    return obs, mask, decide


def to_actions(targets: np.ndarray, levels: np.ndarray, R: int) -> np.ndarray:
    """Fleet decisions (``WAIT`` = -1) as the network's ``[target, level]`` rows (wait = ``R``)."""
    return np.stack([np.where(targets == WAIT, R, targets), levels], axis=1).astype(np.int64)


def from_actions(actions: np.ndarray, R: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actions, dtype=np.int64).reshape(-1, 2)
    return np.where(a[:, 0] == R, WAIT, a[:, 0]), a[:, 1]


class Claims:
    """The GPUs and power each region has left now for jobs that do not hold GPUs there, claimed one deciding job
    at a time, least slack first (the order the pools serve waiting jobs in): a job choosing a region the jobs
    before it have filled (no GPU, or no power under the cap for one at the lowest clock) would wait there
    queued while the shield counts it as served (measured: jobs stuck for hours behind a spent power cap and
    late), so it decides again with that region masked. Only what is known now."""

    def __init__(self, env: CarbonFleetEnv, obs: np.ndarray, decide: np.ndarray):
        jobs = env.jobs
        self.R, self.L = env.R, env.L
        self.spare = np.maximum(env.free_now() - env.gpus_in_use(), 0).astype(float)
        self.spare[~env.region_up()] = 0.0
        self.room_w = env.cap_w - env._power  # inf: uncapped
        self.host_w = jobs.host_power_w
        self.gpu_w = jobs.gpu_power_w  # (J, R, L)
        self.gpus = jobs.gpus
        held, region = env.job_gpus(), env.job_region()
        self.home = np.where(held > 0, region, -1)  # where a job holds GPUs (-1: nowhere)
        idx = np.flatnonzero(decide)
        slack = obs[idx, slack_column(self.R)]
        self.order = idx[np.argsort(slack, kind="stable")]  # least slack first

    def open_regions(self, j: int) -> np.ndarray:
        """(R,) bool: regions where job ``j`` would get at least one GPU and the power to run it."""
        low = self.gpu_w[j, :, 0] + self.host_w
        ok = (self.spare >= 1) & (self.room_w >= low)
        if self.home[j] >= 0:
            ok[self.home[j]] = True
        return ok

    def claim(self, j: int, target: int, level: int) -> None:
        if target < 0 or target >= self.R or target == self.home[j]:
            return
        per_w = self.gpu_w[j, target, level] + self.host_w[target]
        n = min(float(self.gpus[j]), self.spare[target])
        if np.isfinite(self.room_w[target]):
            n = min(n, max(self.room_w[target], 0.0) // per_w)
        self.spare[target] -= n
        self.room_w[target] -= n * per_w


def claim_actions(model, env: CarbonFleetEnv, obs: np.ndarray, mask: np.ndarray, decide: np.ndarray):
    """The network's ``[target, level]`` for every deciding job (indices, actions), GPUs and power claimed least
    slack first (:class:`Claims`): a job whose choice is taken by the jobs before it decides again without it."""
    claims = Claims(env, obs, decide)
    order = claims.order
    if not order.size:
        return order, np.zeros((0, 2), dtype=np.int64)
    R = env.R
    a, _ = model.predict(obs[order], action_masks=mask[order], deterministic=True)
    a = np.asarray(a, dtype=np.int64).reshape(-1, 2)
    for i, j in enumerate(order):
        t = int(a[i, 0])
        if t < R:
            ok = claims.open_regions(j)
            if not ok[t]:
                m = mask[j].copy()
                m[:R] &= ok
                a[i] = np.asarray(model.predict(obs[j : j + 1], action_masks=m[None], deterministic=True)[0])
                t = int(a[i, 0])
        claims.claim(j, t, int(a[i, 1]))
    return order, a


class FleetAgentPolicy(FleetPolicy):
    """A per-job network (a MaskablePPO policy) as a fleet policy: every deciding job's masked arg-max action,
    behind :func:`fleet_deadline_shield`; jobs in a timed phase keep their last decision."""

    def __init__(self, model, name: str = "agent"):
        self.model = model
        self.name = name

    def reset(self, env: CarbonFleetEnv, seed: int) -> None:
        self.targets = env.jobs.home.astype(np.int64).copy()
        self.levels = np.full(env.J, env.L - 1, dtype=np.int64)

    def act(self, env: CarbonFleetEnv) -> tuple[np.ndarray, np.ndarray]:
        obs, mask, decide = job_observations(env)
        idx, a = claim_actions(self.model, env, obs, mask, decide)
        if idx.size:
            self.targets[idx], self.levels[idx] = from_actions(a, env.R)
        return fleet_deadline_shield(env, self.targets, self.levels)


class FleetJobEnv(gym.Env):
    """One open job's decision per gym step (see the module docstring): the observation is the job's
    (:func:`job_observations`), the action ``MultiDiscrete([R + 1, L])``, ``action_masks()`` the job's. Once every
    deciding job of the decision step has its action, the fleet steps (behind the deadline shield); the fleet's
    reward of that step (the scenario's reward, ``CarbonFleetEnv``) is the reward of that last decision, 0 for the
    others. Each ``reset()`` draws a new episode (job set, start hour, pools) from this env's own generator,
    seeded by ``reset(seed=...)``: envs seeded differently draw different job sets."""

    metadata = {"render_modes": []}

    def __init__(self, scenario, split: str = "train", data_dir: str | None = None, reward: dict | None = None):
        self._args = (scenario, split, data_dir, reward)
        self.fleet = CarbonFleetEnv(scenario, split, data_dir, reward=reward)
        R, L = self.fleet.R, self.fleet.L
        F = n_job_features(R, L)
        self.observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, (F,), np.float32)
        self.action_space = spaces.MultiDiscrete([R + 1, L])
        self._rng = np.random.default_rng()
        self.episode_seed: int | None = None
        self._log: list[tuple[np.ndarray, np.ndarray]] = []  # the fleet decisions of the episode so far
        self._pending: list[np.ndarray] = []  # actions given in the current decision step

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._start(int(self._rng.integers(0, 2**31 - 1)))
        while not self._queue.size:  # an episode with no decision to make (every job in a timed phase): the next
            self._start(int(self._rng.integers(0, 2**31 - 1)))
        return self._obs[self._queue[0]].copy(), {}

    def _start(self, episode_seed: int) -> None:
        self.episode_seed = episode_seed
        self.fleet.reset(seed=episode_seed)
        self.targets = self.fleet.jobs.home.astype(np.int64).copy()
        self.levels = np.full(self.fleet.J, self.fleet.L - 1, dtype=np.int64)
        self._log, self._pending = [], []
        self._reward, self._ended = 0.0, (False, False)
        self._info: dict = {}
        self._observe()

    def _observe(self) -> None:
        """The next decision step with a deciding job (fleet steps with none pass with the jobs' courses)."""
        while True:
            self._obs, self._mask, decide = job_observations(self.fleet)
            self._claims = Claims(self.fleet, self._obs, decide)
            self._queue = self._claims.order
            if self._queue.size or any(self._ended):
                return
            self._fleet_step()

    def _fleet_step(self) -> None:
        t, lv = fleet_deadline_shield(self.fleet, self.targets, self.levels)
        self._log.append((t.astype(np.int16), lv.astype(np.int8)))
        _, r, done, trunc, info = self.fleet.step_jobs(t, lv)
        self._reward += r
        self._ended = (done, trunc)
        self._info = info

    def action_masks(self) -> np.ndarray:
        j = self._queue[len(self._pending)]
        m = self._mask[j].copy()
        m[: self.fleet.R] &= self._claims.open_regions(j)  # what the jobs before it left
        return m

    def step(self, action):
        j = int(self._queue[len(self._pending)])
        a = np.asarray(action, dtype=np.int64).reshape(2)
        R = self.fleet.R
        if self.action_masks()[a[0]]:  # a masked choice is ignored: the job keeps its course
            self.targets[j] = WAIT if a[0] == R else a[0]
        self.levels[j] = a[1]
        self._claims.claim(j, int(self.targets[j]), int(self.levels[j]))
        self._pending.append(a)
        if len(self._pending) < self._queue.size:
            return self._obs[self._queue[len(self._pending)]].copy(), 0.0, False, False, {}
        self._pending = []
        self._fleet_step()
        reward = self._reward
        self._reward = 0.0
        if not any(self._ended):
            self._observe()
        done, trunc = self._ended
        info = {"fleet_episode": self._info["fleet_episode"]} if done or trunc else {}
        if done or trunc:  # SB3 resets on done; the last observation is any job's (it is not bootstrapped on)
            return np.zeros(self.observation_space.shape, np.float32), reward, done, trunc, info
        return self._obs[self._queue[0]].copy(), reward, False, False, info

    # exact pickling: rebuild and replay (module docstring)
    def __getstate__(self) -> dict:
        return {
            "args": self._args,
            "rng": self._rng.bit_generator.state,
            "episode_seed": self.episode_seed,
            "log": list(self._log),
            "pending": [p.copy() for p in self._pending],
            "targets": getattr(self, "targets", None),
            "levels": getattr(self, "levels", None),
            "reward": getattr(self, "_reward", 0.0),
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(*state["args"])
        self._rng.bit_generator.state = state["rng"]
        if state["episode_seed"] is None:
            return
        self.episode_seed = state["episode_seed"]
        self.fleet.reset(seed=self.episode_seed)
        self._reward, self._ended, self._info = 0.0, (False, False), {}
        for t, lv in state["log"]:
            _, _, done, trunc, self._info = self.fleet.step_jobs(t.astype(np.int64), lv.astype(np.int64))
            self._ended = (done, trunc)
        self._log = list(state["log"])
        self._obs, self._mask, decide = job_observations(self.fleet)
        self._claims = Claims(self.fleet, self._obs, decide)
        self._queue = self._claims.order
        self.targets, self.levels = state["targets"].copy(), state["levels"].copy()
        self._pending = [p.copy() for p in state["pending"]]
        for j in self._queue[: len(self._pending)]:  # the claims of the decisions already given
            self._claims.claim(int(j), int(self.targets[j]), int(self.levels[j]))
        self._reward = state["reward"]
