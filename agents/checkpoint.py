"""Crash-safe training: periodic, atomic saves of everything a run needs to continue after a kill.

A save is a folder ``RUN/checkpoints/step-<N>/`` holding

- ``model.zip``: policy, optimiser state (Adam moments and step counts) and the step counter ``N``;
- ``replay_buffer.pkl`` (DQN/SAC/TD3) and ``vecnormalize.pkl`` (with ``normalize_reward``);
- ``best_model.zip`` as it was at step ``N`` (so it matches the evaluations kept in ``eval.csv``);
- ``state.yaml``: the step counter and what the logs held at step ``N``.

It is written into ``step-<N>.tmp``, flushed to disk, then renamed: a folder named ``step-<N>`` is always
complete, whenever the process dies (SIGKILL, power loss). The newest ``keep`` saves are kept. Resuming
(:func:`latest_save`, :func:`trim_logs`) cuts ``progress.csv`` and ``eval.csv`` back to step ``N`` so no step
appears twice.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.yaml"
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
) -> Path:
    """Write a complete save of step ``model.num_timesteps`` into ``RUN/checkpoints/step-<N>`` (atomically).

    :param off_policy: also save the replay buffer
    :param state: extra plain data for ``state.yaml`` (e.g. wall time so far)
    :param keep: how many of the newest saves to keep
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


class PeriodicSave(BaseCallback):
    """Every ``save_every`` environment steps, write a complete save (:func:`save_training_state`).

    The save is taken when the next rollout starts, i.e. after the update that used the steps collected so far,
    so on-policy algorithms lose no collected experience and the saved step counter matches the saved weights.

    :param venv: the training VecEnv (a ``VecNormalize`` has its statistics saved)
    :param state: a callable returning extra plain data for ``state.yaml``
    """

    def __init__(self, run_dir: Path, save_every: int, venv: VecEnv, off_policy: bool, state=None, verbose: int = 0):
        super().__init__(verbose)
        self.run_dir = Path(run_dir)
        self.save_every = int(save_every)
        self.venv = venv
        self.off_policy = off_policy
        self.state = state or dict
        self._next = 0

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.save_every + 1) * self.save_every

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.save_every + 1) * self.save_every
            path = save_training_state(self.model, self.venv, self.run_dir, self.off_policy, self.state())
            if self.verbose:
                print(f"[save] {self.num_timesteps} steps -> {path}", flush=True)

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


class StopOnRequest(BaseCallback):
    """End training at the next environment step once ``requested`` is set (by the SIGTERM handler). The handler
    only sets a flag: an exception raised from it could land in code that swallows it (a ``__del__`` running when
    the signal arrives) and the run would go on."""

    def __init__(self, requested: threading.Event):
        super().__init__()
        self.requested = requested

    def _on_step(self) -> bool:
        return not self.requested.is_set()
