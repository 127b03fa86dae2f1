"""Environments and Stable-Baselines3 models for training, built from a scenario and a hyper-parameter config.

Each algorithm sees the environment through the action adapter it needs:

| algo           | class (library)          | action space seen                       |
|----------------|--------------------------|-----------------------------------------|
| ``ppo``        | PPO (SB3)                | MultiDiscrete([R + 1, L]), unmasked      |
| ``maskable_ppo`` | MaskablePPO (sb3-contrib) | MultiDiscrete([R + 1, L]) + ``action_masks`` |
| ``a2c``        | A2C (SB3)                | MultiDiscrete([R + 1, L]), unmasked      |
| ``dqn``        | DQN (SB3)                | Discrete((R + 1) * L), ``FlatActionWrapper`` |
| ``sac``/``td3``| SAC / TD3 (SB3)          | Box(2), ``ContinuousClockWrapper``       |

A config is a YAML mapping: the algorithm's constructor keyword arguments (``learning_rate``, ``n_steps``,
``policy_kwargs: {net_arch: [64, 64], activation_fn: tanh}``, ...) plus the training keys in
:data:`TRAIN_DEFAULTS`. ``load_hyperparams(algo, path)`` merges a user file over the shipped
``agents/configs/<algo>.yaml`` and rejects unknown keys.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor, VecNormalize

from agents.config import AgentConfigError, ImitationConfig
from envs.carbon_migration import CarbonMigrationEnv
from envs.wrappers import ContinuousClockWrapper, FlatActionWrapper
from loaders.world import World, build_world
from sim.scenario import Scenario

CONFIG_DIR = Path(str(resources.files("agents").joinpath("configs")))  # package data (pyproject.toml)
VEC_KINDS = ("auto", "batched", "dummy", "subproc")


@dataclass(frozen=True)
class AlgoSpec:
    """How one algorithm is trained: its class, the action adapter, and whether it keeps a replay buffer."""

    cls: type[BaseAlgorithm]
    wrapper: type[gym.ActionWrapper] | None = None
    off_policy: bool = False
    masked: bool = False


ALGOS: dict[str, AlgoSpec] = {
    "ppo": AlgoSpec(PPO),
    "maskable_ppo": AlgoSpec(MaskablePPO, masked=True),
    "a2c": AlgoSpec(A2C),
    "dqn": AlgoSpec(DQN, FlatActionWrapper, off_policy=True),
    "sac": AlgoSpec(SAC, ContinuousClockWrapper, off_policy=True),
    "td3": AlgoSpec(TD3, ContinuousClockWrapper, off_policy=True),
}

# Keys of a config file that configure the run rather than the algorithm (all integers >= 1).
TRAIN_DEFAULTS: dict[str, int] = {
    "timesteps": 100_000,  # environment steps to train for
    "n_envs": 4,  # parallel environments
    "eval_freq": 10_000,  # environment steps between validation evaluations
    "eval_episodes": 5,  # validation episodes per evaluation (fixed start hours)
    "checkpoint_freq": 50_000,  # most environment steps between resumable saves (train.py --save-every)
}
# Extra keys translated into constructor objects or wrappers.
SPECIAL_KEYS = {
    "action_noise_std",  # SAC/TD3: std of Gaussian exploration noise on the [0, 1] actions
    "normalize_reward",  # true: scale rewards by a running std of the return (SB3 VecNormalize)
    "imitation",  # MaskablePPO: learn from the oracle first (agents/imitation.py); null: off
    "deadline_shield",  # MaskablePPO: agents.policy.deadline_shield's fraction; null: off
}
MASKED_ONLY_KEYS = {"imitation", "deadline_shield"}
# Constructor arguments the trainer sets itself.
RESERVED = {"env", "verbose", "seed", "device", "tensorboard_log", "_init_setup_model", "action_noise"}
ACTIVATIONS = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
    "gelu": torch.nn.GELU,
}


def algo_spec(algo: str) -> AlgoSpec:
    if algo not in ALGOS:
        raise AgentConfigError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGOS)}")
    return ALGOS[algo]


def allowed_keys(algo: str) -> set[str]:
    """Hyper-parameter keys a config may set for ``algo``: its constructor arguments, training and special keys."""
    params = set(inspect.signature(algo_spec(algo).cls.__init__).parameters) - {"self"} - RESERVED
    special = SPECIAL_KEYS if algo in ("sac", "td3") else SPECIAL_KEYS - {"action_noise_std"}
    if not algo_spec(algo).masked:
        special = special - MASKED_ONLY_KEYS
    return params | set(TRAIN_DEFAULTS) | special


def _read_yaml(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise AgentConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AgentConfigError(f"{path}: not valid YAML ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AgentConfigError(f"{path}: must be a mapping of hyper-parameter: value, got {type(data).__name__}")
    return data


def _number(value):
    """YAML reads ``3e-4`` as a string; accept it as the number it obviously is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _layer_sizes(value) -> bool:
    return isinstance(value, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value)


def _check_net_arch(src: Path, net_arch) -> None:
    """SB3's ``net_arch``: a list of layer widths, or a mapping of pi/vf/qf to such lists."""
    ok = _layer_sizes(net_arch) or (
        isinstance(net_arch, dict)
        and bool(net_arch)
        and set(net_arch) <= {"pi", "vf", "qf"}
        and all(_layer_sizes(v) for v in net_arch.values())
    )
    if not ok:
        raise AgentConfigError(
            f"{src}: policy_kwargs.net_arch: must be a list of layer widths (integers >= 1, e.g. [64, 64]) or a "
            f"mapping of pi/vf/qf to such lists (e.g. {{pi: [64], vf: [64]}}), got {net_arch!r}"
        )


def load_hyperparams(algo: str, path: str | Path | None = None) -> dict[str, Any]:
    """The shipped ``agents/configs/<algo>.yaml`` with the mapping in ``path`` (if any) merged over it.

    :param algo: a key of :data:`ALGOS`
    :param path: a user YAML file of hyper-parameters; its keys override the shipped ones
    :return: plain-data config (YAML-serialisable) including the :data:`TRAIN_DEFAULTS` keys
    """
    algo_spec(algo)
    shipped = CONFIG_DIR / f"{algo}.yaml"
    config: dict[str, Any] = dict(TRAIN_DEFAULTS)
    sources = [shipped] + ([Path(path)] if path is not None else [])
    allowed = allowed_keys(algo)
    for src in sources:
        data = _read_yaml(src)
        for key, value in data.items():
            if key not in allowed:
                hint = f"; the trainer sets {key!r} itself" if key in RESERVED else ""
                raise AgentConfigError(
                    f"{src}: {key}: unknown hyper-parameter for {algo}{hint}; valid keys: {', '.join(sorted(allowed))}"
                )
            value = _number(value) if key not in ("policy",) else value
            if key in TRAIN_DEFAULTS:
                low = 0 if key == "timesteps" else 1  # 0: no RL steps after imitation (checked below)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or value != int(value):
                    raise AgentConfigError(f"{src}: {key}: must be an integer >= {low}, got {value!r}")
                value = int(value)
            if key == "imitation" and value is not None:
                ImitationConfig.from_dict(value, f"{src}: imitation")  # checked now, built by train.py
            if key == "deadline_shield" and value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                    raise AgentConfigError(f"{src}: deadline_shield: must be a number in (0, 1] or null, got {value!r}")
                value = float(value)
            if key == "normalize_reward" and not isinstance(value, bool):
                raise AgentConfigError(f"{src}: normalize_reward: must be true or false, got {value!r}")
            if key == "policy_kwargs":
                if not isinstance(value, dict):
                    raise AgentConfigError(f"{src}: policy_kwargs: must be a mapping, got {value!r}")
                act = value.get("activation_fn")
                if act is not None and act not in ACTIVATIONS:
                    raise AgentConfigError(
                        f"{src}: policy_kwargs.activation_fn: must be one of {', '.join(ACTIVATIONS)}, got {act!r}"
                    )
                if "net_arch" in value:
                    _check_net_arch(src, value["net_arch"])
            bad_number = isinstance(value, bool) or not isinstance(value, (int, float))
            if key == "gamma" and (bad_number or not 0 < value <= 1):
                raise AgentConfigError(f"{src}: gamma: the discount must be a number in (0, 1], got {value!r}")
            config[key] = value
    return config


def constructor_kwargs(algo: str, config: dict[str, Any], n_actions: int | None = None) -> dict[str, Any]:
    """Turn a plain config into keyword arguments for the algorithm class (objects for strings)."""
    kw = {k: v for k, v in config.items() if k not in TRAIN_DEFAULTS and k not in SPECIAL_KEYS}
    if "policy_kwargs" in kw:
        pk = dict(kw["policy_kwargs"])
        if "activation_fn" in pk:
            pk["activation_fn"] = ACTIVATIONS[pk["activation_fn"]]
        kw["policy_kwargs"] = pk
    if isinstance(kw.get("train_freq"), list):
        kw["train_freq"] = tuple(kw["train_freq"])
    std = config.get("action_noise_std")
    if std and n_actions:
        kw["action_noise"] = NormalActionNoise(np.zeros(n_actions), np.full(n_actions, float(std)))
    kw.setdefault("policy", "MlpPolicy")
    return kw


# ---------------------------------------------------------------- environments


def make_env(
    scenario: str | Scenario,
    split: str,
    algo: str,
    data_dir: str | None = None,
    world: World | None = None,
    monitor: bool = True,
    gpu_scaling: bool | None = None,
) -> gym.Env:
    """One ``CarbonMigrationEnv`` on ``split`` with the action adapter ``algo`` needs (and a Monitor for SB3 logs).

    :param gpu_scaling: give the agent the GPU-count action component (default: for the masked algorithms, whose
        masks cover it; the others keep ``[target, level]``)"""
    if gpu_scaling is None:
        gpu_scaling = algo_spec(algo).masked
    env: gym.Env = CarbonMigrationEnv(scenario, split, data_dir=data_dir, world=world, gpu_scaling=gpu_scaling)
    wrapper = algo_spec(algo).wrapper
    if wrapper is not None:
        env = wrapper(env)
    if monitor:
        env = Monitor(env)
    return env


def make_vec_env(
    scenario: str | Scenario,
    split: str,
    algo: str,
    n_envs: int,
    seed: int,
    data_dir: str | None = None,
    vec: str = "auto",
) -> VecEnv:
    """``n_envs`` training environments; env ``i`` is seeded with ``seed + i``.

    :param vec: ``batched`` (``envs.vector.SB3VecEnv``: one process, N jobs stepped together; only for the
        algorithms that use the MultiDiscrete action directly), ``dummy`` (SB3 DummyVecEnv of wrapped envs),
        ``subproc`` (one process per env) or ``auto`` (batched when possible, else dummy)
    """
    if vec not in VEC_KINDS:
        raise AgentConfigError(f"vec={vec!r}; expected one of {', '.join(VEC_KINDS)}")
    wrapped = algo_spec(algo).wrapper is not None
    if vec == "auto":
        vec = "dummy" if wrapped else "batched"
    if vec == "batched":
        if wrapped:
            raise AgentConfigError(
                f"vec='batched' steps the MultiDiscrete env; {algo} needs "
                f"{algo_spec(algo).wrapper.__name__}, use vec='dummy' or 'subproc'"
            )
        from envs.vector import SB3VecEnv

        sb3 = SB3VecEnv(
            num_envs=n_envs, scenario=scenario, split=split, data_dir=data_dir, gpu_scaling=algo_spec(algo).masked
        )
        venv: VecEnv = VecMonitor(sb3)
        venv.seed(seed)
        return venv
    # one World (carbon table, network, GPU models) shared by in-process envs; subprocesses build their own
    world = (
        build_world(scenario if isinstance(scenario, Scenario) else _load(scenario), split, data_dir=data_dir)
        if vec == "dummy"
        else None
    )

    def factory(i: int) -> Callable[[], gym.Env]:
        def _init() -> gym.Env:
            return make_env(scenario, split, algo, data_dir=data_dir, world=world)

        return _init

    fns = [factory(i) for i in range(n_envs)]
    venv = DummyVecEnv(fns) if vec == "dummy" else SubprocVecEnv(fns, start_method="fork")
    venv.seed(seed)
    return venv


def normalize_rewards(venv: VecEnv, config: dict[str, Any], stats_path: Path | None = None) -> VecEnv:
    """With ``normalize_reward: true``, divide training rewards by a running std of the discounted return.

    The lateness penalty is ~100x a step's carbon; unscaled, PPO's value targets swing by that much and the
    policy oscillates between finishing on time and not. Observations are left as they are, so a saved model
    acts the same without the wrapper. ``stats_path`` (a resumed run's ``vecnormalize.pkl``) restores the stats.
    """
    if not config.get("normalize_reward"):
        return venv
    if stats_path is not None and Path(stats_path).is_file():
        return VecNormalize.load(str(stats_path), venv)
    return VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=float(config.get("gamma", 0.99)))


def _load(name):
    from sim.scenario import load_scenario

    return load_scenario(name)


def make_model(
    algo: str, config: dict[str, Any], venv: VecEnv, seed: int, tensorboard_log: str | None = None, verbose: int = 0
) -> BaseAlgorithm:
    """A fresh model of ``algo`` on ``venv`` from a config of :func:`load_hyperparams`."""
    spec = algo_spec(algo)
    n_actions = int(np.prod(venv.action_space.shape)) if isinstance(venv.action_space, gym.spaces.Box) else None
    kw = constructor_kwargs(algo, config, n_actions)
    try:
        return spec.cls(env=venv, seed=seed, tensorboard_log=tensorboard_log, verbose=verbose, device="cpu", **kw)
    except (TypeError, ValueError, AssertionError, KeyError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AgentConfigError(f"invalid hyper-parameters for {algo}: {msg}") from None
