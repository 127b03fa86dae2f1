"""Batched ``CarbonMigration-v0``: N jobs of one scenario stepped together, plus an SB3 ``VecEnv`` adapter.

>>> import gymnasium, envs
>>> venv = gymnasium.make_vec("CarbonMigration-v0", num_envs=16, vectorization_mode="vector_entry_point")

What is batched, honestly: the N simulators share one :class:`sim.world.World` (traces loaded once), every
sub-environment writes its observation and action mask straight into row ``i`` of preallocated ``(N, obs_dim)``
and ``(N, R + 1 + L)`` arrays, actions are validated for the whole batch at once, and rewards, flags and infos
are gathered into ``(N,)`` arrays. The physics itself stays the scalar event-driven ``sim.simulator.Simulator``
(one Python call per job per step): a NumPy re-implementation of its event loop (faults, transfers, hour
boundaries inside a step) is future work, so throughput is roughly N times the single environment's, not
CartPoleVectorEnv's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from envs.carbon_migration import CarbonMigrationEnv
from sim.errors import ConfigError
from sim.scenario import Scenario
from sim.simulator import METRICS
from sim.states import State

_STATE_NAMES = np.array([s.name for s in State], dtype=object)
_OPC, _TXC = METRICS.index("operational_carbon_g"), METRICS.index("transfer_carbon_g")


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
        )
        self.world = first.world  # shared: traces, network and GPU models loaded once
        self.envs = [first] + [
            CarbonMigrationEnv(
                first.scenario, render_mode=render_mode, invalid_action=invalid_action, reward=reward, world=first.world
            )
            for _ in range(num_envs - 1)
        ]
        self.num_envs = N = int(num_envs)
        self.render_mode = render_mode
        self.scenario = first.scenario
        self.R, self.L = first.R, first.L
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, N)
        self.action_space = batch_space(self.single_action_space, N)

        # batch buffers; sub-env i writes its observation and mask into row i
        self._observations = np.zeros((N, *first.observation_space.shape), dtype=np.float32)
        self._masks = np.ones((N, self.R + 1 + self.L), dtype=bool)
        for i, env in enumerate(self.envs):
            env._bind_buffers(self._observations[i], self._masks[i])
        self._rewards = np.zeros(N, dtype=np.float64)
        self._terminations = np.zeros(N, dtype=bool)
        self._truncations = np.zeros(N, dtype=bool)
        self._autoreset = np.zeros(N, dtype=bool)
        self._all = np.ones(N, dtype=bool)
        self._region_names = np.array(self.scenario.region_names, dtype=object)
        self._clocks_mhz = first.sim.clocks_mhz
        self._was_reset = False
        self.last_finals: dict[int, tuple[np.ndarray, dict]] = {}

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
        for env, s, o in zip(self.envs, seeds, opts):
            env._reset_core(s, o)
        self._autoreset[:] = False
        self._was_reset = True
        return self._observations.copy(), self._infos()

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._was_reset:
            raise RuntimeError("call reset() before step()")
        targets, levels = self._check_actions(actions)
        rew, term, trunc = self._rewards, self._terminations, self._truncations
        same_step = self.autoreset_mode == AutoresetMode.SAME_STEP
        finals: list[tuple[int, np.ndarray, dict]] = []
        for i, env in enumerate(self.envs):
            if self._autoreset[i]:  # next-step mode: this env finished last step
                env._reset_core(None, None)
                rew[i], term[i], trunc[i] = 0.0, False, False
                continue
            try:
                rew[i], term[i], trunc[i] = env._advance(targets[i], levels[i])
            except ValueError as e:  # invalid_action="raise"
                raise ValueError(f"env {i}: {e}") from None
            if same_step and (term[i] or trunc[i]):
                info = env._info()  # metric views become dicts so Gymnasium's _add_info batches them
                info["step_metrics"], info["episode_metrics"] = (
                    dict(info["step_metrics"]),
                    dict(info["episode_metrics"]),
                )
                finals.append((i, self._observations[i].copy(), info))
                env._reset_core(None, None)
        if not same_step:
            np.logical_or(term, trunc, out=self._autoreset)
        infos = self._infos()
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

    def _check_actions(self, actions) -> tuple[list[int], list[int]]:
        R, L, N = self.R, self.L, self.num_envs
        expected = f"expected ({N}, 2) integers [target 0..{R} ({R} = wait), clock level 0..{L - 1}] per env"
        try:
            a = np.asarray(actions)
        except Exception:
            raise ValueError(f"actions {actions!r} are not array-like; {expected}") from None
        if a.shape != (N, 2):
            raise ValueError(f"actions have shape {a.shape}; {expected}")
        if not np.issubdtype(a.dtype, np.integer):
            ok = np.issubdtype(a.dtype, np.floating) and np.all(np.mod(a, 1) == 0)
            if not ok:
                raise ValueError(f"actions (dtype {a.dtype}) are not integer-valued; {expected}")
        bad = (a[:, 0] < 0) | (a[:, 0] > R) | (a[:, 1] < 0) | (a[:, 1] >= L)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"env {i}: action {a[i].astype(int).tolist()} out of range; {expected}")
        a = a.astype(np.int64, copy=False)
        return a[:, 0].tolist(), a[:, 1].tolist()

    def _infos(self) -> dict[str, Any]:
        """The single environment's info keys, batched (Gymnasium vector dict layout)."""
        sims = [env.sim for env in self.envs]
        all_ = self._all
        region = np.array([s.region for s in sims], dtype=np.int64)
        level = np.array([s.level for s in sims], dtype=np.int64)
        completed = np.array([s.done for s in sims], dtype=bool)
        completed_at_s = np.array([s.completed_at_s for s in sims])
        progress = np.array([s.progress_mb for s in sims])
        info: dict[str, Any] = {
            "t_s": np.array([s.t_s for s in sims]),
            "state": _STATE_NAMES[[s.state for s in sims]],
            "region": self._region_names[region],
            "region_index": region,
            "n_gpus": np.array([s.n_gpus for s in sims], dtype=np.int64),
            "clock_mhz": self._clocks_mhz[region, level].astype(np.float64),
            "power_w": np.array([s.power_w for s in sims]),
            "progress_mb": progress,
            "remaining_mb": self.envs[0].total_mb - progress,
            "invalid_actions": np.array([env.invalid_actions for env in self.envs], dtype=np.int64),
            "deadline_met": completed & (completed_at_s <= np.array([s.deadline_s for s in sims])),
            "completed": completed,
            "step_metrics": _metric_dict(np.array([s.step_acc for s in sims]), all_),
            "episode_metrics": _metric_dict(np.array([s.episode_acc for s in sims]), all_),
        }
        for key in list(info):
            info["_" + key] = all_
        info["jct_h"] = np.where(completed, completed_at_s / 3600.0, 0.0)
        info["_jct_h"] = completed
        return info

    def info_of(self, infos: dict[str, Any], i: int) -> dict[str, Any]:
        """Env ``i``'s info as a plain dict (the single environment's layout) from a batched ``infos``."""
        out = {}
        for key, value in infos.items():
            if key.startswith("_") or not infos.get("_" + key, self._all)[i]:
                continue
            out[key] = info_of_value(value, i)
        return out


def info_of_value(value, i: int):
    if isinstance(value, dict):
        return {k: info_of_value(v, i) for k, v in value.items() if not k.startswith("_")}
    v = value[i]
    return v.item() if isinstance(v, np.generic) else v


def _metric_dict(acc: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {name: acc[:, j] for j, name in enumerate(METRICS)}
    out["carbon_g"] = acc[:, _OPC] + acc[:, _TXC]
    for name in list(out):
        out["_" + name] = mask
    return out


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
        out = []
        for i in range(self.num_envs):
            if dones[i]:
                terminal_obs, terminal_info = self.venv.last_finals[i]
                info = dict(terminal_info)
                info["terminal_observation"] = terminal_obs
                info["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
            else:
                info = self.venv.info_of(infos, i)
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
