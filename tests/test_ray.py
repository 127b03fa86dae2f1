"""Ray past one machine, on a local Ray with 2 CPUs: evaluate.py's episodes as Ray tasks, sweep.py on Ray Tune."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

import evaluate
import sweep

pytest.importorskip("ray")

EVAL = ["--agent", "none", "--policies", "stay,greedy,oracle", "--episodes", "4", "--period", "2023-03-01:2023-03-15"]


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    out = tmp_path_factory.mktemp("w1")
    assert evaluate.main(EVAL + ["--workers", "1", "--out", str(out)]) == 0
    return (out / "episodes.csv").read_bytes()


def test_cluster_path_ships_the_checkout_and_reads_the_same_data(one_worker, tmp_path):
    """``--address local`` starts a separate Ray the way a cluster is used: the checkout goes to the workers as
    Ray's working_dir (not imported in place), so only the explicitly passed data folder gives the same rows."""
    import subprocess
    import sys

    from sim.paths import REPO_ROOT

    out = tmp_path / "cluster"
    argv = [sys.executable, str(REPO_ROOT / "evaluate.py"), *EVAL, "--backend", "ray", "--address", "local"]
    proc = subprocess.run(argv + ["--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "episodes.csv").read_bytes() == one_worker


def test_a_worker_reading_other_carbon_data_refuses_to_run():
    from evaluation.distributed import run_task_checked
    from evaluation.episodes import EnvSpec, PolicySpec, plan_episodes
    from loaders.world import build_world
    from sim.errors import DataError
    from sim.scenario import load_scenario

    period = ("2023-03-01", "2023-03-15")
    world = build_world(load_scenario("paper"), "test", period=period)
    (task,) = plan_episodes(world, EnvSpec("paper", "test", None, period), [PolicySpec("stay", "stay")], 1, 0)
    with pytest.raises(DataError, match="pass --data-dir with a folder that exists at the same path on every node"):
        run_task_checked((task, "carbon-intensity files under /elsewhere"))
    assert run_task_checked((task, world.carbon.source))["row"]["carbon_kg"] > 0


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module: evaluate.py and sweep.py reuse a running session."""
    import ray

    from evaluation.distributed import init_ray

    started = init_ray(None, 2)
    yield
    if started:
        ray.shutdown()


def test_ray_backend_writes_the_same_episodes_as_one_worker(one_worker, local_ray, tmp_path):
    assert evaluate.main(EVAL + ["--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert (tmp_path / "ray" / "episodes.csv").read_bytes() == one_worker
    assert len(pd.read_csv(tmp_path / "ray" / "episodes.csv")) == 3 * 4


def test_address_needs_the_ray_backend(capsys, tmp_path):
    assert evaluate.main(EVAL + ["--address", "auto", "--out", str(tmp_path / "o")]) == 2
    assert "--address auto: only used with --backend ray" in capsys.readouterr().err


def test_sweep_help_documents_the_space_file_trials_and_address(capsys):
    with pytest.raises(SystemExit):
        sweep.main(["--help"])
    text = capsys.readouterr().out
    for needle in ("--space", "--trials", "--address", "loguniform", "choice", "--seeds", "objective"):
        assert needle in text, needle


@pytest.mark.parametrize(
    "space, needle",
    [
        ("learning_rate: {loguniform: [0.0, 1.0e-3]}", "learning_rate: loguniform needs [LOW, HIGH]"),
        ("n_epochs: {int: [5, 2]}", "n_epochs: int needs [LOW, HIGH]"),
        ("warp_speed: {uniform: [0, 1]}", "warp_speed: unknown hyper-parameter for maskable_ppo"),
        ("- just a list", "expected a mapping"),
    ],
)
def test_bad_search_space_is_one_line_before_any_trial(tmp_path, capsys, space, needle):
    path = tmp_path / "space.yaml"
    path.write_text(space + "\n")
    assert sweep.main(["--space", str(path), "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "sw" / "tune").exists()


@pytest.mark.usefixtures("one_torch_thread")
def test_two_trial_optuna_sweep_writes_results_and_best_config(local_ray, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(
        yaml.safe_dump(
            {
                "learning_rate": {"loguniform": [1.0e-4, 1.0e-3]},
                "policy_kwargs": {"choice": [{"net_arch": [8]}, {"net_arch": [16]}]},
                "n_steps": 64,
                "batch_size": 64,
                "n_envs": 2,
                "eval_freq": 128,
                "eval_episodes": 1,
                "imitation": None,  # PPO alone: the trials differ in PPO's hyper-parameters
            }
        )
    )
    out = tmp_path / "sw"
    argv = ["--space", str(space), "--trials", "2", "--timesteps", "128", "--out", str(out)]
    assert sweep.main(argv) == 0
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2
    assert results["objective"].is_monotonic_increasing  # best first
    for _, r in results.iterrows():
        assert 1.0e-4 <= r["learning_rate"] <= 1.0e-3
        assert r["policy_kwargs"] in ("{net_arch: [8]}", "{net_arch: [16]}")
        # each trial is an ordinary train.py run, scored by its best validation row (deadline rate, then carbon)
        (run_dir,) = r["run_dirs"].split(";")
        evals = pd.read_csv(f"{run_dir}/eval.csv")
        best = evals.sort_values(["deadline_met_rate", "mean_carbon_kg"], ascending=[False, True]).iloc[0]
        assert r["val_carbon_kg"] == pytest.approx(best["mean_carbon_kg"])
        assert r["objective"] == pytest.approx(best["mean_carbon_kg"] + 1000.0 * (1 - best["deadline_met_rate"]))
        cfg = yaml.safe_load(open(f"{run_dir}/config.yaml"))
        assert cfg["hyperparams"]["learning_rate"] == pytest.approx(r["learning_rate"])
        assert cfg["timesteps"] == 128 and cfg["seed"] == 0
    best_cfg = yaml.safe_load((out / "best_config.yaml").read_text())
    top = results.iloc[0]
    assert best_cfg["learning_rate"] == pytest.approx(top["learning_rate"])
    assert best_cfg["policy_kwargs"] == yaml.safe_load(top["policy_kwargs"]) and best_cfg["n_steps"] == 64
