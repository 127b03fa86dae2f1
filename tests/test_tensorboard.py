"""--tensorboard: every validation evaluation reaches the event file at its step, dump or no dump."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

import train


@pytest.mark.usefixtures("one_torch_thread")
def test_every_evaluation_reaches_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tmp_path / "tiny.yaml"
    # eval every 96 steps, rollouts of 2 x 64 = 128 steps: evaluations fall between dumps, and the final one
    # (at 384 steps, after the last rollout's dump) is followed by none
    cfg.write_text(
        yaml.safe_dump(
            {
                "n_steps": 64,
                "batch_size": 64,
                "n_envs": 2,
                "eval_freq": 96,
                "eval_episodes": 1,
                "policy_kwargs": {"net_arch": [8]},
                "imitation": None,  # PPO steps only: their logs are what TensorBoard must show
            }
        )
    )
    argv = ["--out", str(tmp_path), "--name", "r", "--timesteps", "384", "--config", str(cfg), "--tensorboard"]
    assert train.main(argv + ["--no-progress-bar", "--vec", "dummy"]) == 0
    run = tmp_path / "r"
    evals = pd.read_csv(run / "eval.csv")
    acc = EventAccumulator(str(next((run / "tb").rglob("events.out.tfevents.*")).parent)).Reload()
    carbon = acc.Scalars("eval/mean_carbon_kg")
    assert [e.step for e in carbon] == evals["timesteps"].tolist()
    assert [e.value for e in carbon] == pytest.approx(evals["mean_carbon_kg"].tolist(), rel=1e-6, abs=1e-6)
