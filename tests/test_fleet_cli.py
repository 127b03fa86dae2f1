"""train.py and evaluate.py on a fleet scenario: the environment id follows the scenario kind (issue 10)."""

from __future__ import annotations

import math

import pandas as pd
import yaml

import evaluate
import train
from evaluation.fleet import EPISODE_COLUMNS


def test_train_then_evaluate_a_fleet_agent_with_every_fleet_policy(tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["--scenario", "fleet_small", "--timesteps", "128", "--n-envs", "1", "--out", str(runs)]
    assert train.main([*argv, "--config", str(write_config(tmp_path)), "--no-progress-bar"]) == 0
    (run,) = runs.iterdir()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["env_id"] == "CarbonFleet-v0" and cfg["scenario"]["name"] == "fleet_small" and cfg["train_s"] > 0
    assert cfg["action"] == "per_job" and cfg["learned_by"] in ("imitation", "imitation+ppo")
    out = tmp_path / "eval"
    argv = ["--scenario", "fleet_small", "--episodes", "2", "--runs", str(runs), "--out", str(out)]
    assert evaluate.main(argv) == 0
    ep = pd.read_csv(out / "episodes.csv")
    assert tuple(ep.columns[: len(EPISODE_COLUMNS)]) == EPISODE_COLUMNS
    policies = list(dict.fromkeys(ep["policy"]))
    assert policies[:9] == [
        "stay",
        "threshold",
        "greedy",
        "caftm",
        "wait_awhile",
        "dvfs_only",
        "random",
        "packing",
        "oracle",
    ]
    assert policies[9] == f"{cfg['learned_by']}:{run.name}" and len(ep) == 2 * 10
    assert (ep["jobs"] == 6).all() and ep.groupby("episode")["bound_kg"].nunique().eq(1).all()
    # the gap is the carbon over that episode's bound, recomputed here, where the policy did every job (else empty)
    same = ep["jobs_completed"] == ep["jobs"]
    gap = 100 * (ep["carbon_kg"] - ep["bound_kg"]) / ep["bound_kg"]
    assert (gap[same] - ep["bound_gap_pct"][same]).abs().max() < 1e-9 and ep["bound_gap_pct"][~same].isna().all()
    summary = pd.read_csv(out / "summary.csv")
    stay = summary.set_index("policy").loc["stay"]
    assert math.isclose(stay["carbon_kg_mean"], ep[ep.policy == "stay"]["carbon_kg"].mean(), rel_tol=1e-12)
    assert {"carbon_kg_ci95", "lost_minibatches_mean", "bound_gap_pct_mean"} <= set(summary.columns)
    assert (out / "carbon.png").stat().st_size > 0 and (out / "gpus_in_use.png").stat().st_size > 0
    assert "wall time:" in capsys.readouterr().out


def write_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "n_steps: 64\nbatch_size: 32\nn_epochs: 1\npolicy_kwargs: {net_arch: [16], activation_fn: tanh}\n"
        "imitation: {demo_episodes: 1, dagger_rounds: 0, epochs: 1}\neval_episodes: 1\n"
    )
    return path


def test_an_unknown_fleet_policy_is_a_one_line_error(capsys):
    assert evaluate.main(["--scenario", "fleet_small", "--policies", "stay,teleport", "--agent", "none"]) == 2
    err = capsys.readouterr().err
    assert "unknown fleet policy 'teleport'" in err and err.count("\n") == 1


def test_a_held_out_period_and_a_slack_sweep_write_slack_csv(tmp_path, capsys):
    out = tmp_path / "eval"
    argv = [
        "--scenario",
        "fleet_small",
        "--episodes",
        "2",
        "--policies",
        "stay,packing",
        "--agent",
        "none",
        "--period",
        "2021-03-01:2021-04-01",
        "--slack",
        "1.0,3.0",
        "--out",
        str(out),
    ]
    assert evaluate.main(argv) == 0
    ep = pd.read_csv(out / "episodes.csv")
    assert sorted(ep["slack_factor"].unique()) == [1.0, 3.0] and len(ep) == 2 * 2 * 2
    table = pd.read_csv(out / "slack.csv")
    assert list(table.columns) == [
        "policy",
        "slack_factor",
        "carbon_kg_mean",
        "deadline_met_rate",
        "savings_vs_stay_pct",
    ]
    row = table[(table.policy == "packing") & (table.slack_factor == 3.0)].iloc[0]
    at3 = ep[ep.slack_factor == 3.0].groupby("policy")["carbon_kg"].mean()
    assert math.isclose(row["savings_vs_stay_pct"], 100 * (at3["stay"] - at3["packing"]) / at3["stay"], rel_tol=1e-12)
    assert (out / "slack.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "2021-03-01 to 2021-04-01" in report and "## What the bound relaxes" in report


def test_a_fleet_evaluation_refuses_a_non_empty_out_and_leaves_it_as_it_was(tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "report.md").write_text("previous result")
    argv = ["--scenario", "fleet_small", "--episodes", "1", "--policies", "stay", "--agent", "none", "--out", str(out)]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    assert "exists and is not empty" in err and "--overwrite" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval"]  # no staged sibling left behind
    assert [p.name for p in out.iterdir()] == ["report.md"] and (out / "report.md").read_text() == "previous result"


def test_a_slack_factor_below_one_is_a_one_line_error(capsys):
    assert evaluate.main(["--scenario", "fleet_small", "--slack", "0.5,2", "--agent", "none"]) == 2
    err = capsys.readouterr().err
    assert "--slack '0.5,2': expected comma-separated numbers >= 1" in err and err.count("\n") == 1


def test_a_bad_fleet_imitation_setting_is_a_one_line_error(tmp_path, capsys):
    config = tmp_path / "imitate.yaml"
    config.write_text("imitation: {demo_episodes: 2, rounds: 3}\n")
    argv = ["--scenario", "fleet_small", "--timesteps", "64", "--out", str(tmp_path / "runs"), "--config", str(config)]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{config}: imitation.rounds: unknown imitation setting" in err and not (tmp_path / "runs").exists()
