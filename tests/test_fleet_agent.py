"""The learned fleet agent (issue 25): per-job actions stay with their job, masks and the deadline shield hold,
batched training envs draw different job sets, and a training run resumed from a save ends as the run left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.vec_env import DummyVecEnv

import train
from agents.fleet_agent import FleetAgentPolicy, FleetJobEnv, job_observations
from baselines.fleet_policies import fleet_deadline_shield, run_fleet_episode
from envs.fleet import CarbonFleetEnv
from sim.rules import WAIT


class _Stub:
    """A model whose action for a job is a function of that job's own observation row."""

    def __init__(self, fn):
        self.fn = fn

    def predict(self, obs, action_masks=None, deterministic=True):
        return np.stack([self.fn(o, m) for o, m in zip(obs, action_masks)]), None


def test_each_job_gets_the_action_computed_from_its_own_observation():
    env = CarbonFleetEnv("fleet_small", "train")
    env.reset(seed=3)
    for _ in range(8):  # a few steps in, several jobs open
        env.step_jobs(env.jobs.home, np.full(env.J, env.L - 1))
    obs, mask, decide = job_observations(env)
    assert decide.sum() >= 2
    R, L = env.R, env.L
    # level = the job's own GPUs-requested feature, so a job's action can only come from its own row
    col = 8 + R + 2  # after the state one-hot (8), the region one-hot (R), holds, held/requested
    pol = FleetAgentPolicy(_Stub(lambda o, m: np.array([R, int(round(o[col] * 16)) % L])))
    pol.reset(env, 0)
    pol.act(env)
    idx = np.flatnonzero(decide)
    assert np.array_equal(pol.levels[idx], env.jobs.gpus[idx] % L)
    assert (pol.targets[idx] == WAIT).all()


def test_the_job_env_walks_the_deciding_jobs_and_keeps_each_decision_with_its_job():
    e = FleetJobEnv("fleet_small", "train")
    o, _ = e.reset(seed=1)
    while e._queue.size < 2:  # a decision step with two deciding jobs
        o, *_ = e.step(np.array([e.fleet.R, e.fleet.L - 1]))
    queue = e._queue.copy()
    obs, mask, _ = job_observations(e.fleet)
    for i, j in enumerate(queue):
        assert np.array_equal(o, obs[j]) and np.array_equal(e.action_masks(), mask[j])
        lv = i % e.fleet.L
        o, *_ = e.step(np.array([e.fleet.R, lv]))  # wait, a level per job
        assert e.levels[j] == lv and e.targets[j] == WAIT
    assert e.fleet.k >= 1 and len(e._log) >= 1


def test_a_masked_target_is_ignored_and_the_job_keeps_its_course():
    e = FleetJobEnv("fleet_small", "train")
    e.reset(seed=2)
    R = e.fleet.R
    for _ in range(2000):  # wait until a job is offered a masked region (a full or down pool)
        m = e.action_masks()
        if not m[:R].all():
            break
        e.step(np.array([int(np.flatnonzero(m[:R])[-1]), 0]))  # fill the pools
    else:
        pytest.fail("no masked region in 2000 decisions")
    j = int(e._queue[len(e._pending)])
    before = int(e.targets[j])
    e.step(np.array([int(np.flatnonzero(~m[:R])[0]), 0]))
    assert e.targets[j] == before and e.levels[j] == 0


def test_the_shield_overrides_an_agent_that_always_waits():
    env = CarbonFleetEnv("fleet_small", "train")
    waiter = FleetAgentPolicy(_Stub(lambda o, m: np.array([env.R, 0])))
    m = run_fleet_episode(env, waiter, seed=4)
    assert m["jobs_completed"] == env.J  # without the shield nothing would ever run
    env.reset(seed=4)
    waiter.reset(env, 4)
    t, lv = waiter.act(env)
    st, sl = fleet_deadline_shield(env, np.full(env.J, WAIT), np.zeros(env.J, dtype=np.int64))
    o = env.open_jobs()
    assert o.any() and np.array_equal(t[o], st[o]) and np.array_equal(lv[o], sl[o])


def test_batched_training_envs_draw_different_job_sets():
    venv = DummyVecEnv([lambda: FleetJobEnv("fleet", "train") for _ in range(2)])
    venv.seed(5)
    venv.reset()
    a, b = (e.fleet for e in venv.envs)
    assert a.start_hour != b.start_hour and not np.array_equal(a.jobs.arrival_s, b.jobs.arrival_s)
    venv.seed(5)
    venv.reset()
    assert np.array_equal(venv.envs[0].fleet.jobs.arrival_s, a.jobs.arrival_s)  # same seed, same draw


def _tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "imitation": {"demo_episodes": 1, "dagger_rounds": 1, "dagger_episodes": 1, "epochs": 1},
                "n_steps": 64,
                "batch_size": 32,
                "n_epochs": 1,
                "eval_freq": 128,
                "eval_episodes": 1,
                "policy_kwargs": {"net_arch": [16], "activation_fn": "tanh"},
            }
        )
    )
    return path


def _params(run):
    from sb3_contrib import MaskablePPO

    m = MaskablePPO.load(run / "model.zip", device="cpu")
    return torch.cat([p.detach().flatten() for p in m.policy.parameters()])


def test_a_resumed_run_ends_as_the_run_left_alone(tmp_path):
    cfg = _tiny(tmp_path)
    common = ["--scenario", "fleet_small", "--config", str(cfg), "--n-envs", "2", "--out", str(tmp_path)]
    common += ["--save-every", "128", "--no-progress-bar"]
    assert train.main([*common, "--timesteps", "256", "--name", "alone"]) == 0
    assert train.main([*common, "--timesteps", "128", "--name", "cut"]) == 0
    assert train.main(["--resume", str(tmp_path / "cut"), "--timesteps", "256", "--no-progress-bar"]) == 0
    alone, cut = tmp_path / "alone", tmp_path / "cut"
    assert torch.equal(_params(alone), _params(cut))  # same seed, same imitation, same PPO steps after the resume
    assert (alone / "eval.csv").read_text() == (cut / "eval.csv").read_text()
    cfg_cut = yaml.safe_load((cut / "config.yaml").read_text())
    assert cfg_cut["timesteps_total"] == 256 and cfg_cut["learned_by"] in ("imitation", "imitation+ppo")


def _world_scaled_from(env, hour: int, factor: float):
    """``env``'s own copy of its carbon table with every hour from the episode's ``hour`` on scaled."""
    from dataclasses import replace

    ci = env.world.carbon.intensity_g_per_kwh.copy()
    ci[:, env.start_hour + hour :] *= factor
    env.world = replace(env.world, carbon=replace(env.world.carbon, intensity_g_per_kwh=ci))
    env.ci[0, :, hour:] *= factor


@pytest.mark.parametrize("hours_ahead", [1, 30])
def test_job_observations_see_later_hours_only_through_the_forecast(hours_ahead):
    envs = [CarbonFleetEnv("fleet_small", "test") for _ in range(3)]
    for e in envs:
        e.reset(seed=4, options={"start_hour": 500})
        for _ in range(6):
            e.step_jobs(e.jobs.home, np.full(e.J, e.L - 1))
    now_h = int(envs[0].t_s // 3600)
    _world_scaled_from(envs[1], now_h + hours_ahead, 3.0)  # the true future changes (the forecast was drawn before)
    _world_scaled_from(envs[2], now_h, 3.0)  # the hour now changes: the agent must see that
    (o1, m1, d1), (o2, m2, d2), (o3, _, _) = (job_observations(e) for e in envs)
    assert d1.any()
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(d1, d2)
    assert not np.array_equal(o1[d1], o3[d1])


def test_the_next_planned_level_labels_a_wait_by_the_clock_it_runs_at_next():
    from agents.fleet_train import next_planned_level

    plan = np.array([[-1, 2, -1, -1, 3, -1], [-1, -1, -1, -1, -1, -1], [1, -1, 0, 0, -1, -1]])
    want = np.array([[2, 2, 3, 3, 3, 4], [4, 4, 4, 4, 4, 4], [1, 0, 0, 0, 4, 4]])
    np.testing.assert_array_equal(next_planned_level(plan, 5), want)


def test_jobs_do_not_all_claim_the_same_last_gpus():
    from agents.fleet_agent import claim_actions, slack_column

    env = CarbonFleetEnv("fleet", "validation")
    env.reset(seed=1)
    R, L = env.R, env.L
    # the lowest-index region it may use, else wait
    first_open = _Stub(lambda o, m: np.array([int(np.argmax(m[:R])) if m[:R].any() else R, L - 1]))
    crowded = False
    for _ in range(60):
        obs, mask, decide = job_observations(env)
        order, a = claim_actions(first_open, env, obs, mask, decide)
        slack = obs[order, slack_column(R)]
        assert np.all(np.diff(slack) >= 0)  # least slack first
        alone = np.where(mask[order, :R].any(axis=1), np.argmax(mask[order, :R], axis=1), R)
        crowded |= bool((a[:, 0] != alone).any())  # a job's choice was taken by the jobs before it
        held, region = env.job_gpus(), env.job_region()
        spare = np.where(env.region_up(), np.maximum(env.free_now() - env.gpus_in_use(), 0), 0)
        for r in range(R):
            new = [j for j, t in zip(order, a[:, 0]) if t == r and not (held[j] > 0 and region[j] == r)]
            before = np.cumsum(env.jobs.gpus[new]) - env.jobs.gpus[new]  # GPUs claimed there before each
            assert np.all(before < spare[r])  # each job sent there had a GPU left when it claimed
        targets, levels = env.jobs.home.copy(), np.full(env.J, L - 1)
        targets[order] = np.where(a[:, 0] == R, WAIT, a[:, 0])
        env.step_jobs(*fleet_deadline_shield(env, targets, levels))
    assert crowded
