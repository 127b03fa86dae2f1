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
        assert out["carbon_scaler"][0] < out["stay"][0]
