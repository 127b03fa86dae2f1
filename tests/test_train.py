"""train.py and agents/: every algorithm trains, resume continues, bad options fail in one line, runs reproduce."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import train
from agents import ALGOS, AgentConfigError, load_agent
from agents.checkpoint import complete_saves, latest_save
from envs.carbon_migration import CarbonMigrationEnv

REPO = Path(__file__).resolve().parents[1]

# tiny networks and rollouts so each algorithm trains ~1k steps in a few seconds
TINY = {
    "ppo": {"n_steps": 128, "batch_size": 64, "n_epochs": 2},
    "maskable_ppo": {"n_steps": 128, "batch_size": 64, "n_epochs": 2, "imitation": None},  # PPO alone
    "a2c": {"n_steps": 8},
    "dqn": {"buffer_size": 5000, "learning_starts": 200, "batch_size": 32, "target_update_interval": 200},
    "sac": {"buffer_size": 5000, "learning_starts": 200, "batch_size": 32, "gradient_steps": 1},
    "td3": {"buffer_size": 5000, "learning_starts": 200, "batch_size": 32, "gradient_steps": 1},
}
COMMON = {
    "n_envs": 1,
    "eval_freq": 100_000,
    "eval_episodes": 1,
    "checkpoint_freq": 512,
    "policy_kwargs": {"net_arch": [16]},
}


def tiny_config(tmp_path: Path, algo: str, **extra) -> Path:
    path = tmp_path / f"{algo}-tiny.yaml"
    path.write_text(yaml.safe_dump({**COMMON, **TINY[algo], **extra}))
    return path


def run(tmp_path: Path, *argv: str) -> int:
    return train.main(["--out", str(tmp_path / "runs"), "--no-progress-bar", *argv])


def saved_zip_member(model_zip: Path, member: str):
    with zipfile.ZipFile(model_zip) as z, z.open(member) as f:
        return torch.load(f, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("algo", list(ALGOS))
def test_every_algorithm_trains_saves_and_plays_through_the_cli(tmp_path, algo):
    assert (
        run(
            tmp_path, "--algo", algo, "--timesteps", "1024", "--name", "r", "--config", str(tiny_config(tmp_path, algo))
        )
        == 0
    )
    run_dir = tmp_path / "runs" / "r"
    for name in ("model.zip", "best_model.zip", "config.yaml", "progress.csv", "eval.csv"):
        assert (run_dir / name).is_file(), name
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    saves = complete_saves(run_dir)  # the newest two complete saves are kept; the last is the end of training
    assert len(saves) == 2 and saves[-1].name == f"step-{cfg['timesteps_total']:09d}"
    expected = {"model.zip", "state.yaml", "best_model.zip", "resume.pkl"}
    expected |= {"replay_buffer.pkl"} if ALGOS[algo].off_policy else set()
    expected |= {"vecnormalize.pkl"} if cfg["hyperparams"].get("normalize_reward") else set()
    assert {p.name for p in saves[-1].iterdir()} == expected
    assert cfg["algo"] == algo and cfg["scenario"]["name"] == "paper" and cfg["seed"] == 0
    assert cfg["timesteps_total"] >= 1024 and cfg["hyperparams"]["policy_kwargs"] == {"net_arch": [16]}
    assert {"torch", "stable_baselines3", "sb3_contrib", "gymnasium"} <= set(cfg["versions"])
    # the loaded agent plays a whole validation episode with legal [target, level] (, GPU choice) actions
    policy = load_agent(run_dir)
    env = CarbonMigrationEnv("paper", "validation", invalid_action="raise" if algo == "maskable_ppo" else "ignore")
    obs, _ = env.reset(seed=3)
    policy.reset(env, 3)
    done, steps = False, 0
    while not done:
        a = policy.act(obs, env.view())
        assert a.shape in ((2,), (3,)) and 0 <= a[0] <= env.R and 0 <= a[1] < env.L  # 3: with a GPU choice
        assert a.size == 2 or 0 <= a[2] < env.G
        obs, _, term, trunc, _ = env.step(a)
        done, steps = term or trunc, steps + 1
    assert steps <= env.sim.n_steps


def test_resume_continues_step_counter_and_optimiser_state(tmp_path):
    # PPO, 1 env, 128-step rollouts, 2 epochs of 2 mini-batches: 4 Adam steps per 128 env steps
    cfg = tiny_config(tmp_path, "ppo")
    assert run(tmp_path, "--algo", "ppo", "--timesteps", "1024", "--name", "r", "--config", str(cfg)) == 0
    run_dir = tmp_path / "runs" / "r"
    saved_opt = saved_zip_member(run_dir / "model.zip", "policy.optimizer.pth")
    assert all(int(s["step"]) == 1024 // 128 * 4 for s in saved_opt["state"].values())
    # loading restores exactly the saved Adam moments
    loaded = load_agent(run_dir / "model.zip").model.policy.optimizer.state_dict()
    for k, s in saved_opt["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(s[name], loaded["state"][k][name])
    rows_before = len(pd.read_csv(run_dir / "progress.csv"))

    assert run(tmp_path, "--resume", str(run_dir), "--timesteps", "1536") == 0  # the total: 512 more
    curve = pd.read_csv(run_dir / "progress.csv")
    assert len(curve) == rows_before + 512 // 128
    assert curve["time/total_timesteps"].tolist()[-4:] == [1152, 1280, 1408, 1536]
    # Adam continued from its saved step count rather than starting again at 0
    resumed_opt = saved_zip_member(run_dir / "model.zip", "policy.optimizer.pth")
    assert all(int(s["step"]) == (1024 + 512) // 128 * 4 for s in resumed_opt["state"].values())
    cfg_after = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg_after["timesteps_total"] == 1536 and cfg_after["resumed"][0]["at_timesteps"] == 1024


def test_resume_of_dqn_keeps_its_replay_buffer(tmp_path):
    cfg = tiny_config(tmp_path, "dqn")
    assert run(tmp_path, "--algo", "dqn", "--timesteps", "600", "--name", "r", "--config", str(cfg)) == 0
    run_dir = tmp_path / "runs" / "r"
    assert run(tmp_path, "--resume", str(run_dir), "--timesteps", "1000") == 0
    from stable_baselines3.common.save_util import load_from_pkl

    buf = load_from_pkl(latest_save(run_dir)[0] / "replay_buffer.pkl")
    assert buf.pos == 1000 and not buf.full  # 600 old + 400 new transitions, one env


def test_resume_keeps_the_reward_normalisation_statistics(tmp_path):
    cfg = tiny_config(tmp_path, "maskable_ppo", normalize_reward=True)
    assert run(tmp_path, "--timesteps", "512", "--name", "r", "--config", str(cfg), "--vec", "dummy") == 0
    run_dir = tmp_path / "runs" / "r"
    from stable_baselines3.common.save_util import load_from_pkl

    assert load_from_pkl(latest_save(run_dir)[0] / "vecnormalize.pkl").ret_rms.count == pytest.approx(512, abs=1e-3)
    assert run(tmp_path, "--resume", str(run_dir), "--timesteps", "768") == 0
    # one env: one return sample per step, counted on from the saved statistics
    assert load_from_pkl(latest_save(run_dir)[0] / "vecnormalize.pkl").ret_rms.count == pytest.approx(768, abs=1e-3)


def test_same_seed_gives_identical_learning_curve(tmp_path):
    cfg = str(tiny_config(tmp_path, "maskable_ppo"))
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        assert (
            run(tmp_path, "--timesteps", "768", "--seed", seed, "--name", name, "--config", cfg, "--vec", "dummy") == 0
        )
    curves = {n: pd.read_csv(tmp_path / "runs" / n / "progress.csv") for n in "abc"}
    cols = sorted(c for c in curves["a"].columns if not c.startswith("time/fps") and c != "time/time_elapsed")
    assert len(curves["a"]) == 768 // 128
    pd.testing.assert_frame_equal(curves["a"][cols], curves["b"][cols])
    assert not curves["a"][cols].equals(curves["c"][cols])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--algo", "reinforce"], "invalid choice: 'reinforce'"),
        (["--scenario", "atlantis"], "unknown scenario 'atlantis'"),
        (["--timesteps", "-5"], "--timesteps must be >= 1"),
        (["--config", "/nonexistent/hp.yaml"], "cannot read config file"),
        (["--resume", "/nonexistent/run"], "expected a run directory"),
        (["--algo", "dqn", "--vec", "batched"], "needs FlatActionWrapper"),
    ],
)
def test_bad_option_exits_nonzero_with_one_line(tmp_path, capsys, argv, needle):
    try:
        code = run(tmp_path, *argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "text, needle",
    [
        ("n_steps: [unclosed", "not valid YAML"),
        ("learning_rat: 0.001", "learning_rat: unknown hyper-parameter for maskable_ppo"),
        ("- just\n- a list", "must be a mapping"),
        ("timesteps: -1", "timesteps: must be an integer >= 0"),
        ("eval_freq: 0", "eval_freq: must be an integer >= 1"),
        ("policy_kwargs: {activation_fn: swish}", "activation_fn: must be one of"),
        ("gamma: 1.5", "gamma: the discount must be a number in (0, 1], got 1.5"),
        ("gamma: 0", "gamma: the discount must be a number in (0, 1], got 0"),
        # the shipped maskable_ppo config runs 4 envs: a rollout is 16 x 4 = 64 steps
        ("n_steps: 16\nbatch_size: 1000", "batch_size: 1000 is larger than a rollout (n_steps 16 x n_envs 4 = 64"),
        ("policy_kwargs: {net_arch: big}", "policy_kwargs.net_arch: must be a list of layer widths"),
        ("policy_kwargs: {net_arch: {pi: [64], v: [64]}}", "policy_kwargs.net_arch: must be a list of layer widths"),
    ],
)
def test_invalid_config_file_exits_nonzero_with_one_line(tmp_path, capsys, text, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert run(tmp_path, "--config", str(bad)) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and str(bad) in err, err
    assert not (tmp_path / "runs").exists()


def test_command_line_error_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("gamma: 0.99\nclip_rnage: 0.1\n")
    proc = subprocess.run(
        [sys.executable, "train.py", "--config", str(bad), "--out", str(tmp_path / "runs")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "clip_rnage" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_load_agent_names_missing_and_corrupt_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model"):
        load_agent(tmp_path / "nothing.zip")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(FileNotFoundError, match="no best_model.zip or model.zip or checkpoints/step-N/"):
        load_agent(run_dir)
    (run_dir / "config.yaml").write_text("algo: ppo\n")
    (run_dir / "model.zip").write_bytes(b"not a zip at all")
    with pytest.raises(AgentConfigError, match="not a zip file"):
        load_agent(run_dir)
    with zipfile.ZipFile(run_dir / "model.zip", "w") as z:
        z.writestr("data", "{broken json")
    with pytest.raises(AgentConfigError, match="cannot load ppo model"):
        load_agent(run_dir)


# ---------------------------------------------------------------- crash safety


def start_training(tmp_path: Path, name: str, cfg: Path, *extra: str) -> subprocess.Popen:
    """A long DQN run in a child process (one env, so steps, saves and buffer positions are exact)."""
    argv = ["--algo", "dqn", "--timesteps", "1000000", "--save-every", "200", "--config", str(cfg), "--name", name]
    return subprocess.Popen(
        [sys.executable, "train.py", *argv, "--out", str(tmp_path / "runs"), "--no-progress-bar", *extra],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def logged_steps(run_dir: Path) -> list[int]:
    """``time/total_timesteps`` of every progress.csv row (DQN logs every 4 episodes: maybe none yet)."""
    import csv

    with (run_dir / "progress.csv").open(newline="") as f:
        return [int(r["time/total_timesteps"]) for r in csv.DictReader(f)]


def wait_for_saves(proc: subprocess.Popen, run_dir: Path, n: int) -> None:
    """Poll until the run has ``n`` complete saves (no timing assertion: it only waits)."""
    import time

    while len(complete_saves(run_dir)) < n:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)


def test_sigkill_then_resume_continues_from_the_newest_complete_save(tmp_path):
    import os
    import signal

    cfg = tiny_config(tmp_path, "dqn", buffer_size=50_000, eval_freq=100)
    run_dir = tmp_path / "runs" / "k"
    proc = start_training(tmp_path, "k", cfg)
    try:
        wait_for_saves(proc, run_dir, 2)
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: only what is already on disk survives
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    save_dir, state = latest_save(run_dir)
    step = state["num_timesteps"]
    assert step % 200 == 0 and step >= 400 and save_dir.name == f"step-{step:09d}"
    assert load_agent(save_dir / "model.zip").name == "k"  # a save is also a loadable agent of its run

    total = step + 400
    assert run(tmp_path, "--resume", str(run_dir), "--timesteps", str(total)) == 0
    cfg_after = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg_after["resumed"][0]["at_timesteps"] == step and cfg_after["timesteps_total"] == total
    # weights, optimiser and step counter continued from the save; the replay buffer kept its transitions
    model = load_agent(run_dir / "model.zip").model
    assert model.num_timesteps == total
    from stable_baselines3.common.save_util import load_from_pkl

    assert load_from_pkl(latest_save(run_dir)[0] / "replay_buffer.pkl").pos == total  # one env: one per step
    # evaluations after the save were dropped and redone: each step once, every 100 steps up to the total
    assert pd.read_csv(run_dir / "eval.csv")["timesteps"].tolist() == list(range(100, total + 1, 100))
    steps = logged_steps(run_dir)
    assert steps == sorted(set(steps)) and all(s <= total for s in steps)  # maybe none: 72-h episodes


def test_sigterm_saves_at_a_rollout_boundary_exits_143_and_prints_the_resume_command(tmp_path):
    import signal

    cfg = tiny_config(tmp_path, "dqn", buffer_size=50_000)
    run_dir = tmp_path / "runs" / "t"
    proc = start_training(tmp_path, "t", cfg)
    try:
        wait_for_saves(proc, run_dir, 1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err and "done in" not in err
    assert "SIGTERM: interrupted, not finished" in err
    assert f"python train.py --resume {run_dir} --timesteps 1000000" in err
    cfg_after = yaml.safe_load((run_dir / "config.yaml").read_text())
    stopped = cfg_after["timesteps_total"]
    # the interrupt wrote a complete save of the step it stopped at, and model.zip of the same step
    save_dir, state = latest_save(run_dir)
    assert state["num_timesteps"] == stopped and save_dir.name == f"step-{stopped:09d}"
    assert load_agent(run_dir / "model.zip").model.num_timesteps == stopped
    assert run(tmp_path, "--resume", str(run_dir), "--timesteps", str(stopped + 100)) == 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["timesteps_total"] == stopped + 100
    steps = logged_steps(run_dir)
    assert steps == sorted(set(steps))


def test_a_sigkilled_run_resumed_ends_bit_identical_to_the_uninterrupted_run(tmp_path):
    import os
    import signal

    # MaskablePPO, 2 batched envs, 16-step rollouts (32 steps an update), constant learning rate: the killed run's
    # total (1M) and the compared total give the same updates up to the save
    cfg = tiny_config(tmp_path, "maskable_ppo", n_envs=2, n_steps=16, batch_size=32, n_epochs=1, eval_freq=128)
    total = "512"
    assert run(tmp_path, "--timesteps", total, "--name", "a", "--config", str(cfg), "--seed", "3") == 0
    argv = ["--timesteps", "1000000", "--save-every", "64", "--config", str(cfg), "--name", "b", "--seed", "3"]
    proc = subprocess.Popen(
        [sys.executable, "train.py", *argv, "--out", str(tmp_path / "runs"), "--no-progress-bar"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_b = tmp_path / "runs" / "b"
    try:
        wait_for_saves(proc, run_b, 1)
        os.kill(proc.pid, signal.SIGKILL)  # mid-rollout, mid-evaluation or mid-save: whatever is on disk survives
    finally:
        proc.kill()
        proc.wait()
    assert latest_save(run_b)[1]["num_timesteps"] < int(total)
    assert run(tmp_path, "--resume", str(run_b), "--timesteps", total) == 0

    run_a = tmp_path / "runs" / "a"
    for member in ("policy.pth", "policy.optimizer.pth"):
        a, b = (saved_zip_member(r / "model.zip", member) for r in (run_a, run_b))
        flat_a, flat_b = (torch.cat([t.flatten().double() for t in tensors(x)]) for x in (a, b))
        assert torch.equal(flat_a, flat_b), member
    wall_clock = ["time/fps", "time/time_elapsed", "wall_s"]
    for log in ("progress.csv", "eval.csv"):
        a, b = (pd.read_csv(r / log).drop(columns=wall_clock, errors="ignore") for r in (run_a, run_b))
        pd.testing.assert_frame_equal(a, b[a.columns])


def tensors(x) -> list[torch.Tensor]:
    """Every tensor in a (nested) state dict, in a fixed order."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        return [t for k in sorted(x, key=str) for t in tensors(x[k])]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in tensors(v)]
    return [torch.tensor(float(x))] if isinstance(x, (int, float)) else []


def test_timesteps_is_the_total_and_on_policy_runs_stop_exactly_there(tmp_path, capsys):
    # 1000 steps with 128-step rollouts: 7 full rollouts (896 steps) trained on, then the 8th cut at 1000
    cfg = tiny_config(tmp_path, "ppo")
    assert run(tmp_path, "--algo", "ppo", "--timesteps", "1000", "--name", "r", "--config", str(cfg)) == 0
    run_dir = tmp_path / "runs" / "r"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["timesteps_total"] == 1000
    opt = saved_zip_member(run_dir / "model.zip", "policy.optimizer.pth")
    assert all(int(s["step"]) == 7 * 4 for s in opt["state"].values())
    assert pd.read_csv(run_dir / "eval.csv")["timesteps"].tolist() == [1000]  # the final evaluation, once
    assert capsys.readouterr().out.count("[eval] 1000 steps") == 1
    # a total below the steps done is refused in one line
    capsys.readouterr()
    assert run(tmp_path, "--resume", str(run_dir), "--timesteps", "800") == 2
    assert "already has 1000 steps and --timesteps 800 is the total" in capsys.readouterr().err


def test_help_says_timesteps_is_the_total():
    proc = subprocess.run([sys.executable, "train.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    helptext = " ".join(proc.stdout.split())
    assert "total environment steps of the run; with --resume the new total" in helptext
    assert "--save-every STEPS" in helptext and "Default: 10% of --timesteps" in helptext


def test_a_run_killed_before_any_model_file_loads_from_its_newest_save(tmp_path):
    cfg = tiny_config(tmp_path, "ppo")
    assert run(tmp_path, "--algo", "ppo", "--timesteps", "512", "--name", "r", "--config", str(cfg)) == 0
    run_dir = tmp_path / "runs" / "r"
    (run_dir / "model.zip").unlink()  # as after a SIGKILL before the first evaluation and the final save
    (run_dir / "best_model.zip").unlink()
    assert load_agent(run_dir).model.num_timesteps == 512
