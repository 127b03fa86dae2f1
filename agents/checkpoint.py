"""Crash-safe training: periodic, atomic saves of everything a run needs to continue after a kill.

A save is a folder ``RUN/checkpoints/step-<N>/`` holding

- ``model.zip``: policy, optimiser state (Adam moments and step counts) and the step counter ``N``;
- ``replay_buffer.pkl`` (DQN/SAC/TD3) and ``vecnormalize.pkl`` (with ``normalize_reward``);
- ``best_model.zip`` as it was at step ``N`` (so it matches the evaluations kept in ``eval.csv``);
- ``state.yaml``: the step counter and what the logs held at step ``N``;
- ``resume.pkl``: what exact resumption needs beyond SB3's own save (:func:`capture_resume_state`): every
  random generator (Python, NumPy, torch, the model's action space), the training envs' own state (each env's
  generator and episode, the VecMonitor/VecNormalize running values), the logger's values not yet written to
  ``progress.csv`` and the callbacks' counters.

Periodic saves are taken at rollout boundaries (after an update, before the next rollout collects a step), where
that list is the whole state of a run: a run resumed from such a save ends bit-identical to the same run left alone.

It is written into ``step-<N>.tmp``, flushed to disk, then renamed: a folder named ``step-<N>`` is always
complete, whenever the process dies (SIGKILL, power loss). The newest ``keep`` saves are kept. Resuming
(:func:`latest_save`, :func:`trim_logs`) cuts ``progress.csv`` and ``eval.csv`` back to step ``N`` so no step
appears twice.
"""

from __future__ import annotations

import csv
import io
import os
import pickle
import random
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecEnvWrapper, VecNormalize

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.yaml"
RESUME_FILE = "resume.pkl"
# VecEnvWrapper attributes that are structure (rebuilt identically), not state
_WRAPPER_STRUCTURE = ("venv", "class_attributes", "results_writer")
_SAVE_DIR = re.compile(r"^step-(\d+)$")
PROGRESS_STEP = "time/total_timesteps"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename: readers see the old or the new file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save_model(model: BaseAlgorithm, path: Path) -> None:
    """``model.save(path)`` via a temporary file and a rename (a kill mid-save leaves the previous file)."""
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.zip")  # SB3 appends .zip to names without it
    model.save(tmp)
    _fsync_file(tmp)
    os.replace(tmp, path)


def save_training_state(
    model: BaseAlgorithm,
    venv: VecEnv,
    run_dir: Path,
    off_policy: bool,
    state: dict[str, Any],
    keep: int = 2,
    resume: dict[str, Any] | None = None,
) -> Path:
    """Write a complete save of step ``model.num_timesteps`` into ``RUN/checkpoints/step-<N>`` (atomically).

    :param off_policy: also save the replay buffer
    :param state: extra plain data for ``state.yaml`` (e.g. wall time so far)
    :param keep: how many of the newest saves to keep
    :param resume: the state of :func:`capture_resume_state`, written to ``resume.pkl``
    :return: the save folder
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    step = int(model.num_timesteps)
    final = root / f"step-{step:09d}"
    tmp = root / f"step-{step:09d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(tmp / "model.zip")
    files = ["model.zip"]
    if off_policy and getattr(model, "replay_buffer", None) is not None:
        model.save_replay_buffer(tmp / "replay_buffer.pkl")
        files.append("replay_buffer.pkl")
    if isinstance(venv, VecNormalize):
        venv.save(str(tmp / "vecnormalize.pkl"))
        files.append("vecnormalize.pkl")
    best = Path(run_dir) / "best_model.zip"
    if best.is_file():
        shutil.copyfile(best, tmp / "best_model.zip")
        files.append("best_model.zip")
    if resume is not None:
        with open(tmp / RESUME_FILE, "wb") as f:
            pickle.dump(resume, f, protocol=pickle.HIGHEST_PROTOCOL)
        files.append(RESUME_FILE)
    (tmp / STATE_FILE).write_text(yaml.safe_dump({"num_timesteps": step, "files": files, **state}, sort_keys=False))
    for name in [*files, STATE_FILE]:
        _fsync_file(tmp / name)
    _fsync_dir(tmp)
    if final.exists():  # a save of this very step already exists (e.g. an interrupt right after a periodic save)
        old = root / f"step-{step:09d}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    for stale in complete_saves(run_dir)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _vec_layers(venv: VecEnv) -> tuple[list[VecEnvWrapper], VecEnv]:
    layers = []
    while isinstance(venv, VecEnvWrapper):
        layers.append(venv)
        venv = venv.venv
    return layers, venv


def _space_rng(space) -> np.random.Generator | None:
    return getattr(space, "_np_random", None)


def capture_resume_state(
    model: BaseAlgorithm, venv: VecEnv, callbacks: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything beyond ``model.save`` that decides how a run continues (see the module docstring).

    :param callbacks: objects with ``state_dict()``, by name
    :param extra: plain data to give back on resume (e.g. the rollouts done so far)
    :return: a picklable dict for :func:`restore_resume_state`
    """
    layers, inner = _vec_layers(venv)
    logger = model.logger
    return {
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "action_space": _space_rng(model.action_space),
            "observation_space": _space_rng(model.observation_space),
        },
        # a subprocess env's state lives in its process: such runs resume with fresh episodes
        "venv": None if isinstance(inner, SubprocVecEnv) else pickle.dumps(inner, protocol=pickle.HIGHEST_PROTOCOL),
        "venv_wrappers": [{k: v for k, v in layer.__dict__.items() if k not in _WRAPPER_STRUCTURE} for layer in layers],
        "logger": {
            "values": dict(logger.name_to_value),
            "counts": dict(logger.name_to_count),
            "excluded": dict(logger.name_to_excluded),
        },
        "callbacks": {name: cb.state_dict() for name, cb in callbacks.items()},
        "extra": dict(extra or {}),
    }


def restore_resume_state(
    model: BaseAlgorithm, venv: VecEnv, state: dict[str, Any], callbacks: dict[str, Any]
) -> dict[str, Any]:
    """Put back what :func:`capture_resume_state` captured, after ``cls.load(..., force_reset=False)`` and the
    logger and callbacks are built (loading reseeds the generators, so this comes last). Returns ``extra``.

    :return: the ``extra`` data of the capture
    """
    layers, inner = _vec_layers(venv)
    if state["venv"] is not None and not isinstance(inner, SubprocVecEnv):
        inner.__dict__.update(pickle.loads(state["venv"]).__dict__)
    for layer, saved in zip(layers, state["venv_wrappers"]):
        layer.__dict__.update(saved)
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    for space, gen in ((model.action_space, rng["action_space"]), (model.observation_space, rng["observation_space"])):
        if gen is not None:
            space._np_random = gen
    logger = model.logger
    logger.name_to_value.update(state["logger"]["values"])
    logger.name_to_count.update(state["logger"]["counts"])
    logger.name_to_excluded.update(state["logger"]["excluded"])
    for name, cb in callbacks.items():
        if name in state["callbacks"]:
            cb.load_state_dict(state["callbacks"][name])
    return state["extra"]


def load_resume_state(save_dir: Path) -> dict[str, Any] | None:
    """The ``resume.pkl`` of a save, or None for saves made before it existed."""
    path = Path(save_dir) / RESUME_FILE
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        return pickle.load(f)


def complete_saves(run_dir: Path) -> list[Path]:
    """Complete save folders of a run, oldest first (``*.tmp`` folders of an interrupted save are ignored)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    saves = [p for p in root.iterdir() if p.is_dir() and _SAVE_DIR.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(saves, key=lambda p: int(_SAVE_DIR.match(p.name).group(1)))


def latest_save(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """(folder, state) of the newest complete save, or None. Removes leftovers of interrupted saves."""
    root = Path(run_dir) / CHECKPOINTS
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.endswith((".tmp", ".old")):
                shutil.rmtree(p, ignore_errors=True)
    saves = complete_saves(run_dir)
    if not saves:
        return None
    return saves[-1], yaml.safe_load((saves[-1] / STATE_FILE).read_text())


def _trim_csv(path: Path, step_column: str, last_step: int) -> int:
    """Keep the header and the rows of ``path`` whose ``step_column`` is <= ``last_step`` (dropping a row cut
    short by a kill); rewrite atomically. Returns the number of rows dropped."""
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or step_column not in rows[0]:
        return 0
    header, body = rows[0], rows[1:]
    col = header.index(step_column)
    kept = []
    for r in body:
        try:
            ok = len(r) == len(header) and float(r[col]) <= last_step
        except ValueError:
            ok = False
        if ok:
            kept.append(r)
    if len(kept) != len(body):
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *kept])
        atomic_write_text(path, out.getvalue())
    return len(body) - len(kept)


def restore_logs(run_dir: Path, save_dir: Path, last_step: int) -> int:
    """Make the run's logs agree with the save of ``last_step``: rows after it are dropped from ``progress.csv``
    and ``eval.csv`` (they are trained or evaluated again) and ``best_model.zip`` is the one of that save.
    Returns the number of log rows dropped."""
    run_dir = Path(run_dir)
    dropped = _trim_csv(run_dir / "progress.csv", PROGRESS_STEP, last_step)
    dropped += _trim_csv(run_dir / "eval.csv", "timesteps", last_step)
    best = run_dir / "best_model.zip"
    if (save_dir / "best_model.zip").is_file():
        tmp = best.with_name("best_model.tmp.zip")
        shutil.copyfile(save_dir / "best_model.zip", tmp)
        _fsync_file(tmp)
        os.replace(tmp, best)
    elif best.is_file():  # chosen after the save: its evaluation was dropped with the rows above
        best.unlink()
    return dropped


class TrainingStopped(Exception):
    """Raised out of ``model.learn`` once a stop was requested and the save of that rollout boundary is written.

    :param save_dir: the save just written
    """

    def __init__(self, save_dir: Path, step: int):
        super().__init__(str(save_dir))
        self.save_dir, self.step = Path(save_dir), int(step)


class PeriodicSave(BaseCallback):
    """Every ``save_every`` environment steps, write a complete save (:func:`save_training_state`), and end
    training at the next save point once ``stop`` is set (by a SIGTERM/SIGINT handler).

    Saves are taken when the next rollout starts, i.e. after the update that used the steps collected so far:
    there the model, the envs, the generators, the logger and the callbacks hold the whole state of the run, so a
    run resumed from it continues exactly as it would have (:func:`capture_resume_state`).

    :param venv: the training VecEnv (a ``VecNormalize`` has its statistics saved)
    :param state: a callable returning extra plain data for ``state.yaml``
    :param stateful: callbacks whose ``state_dict()`` goes into the save, by name
    :param stop: when set, save at the next rollout boundary and raise :class:`TrainingStopped`
    :param rollouts: rollouts completed before this ``learn`` call (a resumed run's count)
    """

    def __init__(
        self,
        run_dir: Path,
        save_every: int,
        venv: VecEnv,
        off_policy: bool,
        state: Callable[[], dict] | None = None,
        verbose: int = 0,
        stateful: dict[str, Any] | None = None,
        stop: threading.Event | None = None,
        rollouts: int = 0,
    ):
        super().__init__(verbose)
        self.run_dir = Path(run_dir)
        self.save_every = int(save_every)
        self.venv = venv
        self.off_policy = off_policy
        self.state = state or dict
        self.stateful = stateful or {}
        self.stop = stop or threading.Event()
        self.rollouts = int(rollouts)  # completed rollouts: SB3's "time/iterations" of the run
        self._next = 0

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.save_every + 1) * self.save_every

    def save(self) -> Path:
        """A complete save of the current step, with the state exact resumption needs."""
        resume = capture_resume_state(self.model, self.venv, self.stateful, {"rollouts": self.rollouts})
        return save_training_state(self.model, self.venv, self.run_dir, self.off_policy, self.state(), resume=resume)

    def _on_rollout_start(self) -> None:
        stopping = self.stop.is_set()
        if self.num_timesteps >= self._next or stopping:
            self._next = (self.num_timesteps // self.save_every + 1) * self.save_every
            path = self.save()
            if self.verbose:
                print(f"[save] {self.num_timesteps} steps -> {path}", flush=True)
            if stopping:
                raise TrainingStopped(path, self.num_timesteps)

    def _on_rollout_end(self) -> None:
        self.rollouts += 1

    def _on_step(self) -> bool:
        return True


class StopAtTotal(BaseCallback):
    """End on-policy training at ``total`` environment steps (the first vector step reaching it) instead of
    collecting the rest of a rollout past it, so ``--timesteps`` is the total and the progress bar ends there.
    A rollout that completes exactly at that step is still used for an update; a partial one is dropped.
    (Off-policy algorithms stop by themselves within one ``train_freq`` chunk.)"""

    def __init__(self, total: int):
        super().__init__()
        self.total = int(total)

    def _on_step(self) -> bool:
        if self.num_timesteps < self.total or "n_rollout_steps" not in self.locals:
            return True
        return self.locals["n_steps"] + 1 >= self.locals["n_rollout_steps"]  # complete: train on it, then stop


def append_csv_row(path: Path, columns: list[str], row: dict) -> None:
    """Append ``row`` to the CSV at ``path``, writing the header first when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        if new:
            w.writeheader()
        w.writerow(row)
