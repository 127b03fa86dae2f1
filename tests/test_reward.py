"""The one reward table (sim/reward.py): both environments report its terms in info["reward_terms"], sum them to
their reward, and read the same weights by the same names."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.carbon_migration import CarbonMigrationEnv
from envs.fleet import CarbonFleetEnv
from sim.layout import P_TOTAL, M
from sim.reward import REWARD_TERMS, REWARD_WEIGHTS
from sim.scenario import RewardSpec


def test_the_table_names_every_weight_of_the_reward_spec_once():
    assert len(REWARD_TERMS) == len(REWARD_WEIGHTS) == len(set(REWARD_WEIGHTS))
    assert set(REWARD_WEIGHTS) == set(RewardSpec.__dataclass_fields__)


def _fleet_steps(reward: dict, n: int = 40) -> list[tuple[float, dict, np.ndarray]]:
    env = CarbonFleetEnv("fleet_small", "test", n_slots=4, reward=reward)
    env.reset(seed=3)
    out = []
    for _ in range(n):
        targets = env.jobs.home.astype(np.int64)  # run at home (a region down: the job waits)
        _, r, term, trunc, info = env.step_jobs(targets, np.full(env.J, env.L - 1))
        out.append((r, info["reward_terms"], env._step_acc[0].copy(), env._P.copy()))
        if term or trunc:
            break
    return out


def test_fleet_terms_follow_the_table_and_sum_to_the_reward():
    w = {"progress_per_job": 2.0, "embodied_per_kg": 3.0, "carbon_per_kg": 1.5}
    steps = _fleet_steps(w)
    progress = 0.0
    for r, terms, acc, P in steps:
        assert list(terms) == list(REWARD_TERMS)
        assert r == pytest.approx(sum(terms.values()), rel=1e-12, abs=1e-12)
        total = P[:, P_TOTAL]
        frac = ((acc[:, M["minibatches_done"]] - acc[:, M["lost_minibatches"]]) / total).sum()
        assert terms["progress"] == pytest.approx(2.0 * frac, rel=1e-12, abs=1e-15)
        assert terms["embodied"] == pytest.approx(-3.0 * acc[:, M["embodied_carbon_g"]].sum() / 1000.0, rel=1e-12)
        carbon_kg = (acc[:, M["operational_carbon_g"]] + acc[:, M["transfer_carbon_g"]]).sum() / 1000.0
        assert terms["carbon"] == pytest.approx(-1.5 * carbon_kg, rel=1e-12, abs=1e-15)
        progress += terms["progress"]
    assert progress > 0  # the jobs ran: the progress weight was used


def test_a_fleet_weight_changes_the_fleet_reward():
    base = [r for r, *_ in _fleet_steps({})]
    for key in ("progress_per_job", "embodied_per_kg"):
        changed = [r for r, *_ in _fleet_steps({key: 1.0})]
        assert len(changed) == len(base)
        assert not np.allclose(changed, base), key


def test_single_env_terms_sum_to_its_reward():
    env = CarbonMigrationEnv("paper", reward={"progress_per_job": 5.0, "embodied_per_kg": 1.0})
    env.reset(seed=1)
    for _ in range(30):
        _, r, term, trunc, info = env.step(np.array([env.sim.tables.home, env.L - 1]))
        terms = info["reward_terms"]
        assert list(terms) == list(REWARD_TERMS)
        assert math.isclose(r, sum(terms.values()), rel_tol=1e-12, abs_tol=1e-12)
        step = info["step_metrics"]
        assert terms["embodied"] == pytest.approx(-step["embodied_carbon_g"] / 1000.0, rel=1e-12, abs=1e-15)
        if term or trunc:
            break
