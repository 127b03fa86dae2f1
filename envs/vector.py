"""Batched ``CarbonMigration-v0``: N environments stepped as arrays by one compiled core, plus an SB3 ``VecEnv``.

>>> import gymnasium, envs
>>> venv = gymnasium.make_vec("CarbonMigration-v0", num_envs=64, vectorization_mode="vector_entry_point")

How it is batched: the state of all N environments lives in the arrays of :class:`sim.core.CoreState`
(``(N, 1, ...)``: one job each), the episode tables in :class:`sim.tables.EpisodeArrays`, the observation buffers
in :class:`envs.batch.EnvRows` (the single environment is the same code with one row). A step is one compiled
call over the whole batch (:func:`envs.kernels.step_rows`: actions -> :func:`sim.core.advance` -> observations,
masks, rewards and the infos' columns, :func:`envs.kernels.info_columns`). Each
environment keeps its own ``numpy.random.Generator``: transfer-failure coins are drawn inside the compiled loop
through the generator's C ``next_double`` (what ``rng.random()`` calls), and the rare GPU-failure time is drawn
in a short Python loop over the environments parked on it; so env ``i`` reset with seed ``s`` produces exactly
the trajectory of the single environment reset with ``s + i`` (``tests/test_vector_env.py``). Resets draw each
episode with the single environment's draws in the same order (``sim.episode``, the forecast) straight
into the arrays; the single ``CarbonMigrationEnv`` objects (``envs``) are views of the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from envs.batch import ActionOutOfRange, EnvRows
from envs.carbon_migration import (
    REWARD_TERMS,
    CarbonMigrationEnv,
)
from envs.kernels import info_columns, split_actions
from sim.errors import ConfigError
from sim.layout import F_POWER_W, F_PROGRESS_MB, F_T_S, I_N_GPUS, I_REGION, I_STATE, METRICS, N_FLOAT, N_INT
from sim.scenario import Scenario
from sim.states import State

_STATE_NAMES = np.array([s.name for s in State], dtype=object)
_COMPLETED_STATE = int(State.COMPLETED)


class CarbonMigrationVectorEnv(VectorEnv):
    """
    ``num_envs`` independent copies of :class:`envs.carbon_migration.CarbonMigrationEnv` on one scenario.

    Spaces are the single environment's, batched: observations ``(N, obs_dim)`` float32, actions ``(N, 2)``
    integers ``[target, clock level]``. ``action_masks()`` is ``(N, R + 1 + L)``. Rewards, terminations and
    truncations are ``(N,)`` arrays; ``infos`` is the Gymnasium vector dict (``info[key][i]`` is env ``i``'s
    value, ``info["_" + key][i]`` whether it has one), with the single environment's keys, nested ``step`` and
    ``episode`` metric dicts included.

    Autoreset follows Gymnasium 1.x: ``next_step`` (default) resets a finished environment on the following
    ``step`` call, ignoring its action and returning reward 0; ``same_step`` resets it at once and puts the
    terminal observation and info under ``final_obs`` / ``final_info``. ``reset(seed=s)`` seeds env ``i``
    with ``s + i``, so env ``i``'s trajectory equals a single environment reset with seed ``s + i``.

    :param num_envs: number of jobs N
    :param scenario: shipped scenario name, YAML path or :class:`sim.scenario.Scenario`
    :param split: ``train`` / ``validation`` / ``test``
    :param data_dir: folder of carbon-intensity files (default: the scenario's or ``../shared/data``)
    :param period: explicit UTC ``(start, end)`` dates instead of the split's
    :param render_mode: ``None``, ``"ansi"`` or ``"rgb_array"`` (``render()`` returns one frame per env)
    :param invalid_action: ``"ignore"`` (count masked actions) or ``"raise"``
    :param reward: reward-weight overrides (see :class:`sim.scenario.RewardSpec`)
    :param autoreset_mode: ``"next_step"`` or ``"same_step"``
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | Scenario = "paper",
        split: str = "train",
        data_dir: str | None = None,
        period: tuple[str, str] | None = None,
        render_mode: str | None = None,
        invalid_action: str = "ignore",
        reward: dict | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        gpu_scaling: bool = False,
    ):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"num_envs={num_envs!r}; expected an integer >= 1")
        modes = {
            "next_step": AutoresetMode.NEXT_STEP,
            "same_step": AutoresetMode.SAME_STEP,
            AutoresetMode.NEXT_STEP.value: AutoresetMode.NEXT_STEP,
            AutoresetMode.SAME_STEP.value: AutoresetMode.SAME_STEP,
        }
        mode = autoreset_mode if isinstance(autoreset_mode, AutoresetMode) else modes.get(autoreset_mode)
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ConfigError(
                f"autoreset_mode={autoreset_mode!r}; expected 'next_step' or 'same_step' "
                f"(or gymnasium.vector.AutoresetMode.NEXT_STEP / SAME_STEP)"
            )
        self.autoreset_mode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        first = CarbonMigrationEnv(
            scenario,
            split,
            data_dir=data_dir,
            period=period,
            render_mode=render_mode,
            invalid_action=invalid_action,
            reward=reward,
            gpu_scaling=gpu_scaling,
        )
        self.world = first.world  # shared: traces, network and GPU models loaded once
        # one single environment per row, used to draw episodes at reset (same code, same random stream)
        self._envs = [first] + [
            CarbonMigrationEnv(
                first.scenario,
                render_mode=render_mode,
                invalid_action=invalid_action,
                reward=reward,
                world=first.world,
                gpu_scaling=gpu_scaling,
            )
            for _ in range(num_envs - 1)
        ]
        self.num_envs = N = int(num_envs)
        self.render_mode = render_mode
        self.invalid_action = invalid_action
        self.scenario = first.scenario
        self.R, self.L, self.G = first.R, first.L, first.G
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, N)
        self.action_space = batch_space(self.single_action_space, N)

        # the rows of the array core, shared: single env i is row i (its simulator and buffers are views of it)
        self.rows = rows = EnvRows(first, N)
        for i, env in enumerate(self._envs):
            env.sim.bind(rows.batch, i)
            env._attach(rows, i)
        self._observations, self._masks = rows.obs, rows.masks
        self._rewards, self._terminations, self._truncations = rows.rewards, rows.term, rows.trunc
        self._reward_terms, self._invalid = rows.terms, rows.invalid
        self.core, self.episodes, self.tables = rows.batch.core, rows.batch.episodes, rows.batch.tables
        self._autoreset = np.zeros(N, dtype=bool)
        self._all = np.ones(N, dtype=bool)
        self._all_idx = np.arange(N, dtype=np.int64)
        self._region_names = np.array(self.scenario.region_names, dtype=object)
        self._was_reset = False
        self._fresh: set[int] = set()  # rows reset here whose single env has not been told yet
        self.last_finals: dict[int, tuple[np.ndarray, dict]] = {}
        keys = ("t_s", "state", "region", "region_index", "n_gpus", "clock_mhz", "power_w", "progress_mb")
        keys += ("remaining_mb", "invalid_actions", "deadline_met", "completed", "step_metrics", "episode_metrics")
        self._all.setflags(write=False)  # shared by every info dict as its "_key" masks
        self._info_masks = {"_" + k: self._all for k in keys + ("reward_terms",)}
        # rows of _infos' float block: state fields, step and episode metrics (+ carbon_g), terms, remaining, JCT, clock
        self._n_info_cols = N_FLOAT + 2 * len(_METRIC_KEYS) + len(REWARD_TERMS) + 3

    @property
    def envs(self) -> list[CarbonMigrationEnv]:
        """The single environments: env ``i`` is a view of row ``i`` (its simulator, observation and mask), for
        attribute reads, ``render`` and ``view``; the step does not use them. A sub-environment's ``history()``
        starts at the first such read of its episode."""
        for i in sorted(self._fresh):
            self._envs[i]._begin(int(self.rows.start_hour[i]))
        self._fresh.clear()
        return self._envs

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict | list[dict | None] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env. ``seed``: int (env ``i`` gets ``seed + i``) or one per env; ``options``: one dict for
        all (e.g. ``{"start_hour": h}``) or one per env."""
        N = self.num_envs
        if seed is None or isinstance(seed, (int, np.integer)):
            super().reset(seed=None if seed is None else int(seed))
            seeds = [None] * N if seed is None else [int(seed) + i for i in range(N)]
        else:
            seeds = list(seed)
            if len(seeds) != N:
                raise ValueError(f"reset(seed=...) got {len(seeds)} seeds for {N} environments")
        opts = options if isinstance(options, (list, tuple)) else [options] * N
        if len(opts) != N:
            raise ValueError(f"reset(options=...) got {len(opts)} option dicts for {N} environments")
        self._reset_rows(list(range(N)), seeds, list(opts))
        self._autoreset[:] = False
        self._was_reset = True
        return self._observations.copy(), self._infos()

    def _reset_rows(self, rows: list[int], seeds: list[int | None], options: list[dict | None]) -> None:
        """Draw the next episode of each env in ``rows`` with its own generator, exactly as the single environment's
        ``reset`` does (same checks, then ``EnvRows.begin``: the same draws in the same order, start hour, episode,
        forecast; it also writes their first observations and masks)."""
        starts = [self._envs[i]._start_hour_option(o) for i, o in zip(rows, options)]  # all checked before any draw
        envs = self._envs
        for i, seed in zip(rows, seeds):
            if seed is not None:
                gym.Env.reset(envs[i], seed=seed)  # a seeded reset replaces the env's generator
        self.rows.begin(rows, starts, [envs[i].np_random for i in rows])  # draws the start hours left None
        self._fresh.update(rows)

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._was_reset:
            raise RuntimeError("call reset() before step()")
        a = self._check_actions(actions)
        rew, term, trunc = self._rewards, self._terminations, self._truncations
        same_step = self.autoreset_mode == AutoresetMode.SAME_STEP
        restart = not same_step and self._autoreset.any()  # next-step mode: these finished last step
        split = self.rows.actions(a)  # checked and split by the step's compiled call
        if self.invalid_action == "raise":  # split first: the masks are checked before anything changes
            self._split(a)
            split = ()
            targets, levels = self.rows.targets, self.rows.levels
            idx = np.flatnonzero(~self._autoreset) if restart else self._all_idx
            bad = ~self._masks[idx, targets[idx]]
            if bad.any():
                self._raise_masked(int(idx[np.flatnonzero(bad)[0]]), targets, levels)
        info = self.rows.info_blocks(*self._info_blocks())  # filled by the same compiled call unless a row parked
        # one compiled call: (restarts,) actions -> masked targets -> physics -> observations, masks, rewards, infos
        try:
            if restart:
                envs = self._envs
                rows, filled = self.rows.restart_and_step(self._autoreset, lambda i: envs[i].np_random, info, split)
                self._fresh.update(rows)
            else:
                filled = self.rows.step(self._all_idx, info, split)
        except ActionOutOfRange as e:
            raise ValueError(f"env {e.row}: action {a[e.row].tolist()} out of range; {self._expected()}") from None
        finals: list[tuple[int, np.ndarray, dict]] = []
        if same_step:
            done = np.flatnonzero(term | trunc)
            if done.size:
                infos = self._infos()
                for i in done.tolist():
                    info = self.info_of(infos, i)
                    finals.append((i, self._observations[i].copy(), info))
                rows = done.tolist()
                self._reset_rows(rows, [None] * len(rows), [None] * len(rows))
                filled = False
        else:
            np.logical_or(term, trunc, out=self._autoreset)
        infos = self._infos(info[3:] if filled else None)
        self.last_finals = {i: (obs, info) for i, obs, info in finals}  # plain per-env form (SB3VecEnv)
        for i, obs, info in finals:
            infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
        return self._observations.copy(), rew.copy(), term.copy(), trunc.copy(), infos

    def action_masks(self) -> np.ndarray:
        """``(N, R + 1 + L)`` booleans: valid targets (regions, wait) then clock levels, per env."""
        return self._masks.copy()

    def render(self) -> tuple | None:
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    # ------------------------------------------------------------------ helpers

    def _raise_masked(self, i: int, targets: np.ndarray, levels: np.ndarray) -> None:
        R = self.R
        state = State(int(self.core.i[i, 0, I_STATE])).name
        valid = np.flatnonzero(self._masks[i, : R + 1]).tolist()
        raise ValueError(
            f"env {i}: action {[int(targets[i]), int(levels[i])]} is masked now (state {state}, valid targets {valid})"
        )

    def _expected(self) -> str:
        R, L, N = self.R, self.L, self.num_envs
        return (
            f"expected ({N}, 2) integers [target 0..{R} ({R} = wait), clock level 0..{L - 1}] per env, or ({N}, 3) "
            f"with a GPU choice 0..{self.G - 1}"
        )

    def _check_actions(self, actions) -> np.ndarray:
        """``actions`` as an ``(N, 2)`` or ``(N, 3)`` C-ordered int64 array (the caller's when it is one; the
        values' range is checked by the step's compiled call)."""
        N = self.num_envs
        a = actions
        if not (type(a) is np.ndarray and a.shape in ((N, 2), (N, 3)) and a.dtype == np.int64):  # fast path
            expected = self._expected()
            try:
                a = np.asarray(actions)
            except Exception:
                raise ValueError(f"actions {actions!r} are not array-like; {expected}") from None
            if a.shape not in ((N, 2), (N, 3)):
                raise ValueError(f"actions have shape {a.shape}; {expected}")
            if not np.issubdtype(a.dtype, np.integer):
                ok = np.issubdtype(a.dtype, np.floating) and np.all(np.mod(a, 1) == 0)
                if not ok:
                    raise ValueError(f"actions (dtype {a.dtype}) are not integer-valued; {expected}")
            b = a.astype(np.int64)  # a copy: the caller's array is never changed
            if not np.array_equal(b, a):  # uint64 above 2^63 or huge floats would wrap
                raise ValueError(f"actions hold values outside int64 ({a.min()} .. {a.max()}); {expected}")
            a = b
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)

    def _split(self, a: np.ndarray) -> None:
        """``a``'s actions into the rows' action buffers, checked (``envs.kernels.split_actions``)."""
        i = split_actions(a, self.R, self.L, self.G, self.rows._plain)
        if i >= 0:
            raise ValueError(f"env {i}: action {a[i].tolist()} out of range; {self._expected()}")

    def _info_blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fresh ``(cols, ints, flags)`` blocks for :func:`envs.kernels.info_columns` (new every step: the infos
        handed out keep their values)."""
        N = self.num_envs
        return np.empty((self._n_info_cols, N)), np.empty((N_INT + 1, N), dtype=np.int64), np.empty((2, N), dtype=bool)

    def _infos(self, blocks: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
        """The single environment's info keys, batched (Gymnasium vector dict layout). Every value is a row of two
        fresh arrays filled by one compiled call (:func:`envs.kernels.info_columns`; in ``step``, the step's own
        call fills ``blocks``), so the dict costs a few microseconds however many metrics there are; the ``_key``
        masks are shared, read-only all-True arrays."""
        if blocks is not None:
            return self._info_dict(*blocks)
        cols, ints, flags = self._info_blocks()
        info_columns(
            tuple(self.core.rows()), self._reward_terms, self._invalid, self.rows.info_blocks(cols, ints, flags)
        )
        return self._info_dict(cols, ints, flags)

    def _info_dict(self, cols: np.ndarray, ints: np.ndarray, flags: np.ndarray) -> dict[str, Any]:
        region, state = ints[I_REGION], ints[I_STATE]
        completed = flags[0]
        m, t = len(_METRIC_KEYS), len(REWARD_TERMS)
        a = N_FLOAT
        info: dict[str, Any] = {
            "t_s": cols[F_T_S],
            "state": _STATE_NAMES[state],
            "region": self._region_names[region],
            "region_index": region,
            "n_gpus": ints[I_N_GPUS],
            "clock_mhz": cols[-1],
            "power_w": cols[F_POWER_W],
            "progress_mb": cols[F_PROGRESS_MB],
            "remaining_mb": cols[-3],
            "invalid_actions": ints[N_INT],
            "deadline_met": flags[1],
            "completed": completed,
            # views of the block's rows, made on access: a metric nobody reads costs nothing
            "step_metrics": ColumnMap(cols[a : a + m], _METRIC_INDEX, self._all),
            "episode_metrics": ColumnMap(cols[a + m : a + 2 * m], _METRIC_INDEX, self._all),
            "reward_terms": ColumnMap(cols[a + 2 * m : a + 2 * m + t], _TERM_INDEX, self._all),
        }
        info.update(self._info_masks)
        info["jct_h"] = cols[-2]
        info["_jct_h"] = completed
        return info

    def info_rows(self, infos: dict[str, Any]) -> list[InfoRow]:
        """Every env's info in the single environment's layout (``info_of(infos, i)`` for each ``i``), as
        :class:`InfoRow` mappings whose values are made when read."""
        keys = [k for k in infos if not k.startswith("_") and k not in ("final_obs", "final_info")]
        has = {k: infos["_" + k] for k in keys if "_" + k in infos and not infos["_" + k].all()}
        if not has:
            every = tuple(keys)
            return [InfoRow(infos, i, every) for i in range(self.num_envs)]
        return [InfoRow(infos, i, tuple(k for k in keys if k not in has or has[k][i])) for i in range(self.num_envs)]

    def info_of(self, infos: dict[str, Any], i: int) -> dict[str, Any]:
        """Env ``i``'s info as a plain dict (the single environment's layout) from a batched ``infos``."""
        out = {}
        for key, value in infos.items():
            if key.startswith("_") or not infos.get("_" + key, self._all)[i]:
                continue
            out[key] = info_of_value(value, i)
        return out


def info_of_value(value, i: int):
    if isinstance(value, Mapping):
        return {k: info_of_value(v, i) for k, v in value.items() if not k.startswith("_")}
    v = value[i]
    return v.item() if isinstance(v, np.generic) else v


class InfoRow(MutableMapping):
    """Env ``i``'s info from a batched ``infos`` (a plain-dict mapping equal to ``info_of(infos, i)``), each value
    made when read. SB3 asks every env's info for ``"episode"`` each step; building 32 dicts of ~100 metrics was
    ~20 us a timestep, about a quarter of MaskablePPO's training time on 32 batched envs. A write or delete turns it
    into a plain dict first.

    :param infos: the batched infos of one step (fresh arrays every step, so the values stay those of that step)
    :param i: the env's index
    :param keys: the env's keys (those whose ``"_" + key`` mask is set for it)
    """

    __slots__ = ("_infos", "_i", "_keys", "_own")

    def __init__(self, infos: dict[str, Any], i: int, keys: tuple[str, ...]):
        self._infos, self._i, self._keys = infos, i, keys
        self._own: dict[str, Any] | None = None

    def _plain(self) -> dict[str, Any]:
        if self._own is None:
            self._own = {k: info_of_value(self._infos[k], self._i) for k in self._keys}
        return self._own

    def __getitem__(self, key: str) -> Any:
        if self._own is not None:
            return self._own[key]
        if key not in self._keys:
            raise KeyError(key)
        return info_of_value(self._infos[key], self._i)

    def __setitem__(self, key: str, value: Any) -> None:
        self._plain()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._plain()[key]

    def __iter__(self):
        return iter(self._keys if self._own is None else self._own)

    def __len__(self) -> int:
        return len(self._keys if self._own is None else self._own)

    def __contains__(self, key: object) -> bool:
        return key in (self._keys if self._own is None else self._own)

    def copy(self) -> dict[str, Any]:
        return dict(self._plain())

    def __repr__(self) -> str:
        return repr(self._plain())


class ColumnMap(Mapping):
    """Read-only ``{key: (N,) array}`` of the rows of a ``(keys, N)`` block, with Gymnasium's ``"_" + key`` masks
    (one shared all-True array): a batched metrics dict whose rows are made only when read.

    :param block: ``(len(index), N)`` values, row ``index[key]`` for ``key``
    :param index: key -> row
    :param mask: ``(N,)`` booleans returned for every ``"_" + key``
    """

    __slots__ = ("_block", "_index", "_mask")

    def __init__(self, block: np.ndarray, index: dict[str, int], mask: np.ndarray):
        self._block, self._index, self._mask = block, index, mask

    def __getitem__(self, key: str) -> np.ndarray:
        j = self._index.get(key)
        if j is not None:
            return self._block[j]
        if key[:1] == "_" and key[1:] in self._index:
            return self._mask
        raise KeyError(key)

    def __iter__(self):
        yield from self._index
        for key in self._index:
            yield "_" + key

    def __len__(self) -> int:
        return 2 * len(self._index)

    def __repr__(self) -> str:
        return repr(dict(self))


_METRIC_KEYS = METRICS + ("carbon_g",)
_METRIC_INDEX = {k: j for j, k in enumerate(_METRIC_KEYS)}
_TERM_INDEX = {k: j for j, k in enumerate(REWARD_TERMS)}


# ---------------------------------------------------------------------------------------------------- SB3


class SB3VecEnv(VecEnv):
    """Stable-Baselines3 ``VecEnv`` over :class:`CarbonMigrationVectorEnv` (same-step autoreset, as SB3 expects).

    Finished envs are reset at once; their last observation is in ``infos[i]["terminal_observation"]`` and
    ``infos[i]["TimeLimit.truncated"]`` tells a time-out from completion (wrap this in ``VecMonitor`` for
    episode-return logs).
    ``env_method("action_masks")`` returns one mask per env, so sb3-contrib's MaskablePPO can train on it.

    :param venv: a vector env in ``same_step`` autoreset mode; built from ``kwargs`` when omitted
    :param kwargs: arguments of :class:`CarbonMigrationVectorEnv` (``num_envs``, ``scenario``, ...)
    """

    def __init__(self, venv: CarbonMigrationVectorEnv | None = None, **kwargs):
        if venv is None:
            venv = CarbonMigrationVectorEnv(autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
        elif kwargs:
            raise ConfigError(f"SB3VecEnv: give either venv or constructor arguments, not both ({sorted(kwargs)})")
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ConfigError("SB3VecEnv needs a CarbonMigrationVectorEnv with autoreset_mode='same_step'")
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> np.ndarray:
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        options = [o or None for o in self._options]
        obs, infos = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = [self.venv.info_of(infos, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rew, term, trunc, infos = self.venv.step(self._actions)
        dones = term | trunc
        rows = self.venv.info_rows(infos)
        out = []
        for i in range(self.num_envs):
            if dones[i]:
                terminal_obs, terminal_info = self.venv.last_finals[i]
                info = dict(terminal_info)
                info["terminal_observation"] = terminal_obs
                info["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
            else:
                info = rows[i]
            out.append(info)
        return obs, rew.astype(np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    def action_masks(self) -> np.ndarray:
        return self.venv.action_masks()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.venv.envs[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._get_indices(indices):
            setattr(self.venv.envs[i], attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list:
        if method_name == "action_masks":  # one batched copy instead of N calls
            masks = self.venv.action_masks()
            return [masks[i] for i in self._get_indices(indices)]
        return [
            getattr(self.venv.envs[i], method_name)(*method_args, **method_kwargs) for i in self._get_indices(indices)
        ]

    def env_is_wrapped(self, wrapper_class, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self):
        return [env.render() if env.render_mode == "rgb_array" else None for env in self.venv.envs]
