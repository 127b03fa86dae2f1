"""Specification of the fleet's deadlines (sim/fleet_jobs.py ``fifo``) and lateness (``late_h``) on fleet_small:
deadlines a carbon-agnostic FIFO operator meets, measured on the same episode."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from baselines.fleet_policies import FleetPolicy, make_fleet_policy, run_fleet_episode
from envs.fleet import CarbonFleetEnv
from sim.fleet_jobs import fifo_deadlines
from sim.rules import WAIT
from sim.scenario import SCENARIO_DIR, parse_fleet_scenario

SMALL = yaml.safe_load((SCENARIO_DIR / "fleet_small.yaml").read_text())
FAULTS = {"gpu_failure_per_gpu_hour": 0.01, "transfer_failure_prob": 0.2, "shortage_scale": 0.5}


def small_env(deadline: str, slack: float, faults: dict | None = None) -> CarbonFleetEnv:
    data = copy.deepcopy(SMALL)
    data["jobs"].update(deadline=deadline, slack_factor=slack)
    data["faults"] = faults or {}
    return CarbonFleetEnv(parse_fleet_scenario(data, "fleet_small.yaml"), "test")


def test_fifo_deadline_is_arrival_plus_slack_times_the_fifo_response_capped_at_the_horizon():
    # arrivals 0 h, 2 h, 5 h, 6 h; FIFO done at 3 h, 4 h, 20 h, never; slack 1.5; horizon 24 h
    d = fifo_deadlines(np.array([0, 2, 5, 6.0]) * 3600, np.array([3, 4, 20, np.inf]) * 3600, 1.5, 24 * 3600.0)
    assert (d / 3600).tolist() == [4.5, 5.0, 24.0, 24.0]  # 0 + 4.5; 2 + 3; 5 + 22.5 -> 24; unfinished -> 24


@pytest.mark.parametrize("faults", [None, FAULTS], ids=["no_faults", "faults"])
def test_stay_finishes_every_job_exactly_at_its_deadline_with_slack_one(faults):
    env = small_env("fifo", 1.0, faults)
    for seed in range(3):
        m = run_fleet_episode(env, make_fleet_policy("stay"), seed)
        assert m["deadline_met_rate"] == 1.0 and m["late_h"] == 0.0
        assert env.completed_at_s().tolist() == env.jobs.deadline_s.tolist()


@pytest.mark.parametrize("faults", [None, FAULTS], ids=["no_faults", "faults"])
def test_fifo_deadlines_are_the_stay_schedule_of_the_same_episode_stretched_by_the_slack(faults):
    # stay's decisions and FIFO service do not read deadlines: its completions under the `alone` rule are the
    # reference, measured independently of the `fifo` code path
    alone, fifo = small_env("alone", 1.5, faults), small_env("fifo", 1.5, faults)
    for seed in range(3):
        run_fleet_episode(alone, make_fleet_policy("stay"), seed)
        done_s = alone.completed_at_s()
        fifo.reset(seed=seed)
        arrival = fifo.jobs.arrival_s
        expected = np.minimum(arrival + 1.5 * (np.minimum(done_s, 24 * 3600.0) - arrival), 24 * 3600.0)
        np.testing.assert_allclose(fifo.jobs.deadline_s, expected, rtol=0, atol=1e-9)


def test_the_reference_run_leaves_the_episode_as_reset_drew_it():
    # the reference is played from a copy of the episode's state and fault coins, then both are put back: stay
    # (which reads no deadline) then emits and loses exactly what it does on the same episode without it
    alone, fifo = small_env("alone", 2.0, FAULTS), small_env("fifo", 2.0, FAULTS)
    for seed in range(3):
        a = run_fleet_episode(alone, make_fleet_policy("stay"), seed)
        b = run_fleet_episode(fifo, make_fleet_policy("stay"), seed)
        assert a["carbon_kg"] == b["carbon_kg"] and a["lost_minibatches"] == b["lost_minibatches"]


class _Never(FleetPolicy):
    name = "never"

    def act(self, env):
        return np.full(env.J, WAIT), np.zeros(env.J, dtype=np.int64)


def test_late_h_of_jobs_never_run_is_the_safety_limit_past_each_deadline_plus_their_work_at_home():
    env = small_env("alone", 2.0)
    m = run_fleet_episode(env, _Never(), 0)
    jobs = env.jobs
    work_h = jobs.minibatches * jobs.minibatch_s[np.arange(jobs.n_jobs), jobs.home, -1] / 3600
    expected = np.sum(48.0 - jobs.deadline_s / 3600 + work_h)  # the safety limit: 2 x the 24 h horizon
    assert m["jobs_completed"] == 0 and m["deadline_met_rate"] == 0.0 and m["work_charged_rate"] == 1.0
    assert m["late_h"] == pytest.approx(expected, rel=1e-9)
