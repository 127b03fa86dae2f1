"""The layering and the shared rules: ``sim/`` is the core and imports nothing above it; each scheduling rule has
one definition (``sim/rules.py``), checked here on hand-worked cases."""

from __future__ import annotations

import ast
from pathlib import Path

from sim import rules
from sim.states import State

SIM_DIR = Path(__file__).resolve().parents[1] / "sim"
ABOVE_THE_CORE = {"gymnasium", "loaders", "envs", "baselines", "agents", "evaluation", "train", "evaluate"}


def test_sim_imports_nothing_above_the_core():
    offending = []
    for path in sorted(SIM_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offending += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ABOVE_THE_CORE]
    assert offending == []


def test_usable_gpus_by_hand():
    assert rules.usable_gpus(free=5, requested=8, group=1, elastic=True) == 5  # elastic: runs on what is free
    assert rules.usable_gpus(free=5, requested=8, group=1, elastic=False) == 0  # rigid and short: none
    assert rules.usable_gpus(free=12, requested=8, group=1, elastic=False) == 8  # never more than requested
    assert rules.usable_gpus(free=13, requested=16, group=4, elastic=True) == 12  # whole groups of 4 only
    assert rules.usable_gpus(free=3, requested=16, group=4, elastic=True) == 0


def test_timed_phases_and_continue_target_by_hand():
    timed = {s for s in State if rules.is_timed(int(s))}
    assert timed == {State.SUSPEND, State.MIGRATION, State.SCALING, State.RECOVERING}
    assert set(rules.TIMED_STATES) == {int(s) for s in timed}
    R = 4  # action index 4 = wait
    assert rules.continue_target(int(State.MIGRATION), region=0, dest=2, after_suspend=2, n_regions=R) == 2
    assert rules.continue_target(int(State.SUSPEND), region=0, dest=0, after_suspend=rules.WAIT, n_regions=R) == R
    assert rules.continue_target(int(State.SUSPEND), region=0, dest=0, after_suspend=3, n_regions=R) == 3
    assert rules.continue_target(int(State.WAITING), region=1, dest=1, after_suspend=1, n_regions=R) == R
    assert rules.continue_target(int(State.SCALING), region=1, dest=1, after_suspend=1, n_regions=R) == 1


def test_clock_lowered_under_the_cap_by_hand():
    p_w = [100.0, 150.0, 200.0, 250.0]  # W per GPU at clock levels 0..3
    assert rules.level_under_cap(p_w, 8, 1250.0, 3) == 1  # 8 x 250, 8 x 200 > 1250 W; 8 x 150 = 1200 W fits
    assert rules.level_under_cap(p_w, 8, 2000.0, 3) == 3  # 8 x 250 = 2000 W: exactly at the cap is allowed
    assert rules.level_under_cap(p_w, 8, 1999.0, 3) == 2  # 1 W less: one level down (8 x 200 = 1600 W)
    assert rules.level_under_cap(p_w, 8, 500.0, 3) == 0  # none fits: the lowest level
    assert rules.level_under_cap(p_w, 8, float("inf"), 2) == 2  # uncapped: the chosen level
