"""The rows of ``CarbonMigration-v0`` on one array core: what the single environment (one row) and the vector
environment (N rows) both step, so both run the same code.

:class:`EnvRows` holds, per row, the observation, action mask, reward, reward terms and flags the step writes,
the episode's observation template (intensity and forecast features per hour) and start time, and the rows'
:class:`sim.core.Batch` (state, episode tables, generators). ``begin`` draws episodes with the rows' generators
in the model's order (start hour, ``sim.episode``, then the forecast); ``step`` is one compiled call
(:func:`envs.kernels.step_rows`: masked actions, physics, observation, mask, reward).
"""

from __future__ import annotations

import numpy as np

from envs.kernels import _observe, begin_rows, step_rows
from sim.core import Batch
from sim.forecast import forecast_tables
from sim.simulator import Simulator

CI_SCALE_G_PER_KWH = 1000.0  # intensities are divided by this (the dirtiest zone averages ~700)


class EnvRows:
    """``n`` rows of one scenario's environment (layout of observations: ``envs.carbon_migration``).

    :param env: a ``CarbonMigrationEnv`` of the scenario (spaces, layout, reward weights, world)
    :param n: rows
    :param batch: the core rows to use (default: ``env.sim``'s own batch when ``n == 1``, else a new one)
    """

    def __init__(self, env, n: int, batch: Batch | None = None):
        sim: Simulator = env.sim
        tab = sim.tables
        self.n = n
        self.batch = batch or (sim.batch if n == 1 else Batch(tab, n))
        self.sims: list[Simulator] = [sim] * n  # row i's simulator view (set by the owner)
        self.world, self.scenario = env.world, env.scenario
        D = env.observation_space.shape[0]
        R, L = env.R, env.L
        self.obs = np.zeros((n, D), dtype=np.float32)
        self.masks = np.ones((n, R + 1 + L), dtype=bool)
        self.rewards = np.zeros(n)
        self.term = np.zeros(n, dtype=bool)
        self.trunc = np.zeros(n, dtype=bool)
        self.terms = np.zeros((n, len(env.reward_term_names)))
        self.invalid = np.zeros(n, dtype=np.int64)
        self.targets = np.zeros(n, dtype=np.int64)
        self.levels = np.zeros(n, dtype=np.int64)
        self.templates = np.zeros((n, tab.n_hours, D), dtype=np.float32)
        self.hour0 = np.zeros(n, dtype=np.int64)
        self.dow0 = np.zeros(n, dtype=np.int64)
        self.start_hour = np.zeros(n, dtype=np.int64)
        w = env.reward_weights
        self.weights = np.array([getattr(w, name) for name in env.reward_weight_names])
        self.layout = np.array([env.F, env.region_block, env.job_at, env.level_div], dtype=np.int64)
        self.xfer_h = env.xfer_h
        self.t_mb_home_s = float(tab.t_mb_s[tab.home, -1])
        self.region_block = env.region_block
        self.start_h = int(env.world.carbon.start_h.astype(np.int64))
        self.draw = sim.draw  # the episode draw's constants (sim.episode), the same for every row
        self.n_start_hours = env.world.n_start_hours
        self._forecast = forecast_tables(R, tab.n_hours, env.scenario.forecast)
        # step_rows' info arguments when no infos are wanted (no column per row: info_columns is skipped)
        self._no_info = (
            tab.total_mb,
            tab.clocks_mhz,
            float(tab.deadline_s),
            np.zeros((0, 0)),
            np.zeros((0, 0), dtype=np.int64),
            np.zeros((0, 0), dtype=bool),
        )

    def begin(self, rows: list[int], starts: list[int | None], rngs: list[np.random.Generator]) -> None:
        """Rows ``rows`` start episodes at hour indices ``starts`` (None: drawn uniformly over the world's start
        hours) with ``rngs``, in the model's order (start hour, the episode's tables ``sim.episode``, the forecast),
        and get their first observations and masks: three compiled calls for all of them."""
        for i, start in zip(rows, starts):
            if start is not None:
                self.sims[i].check_start(start)  # all checked before any draw
        b = self.batch
        for i, rng in zip(rows, rngs):
            b.set_rng(i, rng)
        idx = np.array(rows, dtype=np.int64)
        at = np.array([-1 if s is None else s for s in starts], dtype=np.int64)
        b.begin(idx, at, self.draw, self.n_start_hours)
        offset, src_ok, noise, std = self._forecast
        begin_rows(idx, at, b.rng_fns, b.rng_states, self.draw.ci_g_per_kwh, offset, src_ok, noise, std,
                   self.templates, self.region_block, CI_SCALE_G_PER_KWH, self.start_h, self.hour0, self.dow0,
                   self.start_hour, self.invalid, self.terms)  # fmt: skip
        self.observe(idx, False)
        for i, start, rng in zip(rows, at.tolist(), rngs):
            self.sims[i].began(start, rng)

    def step(self, idx: np.ndarray, info_blocks: tuple = ()) -> bool:
        """Step the rows ``idx`` with ``self.targets`` / ``self.levels`` (action indices; a masked target keeps
        the job's course and is counted in ``invalid``): rewards, flags, observations and masks are updated.
        ``info_blocks``: ``(cols, ints, flags, total_mb, clocks_mhz, deadline_s)`` for
        :func:`envs.kernels.info_columns` of every row in the same call; returns whether they were filled."""
        b = self.batch
        if b.logging:
            b._grow_logs()
        parked, errors = step_rows(
            idx,
            self.targets,
            self.levels,
            self.masks,
            self.invalid,
            *b.args(),
            *self._obs_args(),
            *(self._info_args(info_blocks) if info_blocks else self._no_info),
        )
        if parked:  # rare: a GPU-failure time to draw (or a log to grow); then observe as step_rows would have
            errors += b.finish(self.targets, self.levels)
        b.stamp += 1
        if errors:
            b.raise_illegal()
        if parked:
            self.observe(idx, True)
        return bool(info_blocks) and not parked

    def _info_args(self, blocks: tuple) -> tuple:
        cols, ints, flags, total_mb, clocks_mhz, deadline_s = blocks
        return total_mb, clocks_mhz, deadline_s, cols, ints, flags

    def _obs_args(self) -> tuple:
        return (
            self.templates,
            self.hour0,
            self.dow0,
            self.xfer_h,
            self.weights,
            self.layout,
            self.t_mb_home_s,
            self.obs,
            self.rewards,
            self.term,
            self.trunc,
            self.terms,
        )

    def observe(self, idx: np.ndarray, stepped: bool) -> None:
        """Observations and masks of the rows ``idx`` (and, when ``stepped``, their rewards and flags)."""
        core, ep = self.batch.core, self.batch.episodes
        _observe(
            idx,
            stepped,
            core.f,
            core.i,
            core.step_acc,
            core.episode_acc,
            ep.free,
            ep.outage_start_s,
            ep.outage_end_s,
            ep.n_outages,
            ep.cap_w,
            ep.work,
            self.templates,
            self.hour0,
            self.dow0,
            self.xfer_h,
            self.weights,
            self.batch.tables.params,
            self.layout,
            self.t_mb_home_s,
            self.obs,
            self.masks,
            self.rewards,
            self.term,
            self.trunc,
            self.terms,
        )
