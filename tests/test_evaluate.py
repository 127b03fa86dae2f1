"""evaluate.py: same episodes for every policy, files written, summary = aggregates of episodes, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import evaluate
from sim.paths import REPO_ROOT

PERIOD = "2023-03-01:2023-03-15"
N_EPISODES = 3
BASE = [
    "--agent",
    "none",
    "--policies",
    "stay,random,oracle",
    "--episodes",
    str(N_EPISODES),
    "--period",
    PERIOD,
    "--seed",
    "7",
]
EM_DIR = REPO_ROOT.parent / "shared" / "data" / "carbon_intensity" / "electricitymaps"


@pytest.fixture(autouse=True)
def _no_default_agent(tmp_path, monkeypatch):
    """Run from an empty folder: a developer's runs/ must not add a default agent to these tables."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def run1(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "w1"
    assert evaluate.main(BASE + ["--workers", "1", "--sensitivity", "--out", str(out)]) == 0
    return out


def test_writes_tables_report_and_plots(run1):
    for name in (
        "episodes.csv",
        "summary.csv",
        "report.md",
        "carbon.png",
        "energy_vs_jct.png",
        "timeline_stay.png",
        "timeline_random.png",
        "timeline_oracle.png",
    ):
        assert (run1 / name).is_file() and (run1 / name).stat().st_size > 0, name
    report = (run1 / "report.md").read_text()
    assert "Student" in report and "2023-03-01" in report and "2023-03-15" in report
    for png in ("carbon.png", "energy_vs_jct.png", "timeline_oracle.png"):
        assert f"({png})" in report
    # the sensitivity section: headline + one row per model term + the embodied row; the variants are on disk
    section = report.split("## Sensitivity to the model terms", 1)[1].split("\n## ", 1)[0]
    assert sum(ln.startswith("| ") for ln in section.splitlines()) == 1 + 1 + 6 + 1
    assert len(list((run1 / "sensitivity").glob("*-off.yaml"))) == 6
    # the checkpoint-size sweep: one scenario per model size, stay vs the oracle in this run
    assert len(list((run1 / "sensitivity").glob("*-ckpt-*.yaml"))) == 5
    ckpt = report.split("## Sensitivity to the checkpoint size", 1)[1]
    assert "| 70B | 1,120 |" in ckpt and (run1 / "checkpoint_sweep.png").is_file()
    ep = pd.read_csv(run1 / "episodes.csv")
    assert {"host_kwh", "checkpoint_stall_s", "embodied_kg"} <= set(ep.columns)
    assert (ep["host_kwh"] <= ep["it_energy_kwh"]).all() and (ep["embodied_kg"] > 0).all()


def test_every_policy_runs_the_same_episodes(run1):
    ep = pd.read_csv(run1 / "episodes.csv")
    assert len(ep) == 3 * N_EPISODES
    assert list(ep["policy"].unique()) == ["stay", "random", "oracle"]
    per_policy = [
        g.sort_values("episode")[["episode", "seed", "start_utc"]].to_numpy().tolist() for _, g in ep.groupby("policy")
    ]
    assert per_policy[0] == per_policy[1] == per_policy[2]
    for _, g in ep.groupby("policy"):
        assert sorted(g["episode"]) == list(range(N_EPISODES))
    # starts lie inside the requested period, with room for a 72 h episode (the safety limit, 2 x the deadline)
    starts = pd.to_datetime(ep["start_utc"])
    assert (starts >= pd.Timestamp("2023-03-01")).all()
    assert (starts <= pd.Timestamp("2023-03-15") - pd.Timedelta(hours=73)).all()


def test_summary_equals_aggregates_of_episodes(run1):
    ep = pd.read_csv(run1 / "episodes.csv")
    summary = pd.read_csv(run1 / "summary.csv").set_index("policy")
    for policy, g in ep.groupby("policy"):
        s = summary.loc[policy]
        assert s["episodes"] == len(g)
        for col in ("carbon_kg", "energy_kwh", "jct_h"):
            x = g[col].dropna().to_numpy()
            if len(x) == 0:  # e.g. no completed episode: no completion time
                assert math.isnan(s[f"{col}_mean"])
                continue
            assert s[f"{col}_mean"] == pytest.approx(x.mean(), rel=1e-12)
            if len(x) >= 2:
                lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
                assert s[f"{col}_ci95"] == pytest.approx((hi - lo) / 2, rel=1e-9, abs=1e-12)
            else:
                assert math.isnan(s[f"{col}_ci95"])
        assert s["deadline_met_rate"] == pytest.approx(g["deadline_met"].sum() / len(g))
        for col in ("migrations", "transfer_h", "transfer_gb", "egress_usd", "cap_violation_s"):
            assert s[f"{col}_mean"] == pytest.approx(g[col].sum() / len(g), rel=1e-12, abs=1e-12)


def test_oracle_gap_is_relative_to_the_oracle_on_the_same_episode(run1):
    ep = pd.read_csv(run1 / "episodes.csv")
    oracle = dict(zip(ep.loc[ep.policy == "oracle", "episode"], ep.loc[ep.policy == "oracle", "carbon_kg"]))
    for _, r in ep.iterrows():
        ref = oracle[r["episode"]]
        assert r["oracle_gap_pct"] == pytest.approx((r["carbon_kg"] / ref - 1.0) * 100.0, abs=1e-9)
    assert (ep.loc[ep.policy == "oracle", "oracle_gap_pct"] == 0).all()


def test_energy_is_facility_plus_transfer_and_units_are_consistent(run1):
    ep = pd.read_csv(run1 / "episodes.csv")
    stay = ep[ep.policy == "stay"]
    assert (stay["migrations"] == 0).all() and (stay["transfer_gb"] == 0).all()
    # staying home on V100s at PUE 1.15: facility energy = IT energy * PUE exactly (no transfers)
    assert np.allclose(stay["energy_kwh"], 1.15 * stay["it_energy_kwh"], rtol=1e-9)
    # every row is the whole job (spec V1): finished within the 72 h safety limit, or charged and flagged
    assert ep["completed"].all()
    ran = ep[~ep.work_charged]
    assert (ran["jct_h"] > 0).all() and (ran["jct_h"] <= 72).all()
    assert np.allclose(ep["late_h"], np.maximum(0.0, ep["jct_h"] - 36.0))


def test_two_workers_give_identical_episodes(run1, tmp_path):
    out = tmp_path / "w2"
    assert evaluate.main(BASE + ["--workers", "2", "--out", str(out)]) == 0
    assert (out / "episodes.csv").read_text() == (run1 / "episodes.csv").read_text()


@pytest.mark.parametrize(
    "argv, reason",
    [
        (["--policies", "stay,teleport"], "unknown policy 'teleport'"),
        (["--scenario", "atlantis"], "unknown scenario 'atlantis'"),
        (["--episodes", "0"], "--episodes 0"),
        (["--period", "2023-03-01"], "expected START:END"),
        (["--period", "2023-02-30:2023-03-10"], "is not a date"),
        (["--period", "2023-03-10:2023-03-01"], "START must be before END"),
        (["--agent", "no/such/run"], "no/such/run"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line_reason(argv, reason, tmp_path, capsys):
    out = tmp_path / "out"
    assert evaluate.main(["--episodes", "1", "--out", str(out)] + argv) != 0
    err = capsys.readouterr().err.strip()
    assert reason in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # nothing half-done


def test_corrupt_model_file_is_rejected(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("algo: maskable_ppo\n")
    (run / "model.zip").write_bytes(b"not a zip archive")
    assert evaluate.main(["--episodes", "1", "--agent", str(run), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "model.zip" in err and "not a zip" in err


def test_agent_runs_beside_baselines_under_its_run_dir_name(tmp_path):
    from sb3_contrib import MaskablePPO

    from envs.carbon_migration import CarbonMigrationEnv

    run = tmp_path / "maskable-untrained"
    run.mkdir()
    (run / "config.yaml").write_text("algo: maskable_ppo\n")
    env = CarbonMigrationEnv("paper", "test", period=tuple(PERIOD.split(":")))
    MaskablePPO("MlpPolicy", env, n_steps=64, seed=0, device="cpu").save(run / "model.zip")
    out = tmp_path / "out"
    assert (
        evaluate.main(
            ["--policies", "stay", "--agent", str(run), "--episodes", "2", "--period", PERIOD, "--out", str(out)]
        )
        == 0
    )
    ep = pd.read_csv(out / "episodes.csv")
    assert list(ep["policy"].unique()) == ["stay", "maskable-untrained"]
    assert ep["oracle_gap_pct"].isna().all()  # no oracle in this run
    assert (out / "timeline_maskable-untrained.png").is_file()


@pytest.mark.skipif(not EM_DIR.is_dir(), reason="Electricity Maps traces not present")
def test_real_traces_from_data_dir(tmp_path):
    out = tmp_path / "real"
    assert (
        evaluate.main(
            [
                "--policies",
                "stay",
                "--episodes",
                "2",
                "--data-dir",
                str(EM_DIR),
                "--period",
                "2023-03-01:2023-04-01",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = (out / "report.md").read_text()
    assert "real hourly carbon-intensity traces" in report and "electricitymaps" in report
    ep = pd.read_csv(out / "episodes.csv")
    assert (ep["carbon_kg"] > 0).all()


@pytest.mark.skipif(not EM_DIR.is_dir(), reason="Electricity Maps traces not present")
def test_period_outside_the_data_is_rejected(tmp_path, capsys):
    assert (
        evaluate.main(
            [
                "--policies",
                "stay",
                "--episodes",
                "1",
                "--data-dir",
                str(EM_DIR),
                "--period",
                "2030-01-01:2030-02-01",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        != 0
    )
    err = capsys.readouterr().err
    assert "--period 2030-01-01:2030-02-01" in err and "not inside the data range" in err


def test_report_says_when_the_data_is_synthetic(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CARBON_DATA_DIR", "synthetic")
    out = tmp_path / "synth"
    # a period no other test uses: worlds are cached per process by (scenario, split, data_dir, period)
    assert (
        evaluate.main(["--policies", "stay", "--episodes", "1", "--period", "2022-05-01:2022-05-10", "--out", str(out)])
        == 0
    )
    assert "**synthetic** carbon intensity" in (out / "report.md").read_text()
    assert "synthetic" in capsys.readouterr().err
