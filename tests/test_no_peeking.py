"""No peeking (spec V2): a decision sees measured past speed, forecasts and announced faults, never the coming step's
draws. Two episodes that differ only in the draws of the step about to run give identical views and observations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from envs.carbon_migration import CarbonMigrationEnv


def _pair(seed: int = 5, start_hour: int = 300):
    envs = [CarbonMigrationEnv("paper", "test") for _ in range(2)]
    obs = [e.reset(seed=seed, options={"start_hour": start_hour})[0] for e in envs]
    return envs, obs


def _views_equal(a, b) -> None:
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y or (x != x and y != y), f.name


@pytest.mark.parametrize("k", [0, 1, 7])
def test_the_coming_steps_work_draw_is_not_seen(k):
    (e1, e2), (o1, o2) = _pair()
    # the two episodes differ only in the work multiplier drawn for step k (changed before it is decided)
    e2.unwrapped.sim.work[k] *= 1.7
    assert e1.unwrapped.sim.work[k] != e2.unwrapped.sim.work[k]
    action = np.array([0, 3])  # run at home, 1065 MHz
    for _ in range(k):
        o1, *_ = e1.step(action)
        o2, *_ = e2.step(action)
    # at the decision of step k: the same observation and the same view
    np.testing.assert_array_equal(o1, o2)
    _views_equal(e1.unwrapped.view(), e2.unwrapped.view())
    # once step k has run, its measured speed differs (a policy may see that)
    o1, *_ = e1.step(action)
    o2, *_ = e2.step(action)
    assert e1.unwrapped.view().work != e2.unwrapped.view().work
    assert not np.array_equal(o1, o2)


def test_the_view_reports_the_multiplier_of_the_step_just_run():
    (e1, _), _ = _pair()
    assert e1.unwrapped.view().work == 1.0  # nothing measured before the first step
    for k in range(3):
        e1.step(np.array([0, 3]))
        assert e1.unwrapped.view().work == e1.unwrapped.sim.work[k]
