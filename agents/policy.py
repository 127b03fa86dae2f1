"""A trained Stable-Baselines3 model as a :class:`baselines.base.Policy`.

>>> from agents import load_agent
>>> policy = load_agent("runs/imitation-paper-s0-20250101-120000")   # best_model.zip if present
>>> policy.reset(env, seed=0); action = policy.act(obs, env.view())
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.build import AgentConfigError, algo_spec
from baselines.base import Policy
from baselines.rules import TIMED, cap_safe_level, gpus_after, hours_needed, max_level_under_cap
from envs.carbon_migration import CarbonMigrationEnv, PolicyView

MODEL_FILES = ("best_model.zip", "model.zip")  # looked up in a run directory, in this order
# the shield also keeps this many hours in hand (the oracle's reserve): faults late in an episode cost absolute
# time (a reclaim rolls back up to a checkpoint interval), which a fraction of little time left does not cover
SHIELD_RESERVE_H = 1.0


def deadline_shield(view: PolicyView, action: np.ndarray, fraction: float) -> np.ndarray:
    """``action`` made safe: under the power cap always, and overridden when it would put the deadline at risk
    (a shield: Alshiekh et al., *Safe Reinforcement Learning via Shielding*, AAAI 2018).

    The clock is lowered to the highest level under the cap wherever the action may leave the job
    (:func:`baselines.rules.cap_safe_level`, the rule every capped baseline applies last). Then, outside a timed
    phase, if the remaining work at that clock in the chosen region (for a pause: at the highest clock under the
    cap here) would need more than ``fraction`` of the hours left before the deadline, or leave less than
    :data:`SHIELD_RESERVE_H` in hand, the job runs in that region at the highest clock under the cap
    (``caftm_guarded``'s deadline guard, with the oracle's reserve).
    """
    target, level = int(action[0]), int(action[1])
    level = cap_safe_level(view, target, level)
    if view.state in TIMED or not math.isfinite(view.deadline_s):
        return np.array([target, level])
    left_h = (view.deadline_s - view.t_s) / 3600.0
    allowed_h = min(fraction * left_h, left_h - SHIELD_RESERVE_H)
    if target == view.wait:
        r = view.region
        if not view.mask[r] or view.usable_gpus[r] <= 0:
            return np.array([target, level])  # nothing to run on here: the pause stands
        if hours_needed(view, r, max_level_under_cap(view, r, gpus_after(view, r))) > allowed_h:
            return np.array([r, cap_safe_level(view, r, view.n_levels - 1)])
        return np.array([target, level])
    if view.usable_gpus[target] > 0 and hours_needed(view, target, level) > allowed_h:
        return np.array([target, cap_safe_level(view, target, view.n_levels - 1)])
    return np.array([target, level])


class AgentPolicy(Policy):
    """Deterministic actions of a trained model, translated back to ``[target, level]``.

    :param model: the trained SB3 / sb3-contrib model
    :param algo: its key in :data:`agents.build.ALGOS` (decides the action adapter and masking)
    :param name: the name shown in evaluation tables
    :param shield_fraction: apply :func:`deadline_shield` with this fraction (None: the network's action as is)
    """

    clairvoyant = False

    def __init__(self, model: BaseAlgorithm, algo: str, name: str | None = None, shield_fraction: float | None = None):
        self.model = model
        self.shield_fraction = shield_fraction
        self.algo = algo
        self.spec = algo_spec(algo)
        self.name = name or algo
        self._adapter = None

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        # the algorithm's action wrapper around the env, used only to translate its actions
        self._adapter = self.spec.wrapper(env) if self.spec.wrapper is not None else None

    def act(self, obs: np.ndarray, view: PolicyView) -> np.ndarray:
        if self.spec.masked:
            action, _ = self.model.predict(obs, deterministic=True, action_masks=model_mask(self.model, view.mask))
        else:
            action, _ = self.model.predict(obs, deterministic=True)
        if self.spec.wrapper is not None:
            if self._adapter is None:
                raise RuntimeError(
                    f"{self.name}: call reset(env, seed) before act() "
                    f"({self.algo} actions are translated by {self.spec.wrapper.__name__})"
                )
            action = self._adapter.action(action)
        action = np.asarray(action, dtype=np.int64).reshape(-1)  # [target, level] (, GPU choice)
        if self.shield_fraction is not None:
            action = np.concatenate([deadline_shield(view, action[:2], self.shield_fraction), action[2:]])
        return action


def model_mask(model: BaseAlgorithm, mask: np.ndarray) -> np.ndarray:
    """``mask`` widened to the model's action space: an environment without the GPU-count component (its masks
    end at the clock levels) lets a model trained with it choose any GPU count (-> all GPUs is also valid)."""
    need = int(np.sum(getattr(model.action_space, "nvec", [mask.size])))
    if mask.size >= need:
        return mask
    return np.concatenate([mask, np.ones(need - mask.size, dtype=bool)])


def model_label(model: BaseAlgorithm, action: np.ndarray) -> np.ndarray:
    """A ``[target, level]`` action widened to the model's action space: every GPU-count component at its
    default, all GPUs (its last choice)."""
    nvec = np.asarray(getattr(model.action_space, "nvec", [0, 0]))
    action = np.asarray(action, dtype=np.int64).reshape(-1)
    return np.concatenate([action, nvec[action.size :] - 1]).astype(np.int64)


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


def run_label(path: str | Path) -> str:
    """The name a run goes by in tables and plots: the ``label`` in its config.yaml (train.py's ``--name``, or
    the default that says what the training did, e.g. ``imitation``), else the run directory's name."""
    _, run_dir = _resolve(Path(path))
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        try:
            label = (yaml.safe_load(cfg_path.read_text()) or {}).get("label")
        except (yaml.YAMLError, AttributeError):
            label = None
        if label:
            return str(label)
    return run_dir.name


def load_agent(path: str | Path, name: str | None = None, algo: str | None = None) -> AgentPolicy:
    """Load a trained agent saved by ``train.py``.

    :param path: a run directory (uses ``best_model.zip``, else ``model.zip``) or a model ``.zip``
    :param name: the policy name in reports (default: the run's ``label`` in config.yaml, i.e. train.py's
        ``--name`` or the short default such as ``imitation``; else the run directory's name)
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
    # the run's deadline shield (config.yaml hyperparams.deadline_shield), applied at evaluation as in training
    shield, label = None, None
    if cfg_path.is_file():
        try:
            cfg = yaml.safe_load(cfg_path.read_text()) or {}
            shield = (cfg.get("hyperparams") or {}).get("deadline_shield")
            label = cfg.get("label")
        except (yaml.YAMLError, AttributeError):
            raise AgentConfigError(f"{cfg_path}: unreadable 'hyperparams' field") from None
    spec = algo_spec(algo)
    if not zipfile.is_zipfile(model_path):
        raise AgentConfigError(f"{model_path}: not a Stable-Baselines3 model (not a zip file; corrupt or truncated?)")
    try:
        model = spec.cls.load(model_path, device="cpu")
    except Exception as e:  # SB3 raises many kinds on a damaged archive
        raise AgentConfigError(f"{model_path}: cannot load {algo} model ({type(e).__name__}: {e})") from None
    return AgentPolicy(model, algo, name=name or label or run_dir.name, shield_fraction=shield)
