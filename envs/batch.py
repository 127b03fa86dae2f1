"""The rows of ``CarbonMigration-v0`` on one array core: what the single environment (one row) and the vector
environment (N rows) both step, so both run the same code.

:class:`EnvRows` holds, per row, the observation, action mask, reward, reward terms and flags the step writes,
the episode's observation template (intensity and forecast features per hour) and start time
(:class:`envs.kernels.RowBuffers`), and the rows' :class:`sim.core.Batch` (state, episode tables, generators).
``begin`` draws episodes with the rows' generators in the model's order (start hour, ``sim.episode``, then the
forecast); ``step`` is one compiled call (:func:`envs.kernels.step_rows`: masked actions, physics, observation,
mask, reward).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from envs.kernels import (
    CI_SCALE_G_PER_KWH,
    RowBuffers,
    begin_rows,
    observe_rows,
    restart_and_step,
    step_rows,
)
from sim.core import Batch
from sim.forecast import forecast_tables
from sim.reward import REWARD_WEIGHTS
from sim.simulator import Simulator

__all__ = ["CI_SCALE_G_PER_KWH", "ActionOutOfRange", "EnvRows"]


class ActionOutOfRange(ValueError):
    """Row ``row``'s action is outside the action space (nothing was stepped); the caller words the message."""

    def __init__(self, row: int):
        super().__init__(f"row {row}: action out of range")
        self.row = row


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
        w = env.reward_weights
        self.buffers = RowBuffers(
            templates=np.zeros((n, tab.n_hours, D), dtype=np.float32),
            hour0=np.zeros(n, dtype=np.int64),
            dow0=np.zeros(n, dtype=np.int64),
            start_hour=np.zeros(n, dtype=np.int64),
            xfer_h=env.xfer_h,
            weights=np.array([getattr(w, name) for name in REWARD_WEIGHTS]),
            layout=np.array([env.F, env.region_block, env.job_at, env.level_div], dtype=np.int64),
            t_mb_home_s=float(tab.t_mb_s[tab.home, -1]),
            targets=np.zeros(n, dtype=np.int64),
            levels=np.zeros(n, dtype=np.int64),
            gpus=np.full(n, -1, dtype=np.int64),
            obs=np.zeros((n, D), dtype=np.float32),
            masks=np.ones((n, R + 1 + L + env.n_gpu_masks), dtype=bool),
            rewards=np.zeros(n),
            term=np.zeros(n, dtype=bool),
            trunc=np.zeros(n, dtype=bool),
            terms=np.zeros((n, len(env.reward_term_names))),
            invalid=np.zeros(n, dtype=np.int64),
        )
        if env.n_gpu_masks and not tab.elastic:  # a rigid job runs on all its GPUs only
            self.buffers.masks[:, R + 1 + L : -1] = False
        self._plain = tuple(self.buffers)  # what the kernels take (sim.layout: plain tuples dispatch fast)
        b = self.buffers
        self.obs, self.masks, self.rewards, self.term, self.trunc = b.obs, b.masks, b.rewards, b.term, b.trunc
        self.terms, self.invalid, self.targets, self.levels, self.gpus = b.terms, b.invalid, b.targets, b.levels, b.gpus
        self.templates, self.hour0, self.dow0, self.start_hour = b.templates, b.hour0, b.dow0, b.start_hour
        self.start_h = int(env.world.carbon.start_h.astype(np.int64))
        self.draw = sim.draw  # the episode draw's constants (sim.episode), the same for every row
        self.n_start_hours = env.world.n_start_hours
        self._forecast = forecast_tables(R, tab.n_hours, env.scenario.forecast)
        # step_rows' info blocks when no infos are wanted (no column per row: info_columns is skipped)
        self._info_head = (tab.total_mb, tab.clocks_mhz, float(tab.deadline_s))  # InfoBlocks' constant fields
        self._no_info = self.info_blocks(np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0), bool))
        # step_rows' actions when they are already in the action buffers (the single environment's step)
        self._n_levels, self._n_gpu_choices = L, env.G
        self._no_actions = self.actions(np.zeros((0, 2), dtype=np.int64))

    def actions(self, values: np.ndarray) -> tuple:
        """:class:`envs.kernels.ActionInput` (plain) of the ``(n, 2)`` or ``(n, 3)`` int64 C-ordered ``values``
        (checked and split into the action buffers by the step's compiled call)."""
        return (values, self._n_levels, self._n_gpu_choices)

    def info_blocks(self, cols: np.ndarray, ints: np.ndarray, flags: np.ndarray) -> tuple:
        """:class:`envs.kernels.InfoBlocks` (plain) with the output blocks ``cols``, ``ints``, ``flags``."""
        return self._info_head + (cols, ints, flags)

    def begin(self, rows: list[int], starts: list[int | None], rngs: list[np.random.Generator]) -> None:
        """Rows ``rows`` start episodes at hour indices ``starts`` (None: drawn uniformly over the world's start
        hours) with ``rngs``, in the model's order (start hour, the episode's tables ``sim.episode``, the forecast),
        and get their first observations and masks: one compiled call for all of them (``envs.kernels.begin_rows``)."""
        for i, start in zip(rows, starts):
            if start is not None:
                self.sims[i].check_start(start)  # all checked before any draw
        b = self.batch
        for i, rng in zip(rows, rngs):
            b.set_rng(i, rng)
        idx = np.array(rows, dtype=np.int64)
        at = np.array([-1 if s is None else s for s in starts], dtype=np.int64)
        draw, n_start = self.draw.tables, self.n_start_hours
        o_start, o_end, observed = begin_rows(
            idx, at, n_start, draw, b.fresh, b.engine(), self._forecast, self.start_h, self._plain
        )
        b.began(o_start, o_end)
        if not observed:  # the outage arrays grew: observe with the new ones
            self.observe(idx, False)
        for i, start, rng in zip(rows, at.tolist(), rngs):
            self.sims[i].began(start, rng)

    def step(self, idx: np.ndarray, info: tuple = (), actions: tuple = ()) -> bool:
        """Step the rows ``idx`` with ``self.targets`` / ``self.levels`` / ``self.gpus`` (action indices; ``gpus``
        -1: all requested GPUs; a masked target keeps
        the job's course and is counted in ``invalid``): rewards, flags, observations and masks are updated.
        ``actions``: ``self.actions(values)`` to check and split into those buffers first, in the same call
        (raises :class:`ActionOutOfRange` before anything changes). ``info``: ``info_blocks(...)`` for
        :func:`envs.kernels.info_columns` of every row in the same call; returns whether they were filled."""
        b = self.batch
        if b.logging:
            b.grow_logs()
        parked, errors, bad = step_rows(
            idx, actions or self._no_actions, b.engine(), self._plain, info or self._no_info
        )
        if bad >= 0:
            raise ActionOutOfRange(bad)
        return self._stepped(idx, parked, errors, info)

    def restart_and_step(
        self, restart: np.ndarray, rng_of: Callable[[int], np.random.Generator], info: tuple = (), actions: tuple = ()
    ) -> tuple[list[int], bool]:
        """The rows with ``restart[i]`` begin episodes at drawn start hours with their generators ``rng_of(i)``
        (reward 0, not done), the others step as in ``step`` (``actions``, ``info`` as there): one compiled call
        (:func:`envs.kernels.restart_and_step`) where a ``begin`` and a ``step`` were two, with their Python glue.
        Returns the restarted rows and whether ``info`` was filled."""
        b = self.batch
        rows = np.flatnonzero(restart).tolist()
        rngs = [rng_of(i) for i in rows]
        for i, rng in zip(rows, rngs):
            b.set_rng(i, rng)
        if b.logging:
            b.grow_logs()
        o_start, o_end, _, starts, others, parked, errors, bad = restart_and_step(
            restart,
            actions or self._no_actions,
            self.n_start_hours,
            self.draw.tables,
            b.fresh,
            b.engine(),
            self._forecast,
            self.start_h,
            self._plain,
            info or self._no_info,
        )
        if bad >= 0:
            raise ActionOutOfRange(bad)
        b.began(o_start, o_end)
        for i, start, rng in zip(rows, starts.tolist(), rngs):
            self.sims[i].began(start, rng)
        if parked < 0:  # the outage arrays grew, so nothing was stepped: observe with the new ones, then step
            self.observe(np.array(rows, dtype=np.int64), False)
            self.rewards[rows], self.term[rows], self.trunc[rows] = 0.0, False, False
            return rows, self.step(others, info)
        return rows, self._stepped(others, parked, errors, info)

    def _stepped(self, idx: np.ndarray, parked: int, errors: int, info: tuple) -> bool:
        """After ``step_rows``: resume parked rows, raise on an illegal transition; whether ``info`` was filled."""
        b = self.batch
        if parked:  # rare: a GPU-failure time to draw (or a log to grow); then observe as step_rows would have
            errors += b.finish(self.targets, self.levels)
        b.stamp += 1
        if errors:
            b.raise_illegal()
        if parked:
            self.observe(idx, True)
        return bool(info) and not parked

    def observe(self, idx: np.ndarray, stepped: bool) -> None:
        """Observations and masks of the rows ``idx`` (and, when ``stepped``, their rewards and flags)."""
        observe_rows(idx, stepped, self.batch.engine(), self._plain)
