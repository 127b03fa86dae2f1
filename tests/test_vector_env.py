"""CarbonMigrationVectorEnv (Gymnasium VectorEnv) and its SB3 VecEnv adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers CarbonMigration-v0 with its vector entry point)
from envs.carbon_migration import CarbonMigrationEnv
from envs.vector import CarbonMigrationVectorEnv, SB3VecEnv
from sim.errors import ConfigError

N = 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


def valid_actions(masks: np.ndarray, n_targets: int, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random valid [target, level] per row of ``masks``."""
    out = []
    for m in masks:
        out.append([rng.choice(np.flatnonzero(m[:n_targets])), rng.choice(np.flatnonzero(m[n_targets:]))])
    return np.array(out)


def test_make_vec_builds_the_batched_env_with_batched_spaces():
    venv = gym.make_vec("CarbonMigration-v0", num_envs=N, vectorization_mode="vector_entry_point", scenario="paper")
    assert isinstance(venv, CarbonMigrationVectorEnv) and isinstance(venv, gym.vector.VectorEnv)
    single = CarbonMigrationEnv("paper")
    assert venv.single_observation_space == single.observation_space
    assert venv.observation_space.shape == (N, *single.observation_space.shape)
    obs, info = venv.reset(seed=0)
    assert obs.shape == (N, 64) and obs.dtype == np.float32
    assert venv.action_masks().shape == (N, 4 + 1 + 5)
    assert all(venv.envs[i].world is venv.envs[0].world for i in range(N))  # traces loaded once


@pytest.mark.parametrize(
    ("scenario", "n"), [("paper", 1), ("faults", 7), ("paper", 64), ("faults", 64), ("global", 7), ("llm", 7)]
)
def test_env_i_follows_the_single_env_with_seed_plus_i(scenario, n):
    """The batched core reproduces the single environment bit for bit (observations, rewards, flags, every info
    value, masks), through faults, parked GPU-failure draws and next-step autoresets (action ignored, reward 0)."""
    N = n
    venv = CarbonMigrationVectorEnv(N, scenario)
    singles = [CarbonMigrationEnv(scenario) for _ in range(N)]
    obs, infos = venv.reset(seed=100)
    expect = [env.reset(seed=100 + i) for i, env in enumerate(singles)]
    for i in range(N):
        np.testing.assert_array_equal(obs[i], expect[i][0])
        assert venv.info_of(infos, i) == expect[i][1]
    rng = np.random.default_rng(0)
    done = [False] * N
    resets = 0
    gpu_failures = 0
    for _ in range(450 if scenario != "llm" else 1130):  # > 2 paper episodes of random play (llm: 1,120-step limit)
        actions = valid_actions(venv.action_masks(), venv.R + 1, rng)
        obs, rew, term, trunc, infos = venv.step(actions)
        gpu_failures += infos["step_metrics"]["gpu_failures"].sum()
        for i, env in enumerate(singles):
            if done[i]:
                o, info = env.reset()
                r, te, tr = 0.0, False, False
                resets += 1
            else:
                o, r, te, tr, info = env.step(actions[i])
            np.testing.assert_array_equal(obs[i], o)
            assert (rew[i], term[i], trunc[i]) == (r, te, tr)
            assert venv.info_of(infos, i) == info
            np.testing.assert_array_equal(venv.action_masks()[i], env.action_masks())
            done[i] = te or tr
    assert resets >= N
    if scenario == "faults" and N == 64:  # the parked-draw path (GPU failures) was exercised
        assert gpu_failures > 0


def test_infos_use_the_gymnasium_vector_layout():
    venv = CarbonMigrationVectorEnv(N, "paper")
    venv.reset(seed=0)
    _, _, _, _, infos = venv.step(np.tile([0, 4], (N, 1)))
    assert infos["t_s"].shape == (N,) and infos["_t_s"].all()
    assert infos["state"].tolist() == ["TOLERANCE"] * N
    assert infos["step_metrics"]["carbon_g"].shape == (N,)
    np.testing.assert_allclose(
        infos["step_metrics"]["carbon_g"],
        infos["step_metrics"]["operational_carbon_g"] + infos["step_metrics"]["transfer_carbon_g"],
    )
    assert not infos["_jct_h"].any()  # nobody finished in 15 minutes


def test_same_step_autoreset_reports_final_obs_and_info():
    venv = CarbonMigrationVectorEnv(2, "paper", autoreset_mode="same_step")
    venv.reset(seed=1)
    steps = venv.envs[0].sim.n_steps
    for _ in range(steps - 1):
        venv.step(np.tile([4, 0], (2, 1)))  # wait: never finishes, truncates at the horizon
    obs, _, term, trunc, infos = venv.step(np.tile([4, 0], (2, 1)))
    assert trunc.all() and not term.any()
    assert infos["_final_obs"].all()
    assert infos["final_info"]["remaining_mb"].tolist() == [140000.0, 140000.0]
    assert obs[0, -8 + 0] == 1.0  # the returned obs is the new episode's (QUEUED)
    assert venv.envs[0].sim.k == 0


def test_bad_batched_actions_raise_naming_the_env():
    venv = CarbonMigrationVectorEnv(N, "paper")
    venv.reset(seed=0)
    bad = np.tile([0, 4], (N, 1))
    bad[2] = [7, 0]
    with pytest.raises(ValueError, match="env 2: action \\[7, 0\\] out of range"):
        venv.step(bad)
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((N, 4), dtype=int))  # (N, 3) carries a GPU choice
    with pytest.raises(ValueError, match="integer"):
        venv.step(np.full((N, 2), 0.5))
    huge = np.zeros((N, 3), dtype=np.uint64)
    huge[1, 2] = np.iinfo(np.uint64).max  # would wrap to -1 (all GPUs) as int64
    with pytest.raises(ValueError, match="outside int64"):
        venv.step(huge)
    with pytest.raises(ConfigError, match="num_envs"):
        CarbonMigrationVectorEnv(0)


def test_sb3_adapter_resets_in_the_same_step_and_hides_metrics_from_monitor_key():
    venv = SB3VecEnv(num_envs=2, scenario="paper")
    venv.seed(3)
    obs = venv.reset()
    ref = CarbonMigrationEnv("paper")
    np.testing.assert_array_equal(obs[1], ref.reset(seed=4)[0])
    masks = venv.env_method("action_masks")
    assert len(masks) == 2 and masks[0].shape == (10,)
    steps = ref.sim.n_steps
    for _ in range(steps):
        obs, rew, dones, infos = venv.step(np.tile([4, 0], (2, 1)))
    assert dones.all()
    assert "episode" not in infos[0] and infos[0]["episode_metrics"]["carbon_g"] == 0.0
    assert infos[0]["TimeLimit.truncated"] is True
    assert infos[0]["terminal_observation"].shape == (64,)
    assert venv.venv.envs[0].sim.k == 0  # already reset


def test_sb3_infos_read_like_the_single_envs_and_keep_their_step_values():
    """The adapter's per-env infos (made when read) equal ``info_of`` of the batched infos, key for key, including
    the keys only finished envs have (``jct_h``; ``final_obs`` / ``final_info`` are left to SB3VecEnv, which puts
    the finished episode's own info there), and keep their values after later steps."""
    venv = CarbonMigrationVectorEnv(N, scenario="paper")  # next-step autoreset: a completing step's info has jct_h
    _, infos = venv.reset(seed=5)
    rng = np.random.default_rng(1)
    kept, with_jct = [], 0
    for _ in range(300):
        # mostly run where the job is at the top clock (so jobs complete), sometimes a random valid move
        act = np.stack([infos["region_index"], np.full(N, venv.L - 1)], axis=1)
        move = rng.random(N) < 0.1
        act[move] = valid_actions(venv.action_masks(), venv.R + 1, rng)[move]
        _, _, term, trunc, infos = venv.step(act)
        rows = venv.info_rows(infos)
        for i, row in enumerate(rows):
            expected = {k: v for k, v in venv.info_of(infos, i).items() if k not in ("final_obs", "final_info")}
            assert dict(row) == expected and len(row) == len(expected) and set(row) == set(expected)
            assert ("jct_h" in row) == bool(infos["_jct_h"][i]) and row.get("episode") is None
            with_jct += "jct_h" in row
        kept.append((rows[0], dict(rows[0])))
    assert 0 < with_jct < 300 * N  # some envs completed a job within the steps, the others not
    assert all(dict(row) == snapshot for row, snapshot in kept)
    row = kept[-1][0]
    row["terminal_observation"] = 1.0  # SB3 wrappers write into infos: it becomes a plain dict
    del row["t_s"]
    assert row["terminal_observation"] == 1.0 and "t_s" not in row and row.copy()["region"] == kept[-1][1]["region"]


# A trivial task to see learning through the adapter: 4-hour episodes, no deadline, reward = -carbon only. Pausing
# holds no GPUs and emits nothing, so the optimal return is exactly 0; any running step costs carbon.
CARBON_ONLY = {"lateness_per_hour": 0.0, "cap_violation_per_kj": 0.0}


def carbon_only_scenario():
    import dataclasses

    from sim.scenario import load_scenario

    sc = load_scenario("paper")
    return dataclasses.replace(sc, episode_hours=4.0, job=dataclasses.replace(sc.job, deadline_hours=None))


def mean_return(act, n: int = 8) -> float:
    """Mean return of ``act(obs, env) -> action`` over ``n`` fixed validation episodes of the trivial task."""
    env = CarbonMigrationEnv(carbon_only_scenario(), "validation", reward=CARBON_ONLY)
    returns = []
    for i in range(n):
        obs, _ = env.reset(seed=100 + i)
        total, done = 0.0, False
        while not done:
            obs, r, terminated, truncated, _ = env.step(act(obs, env))
            total, done = total + r, terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.parametrize("algo", ["maskable_ppo", "ppo"])
def test_maskable_ppo_and_ppo_learn_on_the_sb3_adapter(algo):
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    rng = np.random.default_rng(0)
    random_return = mean_return(lambda obs, env: np.array([rng.integers(env.R + 1), rng.integers(env.L)]))
    assert random_return < -1.0  # random actions mostly run the job: over a kg of CO2 per 4-hour episode

    venv = VecMonitor(SB3VecEnv(num_envs=4, scenario=carbon_only_scenario(), reward=CARBON_ONLY))
    cls = MaskablePPO if algo == "maskable_ppo" else PPO
    model = cls(
        "MlpPolicy",
        venv,
        n_steps=64,
        batch_size=128,
        n_epochs=4,
        learning_rate=1e-3,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32, 32]},
    )

    def act(obs, env):
        masks = {"action_masks": env.action_masks()} if algo == "maskable_ppo" else {}
        return model.predict(obs, deterministic=True, **masks)[0]

    before = mean_return(act)
    model.learn(total_timesteps=2048)
    after = mean_return(act)
    assert model.num_timesteps == 2048
    assert after > before and after >= -0.05  # learned to pause: within 50 g of the optimum 0
    if algo == "maskable_ppo":
        assert venv.venv.venv.envs[0].invalid_actions == 0
