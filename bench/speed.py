"""Speed of CarbonMigration-v0 against Gymnasium's CartPole, all measured in this one run (SPEC N1).

    python bench/speed.py [--scenario paper] [--seconds 3]

Prints ``name: value`` lines:

- ``cartpole_steps_per_s``: CartPole-v1 via ``gymnasium.make``, random actions, one process;
- ``single_env_steps_per_s``: CarbonMigration-v0 via ``gymnasium.make``, random *valid* actions (uniform over
  the unmasked targets, any clock level), same harness and duration;
- ``single_env_vs_cartpole``: their ratio (target >= 0.25), the median of 5 alternating rounds;
- ``cartpole_vector_env_steps_per_s_nN`` / ``vector_env_env_steps_per_s_nN`` / ``vector_env_vs_cartpole_vector_nN``:
  CartPoleVectorEnv and CarbonMigrationVectorEnv via ``gymnasium.make_vec(..., "vector_entry_point")`` at
  N = 64 and N = 1024 (env-steps/s = N * vector steps/s; random valid actions; SPEC target 0.5 at both);
- ``ppo_cartpole_vector_fps`` / ``maskable_ppo_fps`` / ``training_fps_vs_cartpole``: SB3 PPO on 32 CartPoleVectorEnv
  envs and MaskablePPO on 32 batched CarbonMigration envs (``SB3VecEnv``), same settings (n_steps 64,
  batch 256, 2 epochs, MLP 64x64, one torch thread), ``fps`` = timesteps / CPU s, the median of 4 alternating
  rounds after a warm-up round (the ratio: the median of the rounds' ratios); near 1 means the learner, not the
  environment, bounds training speed;
- ``reset_ms``: median ``reset()`` time after the first (target < 1);
- ``load_s``: cold load of the scenario's data (``build_world``) in a fresh subprocess, imports excluded;
- ``oracle_7d_6r_s``: median oracle solve (bound + plan) on the 7-day, 6-region ``llm`` scenario (target < 2).

Throughputs count CPU seconds of this process (``time.process_time``), not wall time, so that other load on
the machine does not bias the ratios. Random numbers are drawn in advance in blocks so that the harness
costs about the same for both environments.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import envs  # noqa: E402,F401  (registers CarbonMigration-v0)
from bench.oracle_speed import oracle_7d_6r_s  # noqa: E402

VECTOR_NS = (64, 1024)
TRAIN_N = 32
# Throughput is timed in CPU seconds of this process, so other jobs on a shared machine do not skew the ratios.
_clock = time.process_time
_BLOCK = 4096


def cartpole_steps_per_s(seconds: float, seed: int = 0) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n, t0 = 0, _clock()
    while True:
        for u in rng.random(_BLOCK).tolist():
            _, _, terminated, truncated, _ = env.step(int(u < 0.5))
            if terminated or truncated:
                env.reset()
        n += _BLOCK
        if _clock() - t0 >= seconds:
            return n / (_clock() - t0)


def single_env_steps_per_s(scenario: str, seconds: float, seed: int = 0) -> float:
    env = gym.make("CarbonMigration-v0", scenario=scenario)
    env.reset(seed=seed)
    core = env.unwrapped
    n_targets, n_levels = core.R + 1, core.L
    rng = np.random.default_rng(seed)
    n, t0 = 0, _clock()
    while True:
        for u, level in zip(rng.random(_BLOCK).tolist(), rng.integers(0, n_levels, _BLOCK).tolist()):
            valid = np.flatnonzero(core.action_masks()[:n_targets])
            _, _, terminated, truncated, _ = env.step(np.array([valid[int(u * len(valid))], level]))
            if terminated or truncated:
                env.reset()
        n += _BLOCK
        if _clock() - t0 >= seconds:
            return n / (_clock() - t0)


def cartpole_vector_env_steps_per_s(seconds: float, n_envs: int = 64, seed: int = 0) -> float:
    venv = gym.make_vec("CartPole-v1", num_envs=n_envs, vectorization_mode="vector_entry_point")
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n, t0 = 0, _clock()
    while True:
        actions = rng.integers(0, 2, (256, n_envs))
        for a in actions:
            venv.step(a)
        n += 256 * n_envs
        if _clock() - t0 >= seconds:
            return n / (_clock() - t0)


def vector_env_steps_per_s(scenario: str, seconds: float, n_envs: int = 64, seed: int = 0) -> float:
    venv = gym.make_vec(
        "CarbonMigration-v0", num_envs=n_envs, vectorization_mode="vector_entry_point", scenario=scenario
    )
    venv.reset(seed=seed)
    n_targets, n_levels = venv.R + 1, venv.L
    rng = np.random.default_rng(seed)
    actions = np.zeros((n_envs, 2), dtype=np.int64)
    n, t0 = 0, _clock()
    while True:
        # drawn in blocks of 64 steps, as CartPole's actions are drawn in blocks of 256
        scores = rng.random((64, n_envs, n_targets))
        levels = rng.integers(0, n_levels, (64, n_envs))
        for k in range(64):
            # uniform over each env's valid targets: the argmax of random scores zeroed where masked
            actions[:, 0] = (scores[k] * venv.action_masks()[:, :n_targets]).argmax(axis=1)
            actions[:, 1] = levels[k]
            venv.step(actions)
        n += 64 * n_envs
        if _clock() - t0 >= seconds:
            return n / (_clock() - t0)


class _GymVecToSB3(VecEnv):
    """The smallest SB3 ``VecEnv`` over Gymnasium's ``CartPoleVectorEnv``, so that PPO trains on CartPole's
    batched physics with the same SB3 machinery as MaskablePPO on ours. CartPoleVectorEnv autoresets on the next
    step; SB3 wants the new episode's observation at once, so a finished env's state is redrawn here the way
    CartPoleVectorEnv draws it (uniform in [-0.05, 0.05]) and its pending reset cleared."""

    def __init__(self, venv):
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self):
        return self.venv.reset(seed=0)[0]

    def step_async(self, actions):
        self._actions = actions

    def step_wait(self):
        obs, rew, term, trunc, _ = self.venv.step(self._actions)
        dones = term | trunc
        out = [{} for _ in range(self.num_envs)]
        if dones.any():
            core = self.venv.unwrapped
            for i in np.flatnonzero(dones):
                out[i] = {"terminal_observation": obs[i].copy(), "TimeLimit.truncated": bool(trunc[i] and not term[i])}
            core.state[:, dones] = core.np_random.uniform(low=core.low, high=core.high, size=(4, int(dones.sum())))
            core.steps[dones] = 0
            core.prev_done[dones] = False
            obs = core.state.T.astype(np.float32)
        return obs, rew.astype(np.float32), dones, out

    def close(self):
        self.venv.close()

    def get_attr(self, attr_name, indices=None):
        return [getattr(self.venv, attr_name)] * self.num_envs

    def set_attr(self, attr_name, value, indices=None):
        pass

    def env_method(self, method_name, *args, indices=None, **kwargs):
        return []

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


def training_fps(scenario: str, timesteps: int, rounds: int = 4) -> tuple[float, float, float]:
    """Timesteps per CPU second of SB3 PPO on 32 CartPoleVectorEnv envs and of MaskablePPO on 32 batched
    CarbonMigration envs, same hyper-parameters (the learner's share is the same; the env's differs). Each model
    learns ``timesteps`` in ``rounds`` alternating chunks (``learn(..., reset_num_timesteps=False)`` continues the
    run), so a burst of load hits both sides; returns the median fps of each and the median ratio of the rounds.
    The first chunk of each (torch's warm-up) is not counted."""
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    from envs.vector import SB3VecEnv

    torch.set_num_threads(1)
    kw = dict(n_steps=64, batch_size=256, n_epochs=2, policy_kwargs=dict(net_arch=[64, 64]), seed=0, device="cpu")
    cart = _GymVecToSB3(gym.make_vec("CartPole-v1", num_envs=TRAIN_N, vectorization_mode="vector_entry_point"))
    ours = SB3VecEnv(num_envs=TRAIN_N, scenario=scenario)
    models = (PPO("MlpPolicy", cart, **kw), MaskablePPO("MlpPolicy", ours, **kw))
    chunk = max(timesteps // rounds, TRAIN_N * kw["n_steps"])
    fps: tuple[list, list] = ([], [])
    for i in range(rounds + 1):
        for model, out in zip(models, fps):
            n0, t0 = model.num_timesteps, _clock()
            model.learn(chunk, reset_num_timesteps=i == 0)
            if i > 0:
                out.append((model.num_timesteps - n0) / (_clock() - t0))
    ratios = [ours_fps / ref_fps for ref_fps, ours_fps in zip(*fps)]
    return statistics.median(fps[0]), statistics.median(fps[1]), statistics.median(ratios)


def paired(ref, ours, seconds: float, rounds: int = 5) -> tuple[float, float, float]:
    """Median steps/s of ``ref`` and ``ours`` and median ratio over ``rounds`` alternating measurements, so a
    burst of load on the machine hits both sides of a ratio instead of one."""
    refs, mine, ratios = [], [], []
    for _ in range(rounds):
        refs.append(ref(seconds / rounds))
        mine.append(ours(seconds / rounds))
        ratios.append(mine[-1] / refs[-1])
    return statistics.median(refs), statistics.median(mine), statistics.median(ratios)


def reset_ms(scenario: str, n: int = 200) -> float:
    env = gym.make("CarbonMigration-v0", scenario=scenario)
    env.reset(seed=0)
    times = []
    for _ in range(n):
        t0 = _clock()
        env.reset()
        times.append(_clock() - t0)
    return 1000.0 * statistics.median(times)


def load_s(scenario: str) -> float:
    """``build_world`` of the scenario's train split in a fresh interpreter (cold: no per-process cache)."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(REPO)!r})\n"
        "from sim.scenario import load_scenario\nfrom loaders.world import build_world\n"
        f"t0 = time.perf_counter(); build_world(load_scenario({scenario!r}), 'train'); print(time.perf_counter() - t0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, float | str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="paper", help="shipped scenario name or YAML path (default: paper)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per throughput figure")
    parser.add_argument("--train-steps", type=int, default=32768, help="timesteps per training-speed figure, 4 rounds")
    args = parser.parse_args(argv)

    def show(name: str, value: float | str) -> None:
        print(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}", flush=True)
        results[name] = value

    results: dict[str, float | str] = {}
    cart, single, ratio = paired(cartpole_steps_per_s, lambda s: single_env_steps_per_s(args.scenario, s), args.seconds)
    show("cartpole_steps_per_s", cart)
    show("single_env_steps_per_s", single)
    show("single_env_vs_cartpole", ratio)
    for n in VECTOR_NS:
        cart_vec, vec, ratio = paired(
            lambda s, n=n: cartpole_vector_env_steps_per_s(s, n),
            lambda s, n=n: vector_env_steps_per_s(args.scenario, s, n),
            args.seconds,
        )
        show(f"cartpole_vector_env_steps_per_s_n{n}", cart_vec)
        show(f"vector_env_env_steps_per_s_n{n}", vec)
        show(f"vector_env_vs_cartpole_vector_n{n}", ratio)
    ref_fps, ours_fps, ratio = training_fps(args.scenario, args.train_steps)
    show("ppo_cartpole_vector_fps", ref_fps)
    show("maskable_ppo_fps", ours_fps)
    show("training_fps_vs_cartpole", ratio)
    show("reset_ms", reset_ms(args.scenario))
    show("load_s", load_s(args.scenario))
    show("oracle_7d_6r_s", oracle_7d_6r_s("llm"))  # 7 days x 6 regions x 15 min, whatever --scenario says
    return results


if __name__ == "__main__":
    main()
