"""Equal work in every row (spec V1): the horizon is a safety limit; late or unfinished jobs are accounted for."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from baselines import make_policy
from baselines.base import Policy
from baselines.runner import run_episode
from envs.carbon_migration import CarbonMigrationEnv
from sim.errors import ConfigError
from sim.paths import SCENARIO_DIR
from sim.scenario import load_scenario


class _Pause(Policy):
    name = "pause"

    def act(self, obs, view):
        return np.array([view.wait, 0])


def test_an_episode_shorter_than_twice_the_deadline_is_rejected(tmp_path):
    data = yaml.safe_load((SCENARIO_DIR / "paper.yaml").read_text())
    data["episode_hours"] = 48  # deadline 36 h: the safety limit must be >= 72 h
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"episode_hours: 48 is the safety limit .* >= 2 x job.deadline_hours = 72"):
        load_scenario(path)


def test_a_job_unfinished_at_the_safety_limit_is_charged_its_remaining_work_and_flagged():
    sc = load_scenario("paper")
    job = dataclasses.replace(sc.job, deadline_hours=2.0)  # a short limit (built in code, past the YAML check)
    sc = dataclasses.replace(sc, episode_hours=4.0, job=job, faults=dataclasses.replace(sc.faults, shortage_scale=0.0))
    env = CarbonMigrationEnv(sc, "test")
    m = run_episode(env, _Pause(), seed=3, start_hour=100, keep_history=False)
    assert m["work_charged"] and m["completed"]
    v = env.view()
    # paused all along at home (KR): all 140,000 mini-batches charged at the highest V100 level whose 8 GPUs fit
    # under 1,700 W (1065 MHz: 8 x 181.6 W = 1,453 W; 1380 MHz: 8 x 227.7 = 1,821 W), host 400.2 W / 8 per GPU
    assert v.progress_mb == 0 and v.region == 0
    lv = 3
    assert 8 * v.p_gpu_w[0, lv] <= 1700.0 < 8 * v.p_gpu_w[0, lv + 1]
    run_s = 140_000 * v.t_mb_s[0, lv]
    kwh = run_s * 8 * (v.p_gpu_w[0, lv] + 400.2 / 8) / 3.6e6 * 1.15
    ci = env.unwrapped.sim.ci[0]  # KR over the episode's hours
    assert m["charged_carbon_g"] == pytest.approx(kwh * ci.mean(), rel=1e-3)
    assert m["jct_h"] == pytest.approx(4.0 + run_s / 3600.0)
    assert m["late_h"] == pytest.approx(4.0 + run_s / 3600.0 - 2.0)
    assert not m["deadline_met"]


def test_a_finished_job_reports_its_lateness():
    env = CarbonMigrationEnv("paper", "test")
    m = run_episode(env, make_policy("stay"), seed=0, start_hour=200, keep_history=False)
    assert m["completed"] and not m["work_charged"]
    assert m["late_h"] == pytest.approx(max(0.0, m["jct_h"] - 36.0))
    assert m["deadline_met"] == (m["late_h"] == 0.0)
