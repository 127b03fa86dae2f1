"""evaluate.py as a user meets it: the default agent, the command train.py prints, the data source in every
title, a table that fits the terminal, plots that compare by eye."""

from __future__ import annotations

import contextlib
import io
import os
import re
import time

import numpy as np
import pandas as pd
import pytest
import yaml

import evaluate
from evaluation import plots
from evaluation.report import SYNTHETIC_LABEL, data_label, print_table, table_cells
from sim.carbon_synth import SOURCE as SYNTHETIC_SOURCE

LONG = "paper-maskable_ppo-s0-20250101-120000"


def fake_run(root, name, scenario="paper", path=None, mtime=None, model="model.zip"):
    run = root / name
    run.mkdir(parents=True)
    cfg = {"scenario": {"name": scenario, "path": path or f"scenarios/{scenario}.yaml"}, "data_dir": None}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / model).write_bytes(b"zip")
    if mtime is not None:
        os.utime(run / model, (mtime, mtime))
    return run


def test_newest_run_of_the_scenario_is_the_default_agent(tmp_path, capsys):
    now = time.time()
    fake_run(tmp_path, "a-old", mtime=now - 300)
    newest = fake_run(tmp_path, "b-new", mtime=now - 100, model="best_model.zip")
    fake_run(tmp_path, "c-other-scenario", scenario="llm", mtime=now)  # newer, but another scenario
    (tmp_path / "d-no-model").mkdir()
    (tmp_path / "d-no-model" / "config.yaml").write_text("scenario: {name: paper}\n")
    assert evaluate.newest_run(tmp_path, "paper") == newest
    assert evaluate.default_agents([], str(tmp_path), "paper") == [str(newest)]
    assert str(newest) in capsys.readouterr().out  # says which
    assert evaluate.default_agents(["none"], str(tmp_path), "paper") == []
    assert evaluate.default_agents(["x/run"], str(tmp_path), "paper") == ["x/run"]
    assert evaluate.newest_run(tmp_path, "faults") is None
    assert evaluate.newest_run(tmp_path / "absent", "paper") is None


def test_evaluate_command_names_the_run_and_a_non_default_scenario(tmp_path):
    from sim.scenario import SCENARIO_DIR

    paper = fake_run(tmp_path, "p", path=str(SCENARIO_DIR / "paper.yaml"))
    assert evaluate.evaluate_command(paper) == f"python evaluate.py --agent {paper}"
    llm = fake_run(tmp_path, "l", scenario="llm", path=str(SCENARIO_DIR / "llm.yaml"))
    assert evaluate.evaluate_command(llm, "cmg-evaluate") == f"cmg-evaluate --agent {llm} --scenario llm"
    own = fake_run(tmp_path, "o b", scenario="mine", path="/somewhere/mine.yaml")
    assert evaluate.evaluate_command(own) == f"python evaluate.py --agent '{own}' --scenario /somewhere/mine.yaml"


def test_data_label_is_the_folder_or_synthetic():
    assert data_label("carbon-intensity files under /data/x") == "real data: /data/x"
    assert data_label(SYNTHETIC_SOURCE) == SYNTHETIC_LABEL and "SYNTHETIC" in SYNTHETIC_LABEL


def summary_with_long_name() -> pd.DataFrame:
    rows = []
    for name, carbon in (("stay", 22.354), ("greedy", 8.851), (LONG, 123.456)):
        rows.append(
            {
                "policy": name,
                "carbon_kg_mean": carbon,
                "carbon_kg_ci95": 11.65,
                "energy_kwh_mean": 58.1,
                "energy_kwh_ci95": 0.7,
                "jct_h_mean": 24.5,
                "jct_h_ci95": 0.3,
                "deadline_met_rate": 1.0,
                "late_h_mean": 0.0,
                "migrations_mean": 2.5,
                "transfer_h_mean": 0.1,
                "transfer_gb_mean": 4.4,
                "egress_usd_mean": 0.19,
                "cap_violation_s_mean": 3600.0 * 24.5,
                "oracle_gap_pct_mean": 190.1,
                "oracle_gap_pct_ci95": 22.8,
                "bound_gap_pct_mean": 195.3,
                "bound_gap_pct_ci95": 23.1,
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("width", [60, 80, 100, 240])
def test_table_fits_the_width_and_wraps_names_not_numbers(width):
    summary = summary_with_long_name()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_table(summary, title="a title long enough to need wrapping on a narrow terminal, " * 2, width=width)
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    _, body = table_cells(summary)
    text = buf.getvalue()
    for row in body:
        for cell in row[1:]:
            assert cell in text, cell  # every number whole, on one line
    assert "123.46 ± 11.65" in text and "+190.1 ± 22.8" in text
    # the long name is all there, possibly folded over lines of its cell
    policy_cells = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert LONG in policy_cells
    # every box is whole: each line of one table is as long as its top border and ends in a border
    tables, current = [], []
    for line in lines:
        if line.startswith("┏"):
            current = [line]
        elif current:
            current.append(line.rstrip())
            if line.startswith("└"):
                tables.append(current)
                current = []
    assert tables and sum(len(t) for t in tables) >= 3 + 4
    for t in tables:
        assert {len(line) for line in t} == {len(t[0])} and all(line[-1] in "┓┃┩│┘" for line in t)


def test_table_width_defaults_to_100_columns_off_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("COLUMNS", raising=False)
    print_table(summary_with_long_name())
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100 and max(len(line) for line in lines) > 80


def test_wrap_label_keeps_every_character_within_the_line_length():
    wrapped = plots.wrap_label(LONG, 14)
    assert all(len(line) <= 14 for line in wrapped.split("\n"))
    assert wrapped.replace("\n", "") == LONG
    assert plots.wrap_label("stay") == "stay"


def test_timelines_share_time_clock_and_power_ranges():
    a = {"t_h": np.array([0.0, 10.0]), "clock_mhz": np.array([900.0, 1200.0]), "power_w": np.array([0.0, 1500.0])}
    b = {
        "t_h": np.array([0.0, 40.0]),
        "clock_mhz": np.array([600.0, 1000.0]),
        "power_w": np.array([200.0, 800.0]),
        "cap_w": np.array([1700.0, 1700.0]),
    }
    lim = plots.shared_limits([a, b])
    assert lim["t_max_h"] == 40.0
    # 5% margins around [600, 1200] MHz and [0, 1.7] kW
    assert lim["clock_mhz"] == pytest.approx((600 - 30, 1200 + 30))
    assert lim["power_kw"] == pytest.approx((0 - 0.085, 1.7 + 0.085))


@pytest.mark.usefixtures("one_torch_thread")
def test_train_prints_the_command_that_evaluates_its_run_and_evaluate_finds_it(tmp_path, monkeypatch, capsys):
    import shlex

    import train

    monkeypatch.chdir(tmp_path)  # runs/ of this test only
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("n_steps: 64\nbatch_size: 64\nn_envs: 2\neval_freq: 128\neval_episodes: 1\nimitation: null\n")
    assert train.main(["--timesteps", "128", "--config", str(cfg), "--name", "tiny", "--no-progress-bar"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1].strip()
    assert printed == "python evaluate.py --agent runs/tiny"
    assert yaml.safe_load((tmp_path / "runs" / "tiny" / "config.yaml").read_text())["data_source"]
    small = ["--policies", "stay", "--episodes", "1", "--period", "2023-03-01:2023-03-15"]
    # the printed command, and the default (no --agent): both evaluate the run beside the baselines
    assert evaluate.main(shlex.split(printed)[2:] + small + ["--out", "a"]) == 0
    assert evaluate.main(small + ["--out", "b"]) == 0
    assert "the newest run under runs/, runs/tiny" in capsys.readouterr().out
    for out in ("a", "b"):
        assert list(pd.read_csv(tmp_path / out / "episodes.csv")["policy"]) == ["stay", "tiny"]
        title = (tmp_path / out / "report.md").read_text().splitlines()[0]
        assert re.fullmatch(r"# Evaluation: paper \((real data: /.+|SYNTHETIC carbon data, .+)\)", title), title
    assert evaluate.main(small + ["--agent", "none", "--out", "c"]) == 0
    assert list(pd.read_csv(tmp_path / "c" / "episodes.csv")["policy"]) == ["stay"]


def test_compare_returns_the_rows_evaluate_writes(tmp_path):
    from evaluation.compare import compare

    argv = ["--agent", "none", "--policies", "stay,greedy,oracle", "--episodes", "2", "--seed", "3"]
    argv += ["--period", "2023-03-01:2023-03-15", "--out", str(tmp_path / "ev")]
    assert evaluate.main(argv) == 0
    written = pd.read_csv(tmp_path / "ev" / "episodes.csv")
    episodes, summary = compare(["stay", "greedy", "oracle"], episodes=2, seed=3, period=("2023-03-01", "2023-03-15"))
    pd.testing.assert_frame_equal(episodes[written.columns].reset_index(drop=True), written, check_dtype=False)
    assert list(summary["policy"]) == ["stay", "greedy", "oracle"]
    assert summary["carbon_kg_mean"].tolist() == pytest.approx(
        written.groupby("policy", sort=False)["carbon_kg"].mean()
    )
