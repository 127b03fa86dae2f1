"""No peeking in CarbonFleet-v0 (spec V2, issue 25): a decision sees the pools, outages and intensity as they are
now, forecasts and what the jobs have done, never the coming step's draws. Two episodes that differ only in draws
after the decision give identical observations, masks and job views at the decision."""

from __future__ import annotations

import numpy as np
import pytest

from envs.fleet import CarbonFleetEnv
from sim import layout as core
from tests.test_no_peeking import _views_equal

K = 6  # the decision step compared


def _pair(scenario: str = "fleet_small", seed: int = 4):
    envs = [CarbonFleetEnv(scenario, "test", n_slots=4) for _ in range(2)]
    for e in envs:
        e.reset(seed=seed, options={"start_hour": 500})
    return envs


def _home_top(env):
    return env.jobs.home.astype(np.int64), np.full(env.J, env.L - 1)


def _same_at_decision(e1, e2, o1, o2) -> None:
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(e1.action_masks(), e2.action_masks())
    for j in np.flatnonzero(e1.open_jobs()):
        _views_equal(e1.job_view(int(j)), e2.job_view(int(j)))


def _run(e1, e2):
    """Both to decision K with the same decisions; returns their observations there and after step K."""
    obs = []
    for e in (e1, e2):
        o = None
        for _ in range(K):
            o = e.step_jobs(*_home_top(e))[0]
        obs.append(o)
    return obs


def _after(e1, e2):
    return [e.step_jobs(*_home_top(e))[0] for e in (e1, e2)]


def test_the_pools_after_the_decision_are_not_seen():
    e1, e2 = _pair()
    e2.free[0, :, K + 1 :] = 0  # every pool empties from the step after decision K on
    o1, o2 = _run(e1, e2)
    _same_at_decision(e1, e2, o1, o2)
    a1, a2 = _after(e1, e2)  # once step K has ended, the emptied pools show (and preempt the jobs)
    assert not np.array_equal(a1, a2)


def test_an_outage_starting_within_the_coming_step_is_not_seen():
    e1, e2 = _pair()
    r = int(e2.jobs.home[0])
    e2._n_out[0, r] = 1  # an outage of job 0's home from 5 minutes into step K to the end
    e2._o_start[0, r, 0] = K * e2.step_s + 300.0
    e2._o_end[0, r, 0] = 1e9
    e2._down[...] = e2.outage_mask()
    o1, o2 = _run(e1, e2)
    assert e1.open_jobs().any()
    _same_at_decision(e1, e2, o1, o2)
    a1, a2 = _after(e1, e2)
    assert not np.array_equal(a1, a2)


def test_the_next_gpu_failure_draw_is_not_seen():
    e1, e2 = _pair()
    o1, o2 = [e.step_jobs(*_home_top(e))[0] for e in (e1, e2)]
    running = np.flatnonzero(e2.job_gpus() > 0)
    assert running.size
    j = int(running[0])
    e2._f[0, j, core.F_FAIL_LEFT_GPU_H] = 1e-4  # job j's GPU fails early in the coming step
    _same_at_decision(e1, e2, o1, o2)
    a1, a2 = _after(e1, e2)
    assert e2.episode_metrics()["lost_minibatches"] > e1.episode_metrics()["lost_minibatches"]


@pytest.mark.parametrize("hours_ahead", [2, 30])
def test_the_intensity_of_later_hours_is_not_seen_except_through_the_forecast(hours_ahead):
    e1, e2 = _pair()
    h = int(K * e1.step_s // 3600) + hours_ahead
    e2.ci[0, :, h:] *= 3.0  # the true intensity of later hours (the forecast was drawn at reset)
    o1, o2 = _run(e1, e2)
    _same_at_decision(e1, e2, o1, o2)
