"""Interrupted commands exit cleanly (issue 23): Ctrl-C / SIGTERM give one line and 130 / 143, and an embedded Ray
does not outlive a SIGKILLed evaluate.py (evaluation/ray_reaper.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import evaluate
from evaluation.distributed import Terminated, exit_code, interrupts_unwind

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--agent", "none", "--policies", "stay", "--episodes", "1", "--period", "2023-03-01:2023-03-08"]


def test_sigterm_unwinds_like_ctrl_c_with_its_own_exit_code():
    with pytest.raises(Terminated) as info, interrupts_unwind():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert exit_code(info.value) == 143 and exit_code(KeyboardInterrupt()) == 130


def test_ctrl_c_during_evaluation_is_one_line_exit_130_and_leaves_out_alone(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "run_all", interrupted)
    out = tmp_path / "out"
    assert evaluate.main(SMALL + ["--out", str(out)]) == 130
    assert (
        capsys.readouterr().err.strip() == "evaluate.py: interrupted (Ctrl-C): stopped (--out holds complete "
        "results only)"
    )
    assert os.listdir(tmp_path) == []  # neither --out nor its hidden staging folder


def test_no_ray_process_outlives_a_sigkilled_evaluate(tmp_path):
    pytest.importorskip("ray")
    err = tmp_path / "err.txt"
    argv = [sys.executable, "evaluate.py", *SMALL, "--episodes", "20", "--backend", "ray", "--workers", "1"]
    with open(err, "w") as f:
        proc = subprocess.Popen(argv + ["--out", str(tmp_path / "o")], cwd=REPO, stdout=subprocess.DEVNULL, stderr=f)
    try:
        driver = psutil.Process(proc.pid)
        while " 1/" not in err.read_text():  # Ray is up and running episodes
            assert proc.poll() is None, err.read_text()[-2000:]
            time.sleep(0.1)
        ray_procs = [p for p in driver.children(recursive=True) if "ray" in " ".join(p.cmdline())]
        assert any("raylet" in " ".join(p.cmdline()) for p in ray_procs)
        proc.kill()  # SIGKILL: no handler of the driver runs
    finally:
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs(ray_procs, timeout=10)
    for p in alive:
        p.kill()
    assert [" ".join(p.cmdline())[:60] for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
