"""Every reward weight of the scenario's ``reward`` section moves CarbonFleet-v0's reward (issue 25): the fleet
reads the same table as CarbonMigration-v0."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import yaml

from baselines.fleet_policies import make_fleet_policy
from envs.fleet import CarbonFleetEnv
from sim.scenario import SCENARIO_DIR, RewardSpec, parse_fleet_scenario

SMALL = yaml.safe_load((SCENARIO_DIR / "fleet_small.yaml").read_text())
WEIGHTS = [f.name for f in dataclasses.fields(RewardSpec)]


def episode(reward: dict) -> tuple[float, dict]:
    """Packing on fleet_small with faults and a binding power cap (every reward term is non-zero): its return
    and final metrics."""
    data = copy.deepcopy(SMALL)
    data["faults"] = {"gpu_failure_per_gpu_hour": 0.01, "transfer_failure_prob": 0.2, "shortage_scale": 0.5}
    data["jobs"]["slack_factor"] = 1.0  # tight: some jobs late
    for r in data["regions"]:
        r["power_cap_w"] = 500.0
    env = CarbonFleetEnv(parse_fleet_scenario(data, "fleet_small.yaml"), "test", reward=reward)
    pol = make_fleet_policy("packing")
    env.reset(seed=3)
    pol.reset(env, 3)
    total, done, truncated, info = 0.0, False, False, {}
    while not (done or truncated):
        _, r, done, truncated, info = env.step_jobs(*pol.act(env))
        total += r
    return total, info["fleet_episode"]


@pytest.fixture(scope="module")
def base():
    return episode({})


@pytest.mark.parametrize("name", WEIGHTS)
def test_each_reward_weight_changes_the_fleet_return(base, name):
    changed, _ = episode({name: getattr(RewardSpec(), name) + 1.0})
    assert changed != base[0]


def test_the_carbon_and_migration_weights_cost_exactly_their_totals(base):
    # one more unit of weight costs the episode's total of that term (same trajectory: weights change no physics)
    ret0, m = base
    assert episode({"carbon_per_kg": RewardSpec().carbon_per_kg + 1.0})[0] == pytest.approx(ret0 - m["carbon_kg"])
    assert m["migrations"] > 0
    assert episode({"migration_per_count": 1.0})[0] == pytest.approx(ret0 - m["migrations"])
    assert np.isfinite(ret0)
