"""Specification of CarbonFleet-v0 (envs/fleet.py, sim/fleet_core.py): API checks, invariants on random fleets,
hand-computed sharing of a pool, and the LP bound below every policy on the fleet's test split."""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import envs  # noqa: F401  (registers the environments)
from baselines.fleet_policies import FLEET_POLICIES, episode_bound, make_fleet_policy, run_fleet_episode
from envs.fleet import CarbonFleetEnv
from loaders.philly import PHILLY_RELPATH
from sim.errors import ConfigError
from sim.paths import raw_data_dir
from sim.scenario import SCENARIO_DIR, parse_fleet_scenario
from sim.simulator import METRICS
from sim.states import State

M = {n: i for i, n in enumerate(METRICS)}
_ROOT = raw_data_dir()
needs_trace = pytest.mark.skipif(
    _ROOT is None or not (_ROOT / PHILLY_RELPATH).is_file(), reason="Philly trace absent (../shared/data)"
)
SMALL = yaml.safe_load((SCENARIO_DIR / "fleet_small.yaml").read_text())


def small_env(**changes) -> CarbonFleetEnv:
    data = copy.deepcopy(SMALL)
    data.update(changes)
    return CarbonFleetEnv(parse_fleet_scenario(data, "fleet_small.yaml"), "test", n_slots=4)


def masked_random_action(env: CarbonFleetEnv, rng: np.random.Generator) -> np.ndarray:
    m = env.action_masks().reshape(env.K, env.R + 1 + env.L)
    out = []
    for s in range(env.K):
        out += [rng.choice(np.flatnonzero(m[s, : env.R + 1])), rng.choice(np.flatnonzero(m[s, env.R + 1 :]))]
    return np.array(out)


# ---------------------------------------------------------------- API


def test_gymnasium_and_sb3_check_env_pass():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("CarbonFleet-v0", scenario="fleet_small", split="test")
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(CarbonFleetEnv("fleet_small", "test"), warn=True)


def trajectory(seed: int) -> list:
    env = CarbonFleetEnv("fleet_small", "test", n_slots=4)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [obs]
    done = truncated = False
    while not (done or truncated):
        obs, reward, done, truncated, info = env.step(masked_random_action(env, rng))
        out += [obs, reward, info["carbon_kg"], info["job_progress_mb"]]
    return out


def test_same_seed_same_trajectory_and_another_seed_another():
    a, b, c = trajectory(3), trajectory(3), trajectory(4)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a) != len(c) or not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("scenario", ["fleet_small", pytest.param("fleet", marks=needs_trace)])
def test_observation_always_in_space_and_every_slot_has_a_valid_choice(scenario):
    env = CarbonFleetEnv(scenario, "test")
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(1)
    done = truncated = False
    steps = 0
    while not (done or truncated):
        assert env.observation_space.contains(obs)
        m = env.action_masks().reshape(env.K, env.R + 1 + env.L)
        assert m[:, : env.R + 1].any(axis=1).all() and m[:, env.R + 1 :].any(axis=1).all()
        obs, _, done, truncated, info = env.step(masked_random_action(env, rng))
        assert info["invalid_actions"] == 0
        steps += 1
    assert steps == env.n_steps or info["jobs_completed"] == env.J


def test_unknown_split_is_named():
    with pytest.raises(ConfigError, match=r"fleet_small\.yaml: unknown split 'holdout'"):
        CarbonFleetEnv("fleet_small", "holdout")


# ---------------------------------------------------------------- a pool shared by hand


def test_two_jobs_share_a_one_gpu_pool_in_slack_order_and_none_starts_before_arrival():
    # region DE: a 1-GPU pool, faults off. Job 0 (arrives 0 h) and job 1 (arrives 0.1 h, less work, so less slack)
    # both at home in DE. Job 0 takes the GPU at the 0 h decision (job 1 has not arrived); from then on it holds
    # the GPU, and jobs holding GPUs are served first, so job 1 waits until job 0 completes. GPUs freed inside a
    # step count as held for that whole step (the pool's peak), so job 1 starts at the next decision.
    env = small_env(
        regions=[{"name": "DE", "zone": "DE", "gpu": "A40", "gpus": 1, "pue": 1.2}],
        jobs={
            **SMALL["jobs"],
            "slack_factor": 5.0,
            "list": [
                {"arrival_hours": 0.0, "gpus": 1, "duration_hours": 4.0, "workload": "resnet50", "home": "DE"},
                {"arrival_hours": 0.1, "gpus": 1, "duration_hours": 1.0, "workload": "resnet50", "home": "DE"},
            ],
        },
    )
    env.reset(seed=0)
    home = np.zeros(2, dtype=np.int64)
    first_run = [None, None]
    while env.k < env.n_steps and not (env.job_state() == State.COMPLETED).all():
        _, _, _, _, info = env.step_jobs(home, np.full(2, env.L - 1))
        assert info["gpus_in_use"][0] <= 1
        for j in range(2):
            if first_run[j] is None and info["job_gpus"][j] > 0:
                first_run[j] = env.k - 1  # the step it first held a GPU
    done_at = env.completed_at_s()
    assert first_run[0] == 0
    assert first_run[1] == int(done_at[0] // env.step_s) + 1
    assert done_at[1] > done_at[0]


# ---------------------------------------------------------------- invariants on random fleets


def raw_intensity(zone_file: str) -> pd.Series:
    root = raw_data_dir()
    path = root / "carbon_intensity" / "electricitymaps" / zone_file if root else None
    if path is None or not path.is_file():
        pytest.skip("raw carbon traces absent")
    df = pd.read_csv(path, usecols=["Datetime (UTC)", "Carbon Intensity gCO₂eq/kWh (direct)"])
    return pd.Series(df.iloc[:, 1].to_numpy(), index=pd.to_datetime(df.iloc[:, 0]).to_numpy())


RAW_FILES = {
    "KR": "KR_2021-2023_hourly.csv.gz",
    "DE": "DE-LU_2021-2023_hourly.csv.gz",
    "CA-ON": "CA-ON_2021-2023_hourly.csv.gz",
}
_RAW: dict = {}


def raw_ci(zone: str) -> pd.Series:
    if zone not in _RAW:
        _RAW[zone] = raw_intensity(RAW_FILES[zone])
    return _RAW[zone]


random_job = st.fixed_dictionaries(
    {
        "arrival_hours": st.floats(0.0, 6.0),
        "gpus": st.integers(1, 4),
        "duration_hours": st.floats(0.2, 4.0),
        "workload": st.sampled_from(["resnet50", "bert_squad"]),
        "home": st.sampled_from(["KR", "DE", "CA-ON"]),
    }
)


@settings(max_examples=40, deadline=None)
@given(
    jobs=st.lists(random_job, min_size=1, max_size=8),
    pools=st.tuples(st.integers(4, 8), st.integers(1, 8), st.integers(1, 8)),
    faults=st.fixed_dictionaries(
        {
            "gpu_failure_per_gpu_hour": st.sampled_from([0.0, 0.05]),
            "transfer_failure_prob": st.sampled_from([0.0, 0.3]),
            "shortage_scale": st.sampled_from([0.0, 1.0]),
            "outage_per_region_day": st.sampled_from([0.0, 3.0]),
        }
    ),
    seed=st.integers(0, 1000),
)
def test_invariants_on_random_fleets(jobs, pools, faults, seed):
    data = copy.deepcopy(SMALL)
    for r, n in zip(data["regions"], pools):
        r["gpus"] = n
    data["jobs"]["list"] = jobs
    data["faults"] = faults
    data["horizon_hours"] = 12
    env = CarbonFleetEnv(parse_fleet_scenario(data, "random.yaml"), "test", n_slots=3)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    zones = [r["zone"] for r in data["regions"]]
    total = env.jobs.minibatches.astype(float)
    progress = np.zeros(env.J)
    done = truncated = False
    while not (done or truncated):
        t0 = env.t_s
        region0, state0 = env.job_region(), env.job_state()
        _, _, done, truncated, info = env.step(masked_random_action(env, rng))
        acc = env._step_acc[0]
        # GPUs held in a region never exceed its free GPUs this step
        assert np.all(info["gpus_in_use"] <= env.free[0, :, env.k - 1])
        # no job takes part before its arrival: no GPUs, no work, no energy, still queued
        early = env.jobs.arrival_s > t0 + 1e-6
        assert np.all(info["job_gpus"][early] == 0) and np.all(acc[early] == 0.0)
        assert np.all(info["job_state"][early] == State.QUEUED)
        # mini-batches: progress moves by the work done minus the work rolled back (reported)
        new = info["job_progress_mb"]
        assert np.allclose(new - progress, acc[:, M["minibatches_done"]] - acc[:, M["lost_minibatches"]], atol=1e-6)
        assert np.all(new <= total + 1e-9) and np.allclose(new + env.remaining_minibatches(), total)
        progress = new.copy()
        # carbon: the fleet's = the sum over jobs; a job that stayed in one region (no transfer) emitted its facility
        # energy x that region's intensity for the hour, read from the raw trace file
        assert info["carbon_kg"] == pytest.approx(info["job_carbon_kg"].sum(), rel=1e-12)
        hour = pd.Timestamp(env.start_utc) + pd.Timedelta(seconds=t0)
        stayed = (env.job_region() == region0) & (acc[:, M["time_migration_s"]] == 0) & (state0 != State.MIGRATION)
        for j in np.flatnonzero(stayed & (acc[:, M["facility_energy_kwh"]] > 0)):
            ci = raw_ci(zones[region0[j]]).get(hour.floor("h"), math.nan)
            if math.isfinite(ci):
                want = acc[j, M["facility_energy_kwh"]] * ci
                assert acc[j, M["operational_carbon_g"]] == pytest.approx(want, rel=1e-9)


# ---------------------------------------------------------------- the LP bound on the fleet's test split


@needs_trace
def test_no_policy_that_meets_its_deadlines_beats_the_lp_bound_on_the_fleet_test_split():
    """For every policy, the LP bound over the jobs it completed by their deadline (all jobs for a policy that
    meets every deadline) is at most its carbon: a schedule of those jobs' work is feasible for that LP."""
    env = CarbonFleetEnv("fleet", "test")
    seed = 0
    bounds: dict = {}  # one LP per set of on-time jobs (the per-step LP takes seconds)
    for name in FLEET_POLICIES:
        m = run_fleet_episode(env, make_fleet_policy(name), seed)
        jobs = env.jobs
        on_time = np.flatnonzero(env.completed_at_s() <= jobs.deadline_s + 1e-6)
        key = tuple(on_time.tolist())
        if key not in bounds:
            bounds[key] = episode_bound(env, schedule=False, only=on_time)
        bound = bounds[key]
        assert bound.status == "optimal"
        assert m["carbon_kg"] >= bound.carbon_kg - 1e-9, name
        assert on_time.size > 0 or name == "random", name


def test_reward_overrides_are_checked_like_the_yaml_section():
    env = CarbonFleetEnv("fleet_small", "test", reward={"migration_per_count": 0.5})
    assert env.scenario.reward.migration_per_count == 0.5 and env.scenario.reward.carbon_per_kg == 1.0
    with pytest.raises(ConfigError, match=r"reward.colour: unknown field"):
        CarbonFleetEnv("fleet_small", "test", reward={"colour": 1.0})


def test_the_pools_serve_waiting_jobs_by_least_slack_or_first_come_first_served():
    # a 1-GPU pool, two jobs arriving together: job 0 has 4 h of work, job 1 has 1 h (less slack, same slack
    # factor). By slack job 1 gets the GPU first; FIFO (stay's queue) serves job 0, listed first, first.
    two = [
        {"arrival_hours": 0.0, "gpus": 1, "duration_hours": 4.0, "workload": "resnet50", "home": "DE"},
        {"arrival_hours": 0.0, "gpus": 1, "duration_hours": 1.0, "workload": "resnet50", "home": "DE"},
    ]
    region = [{"name": "DE", "zone": "DE", "gpu": "A40", "gpus": 1, "pue": 1.2}]
    for fifo, first in ((False, 1), (True, 0)):
        env = small_env(regions=region, jobs={**SMALL["jobs"], "list": two})
        env.reset(seed=0)
        _, _, _, _, info = env.step_jobs(np.zeros(2, dtype=np.int64), np.full(2, env.L - 1), fifo=fifo)
        assert info["job_gpus"].tolist() == [1 if j == first else 0 for j in range(2)]
