"""Bad input found by a hostile-user pass (issue 23): each fails in one line naming the file, key or slot and what
would be right — scenario files, power caps, job sizes, and CarbonFleet-v0's actions and reset options."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from envs.fleet import CarbonFleetEnv
from loaders.world import build_world
from sim.errors import ConfigError
from sim.gpu_models import gpu_model
from sim.scenario import SCENARIO_DIR, load_scenario

REPO = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((SCENARIO_DIR / "paper.yaml").read_text())


def write_paper(tmp_path: Path, **job) -> Path:
    data = copy.deepcopy(PAPER)
    data["job"].update(job)
    data["job"].pop("scaling_curve", None)  # its last point must reach job.gpus
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_month_13_date_names_file_line_and_the_right_form(tmp_path):
    text = (SCENARIO_DIR / "paper.yaml").read_text()
    start = str(PAPER["splits"]["train"][0])  # the first split's start, as written in the file
    path = tmp_path / "s.yaml"
    path.write_text(text.replace(start, "2023-13-01", 1))
    line = next(i + 1 for i, t in enumerate(path.read_text().splitlines()) if "2023-13-01" in t)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: not valid YAML: line {line}, column ")
    assert "'2023-13-01' is not a date (month must be in 1..12); expected YYYY-MM-DD" in str(info.value)


def test_a_job_larger_than_every_pool_must_say_it_runs_elastically(tmp_path):
    # paper's pools hold 10 V100s each
    with pytest.raises(
        ConfigError,
        match=r"job.gpus: 64 GPUs exceeds every pool \(largest: KR, 10 GPUs\); give <= 10, "
        r"or write job.elastic: true",
    ):
        load_scenario(write_paper(tmp_path, gpus=64))
    with pytest.raises(ConfigError, match=r"give <= 10 \(with elastic: false it never starts\)"):
        load_scenario(write_paper(tmp_path, gpus=64, elastic=False))
    assert load_scenario(write_paper(tmp_path, gpus=64, elastic=True)).job.gpus == 64


def test_a_power_cap_below_the_gpus_idle_draw_is_refused(tmp_path):
    scenario = load_scenario(write_paper(tmp_path, gpus=8, power_cap_w=50))
    idle_w = gpu_model("V100", PAPER["job"]["workload"]).idle_w  # every paper region has V100s
    with pytest.raises(ConfigError) as info:
        build_world(scenario, "train")
    msg = str(info.value)
    assert msg.startswith(f"{scenario.source}: job.power_cap_w: 50 W is at or below the idle draw of the job's GPUs")
    assert f"8 x {idle_w:.1f} W V100 = {8 * idle_w:.0f} W" in msg and f"give more than {8 * idle_w:.0f}" in msg


def test_train_cli_reports_a_bad_cap_in_one_line_without_traceback(tmp_path):
    path = write_paper(tmp_path, power_cap_w=50)
    proc = subprocess.run(
        [sys.executable, "train.py", "--scenario", str(path), "--out", str(tmp_path / "runs"), "--timesteps", "64"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "job.power_cap_w: 50 W" in proc.stderr


# ---------------------------------------------------------------- CarbonFleet-v0 as strict as CarbonMigration-v0


@pytest.fixture(scope="module")
def fleet():
    env = CarbonFleetEnv(n_slots=4)
    env.reset(seed=0)
    return env


def waits(env) -> np.ndarray:
    a = np.zeros(2 * env.K, dtype=np.int64)
    a[0::2] = env.R  # every slot waits: always valid
    return a


def test_fleet_reset_options_must_be_a_dict_of_known_keys(fleet):
    with pytest.raises(TypeError, match=r"reset\(options=...\) must be a dict such as \{'start_hour': 0\}, got \[1\]"):
        fleet.reset(options=[1])
    with pytest.raises(ValueError, match=r"unknown key 'start_hr' \(did you mean 'start_hour'\?\)"):
        fleet.reset(options={"start_hr": 3})
    with pytest.raises(ValueError, match="start_hour must be an integer hour index"):
        fleet.reset(options={"start_hour": 2.5})
    fleet.reset(seed=0, options={"start_hour": 3})
    assert fleet.start_hour == 3


@pytest.mark.parametrize(
    "slot, pair, needle",
    [
        (1, [None, np.nan], "slot 1: action [6.0, nan] (dtype float64) is not integer-valued"),
        (2, [-1, 0], "slot 2: action [-1, 0] out of range"),
        (3, [7, 0], "slot 3: action [7, 0] out of range"),  # R = 6 regions: 6 is wait, 7 is nothing
        (0, [6, 5], "slot 0: action [6, 5] out of range"),  # L = 5 clock levels 0..4
    ],
)
def test_fleet_actions_out_of_range_or_nan_raise_naming_the_slot(fleet, slot, pair, needle):
    fleet.reset(seed=0)
    a = waits(fleet).astype(float if pair[1] is not None and np.isnan(pair[1]) else np.int64)
    a[2 * slot + 1] = pair[1]
    if pair[0] is not None:
        a[2 * slot] = pair[0]
    with pytest.raises(ValueError) as info:
        fleet.step(a)
    assert str(info.value).startswith(needle)
    assert "expected 8 integers, [target 0..6 (6 = wait), clock level 0..4] per slot" in str(info.value)


def test_fleet_action_of_the_wrong_shape_raises(fleet):
    fleet.reset(seed=0)
    with pytest.raises(ValueError, match=r"action of shape \(5,\); expected 8 integers"):
        fleet.step(np.zeros(5, dtype=np.int64))


def test_masked_fleet_actions_follow_invalid_action(fleet):
    strict = CarbonFleetEnv(n_slots=4, invalid_action="raise")
    width = strict.R + 1 + strict.L
    a = waits(strict)
    a[0] = 0  # slot 0 asks for region 0 ...
    for env in (fleet, strict):
        env.reset(seed=0)
        while env._slots[0] < 0:  # until a job has arrived into slot 0
            env.step(waits(env))
        env._mask[0 * width + 0] = False  # ... while region 0 is masked for it (as when full or down)
    with pytest.raises(ValueError, match=r"slot 0: action \[0, 0\] is masked now \(valid targets \[1, "):
        strict.step(a)
    _, _, _, _, info = fleet.step(a)  # the default ignores it and counts it, as CarbonMigration-v0 does
    assert info["invalid_actions"] == 1
    with pytest.raises(ConfigError, match="invalid_action='maybe'; expected 'ignore' or 'raise'"):
        CarbonFleetEnv(n_slots=4, invalid_action="maybe")
