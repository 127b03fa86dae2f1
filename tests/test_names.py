"""The default agent is named for what it does: imitation of the oracle, no RL step."""

from __future__ import annotations

import contextlib
import io

import pytest

import train
from agents.build import load_hyperparams


def help_text() -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        train.parse_args(["--help"])
    return " ".join(buf.getvalue().split())


def test_help_says_the_default_agent_learns_by_imitation_with_no_ppo_step():
    text = help_text()
    assert "imitation of the oracle" in text and "0 PPO steps" in text
    assert "0 for maskable_ppo (imitation only" in text  # --timesteps says what the default does


def test_default_label_says_what_the_training_does():
    hp = load_hyperparams("maskable_ppo")
    assert hp["timesteps"] == 0 and train.default_label("maskable_ppo", hp, 0) == "imitation"
    assert train.default_label("maskable_ppo", hp, 5000) == "imitation+maskable_ppo"
    assert train.default_label("dqn", load_hyperparams("dqn"), 5000) == "dqn"


def test_a_run_goes_by_its_label_else_its_folder_name(tmp_path):
    from agents.policy import run_label

    labelled, old = tmp_path / "imitation-paper-s0-20260101-000000", tmp_path / "paper-maskable_ppo-s0-old"
    for run, cfg in ((labelled, "algo: maskable_ppo\nlabel: imitation\n"), (old, "algo: maskable_ppo\n")):
        run.mkdir()
        (run / "config.yaml").write_text(cfg)
        (run / "model.zip").write_bytes(b"zip")
    assert run_label(labelled) == "imitation" and run_label(labelled / "model.zip") == "imitation"
    assert run_label(old) == "paper-maskable_ppo-s0-old"  # runs from before labels keep their folder name
