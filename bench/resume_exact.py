"""Kill a training run at some moment, resume it, and compare it with the same run left alone.

    python bench/resume_exact.py --kill-after-saves 1 --signal KILL     # prints the max parameter difference

A small MaskablePPO run (imitation off, 2 batched envs, 64-step rollouts) is trained twice with the same seed: once
uninterrupted, once killed (``--signal`` KILL, TERM or INT) after ``--kill-after-saves`` complete saves exist and then
resumed with ``--resume`` up to the same total. Prints the largest absolute difference of any policy parameter, of any
Adam moment, and whether ``progress.csv`` (wall-clock columns aside) and ``eval.csv`` (``wall_s`` aside) agree.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = {
    "imitation": None,
    "n_envs": 2,
    "n_steps": 64,
    "batch_size": 64,
    "n_epochs": 2,
    "eval_freq": 512,
    "eval_episodes": 1,
    "checkpoint_freq": 256,
    "policy_kwargs": {"net_arch": [16]},
}
WALL_CLOCK = ("time/fps", "time/time_elapsed", "wall_s")


def train_cmd(out: Path, name: str, cfg: Path, timesteps: int, seed: int) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "--out",
        str(out),
        "--name",
        name,
        "--config",
        str(cfg),
        "--no-progress-bar",
        "--timesteps",
        str(timesteps),
        "--seed",
        str(seed),
        "--save-every",
        "256",
    ]


def saves(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return [p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith((".tmp", ".old"))]


def zip_member(path: Path, member: str) -> dict:
    with zipfile.ZipFile(path) as z, z.open(member) as f:
        return torch.load(f, map_location="cpu", weights_only=False)


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def adam_diff(a: dict, b: dict) -> float:
    out = 0.0
    for k, s in a["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            out = max(out, float((s[name].double() - b["state"][k][name].double()).abs().max()))
    return out


def table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df.drop(columns=[c for c in WALL_CLOCK if c in df.columns]).reset_index(drop=True)


def compare(a: Path, b: Path) -> dict:
    pa, pb = (zip_member(r / "model.zip", "policy.pth") for r in (a, b))
    oa, ob = (zip_member(r / "model.zip", "policy.optimizer.pth") for r in (a, b))
    out = {"max_param_diff": max_diff(pa, pb), "max_adam_diff": adam_diff(oa, ob)}
    for f in ("progress.csv", "eval.csv"):
        ta, tb = table(a / f), table(b / f)
        same = ta.shape == tb.shape and set(ta.columns) == set(tb.columns)
        out[f"{f}_equal"] = same and bool((ta.fillna(-1) == tb[ta.columns].fillna(-1)).all().all())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=2048)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kill-after-saves", type=int, default=1, help="complete saves to wait for before the kill")
    p.add_argument("--delay-s", type=float, default=0.0, help="extra wait after that many saves exist")
    p.add_argument("--signal", default="KILL", choices=["KILL", "TERM", "INT"])
    args = p.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = tmp / "cfg.yaml"
        cfg.write_text(yaml.safe_dump(CONFIG))
        subprocess.run(
            train_cmd(tmp, "a", cfg, args.timesteps, args.seed), cwd=REPO, env=env, check=True, capture_output=True
        )
        proc = subprocess.Popen(
            train_cmd(tmp, "b", cfg, args.timesteps, args.seed),
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        while len(saves(tmp / "b")) < args.kill_after_saves and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(args.delay_s)
        if proc.poll() is not None:
            print("the run ended before the kill; lower --kill-after-saves", file=sys.stderr)
            return 1
        proc.send_signal(getattr(signal, f"SIG{args.signal}"))
        _, err = proc.communicate()
        print(f"killed with SIG{args.signal}: exit {proc.returncode}; {' | '.join(err.strip().splitlines()[-2:])}")
        resume = ["--resume", str(tmp / "b"), "--timesteps", str(args.timesteps), "--no-progress-bar"]
        resumed = subprocess.run(
            [sys.executable, "train.py", *resume], cwd=REPO, env=env, capture_output=True, text=True
        )
        if resumed.returncode != 0:
            print(resumed.stderr, file=sys.stderr)
            return 1
        for k, v in compare(tmp / "a", tmp / "b").items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
