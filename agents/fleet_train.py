"""``python train.py --scenario fleet``: MaskablePPO on CarbonFleet-v0 (issue 10), kept apart from the single-job
training loop of ``train.py``.

The agent controls the ``K`` most urgent jobs' slots (``envs/fleet.py``); hyper-parameters are
``agents/configs/maskable_ppo.yaml`` with ``agents/configs/maskable_ppo_fleet.yaml`` over them (and ``--config``
over both). Training runs on the scenario's TRAINING split, ``n_envs`` environments in one process (SB3
DummyVecEnv; each reset draws a new job set, carbon window and pools), rewards normalised by their running
return statistics (VecNormalize; lateness penalties dwarf per-step carbon). The run directory gets
``config.yaml`` (with ``train_s``, the wall time of ``learn``) and ``model.zip``; ``evaluate.py --scenario
fleet`` finds the newest one and adds it to the fleet table as ``agent:<run name>``.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

import yaml

CONFIGS = Path(__file__).resolve().parent / "configs"
TRAIN_KEYS = ("timesteps", "n_envs", "eval_freq", "eval_episodes", "checkpoint_freq", "normalize_reward", "reward")


def fleet_hyperparameters(config: str | None) -> dict:
    from agents.build import MASKED_ONLY_KEYS
    from sim.errors import ConfigError

    # the single-job agent's imitation of its oracle and its deadline shield do not apply to the fleet
    hp = {
        k: v
        for k, v in yaml.safe_load((CONFIGS / "maskable_ppo.yaml").read_text()).items()
        if k not in MASKED_ONLY_KEYS
    }
    hp.update(yaml.safe_load((CONFIGS / "maskable_ppo_fleet.yaml").read_text()) or {})
    if config:
        hp.update(yaml.safe_load(Path(config).read_text()) or {})
    for key in sorted(MASKED_ONLY_KEYS & {k for k, v in hp.items() if v is not None}):
        raise ConfigError(f"{config}: {key}: not supported on CarbonFleet-v0 (single-job CarbonMigration-v0 only)")
    return {k: v for k, v in hp.items() if k not in MASKED_ONLY_KEYS}


def train_fleet(args: argparse.Namespace) -> Path:
    """Train and save; returns the run directory. ``args``: train.py's options (algo must be maskable_ppo)."""
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from envs.fleet import CarbonFleetEnv
    from sim.errors import ConfigError
    from sim.scenario import load_fleet_scenario

    if args.algo != "maskable_ppo":
        raise ConfigError(f"--algo {args.algo}: CarbonFleet-v0 (kind: fleet) trains maskable_ppo only")
    if args.resume:
        raise ConfigError("--resume: not supported for fleet scenarios yet")
    scenario = load_fleet_scenario(args.scenario)
    hp = fleet_hyperparameters(args.config)
    timesteps = int(args.timesteps or hp["timesteps"])
    n_envs = int(args.n_envs or hp["n_envs"])
    normalize = bool(hp.get("normalize_reward", True))
    kwargs = {k: v for k, v in hp.items() if k not in TRAIN_KEYS}
    if "policy_kwargs" in kwargs and isinstance(kwargs["policy_kwargs"].get("activation_fn"), str):
        kwargs["policy_kwargs"]["activation_fn"] = getattr(
            torch.nn, {"tanh": "Tanh", "relu": "ReLU"}[kwargs["policy_kwargs"]["activation_fn"]]
        )
    torch.set_num_threads(args.threads)
    seed = args.seed
    name = args.name or f"{scenario.name}-maskable_ppo-s{seed}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = Path(args.out) / name
    run_dir.mkdir(parents=True, exist_ok=False)

    def make(i: int):
        return lambda: CarbonFleetEnv(scenario, "train", args.data_dir, reward=hp.get("reward"))

    venv = DummyVecEnv([make(i) for i in range(n_envs)])
    venv.seed(seed)
    if normalize:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=kwargs.get("gamma", 0.99))
    model = MaskablePPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **kwargs)
    print(f"training maskable_ppo on {scenario.name} (CarbonFleet-v0): {timesteps} steps, {n_envs} envs -> {run_dir}")
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps, progress_bar=not args.no_progress_bar)
    train_s = time.perf_counter() - t0
    model.save(run_dir / "model.zip")
    cfg = {
        "env_id": "CarbonFleet-v0",
        "algo": "maskable_ppo",
        "scenario": {"name": scenario.name, "path": str(scenario.source)},
        "seed": seed,
        "timesteps": timesteps,
        "n_envs": n_envs,
        "hyperparameters": {k: v for k, v in hp.items() if k != "policy_kwargs"},
        "train_s": round(train_s, 1),
        "steps_per_s": round(timesteps / train_s, 1),
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"trained in {train_s:.1f} s ({timesteps / train_s:.0f} steps/s); saved {run_dir / 'model.zip'}")
    return run_dir
