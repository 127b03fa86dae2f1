"""Training callbacks: validation-split model selection by carbon, with the deadline as a constraint."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.checkpoint import append_csv_row, atomic_save_model
from agents.policy import AgentPolicy
from baselines.runner import run_episode
from envs.carbon_migration import CarbonMigrationEnv
from loaders.world import episode_starts

EVAL_COLUMNS = [
    "timesteps",
    "mean_carbon_kg",
    "std_carbon_kg",
    "deadline_met_rate",
    "mean_jct_h",
    "mean_reward",
    "best",
    "wall_s",
]


def validation_episode(env: CarbonMigrationEnv, policy, seed: int, start_hour: int) -> dict:
    """One episode through the evaluation harness (``baselines.runner.run_episode``), so training-time selection
    measures exactly what ``evaluate.py`` reports: carbon_kg, deadline_met, jct_h, reward."""
    r = run_episode(env, policy, seed, start_hour, keep_history=False)
    return {
        "carbon_kg": r["carbon_g"] / 1000.0,
        "deadline_met": bool(r["deadline_met"]),
        "jct_h": r["jct_h"],
        "reward": r["return"],
    }


class ValidationCallback(BaseCallback):
    """Every ``eval_freq`` environment steps, run ``n_episodes`` fixed validation episodes (same start hours and
    seeds each time) with deterministic actions; append a row to ``eval.csv`` and save ``best_model.zip``
    when the model is the best so far: the highest deadline-met rate, then the lowest mean carbon.

    :param env: an unwrapped ``CarbonMigrationEnv`` on the validation split
    :param algo: the algorithm key (to translate actions, see :class:`agents.policy.AgentPolicy`)
    :param run_dir: where ``eval.csv`` and ``best_model.zip`` go
    :param eval_freq: environment steps (summed over the vector envs) between evaluations
    :param n_episodes: validation episodes per evaluation
    :param seed: seeds the start hours (``loaders.world.episode_starts``) and the episodes' randomness
    :param best: (deadline-met rate, mean carbon kg) of the best model so far, when resuming a run
    :param shield_fraction: the agent's deadline shield (``agents.policy.deadline_shield``), as evaluate.py runs it
    """

    def __init__(
        self,
        env: CarbonMigrationEnv,
        algo: str,
        run_dir: Path,
        eval_freq: int,
        n_episodes: int,
        seed: int = 0,
        best: tuple[float, float] | None = None,
        verbose: int = 0,
        shield_fraction: float | None = None,
    ):
        super().__init__(verbose)
        self.shield_fraction = shield_fraction
        self.eval_env = env
        self.algo = algo
        self.run_dir = Path(run_dir)
        self.eval_freq = eval_freq
        self.n_episodes = n_episodes
        self.starts = episode_starts(env.world, n_episodes, seed)
        self.seeds = [seed + i for i in range(n_episodes)]
        self.best = best
        self._next = 0
        self._last_eval_at = -1
        self._resumed_next: int | None = None
        self._t0 = time.time()

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
        if self._resumed_next is not None:
            self._next, self._resumed_next = self._resumed_next, None

    def state_dict(self) -> dict:
        """What a resumed run needs to select and evaluate exactly as an uninterrupted one."""
        return {"best": self.best, "next": self._next, "last_eval_at": self._last_eval_at}

    def load_state_dict(self, state: dict) -> None:
        self.best, self._last_eval_at = state["best"], state["last_eval_at"]
        self._resumed_next = state["next"]  # applied when training starts (which recomputes it otherwise)

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.eval_freq
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps != self._last_eval_at:  # evaluate the final model too
            self.evaluate()

    def evaluate(self) -> dict:
        self._last_eval_at = self.num_timesteps
        policy = AgentPolicy(self.model, self.algo, shield_fraction=self.shield_fraction)
        eps = [validation_episode(self.eval_env, policy, s, h) for s, h in zip(self.seeds, self.starts)]
        carbon = np.array([e["carbon_kg"] for e in eps])
        met = float(np.mean([e["deadline_met"] for e in eps]))
        row = {
            "timesteps": self.num_timesteps,
            "mean_carbon_kg": float(carbon.mean()),
            "std_carbon_kg": float(carbon.std()),
            "deadline_met_rate": met,
            "mean_jct_h": float(np.nanmean([e["jct_h"] for e in eps])) if met > 0 else math.nan,
            "mean_reward": float(np.mean([e["reward"] for e in eps])),
            "wall_s": round(time.time() - self._t0, 2),
        }
        score = (met, row["mean_carbon_kg"])
        is_best = (
            self.best is None or (score[0] > self.best[0]) or (score[0] == self.best[0] and score[1] < self.best[1])
        )
        row["best"] = int(is_best)
        if is_best:
            self.best = score
            atomic_save_model(self.model, self.run_dir / "best_model.zip")
        append_csv_row(self.run_dir / "eval.csv", EVAL_COLUMNS, row)
        metrics = {f"eval/{k}": row[k] for k in ("mean_carbon_kg", "deadline_met_rate")}
        for k, v in metrics.items():  # progress.csv gets them at the next dump ...
            self.logger.record(k, v, exclude="tensorboard")
        self._to_tensorboard(metrics)  # ... TensorBoard now, even if no dump follows (e.g. the final evaluation)
        if self.verbose:
            print(
                f"[eval] {self.num_timesteps} steps: carbon {row['mean_carbon_kg']:.2f} kg, "
                f"deadline met {100 * met:.0f}%{'  (best)' if is_best else ''}"
            )
        return row

    def _to_tensorboard(self, metrics: dict[str, float]) -> None:
        from stable_baselines3.common.logger import TensorBoardOutputFormat

        for fmt in self.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.write(metrics, dict.fromkeys(metrics), self.num_timesteps)  # writes and flushes
