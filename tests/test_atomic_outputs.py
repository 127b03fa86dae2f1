"""Result folders are complete or absent (issue 23): evaluate.py and sweep.py write into a hidden sibling of --out
and move it into place; an existing non-empty --out needs --overwrite; a killed run leaves the previous result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import evaluate
from evaluation.output import staged_output
from sim.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--agent", "none", "--policies", "stay", "--episodes", "1", "--period", "2023-03-01:2023-03-08"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failing_writer_leaves_the_previous_result_and_no_temporary_folder(tmp_path):
    out = tmp_path / "out"
    with staged_output(out) as tmp:
        (tmp / "a.csv").write_text("old")
    with pytest.raises(RuntimeError), staged_output(out, overwrite=True) as tmp:
        (tmp / "a.csv").write_text("new, half written")
        raise RuntimeError("killed")
    assert snapshot(out) == {"a.csv": b"old"} and os.listdir(tmp_path) == ["out"]
    with staged_output(out, overwrite=True) as tmp:
        (tmp / "b.csv").write_text("new")
    assert snapshot(out) == {"b.csv": b"new"} and os.listdir(tmp_path) == ["out"]  # replaced whole, not merged


def test_an_existing_non_empty_out_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("a previous result")
    assert evaluate.main(SMALL + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"evaluate.py: error: --out {out.absolute()}: exists and is not empty; give another --out, or "
        "--overwrite to replace it"
    )
    with pytest.raises(ConfigError, match="is not a folder"), staged_output(out / "report.md"):
        pass


def test_evaluate_killed_while_replacing_a_result_leaves_the_previous_one(tmp_path):
    out = tmp_path / "out"
    assert evaluate.main(SMALL + ["--out", str(out)]) == 0
    before = snapshot(out)
    assert {"episodes.csv", "summary.csv", "report.md"} <= set(before)
    argv = [sys.executable, "evaluate.py", *SMALL, "--episodes", "3", "--out", str(out), "--overwrite"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir()):  # it has begun writing
            assert proc.poll() is None
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert snapshot(out) == before
    assert evaluate.main(SMALL + ["--out", str(out), "--overwrite", "--seed", "1"]) == 0
    assert os.listdir(tmp_path) == ["out"]  # the killed run's hidden folder was removed
    assert snapshot(out) != before
