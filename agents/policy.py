"""A trained Stable-Baselines3 model as a :class:`baselines.base.Policy`.

>>> from agents import load_agent
>>> policy = load_agent("runs/paper-maskable_ppo-s0-20250101-120000")   # best_model.zip if present
>>> policy.reset(env, seed=0); action = policy.act(obs, env.view())
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.build import AgentConfigError, algo_spec
from baselines.base import Policy
from envs.carbon_migration import CarbonMigrationEnv, PolicyView

MODEL_FILES = ("best_model.zip", "model.zip")  # looked up in a run directory, in this order


class AgentPolicy(Policy):
    """Deterministic actions of a trained model, translated back to ``[target, level]``.

    :param model: the trained SB3 / sb3-contrib model
    :param algo: its key in :data:`agents.build.ALGOS` (decides the action adapter and masking)
    :param name: the name shown in evaluation tables
    """

    clairvoyant = False

    def __init__(self, model: BaseAlgorithm, algo: str, name: str | None = None):
        self.model = model
        self.algo = algo
        self.spec = algo_spec(algo)
        self.name = name or algo
        self._adapter = None

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        # the algorithm's action wrapper around the env, used only to translate its actions
        self._adapter = self.spec.wrapper(env) if self.spec.wrapper is not None else None

    def act(self, obs: np.ndarray, view: PolicyView) -> np.ndarray:
        if self.spec.masked:
            action, _ = self.model.predict(obs, deterministic=True, action_masks=view.mask)
        else:
            action, _ = self.model.predict(obs, deterministic=True)
        if self.spec.wrapper is not None:
            if self._adapter is None:
                raise RuntimeError(
                    f"{self.name}: call reset(env, seed) before act() "
                    f"({self.algo} actions are translated by {self.spec.wrapper.__name__})"
                )
            action = self._adapter.action(action)
        return np.asarray(action, dtype=np.int64).reshape(2)


def _resolve(path: Path) -> tuple[Path, Path]:
    """(model zip, run directory holding config.yaml) for a run directory or a model file."""
    if path.is_dir():
        for name in MODEL_FILES:
            if (path / name).is_file():
                return path / name, path
        from agents.checkpoint import complete_saves

        saves = complete_saves(path)  # a run killed before its first evaluation and its final save
        if saves:
            return saves[-1] / "model.zip", path
        raise FileNotFoundError(f"{path}: no {' or '.join(MODEL_FILES)} or checkpoints/step-N/ in this run directory")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file or run directory")
    # runs/<name>/model.zip or runs/<name>/checkpoints/step-000001000/model.zip
    for d in (path.parent, path.parent.parent, path.parent.parent.parent):
        if (d / "config.yaml").is_file():
            return path, d
    return path, path.parent


def load_agent(path: str | Path, name: str | None = None, algo: str | None = None) -> AgentPolicy:
    """Load a trained agent saved by ``train.py``.

    :param path: a run directory (uses ``best_model.zip``, else ``model.zip``) or a model ``.zip``
    :param name: the policy name in reports (default: the run directory's name)
    :param algo: the algorithm key, needed only when no ``config.yaml`` sits next to the model
    :raises FileNotFoundError: nothing to load at ``path``
    :raises AgentConfigError: unknown algorithm, or the model file is not a loadable SB3 zip
    """
    model_path, run_dir = _resolve(Path(path))
    cfg_path = run_dir / "config.yaml"
    if algo is None:
        if not cfg_path.is_file():
            raise AgentConfigError(
                f"{model_path}: no config.yaml beside it to say which algorithm trained it; pass algo="
            )
        try:
            algo = (yaml.safe_load(cfg_path.read_text()) or {})["algo"]
        except (yaml.YAMLError, KeyError, TypeError):
            raise AgentConfigError(f"{cfg_path}: missing or unreadable 'algo' field") from None
    spec = algo_spec(algo)
    if not zipfile.is_zipfile(model_path):
        raise AgentConfigError(f"{model_path}: not a Stable-Baselines3 model (not a zip file; corrupt or truncated?)")
    try:
        model = spec.cls.load(model_path, device="cpu")
    except Exception as e:  # SB3 raises many kinds on a damaged archive
        raise AgentConfigError(f"{model_path}: cannot load {algo} model ({type(e).__name__}: {e})") from None
    return AgentPolicy(model, algo, name=name or run_dir.name)
