"""The GPU-count action (CarbonScaler's lever): the job runs on the GPUs chosen, at the speed of its scaling curve;
the default (all GPUs) is the environment without the action; ``carbon_scaler`` uses it on a held-out year."""

from __future__ import annotations

import numpy as np
import pytest

from baselines import make_policy
from envs.carbon_migration import CarbonMigrationEnv
from envs.vector import CarbonMigrationVectorEnv
from sim.scenario import load_scenario


def _run(env: CarbonMigrationEnv, seed: int, action) -> list[dict]:
    env.reset(seed=seed)
    infos = []
    for _ in range(12):
        *_, term, trunc, info = env.step(np.array(action))
        infos.append(info)
        if term or trunc:
            break
    return infos


def test_the_job_runs_on_the_chosen_groups_at_the_speed_of_its_scaling_curve():
    env = CarbonMigrationEnv("paper", gpu_scaling=True)
    assert env.action_space.nvec.tolist() == [env.R + 1, env.L, env.G]
    env.reset(seed=0)
    assert env.action_masks().size == env.R + 1 + env.L + env.G
    home = env.sim.tables.home
    four = _run(env, 7, [home, 0, 3])  # lowest clock: under the cap on 4 and on 8 GPUs
    eight = _run(env, 7, [home, 0, 7])
    held = [i["n_gpus"] for i in four if i["state"] == "TOLERANCE"]
    assert held and max(held) == 4
    # a step both spent wholly training: progress ratio = speed(4) / speed(8) of the scenario's scaling curve
    curve = dict(load_scenario("paper").job.scaling_curve)  # GPUs -> speed-up vs 1 GPU (DeepLearningExamples)
    ratio = curve[4] / curve[8]
    for a, b in zip(four, eight):
        if (
            a["state"] == b["state"] == "TOLERANCE"
            and a["step_metrics"]["time_tolerance_s"] == 900.0 == b["step_metrics"]["time_tolerance_s"]
            and a["n_gpus"] == 4
            and b["n_gpus"] == 8
        ):
            done_a, done_b = a["step_metrics"]["minibatches_done"], b["step_metrics"]["minibatches_done"]
            assert done_a / done_b == pytest.approx(ratio, rel=2e-3)  # (the checkpoint stall differs slightly)
            break
    else:
        pytest.fail("no step trained wholly on 4 and on 8 GPUs")


def test_all_gpus_is_the_environment_without_the_action():
    plain, scaled = CarbonMigrationEnv("paper"), CarbonMigrationEnv("paper", gpu_scaling=True)
    home = plain.sim.tables.home
    a = _run(plain, 3, [home, plain.L - 1])
    b = _run(scaled, 3, [home, plain.L - 1, scaled.G - 1])
    assert [x["episode_metrics"]["carbon_g"] for x in a] == [x["episode_metrics"]["carbon_g"] for x in b]


def test_vector_env_takes_the_gpu_choice_per_env():
    venv = CarbonMigrationVectorEnv(num_envs=2, gpu_scaling=True)
    venv.reset(seed=0)
    home = venv.envs[0].sim.tables.home
    for _ in range(6):
        _, _, _, _, info = venv.step(np.array([[home, 0, 1], [home, 0, 7]]))
    assert info["n_gpus"][0] <= 2 and info["n_gpus"][1] > 2


def test_carbon_scaler_scales_meets_deadlines_and_emits_less_than_stay_on_a_held_out_year():
    env = CarbonMigrationEnv("paper", period=("2022-07-01", "2023-01-01"))  # the validation half-year
    total = {"stay": 0.0, "carbon_scaler": 0.0}
    for seed in range(3):
        out = {}
        for name in ("stay", "carbon_scaler"):
            policy = make_policy(name)
            obs, _ = env.reset(seed=seed)
            policy.reset(env, seed)
            gpus, done = set(), False
            while not done:
                obs, _, term, trunc, info = env.step(policy.act(obs, env.view()))
                gpus.add(info["n_gpus"])
                done = term or trunc
            out[name] = (info["episode_metrics"]["carbon_g"], info["deadline_met"], gpus)
        assert out["carbon_scaler"][1] and out["stay"][1]
        assert len(out["carbon_scaler"][2] - {0}) >= 3  # it changed the GPU count within the episode
        for name in total:
            total[name] += out[name][0]
    # over the three episodes (issue 22's cloud-delivered faults and sourced constants: seed 2 emits 0.8 % more)
    assert total["carbon_scaler"] < total["stay"]


def test_the_learned_agent_gets_the_gpu_component_and_acts_on_a_plain_env():
    from agents.build import load_hyperparams, make_model, make_vec_env
    from agents.policy import AgentPolicy

    venv = make_vec_env("paper", "train", "maskable_ppo", n_envs=2, seed=0)
    env = CarbonMigrationEnv("paper")
    assert venv.action_space.nvec.tolist() == [env.R + 1, env.L, env.G]
    model = make_model("maskable_ppo", load_hyperparams("maskable_ppo"), venv, seed=0)
    agent = AgentPolicy(model, "maskable_ppo")
    obs, _ = env.reset(seed=0)  # an env without the component: its masks are widened, the action has 3 parts
    agent.reset(env, 0)
    action = agent.act(obs, env.view())
    assert action.shape == (3,) and 0 <= action[2] < env.G
    env.step(action)


def test_the_fleet_takes_a_gpu_count_per_job_and_per_slot():
    from envs.fleet import GPU_CHOICES, CarbonFleetEnv

    env = CarbonFleetEnv("fleet_small", "test", n_slots=4)
    env.reset(seed=0)
    half = np.maximum(env.jobs.gpus // 2, 1)
    for _ in range(8):
        *_, info = env.step_jobs(env.jobs.home, np.full(env.J, env.L - 1), gpus=half)
    assert (info["job_gpus"] <= half).all() and (info["job_gpus"] > 0).any()
    scaled = CarbonFleetEnv("fleet_small", "test", n_slots=4, gpu_scaling=True)
    scaled.reset(seed=0)
    per_slot = [scaled.R + 1, scaled.L, GPU_CHOICES]
    assert scaled.action_space.nvec.tolist() == per_slot * 4
    assert scaled.action_masks().size == 4 * sum(per_slot)
    a = np.array([[r, scaled.L - 1, 0] for r in scaled.jobs.home[:4]]).reshape(-1)  # a quarter of each request
    for _ in range(8):
        *_, info = scaled.step(a)
    slots = info["slots"][info["slots"] >= 0]
    quarter = -(-scaled.jobs.gpus // GPU_CHOICES)
    assert (info["job_gpus"][slots] <= quarter[slots]).all()
