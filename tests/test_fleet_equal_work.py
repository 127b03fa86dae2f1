"""Equal work in CarbonFleet-v0 (spec V1, issue 25): episodes run past the horizon until every job completed or
the safety limit, and a job unfinished there is charged its remaining work."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from envs.fleet import CarbonFleetEnv
from sim.paths import SCENARIO_DIR
from sim.rules import WAIT
from sim.scenario import SAFETY_LIMIT_X_DEADLINE, parse_fleet_scenario

SMALL = yaml.safe_load((SCENARIO_DIR / "fleet_small.yaml").read_text())  # horizon 24 h


def _env(jobs: list[dict]) -> CarbonFleetEnv:
    d = copy.deepcopy(SMALL)
    d["jobs"]["list"] = jobs
    return CarbonFleetEnv(parse_fleet_scenario(d, "t.yaml"), "test", n_slots=2)


def test_a_job_arriving_late_finishes_past_the_horizon():
    env = _env([{"arrival_hours": 23.0, "gpus": 1, "duration_hours": 4.0, "workload": "resnet50", "home": "KR"}])
    env.reset(seed=0)
    assert SAFETY_LIMIT_X_DEADLINE == 2.0 and env.n_steps == 2 * 24 * 4  # the limit: 48 h of 15-minute steps
    done = truncated = False
    while not (done or truncated):
        _, _, done, truncated, info = env.step_jobs(np.zeros(1, dtype=np.int64), np.full(1, env.L - 1))
    assert done and not truncated and env.t_s > env.horizon_s
    m = info["fleet_episode"]
    assert m["completed_rate"] == 1.0 and m["work_charged_rate"] == 0.0 and m["jobs_completed"] == 1
    assert env.completed_at_s()[0] > 24 * 3600.0


def test_a_job_unfinished_at_the_safety_limit_is_charged_its_remaining_work_at_home_at_the_top_clock():
    jobs = [
        {"arrival_hours": 0.0, "gpus": 2, "duration_hours": 3.0, "workload": "resnet50", "home": "DE"},
        {"arrival_hours": 1.0, "gpus": 1, "duration_hours": 2.0, "workload": "bert_squad", "home": "KR"},
    ]
    env = _env(jobs)
    env.reset(seed=3)
    wait = np.full(2, WAIT)
    steps = 0
    lateness_term = 0.0
    truncated = done = False
    while not (done or truncated):  # every job waits (holds nothing, draws nothing) until the limit
        _, _, done, truncated, info = env.step_jobs(wait, np.zeros(2, dtype=np.int64))
        lateness_term += info["reward_terms"]["lateness"]
        steps += 1
    assert truncated and not done and steps == 192 and env.t_s == 48 * 3600.0
    j, home, top = env.jobs, np.array([1, 0]), env.L - 1  # DE is region 1, KR region 0
    total_kwh = total_g = late_h = 0.0
    for i in range(2):
        run_s = j.minibatches[i] * j.minibatch_s[i, home[i], top]
        it_kwh = run_s * j.gpus[i] * (j.gpu_power_w[i, home[i], top] + j.host_power_w[home[i]]) / 3.6e6
        kwh = it_kwh * 1.15  # the regions' PUE
        total_kwh += kwh
        total_g += kwh * env.ci[0, home[i]].mean()  # the home region's mean intensity over the episode
        late_h += (48 * 3600.0 - j.deadline_s[i] + run_s) / 3600.0
    m = info["fleet_episode"]
    assert m["jobs_completed"] == 0 and m["completed_rate"] == 0.0 and m["work_charged_rate"] == 1.0
    assert m["carbon_kg"] == pytest.approx(total_g / 1000.0, rel=1e-12)
    assert m["charged_carbon_kg"] == pytest.approx(total_g / 1000.0, rel=1e-12)
    assert m["energy_kwh"] == pytest.approx(total_kwh, rel=1e-12)
    assert m["late_h"] == pytest.approx(late_h, rel=1e-9)
    assert m["deadline_met_rate"] == 0.0
    # the reward's lateness (sim/reward.py) counts the same hours, the work left included at the limit, as the
    # single job's reward does
    assert lateness_term == pytest.approx(-env.scenario.reward.lateness_per_hour * late_h, rel=1e-9)
