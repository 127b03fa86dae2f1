"""CarbonMigration-v0 as a Gymnasium / SB3 environment: API checks, determinism, spaces, masks, reward, info."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers CarbonMigration-v0)
from envs.carbon_migration import CarbonMigrationEnv
from envs.wrappers import ContinuousClockWrapper, FlatActionWrapper
from sim.scenario import load_scenario, scenario_names
from sim.states import State

SCENARIOS = scenario_names()


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


TIMED = {"SUSPEND", "MIGRATION", "SCALING", "RECOVERING"}
# every W8 accounting quantity, per step and per episode (power and deadline are top-level info keys)
W8_METRICS = (
    "it_energy_kwh",
    "facility_energy_kwh",
    "operational_carbon_g",
    "transfer_carbon_g",
    "carbon_g",
    "transfer_energy_kwh",
    "gpu_hours",
    "minibatches_done",
    "lost_minibatches",
    "transfer_gb",
    "transfer_s",
    "transfers",
    "egress_usd",
    "cap_violations",
    "cap_violation_s",
    "cap_excess_j",
    "migrations",
) + tuple(f"time_{s.name.lower()}_s" for s in State)


def random_valid_action(env: CarbonMigrationEnv, rng: np.random.Generator) -> np.ndarray:
    m = env.action_masks()
    return np.array([rng.choice(np.flatnonzero(m[: env.R + 1])), rng.choice(np.flatnonzero(m[env.R + 1 :]))])


def long_transfer_faults_env(**kwargs) -> CarbonMigrationEnv:
    """The faults scenario with a 2 TB checkpoint (fast storage), so transfers span several decision steps,
    and a rigid (non-elastic) job, so a region short of its 8 GPUs has none usable."""
    sc = load_scenario("faults")
    sc = dataclasses.replace(sc, job=dataclasses.replace(sc.job, params=125e9, storage_gbps=10_000.0, elastic=False))
    return CarbonMigrationEnv(sc, **kwargs)


# ---------------------------------------------------------------- API checkers


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_gymnasium_check_env_passes(scenario):
    gym_check_env(CarbonMigrationEnv(scenario), skip_render_check=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sb3_check_env_passes(scenario):
    sb3_check_env(CarbonMigrationEnv(scenario), warn=True)


def test_make_returns_registered_env_with_multidiscrete_actions():
    env = gym.make("CarbonMigration-v0", scenario="paper")
    assert isinstance(env.unwrapped, CarbonMigrationEnv)
    assert env.action_space == gym.spaces.MultiDiscrete([4 + 1, 5])  # paper: 4 regions + wait, 5 clocks
    assert env.observation_space.shape == (4 + 4 * (6 + 5) + 8 + 8,)  # docstring table, F = 6


# ---------------------------------------------------------------- determinism


def _episode(env: CarbonMigrationEnv, seed: int, action_seed: int = 0):
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    out = [(obs, 0.0, info)]
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(random_valid_action(env, rng))
        out.append((obs, reward, info))
        done = terminated or truncated
    return out


@pytest.mark.parametrize("scenario", ["paper", "faults"])
def test_same_seed_gives_identical_episode(scenario):
    a = _episode(CarbonMigrationEnv(scenario), seed=7)
    b = _episode(CarbonMigrationEnv(scenario), seed=7)
    assert len(a) == len(b)
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb
        assert ia == ib


def test_different_seeds_give_different_episodes():
    a = _episode(CarbonMigrationEnv("paper"), seed=1)
    b = _episode(CarbonMigrationEnv("paper"), seed=2)
    assert not np.array_equal(a[0][0], b[0][0])  # different start hour / forecasts
    assert a[-1][2]["episode_metrics"]["carbon_g"] != b[-1][2]["episode_metrics"]["carbon_g"]


# ---------------------------------------------------------------- observation space


@pytest.mark.parametrize("scenario", SCENARIOS)
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_observations_stay_in_space_over_long_random_runs(scenario, seed):
    env = CarbonMigrationEnv(scenario)
    space = env.observation_space
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(600):
        assert obs.dtype == np.float32 and space.contains(obs), obs[~((obs >= space.low) & (obs <= space.high))]
        obs, _, terminated, truncated, _ = env.step(random_valid_action(env, rng))
        if terminated or truncated:
            assert space.contains(obs)
            obs, _ = env.reset()


def test_observation_features_match_the_documented_layout():
    env = CarbonMigrationEnv("paper")
    obs, _ = env.reset(seed=3, options={"start_hour": 100})
    R, F = 4, 6
    ci = env.world.carbon.intensity_g_per_kwh[:, 100]
    for r in range(R):
        b = 4 + r * (F + 5)
        assert obs[b] == pytest.approx(ci[r] / 1000.0, rel=1e-6)  # intensity now, kg/kWh
        usable = min(env.sim.free[r][0], 8)  # paper's pools of 10 are shared: the spot-calibrated free GPUs
        assert obs[b + F + 1] == pytest.approx(usable / 8) and obs[b + F + 2] == 1.0  # usable / requested, healthy
        assert obs[b + F + 4] == (1.0 if r == 0 else 0.0)  # job is home (KR)
    j = 4 + R * (F + 5)
    assert obs[j] == 0.0  # no progress
    assert obs[j + 1] == pytest.approx(36.0 / 72.0)  # deadline 36 h of a 72 h episode (the safety limit)
    assert obs[j + 8 + State.QUEUED] == 1.0 and obs[j + 8 :].sum() == 1.0
    hour = (np.datetime64("2021-01-01T00", "h") + np.timedelta64(100, "h")).astype(int) % 24
    assert obs[0] == pytest.approx(math.sin(2 * math.pi * hour / 24), abs=1e-6)


# ---------------------------------------------------------------- invalid actions


@pytest.mark.parametrize(
    "action, words",
    [
        ([5, 0], "out of range"),
        ([0, 5], "out of range"),
        ([-1, 0], "out of range"),
        ([1], "shape"),
        ([1, 2, 3, 4], "shape"),  # (3 integers carry a GPU choice)
        ([[1, 2]], "shape"),
        (None, "shape"),
        ([1.5, 2], "integer"),
        (["a", "b"], "integer"),
        ([np.nan, 1], "integer"),
    ],
)
def test_invalid_actions_raise_value_error_naming_the_expected_form(action, words):
    env = CarbonMigrationEnv("paper")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=words) as e:
        env.step(action)
    assert "expected 2 integers [target 0..4 (4 = wait), clock level 0..4]" in str(e.value)


def test_integral_float_and_list_actions_are_accepted():
    env = CarbonMigrationEnv("paper")
    env.reset(seed=0)
    env.step([0, 4])
    env.step(np.array([0.0, 3.0]))


def _mid_transfer(env: CarbonMigrationEnv, seed: int = 0) -> int:
    """Reset and migrate away from home until a step ends mid-transfer; return the transfer's destination."""
    env.reset(seed=seed, options={"start_hour": 10})
    for _ in range(40):
        m = env.action_masks()
        dest = next((r for r in range(1, env.R) if m[r]), env.R)  # a region with GPUs, else wait
        _, _, _, _, info = env.step([dest, 4])
        if info["state"] == "MIGRATION":
            assert info["invalid_actions"] == 0
            return env.sim.dest
    pytest.skip("no transfer spanned a step boundary")


def test_masked_action_is_ignored_and_counted_by_default():
    a, b = long_transfer_faults_env(), long_transfer_faults_env()
    dest = _mid_transfer(a)
    assert _mid_transfer(b) == dest
    m = a.action_masks()
    assert np.flatnonzero(m[: a.R + 1]).tolist() == [dest]  # only the transfer's destination
    other = (dest + 1) % a.R
    obs_a, ra, _, _, ia = a.step([other, 1])  # masked: another region mid-transfer
    obs_b, rb, _, _, ib = b.step([dest, 1])  # what "keep going" means
    assert ia["invalid_actions"] == 1 and ib["invalid_actions"] == 0
    np.testing.assert_array_equal(obs_a, obs_b)
    assert ra == rb


def test_masked_action_raises_when_configured():
    env = long_transfer_faults_env(invalid_action="raise")
    dest = _mid_transfer(env)
    with pytest.raises(ValueError, match="masked"):
        env.step([(dest + 1) % env.R, 1])


def test_mask_marks_outages_missing_gpus_and_timed_phases():
    """Against the simulator's raw draws: outage spans and free-GPU samples, not its query methods."""
    env = long_transfer_faults_env()
    rng = np.random.default_rng(5)
    seen = {"outage": 0, "no_gpus": 0, "timed": 0}
    for seed in range(6):
        env.reset(seed=seed)
        done = False
        while not done:
            sim, m = env.sim, env.action_masks()
            t, k = sim.t_s, min(sim.k, sim.n_steps)
            state = State(sim.state).name
            if state in TIMED:
                seen["timed"] += 1
                assert m[: env.R + 1].sum() == 1
            else:
                for r in range(env.R):
                    down = any(s <= t < e for s, e in sim.outages[r])
                    free = 0 if down else sim.free[r][k]
                    enough = free >= env.scenario.job.gpus  # rigid job: all 8 or none
                    seen["outage"] += down
                    seen["no_gpus"] += not down and not enough
                    holds = r == sim.region and state == "TOLERANCE"
                    assert m[r] == (holds or enough), (seed, k, r, state, down, free)
                assert m[env.R]  # waiting is always allowed
            assert m[env.R + 1 :].all()  # every clock level
            _, _, terminated, truncated, _ = env.step(random_valid_action(env, rng))
            done = terminated or truncated
    assert seen["outage"] > 0 and seen["no_gpus"] > 0 and seen["timed"] > 0, seen


# ---------------------------------------------------------------- rendering


def test_render_ansi_returns_text():
    env = CarbonMigrationEnv("paper", render_mode="ansi")
    env.reset(seed=0)
    env.step([0, 4])
    text = env.render()
    assert isinstance(text, str) and "KR" in text and "g/kWh" in text


def test_render_rgb_array_returns_image():
    env = CarbonMigrationEnv("paper", render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(8):
        env.step([2, 2])
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) > 100


# ---------------------------------------------------------------- info and reward


def test_info_carries_every_w8_metric_and_episode_sums_steps():
    env = CarbonMigrationEnv("faults")
    _, info = env.reset(seed=4)
    rng = np.random.default_rng(4)
    total = dict.fromkeys(W8_METRICS, 0.0)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(random_valid_action(env, rng))
        for key in ("power_w", "deadline_met", "completed", "state", "region", "invalid_actions"):
            assert key in info
        for key in W8_METRICS:
            assert key in info["step_metrics"] and key in info["episode_metrics"], key
            total[key] += info["step_metrics"][key]
        done = terminated or truncated
    for key in W8_METRICS:
        assert info["episode_metrics"][key] == pytest.approx(total[key], rel=1e-9, abs=1e-9), key
    time_s = sum(info["episode_metrics"][f"time_{s.name.lower()}_s"] for s in State)
    assert time_s == pytest.approx(info["t_s"])  # every second is in exactly one state
    assert info["episode_metrics"]["carbon_g"] == pytest.approx(
        info["episode_metrics"]["operational_carbon_g"] + info["episode_metrics"]["transfer_carbon_g"]
    )


WEIGHTS = {
    "carbon_per_kg": 1.3,
    "energy_per_kwh": 0.2,
    "lateness_per_hour": 4.0,
    "cap_violation_per_kj": 0.05,
    "migration_per_count": 0.7,
    "progress_per_job": 3.0,
}


def _documented_reward(env: CarbonMigrationEnv, info: dict, truncated: bool) -> float:
    """reward = -(w_c carbon_kg + w_e facility_kwh + w_l late_h + w_p cap_excess_kJ + w_m migrations)
    + w_g progress_fraction, with the hours still needed at full speed counted as late on truncation."""
    s, job = info["step_metrics"], env.scenario.job
    late_h = s["lateness_h"]
    if truncated:
        home = env.scenario.home_index
        model = env.world.gpu_models[home]
        top_clock = model.clock_levels_mhz(env.scenario.clock_levels)[-1]
        late_h += info["remaining_mb"] * job.work_scale * float(model.time_per_minibatch_s(top_clock)) / 3600.0
    return (
        -(
            WEIGHTS["carbon_per_kg"] * s["carbon_g"] / 1000.0
            + WEIGHTS["energy_per_kwh"] * (s["facility_energy_kwh"] + s["transfer_energy_kwh"])
            + WEIGHTS["lateness_per_hour"] * late_h
            + WEIGHTS["cap_violation_per_kj"] * s["cap_excess_j"] / 1000.0
            + WEIGHTS["migration_per_count"] * s["migrations"]
        )
        + WEIGHTS["progress_per_job"] * (s["minibatches_done"] - s["lost_minibatches"]) / job.minibatches
    )


@pytest.mark.parametrize("policy", ["random", "wait"])
def test_reward_is_the_documented_weighted_sum_of_info(policy):
    env = CarbonMigrationEnv("paper", reward=WEIGHTS)
    env.reset(seed=11)
    rng = np.random.default_rng(11)
    done, terms = False, set()
    while not done:
        action = random_valid_action(env, rng) if policy == "random" else np.array([env.R, 0])
        _, reward, terminated, truncated, info = env.step(action)
        assert reward == pytest.approx(_documented_reward(env, info, truncated), rel=1e-9, abs=1e-12)
        terms |= {k for k in ("carbon_g", "cap_excess_j", "migrations", "lateness_h") if info["step_metrics"][k] > 0}
        done = terminated or truncated
    if policy == "wait":
        assert truncated and info["remaining_mb"] == env.scenario.job.minibatches  # the late-work term was hit
    else:
        assert {"carbon_g", "cap_excess_j", "migrations"} <= terms


# ---------------------------------------------------------------- learning libraries


def test_maskable_ppo_trains_and_never_takes_a_masked_action():
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback

    class NoMaskedActions(BaseCallback):
        def __init__(self):
            super().__init__()
            self.checked = 0

        def _on_step(self) -> bool:
            masks, actions = self.locals["action_masks"], self.locals["actions"]
            for m, a in zip(masks, actions):
                n_targets = int(self.training_env.action_space.nvec[0])
                assert m[a[0]] and m[n_targets + a[1]], (m, a)
                self.checked += 1
            for info in self.locals["infos"]:
                assert info["invalid_actions"] == 0
            return True

    env = CarbonMigrationEnv("paper")
    model = MaskablePPO(
        "MlpPolicy",
        env,
        n_steps=512,
        batch_size=256,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [64, 64]},
    )
    cb = NoMaskedActions()
    model.learn(total_timesteps=2048, callback=cb)
    assert cb.checked == 2048


def test_flat_action_wrapper_maps_index_to_target_and_level_and_trains_dqn():
    from stable_baselines3 import DQN

    env = FlatActionWrapper(CarbonMigrationEnv("paper"))
    assert env.action_space.n == 5 * 5
    assert env.action(13).tolist() == [2, 3]  # 13 = 2 * 5 + 3
    env.reset(seed=0)
    m = env.unwrapped.action_masks()
    flat = env.action_masks()
    assert all(flat[t * 5 + lv] == (m[t] and m[5 + lv]) for t in range(5) for lv in range(5))
    # learning through the wrapper, on the trivial carbon-only task of tests/test_vector_env.py (optimum: 0)
    from tests.test_vector_env import CARBON_ONLY, carbon_only_scenario, mean_return

    env = FlatActionWrapper(CarbonMigrationEnv(carbon_only_scenario(), reward=CARBON_ONLY))
    model = DQN(
        "MlpPolicy",
        env,
        learning_starts=200,
        buffer_size=5000,
        train_freq=1,
        target_update_interval=200,
        exploration_fraction=0.5,
        learning_rate=1e-3,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32, 32]},
    )

    def act(obs, _):
        return env.action(model.predict(obs, deterministic=True)[0])

    before = mean_return(act)
    model.learn(total_timesteps=2000)
    assert model.num_timesteps == 2000
    assert mean_return(act) >= -0.05 > before  # learned to pause: within 50 g of the optimum 0


def test_continuous_clock_wrapper_maps_box_to_actions_and_trains_sac():
    from stable_baselines3 import SAC

    env = ContinuousClockWrapper(CarbonMigrationEnv("paper"))
    assert env.action(np.array([0.0, 0.0])).tolist() == [0, 0]
    assert env.action(np.array([1.0, 1.0])).tolist() == [4, 4]  # last bin = wait, top clock
    assert env.action(np.array([0.45, 0.5])).tolist() == [2, 2]  # floor(0.45 * 5), round(0.5 * 4)
    # learning through the wrapper, on the trivial carbon-only task of tests/test_vector_env.py (optimum: 0)
    from tests.test_vector_env import CARBON_ONLY, carbon_only_scenario, mean_return

    env = ContinuousClockWrapper(CarbonMigrationEnv(carbon_only_scenario(), reward=CARBON_ONLY))
    model = SAC(
        "MlpPolicy",
        env,
        learning_starts=100,
        buffer_size=5000,
        batch_size=64,
        learning_rate=3e-3,
        ent_coef=0.05,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
    )

    def act(obs, _):
        return env.action(model.predict(obs, deterministic=True)[0])

    before = mean_return(act)
    model.learn(total_timesteps=500)
    assert model.num_timesteps == 500
    assert mean_return(act) >= -0.05 > before  # learned to pause (x0 in the last bin): within 50 g of 0


# ---------------------------------------------------------------- misuse of the API


def test_step_and_masks_before_reset_raise_reset_needed():
    env = CarbonMigrationEnv("paper")
    with pytest.raises(gym.error.ResetNeeded, match=r"step\(\) called before reset\(\); call reset\(\) first"):
        env.step(np.array([0, 0]))
    with pytest.raises(gym.error.ResetNeeded, match=r"action_masks\(\) called before reset\(\)"):
        env.action_masks()


def test_step_after_truncation_raises_until_reset():
    env = CarbonMigrationEnv("paper")
    env.reset(seed=0)
    wait = np.array([env.R, 0])
    steps = 0
    while True:  # waiting forever: truncated after 72 h = 288 steps of 15 min, never terminated
        _, _, terminated, truncated, _ = env.step(wait)
        steps += 1
        if terminated or truncated:
            break
    assert truncated and not terminated and steps == 72 * 4
    t_end = env.sim.t_s
    for _ in range(2):  # no re-charged late penalty, no state change, no time passing
        with pytest.raises(gym.error.ResetNeeded, match=r"after the episode was truncated .* call reset\(\) first"):
            env.step(wait)
    assert env.sim.t_s == t_end == 72 * 3600.0 and env.sim.state == State.WAITING
    env.reset(seed=0)
    env.step(wait)
    assert env.sim.t_s == 900.0


def test_step_after_completion_raises():
    sc = load_scenario("paper")
    sc = dataclasses.replace(sc, job=dataclasses.replace(sc.job, minibatches=50, deadline_hours=None))
    env = CarbonMigrationEnv(sc)
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(np.array([0, env.L - 1]))  # 50 mini-batches finish inside one step
    assert terminated
    with pytest.raises(gym.error.ResetNeeded, match=r"after the episode terminated \(job completed\)"):
        env.step(np.array([0, env.L - 1]))


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"start_hr": 3}, ValueError, "unknown key 'start_hr' (did you mean 'start_hour'?); valid keys: start_hour"),
        ({"seed": 3}, ValueError, "unknown key 'seed'; valid keys: start_hour"),
        ("start_hour=3", TypeError, "reset(options=...) must be a dict such as {'start_hour': 0}, got 'start_hour=3'"),
        ([("start_hour", 3)], TypeError, "must be a dict"),
        ({"start_hour": 2.7}, ValueError, "start_hour must be an integer hour index 0..13031"),
        ({"start_hour": "abc"}, ValueError, "got 'abc'"),
        ({"start_hour": True}, ValueError, "got True"),
        ({"start_hour": -1}, ValueError, "got -1"),
        ({"start_hour": 13032}, ValueError, "got 13032"),  # train split 2021-01-01 .. 2022-07-01: 13104 h - 73 + 1
    ],
)
def test_bad_reset_options_are_refused_with_the_valid_form(options, error, message):
    env = CarbonMigrationEnv("paper")
    with pytest.raises(error) as info:
        env.reset(seed=0, options=options)
    assert message in str(info.value)


def test_integral_start_hours_are_accepted():
    env = CarbonMigrationEnv("paper")
    for h in (0, np.int64(5), 7.0, 13031):
        env.reset(seed=0, options={"start_hour": h})
        assert env.start_hour == int(h) and type(env.start_hour) is int
    env.reset(seed=0, options={})  # no key: a random start, as with options=None
    assert 0 <= env.start_hour <= 13031


@pytest.mark.parametrize(
    "reward, message",
    [
        ({"carbon_per_kg": "1.0"}, "CarbonMigrationEnv: reward.carbon_per_kg: must be a finite number, got '1.0'"),
        ({"lateness_per_hour": math.nan}, "reward.lateness_per_hour: must be a finite number, got nan"),
        ({"lateness_per_hour": math.inf}, "must be a finite number, got inf"),
        ({"energy_per_kwh": -0.5}, "reward.energy_per_kwh: must be >= 0.0, got -0.5"),
        ({"carbon_per_kg": True}, "must be a finite number, got True"),
        ({"carbon_kg": 1.0}, "reward.carbon_kg: unknown field (misspelt?)"),
        ([("carbon_per_kg", 1.0)], "CarbonMigrationEnv: reward: must be a mapping, got list"),
    ],
)
def test_invalid_reward_weights_are_refused_as_the_yaml_loader_does(reward, message):
    from sim.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        CarbonMigrationEnv("paper", reward=reward)
    assert message in str(info.value)


def test_valid_reward_override_replaces_only_the_given_weights():
    w = CarbonMigrationEnv("paper", reward={"carbon_per_kg": 2, "migration_per_count": 0.5}).reward_weights
    assert (w.carbon_per_kg, w.migration_per_count, w.lateness_per_hour, w.cap_violation_per_kj) == (2.0, 0.5, 30, 0.01)


# ---------------------------------------------------------------- soak (short version of bench/soak.py)


def test_soak_short_run_breaks_no_invariant():
    from bench.soak import INVARIANTS, soak

    for scenario in SCENARIOS:
        r = soak(scenario, steps=3000, seed=1)
        assert r["violations"] == dict.fromkeys(INVARIANTS, 0), (scenario, r)
        assert r["episodes"]["masked"] >= 1 and r["episodes"]["unmasked"] >= 1


def test_soak_counts_a_broken_invariant():
    from bench.soak import INVARIANTS, check_step
    from sim.simulator import M

    env = CarbonMigrationEnv("paper")
    env.sim.record = True
    obs, _ = env.reset(seed=0)
    obs, reward, *_ = env.step(np.array([0, env.L - 1]))
    env.sim.step_acc[M["operational_carbon_g"]] *= 1.01  # 1% off power x time x PUE x intensity of the pieces
    bad = dict.fromkeys(INVARIANTS, 0)
    check_step(env, obs, reward, 0, bad)
    assert bad == {**dict.fromkeys(INVARIANTS, 0), "carbon_sum": 1}
    obs[0] = np.nan
    check_step(env, obs, reward, 0, bad)
    assert bad["nan"] == 1 and bad["observation"] == 1


# ---------------------------------------------------------------- scenario cases that must work or be refused


def test_two_regions_on_the_same_grid_zone_reset_and_run():
    sc = load_scenario("paper")
    twin = dataclasses.replace(sc.regions[0], name="KR-2")  # a second cloud region behind the KR grid
    sc = dataclasses.replace(sc, regions=(*sc.regions, twin))
    env = CarbonMigrationEnv(sc)
    env.reset(seed=0, options={"start_hour": 10})
    ci = env.world.carbon.intensity_g_per_kwh
    assert env.world.carbon.zones == ("KR", "JP-TK", "DE", "US-CAL-CISO", "KR")
    np.testing.assert_array_equal(ci[4], ci[0])
    for _ in range(8):  # move to the twin region and run there
        _, _, _, _, info = env.step(np.array([4, env.L - 1]))
    assert info["region"] == "KR-2" and info["state"] == "TOLERANCE"


def paper_with(where: str = "<test>", **job) -> object:
    from sim.scenario import parse_scenario

    data = load_scenario("paper").to_dict()
    data["job"].update(job)
    return parse_scenario(data, where)


def test_cap_window_across_midnight_caps_the_hours_from_start_to_end():
    sc = paper_with(cap_windows=[{"start_hour_utc": 20, "end_hour_utc": 5, "cap_w": 900.0}])
    env = CarbonMigrationEnv(sc)
    env.reset(seed=0, options={"start_hour": 0})  # the train split starts at 2021-01-01 00:00 UTC
    for h in range(48):  # hand-computed: 20:00-04:59 UTC capped at 900 W, else the job's 1700 W
        assert env.sim.cap_w[h] == (900.0 if h % 24 >= 20 or h % 24 < 5 else 1700.0), h


def test_cap_window_with_equal_start_and_end_is_refused():
    from sim.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        paper_with("s.yaml", cap_windows=[{"start_hour_utc": 6, "end_hour_utc": 6, "cap_w": 900.0}])
    assert str(info.value) == (
        "s.yaml: job.cap_windows[0].end_hour_utc: equals start_hour_utc (6); for an all-day cap set job.power_cap_w"
    )


@pytest.mark.parametrize("value, message", [(1e6, "must be <= 32.0, got 1000000.0"), (0.1, "must be >= 0.5, got 0.1")])
def test_bytes_per_param_outside_the_justified_range_is_refused(value, message):
    from sim.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        paper_with("s.yaml", bytes_per_param=value)
    assert str(info.value) == f"s.yaml: job.bytes_per_param: {message}"
    assert paper_with(bytes_per_param=0.5).job.checkpoint_gb == pytest.approx(110e6 * 0.5 / 1e9)


def test_a_copied_or_unpickled_env_steps_like_the_original_and_independently():
    import copy
    import pickle

    env = CarbonMigrationEnv("faults")
    env.reset(seed=1)
    for _ in range(5):
        env.step(np.array([1, env.L - 1]))
    clones = (copy.deepcopy(env), pickle.loads(pickle.dumps(env)))
    for k in range(250):
        action = np.array([k % (env.R + 1), k % env.L])
        outs = [e.step(action) for e in (env, *clones)]
        for obs, reward, terminated, truncated, info in outs[1:]:
            assert np.array_equal(obs, outs[0][0]) and reward == outs[0][1], k
            assert (terminated, truncated, info["t_s"]) == (outs[0][2], outs[0][3], outs[0][4]["t_s"]), k
        if outs[0][2] or outs[0][3]:
            for e in (env, *clones):
                e.reset(seed=k)
    assert all(c.sim.batch is not env.sim.batch and c.sim.t_s == env.sim.t_s for c in clones)
