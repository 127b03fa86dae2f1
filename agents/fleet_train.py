"""``python train.py --scenario fleet``: the learned fleet agent (issue 25), imitation of the fleet oracle, then
optional PPO fine-tuning, on per-job actions (``agents/fleet_agent.py``).

1. **Per-job actions with shared weights** (``agents/fleet_agent.py``): every open job outside a timed phase gets
   its own observation and a decision from one MaskablePPO policy network; a job's decision stays with the job.
   Executed behind ``fleet_deadline_shield`` (``baselines/fleet_policies.py``), in training and in evaluation.
2. **Imitation of the fleet oracle** (``baselines/fleet_oracle.py``, perfect foresight; the agent only sees the
   forecasts): ``imitation.demo_episodes`` oracle-executed TRAINING-split episodes give (job observation, the
   oracle's decision for that job, mask) samples; then ``dagger_rounds`` DAgger rounds (Ross et al., AISTATS 2011)
   of ``dagger_episodes`` episodes executed by the agent (each job's decision is the oracle's with probability
   ``beta``, halved each round), every visited job-state labelled with the oracle's decision from that state: its
   plan where the job is on it, its catch-up rule where the job is behind, its shield. The policy network is fitted
   by the masked log-likelihood of the labels (``agents.imitation.bc_fit``). The oracle plans in about a second
   per episode, so the episode counts (config) bound the cost; each episode is a new job set, start hour and
   pools (its own seed).
3. **PPO fine-tuning** (``timesteps`` > 0: sb3-contrib MaskablePPO on ``FleetJobEnv``, one job decision per gym
   step, ``n_envs`` envs in a DummyVecEnv, each drawing its own episodes from its own seed, rewards normalised by
   VecNormalize), from the imitation network. The fleet's reward (the scenario's weights) is given on the last
   decision of each decision step.
4. **Validation**: after imitation and every ``eval_freq`` PPO steps, ``eval_episodes`` fixed validation-split
   episodes (the agent behind the shield, as evaluate.py runs it); ``best_model.zip`` is the best so far: the
   highest deadline-met rate (to 0.1 %), then the lowest carbon. ``config.yaml`` records ``learned_by``:
   ``imitation`` when the imitation checkpoint stayed the best (PPO did not improve validation carbon), else
   ``imitation+ppo``; evaluate.py names the agent's row ``<learned_by>:<run name>``.

Crash safety as the single-job runs (``agents/checkpoint.py``): saves at rollout boundaries every ``--save-every``
steps and at the end (model, optimiser, generators, VecNormalize statistics, the training envs: each
``FleetJobEnv`` pickles as its episode seed and decisions, replayed on loading), SIGTERM/SIGINT stop at the next
save point (``train.StopSignals``), ``--resume RUN_DIR`` continues exactly (a killed imitation is redone: it is
deterministic for the seed). Hyper-parameters: ``agents/configs/fleet.yaml``, ``--config`` over it.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback

CONFIGS = Path(__file__).resolve().parent / "configs"
TRAIN_KEYS = ("timesteps", "n_envs", "eval_freq", "eval_episodes", "checkpoint_freq", "normalize_reward", "reward")
EVAL_COLUMNS = ["timesteps", "carbon_kg_mean", "deadline_met_rate", "late_h_mean", "jobs_completed_mean", "best"]
VALIDATION_SEED = 777_000  # validation episode e: reset(seed=VALIDATION_SEED + e), the same at every evaluation


def fleet_hyperparameters(config: str | None) -> dict:
    """``agents/configs/fleet.yaml`` with ``config`` over it (an ``imitation: null`` turns imitation off)."""
    from agents.config import ImitationConfig

    hp = yaml.safe_load((CONFIGS / "fleet.yaml").read_text())
    if config:
        over = yaml.safe_load(Path(config).read_text()) or {}
        if isinstance(over.get("imitation"), dict) and isinstance(hp.get("imitation"), dict):
            over["imitation"] = {**hp["imitation"], **over["imitation"]}
        hp.update(over)
    if hp.get("imitation") is not None:
        ImitationConfig.from_dict(hp["imitation"], f"{config or CONFIGS / 'fleet.yaml'}: imitation")
    return hp


# ---------------------------------------------------------------------------------------------- imitation


def next_planned_level(level: np.ndarray, n_levels: int) -> np.ndarray:
    """(J, S) the clock level of each job's next planned step from step k on (``level`` (J, S): the oracle plan's,
    -1 where the job is not planned to run; the top level where nothing is planned any more).

    Why: a wait has no clock, and the oracle's catch-up rule and its shield run a job behind its plan at the top
    clock; labelling with those clocks (waits are most of the samples, a DAgger agent's jobs are often behind
    the plan) taught the level head the top clock (81 % of its probability on running jobs), so the agent ran
    every job at the top clock where the oracle runs levels 2-3: 6-10 % less energy per mini-batch, and under
    CA-ON's power cap 8 GPUs instead of 6 (a validation episode: the oracle's multi-GPU jobs ran 303 GPU-h at
    level 2, the agent's 0). The label is the clock the plan chose; urgency is the agent's shield's job."""
    out = np.empty_like(level)
    nxt = np.full(level.shape[0], n_levels - 1, dtype=level.dtype)
    for k in range(level.shape[1] - 1, -1, -1):
        nxt = np.where(level[:, k] >= 0, level[:, k], nxt)
        out[:, k] = nxt
    return out


def collect(
    env, model, episodes: int, seed: int, round_: int, beta: float, data: list, oracle_moves: int | None = None
) -> float:
    """Run ``episodes`` episodes of ``env`` (a ``CarbonFleetEnv`` on the training split), each job's decision the
    oracle's with probability ``beta`` (1: the oracle alone, played as ``OracleFleetPolicy`` plays: its GPU counts,
    its own shield), else the agent's (:func:`agents.fleet_agent.claim_actions`, behind the deadline shield);
    append (obs, oracle labels, masks, GPUs) of every deciding job and step to ``data``. ``oracle_moves``: the
    oracle's rip-up moves per job (None: its default). Returns the share of executed decisions that were the
    oracle's."""
    from agents.fleet_agent import claim_actions, from_actions, job_observations, to_actions
    from agents.imitation import episode_seed
    from baselines.fleet_policies import OracleFleetPolicy, fleet_deadline_shield

    rng = np.random.default_rng([seed, 104729, round_])
    R = env.R
    expert = total = 0
    for i in range(episodes):
        s = episode_seed(seed, round_, i)
        env.reset(seed=s)
        oracle = OracleFleetPolicy()
        if oracle_moves is not None:
            oracle.improve_moves_per_job = int(oracle_moves)
        oracle.reset(env, s)
        run_level = next_planned_level(oracle.plan.level, env.L)
        targets = env.jobs.home.astype(np.int64).copy()
        levels = np.full(env.J, env.L - 1, dtype=np.int64)
        gpus = np.zeros(env.J, dtype=np.int64)
        agent = np.zeros(env.J, dtype=bool)  # the jobs whose last executed decision was the agent's
        done = False
        while not done:
            obs, mask, decide = job_observations(env)
            idx = np.flatnonzero(decide)
            if idx.size:
                ot, ol = oracle.act(env)
                k = min(env.k, run_level.shape[1] - 1)
                # the label's clock: its plan's now or, waiting, at its next planned step
                label = to_actions(ot[idx], run_level[idx, k], R)
                m = mask[idx]
                off = ~m[np.arange(idx.size), label[:, 0]]
                label[off, 0] = R  # the oracle queueing where no GPU is free now: wait (what the mask allows)
                data.append((obs[idx], label, m, env.jobs.gpus[idx].astype(np.float32)))
                targets[idx], levels[idx], gpus[idx] = ot[idx], ol[idx], oracle.gpus[idx]
                agent[idx] = False
                if beta < 1.0:
                    order, a_ord = claim_actions(model, env, obs, mask, decide)
                    a = np.empty_like(a_ord)
                    a[np.searchsorted(idx, order)] = a_ord  # back to job order
                    coin = rng.random(idx.size) < beta
                    mine = idx[~coin]
                    targets[mine], levels[mine] = from_actions(a[~coin], R)
                    gpus[mine], agent[mine] = 0, True
                    expert += int(coin.sum())
                else:
                    expert += idx.size
                total += idx.size
            t, lv = fleet_deadline_shield(env, targets, levels, only=agent)
            _, _, d, tr, _ = env.step_jobs(t, lv, gpus=gpus)
            done = d or tr
    return expert / max(total, 1)


def imitate(model, scenario, data_dir, hp: dict, seed: int, run_dir: Path, progress: bool) -> None:
    """Behaviour cloning on oracle demonstrations, then DAgger rounds (module docstring); ``imitation.csv``."""
    from agents.config import ImitationConfig
    from agents.imitation import IMITATION_COLUMNS, fit_round
    from envs.fleet import CarbonFleetEnv

    cfg = ImitationConfig.from_dict(hp["imitation"])
    env = CarbonFleetEnv(scenario, "train", data_dir)
    data: list = []
    rows = []
    t0 = time.time()
    for round_ in range(cfg.dagger_rounds + 1):
        beta = 1.0 if round_ == 0 else cfg.beta * 0.5 ** (round_ - 1)
        n_eps = cfg.demo_episodes if round_ == 0 else cfg.dagger_episodes
        share = collect(env, model, n_eps, seed, round_, beta, data, cfg.oracle_moves_per_job)
        obs = np.concatenate([d[0] for d in data])
        actions = np.concatenate([d[1] for d in data])
        masks = np.concatenate([d[2] for d in data])
        weights = np.concatenate([d[3] for d in data]) ** cfg.gpu_weight if cfg.gpu_weight else None
        row, _ = fit_round(model.policy, (obs, actions, masks, weights), cfg, seed, round_, n_eps, share, t0)
        rows.append(row)
        what = "oracle demonstrations" if round_ == 0 else f"DAgger, beta {beta:.2f}"
        print(
            f"[imitation] round {round_} ({what}, {n_eps} episodes): {len(obs)} job decisions, loss "
            f"{row['loss_before']:.3f} -> {row['loss_after']:.3f}, agreement {100 * row['agreement']:.0f} %, "
            f"{row['wall_s']:.0f} s",
            flush=True,
        )
    with (run_dir / "imitation.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=IMITATION_COLUMNS)
        w.writeheader()
        w.writerows(rows)


# ---------------------------------------------------------------------------------------------- validation


class FleetValidation(BaseCallback):
    """Every ``eval_freq`` steps (and when called directly), ``n_episodes`` fixed validation-split episodes of the
    agent behind the shield; a row in ``eval.csv``; ``best_model.zip`` when it is the best so far (the highest
    deadline-met rate to 0.1 %, then the lowest mean carbon)."""

    def __init__(self, scenario, data_dir, run_dir: Path, eval_freq: int, n_episodes: int):
        super().__init__(0)
        from envs.fleet import CarbonFleetEnv

        self.env = CarbonFleetEnv(scenario, "validation", data_dir)
        self.run_dir = Path(run_dir)
        self.eval_freq, self.n_episodes = int(eval_freq), int(n_episodes)
        self.best: tuple[float, float] | None = None  # (met rate, carbon kg)
        self.best_step: int | None = None
        self._next = self.eval_freq

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "next": self._next}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_step, self._next = state["best"], state["best_step"], state["next"]

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
            self.evaluate()
        return True

    def evaluate(self) -> tuple[float, float]:
        from agents.checkpoint import append_csv_row, atomic_save_model
        from agents.fleet_agent import FleetAgentPolicy
        from baselines.fleet_policies import run_fleet_episode

        pol = FleetAgentPolicy(self.model)
        ms = [run_fleet_episode(self.env, pol, VALIDATION_SEED + e) for e in range(self.n_episodes)]
        carbon = float(np.mean([m["carbon_kg"] for m in ms]))
        met = round(float(np.mean([m["deadline_met_rate"] for m in ms])), 3)
        better = self.best is None or met > self.best[0] or (met == self.best[0] and carbon < self.best[1])
        if better:
            self.best, self.best_step = (met, carbon), int(self.model.num_timesteps)
            atomic_save_model(self.model, self.run_dir / "best_model.zip")
        row = {
            "timesteps": int(self.model.num_timesteps),
            "carbon_kg_mean": round(carbon, 4),
            "deadline_met_rate": met,
            "late_h_mean": round(float(np.mean([m["late_h"] for m in ms])), 3),
            "jobs_completed_mean": float(np.mean([m["jobs_completed"] for m in ms])),
            "best": better,
        }
        append_csv_row(self.run_dir / "eval.csv", EVAL_COLUMNS, row)
        print(
            f"[validation] {row['timesteps']} steps: {carbon:.2f} kg, deadlines met {100 * met:.1f} %"
            f"{' (best)' if better else ''}",
            flush=True,
        )
        return met, carbon


# ---------------------------------------------------------------------------------------------- the run


def _stateful_venv(scenario, data_dir, hp: dict, n_envs: int, seed: int, vecnorm_gamma: float):
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from agents.fleet_agent import FleetJobEnv

    def make():
        return FleetJobEnv(scenario, "train", data_dir, reward=hp.get("reward"))

    venv = DummyVecEnv([make for _ in range(n_envs)])
    venv.seed(seed)  # env i draws its episodes from seed + i: different job sets per env
    if hp.get("normalize_reward", True):
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=vecnorm_gamma)
    return venv


def _ppo_kwargs(hp: dict) -> dict:
    import torch

    kwargs = {k: v for k, v in hp.items() if k not in TRAIN_KEYS and k != "imitation"}
    pk = dict(kwargs.get("policy_kwargs") or {})
    if isinstance(pk.get("activation_fn"), str):
        pk["activation_fn"] = getattr(torch.nn, {"tanh": "Tanh", "relu": "ReLU"}[pk["activation_fn"]])
    if pk:
        kwargs["policy_kwargs"] = pk
    return kwargs


def _label(hp: dict, best_step: int | None) -> str:
    if not hp.get("imitation"):
        return "ppo"
    return "imitation" if not best_step else "imitation+ppo"


def train_fleet(args: argparse.Namespace) -> Path:
    """Train (or, with ``args.resume``, continue) the fleet agent; returns the run directory.

    :raises train.Interrupted: SIGTERM/SIGINT stopped the run (after a save at a rollout boundary, or at once)
    """
    import train as train_cli
    from agents.checkpoint import TrainingStopped, latest_save

    run = _fleet_run(args)
    with train_cli.StopSignals() as signals:
        try:
            return _run(run, args, signals)
        except TrainingStopped as stopped:
            raise train_cli.Interrupted(signals.signum, run, int(stopped.step), stopped.save_dir) from None
        except KeyboardInterrupt:
            saved = latest_save(run.run_dir)
            step, save_dir = (saved[1]["num_timesteps"], saved[0]) if saved else (None, None)
            raise train_cli.Interrupted(signals.signum or 2, run, step, save_dir) from None


def _fleet_run(args: argparse.Namespace):
    """A ``train.Run`` for a fresh fleet run, or for ``--resume RUN_DIR`` of one."""
    import train as train_cli
    from agents.checkpoint import latest_save
    from sim.errors import ConfigError
    from sim.scenario import load_fleet_scenario

    if args.algo != "maskable_ppo":
        raise ConfigError(f"--algo {args.algo}: CarbonFleet-v0 (kind: fleet) trains maskable_ppo only")
    if args.resume:
        run_dir = Path(args.resume)
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        hp = cfg["hyperparams"]
        saved = latest_save(run_dir)
        timesteps = int(args.timesteps or cfg["timesteps"])
        if saved and saved[1]["num_timesteps"] >= timesteps and timesteps > 0:
            raise ConfigError(
                f"--resume {run_dir}: the run already has {saved[1]['num_timesteps']} steps and --timesteps "
                f"{timesteps} is the total; give a total above it"
            )
        path = cfg["scenario"]["path"]
        scenario = load_fleet_scenario(path if Path(path).exists() else cfg["scenario"]["name"])
        save_every = int(args.save_every or cfg["save_every"])
        cfg["timesteps"], cfg["save_every"] = timesteps, save_every
        return train_cli.Run(
            run_dir,
            cfg,
            "maskable_ppo",
            cfg["seed"],
            cfg["n_envs"],
            "dummy",
            hp,
            scenario,
            cfg["data_dir"],
            timesteps,
            save_every,
            saved[0] if saved else None,
            saved[1] if saved else {},
            saved is None,
        )
    scenario = load_fleet_scenario(args.scenario)
    hp = fleet_hyperparameters(args.config)
    timesteps = int(hp["timesteps"] if args.timesteps is None else args.timesteps)
    n_envs = int(args.n_envs or hp["n_envs"])
    save_every = int(args.save_every or max(1, min(int(hp["checkpoint_freq"]), max(timesteps, 10) // 10)))
    seed = args.seed
    name = args.name or f"{scenario.name}-s{seed}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = Path(args.out) / name
    if run_dir.exists():
        raise ConfigError(f"{run_dir} already exists; pick another --name or use --resume {run_dir}")
    cfg = {
        "env_id": "CarbonFleet-v0",
        "action": "per_job",  # agents/fleet_agent.py
        "algo": "maskable_ppo",
        "name": name,
        "scenario": {"name": scenario.name, "path": str(scenario.source)},
        "train_split": "train",
        "eval_split": "validation",
        "seed": seed,
        "timesteps": timesteps,
        "save_every": save_every,
        "n_envs": n_envs,
        "data_dir": args.data_dir,
        "config_file": args.config,
        "hyperparams": hp,
        "command": " ".join(sys.argv),
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    return train_cli.Run(
        run_dir, cfg, "maskable_ppo", seed, n_envs, "dummy", hp, scenario, args.data_dir, timesteps, save_every
    )


def _run(run, args: argparse.Namespace, signals) -> Path:
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.utils import set_random_seed

    import train as train_cli
    from agents.checkpoint import (
        PeriodicSave,
        StopAtTotal,
        atomic_save_model,
        atomic_write_text,
        load_resume_state,
        restore_logs,
        restore_resume_state,
    )

    torch.set_num_threads(args.threads)
    set_random_seed(run.seed)
    hp, scenario = run.hp, run.scenario
    kwargs = _ppo_kwargs(hp)
    venv = _stateful_venv(scenario, run.data_dir, hp, run.n_envs, run.seed, kwargs.get("gamma", 0.99))
    resuming = run.save_dir is not None
    if resuming:
        model = MaskablePPO.load(run.save_dir / "model.zip", env=venv, device="cpu", force_reset=False)
        dropped = restore_logs(run.run_dir, run.save_dir, int(model.num_timesteps))
        resumed = {"at_timesteps": int(model.num_timesteps), "log_rows_dropped": dropped}
        run.cfg.setdefault("resumed", []).append(resumed)
    else:
        run.run_dir.mkdir(parents=True, exist_ok=run.redo_imitation)
        for stale in ("eval.csv", "best_model.zip", "imitation.csv", "progress.csv"):
            (run.run_dir / stale).unlink(missing_ok=True)
        model = MaskablePPO("MlpPolicy", venv, seed=run.seed, verbose=0, device="cpu", **kwargs)
    atomic_write_text(run.run_dir / "config.yaml", yaml.safe_dump(run.cfg, sort_keys=False))
    t0, wall_before = time.time(), float((run.saved_state or {}).get("wall_s", 0.0))
    validation = FleetValidation(scenario, run.data_dir, run.run_dir, int(hp["eval_freq"]), int(hp["eval_episodes"]))
    saver = PeriodicSave(
        run.run_dir,
        run.save_every,
        venv,
        False,
        stop=signals.stop,
        stateful={"validation": validation},
        state=lambda: {"wall_s": round(wall_before + time.time() - t0, 1)},
    )
    model.set_logger(train_cli.make_logger(run.run_dir, False, append=resuming))
    if resuming:
        state = load_resume_state(run.save_dir)
        saver.rollouts = restore_resume_state(model, venv, state, {"validation": validation})["rollouts"]
        model.logger.iterations_before = saver.rollouts
    validation.init_callback(model)
    saver.init_callback(model)
    print(
        f"training the fleet agent (per-job actions, agents/fleet_agent.py) on {scenario.name}: "
        f"{'imitation of the oracle, then ' if hp.get('imitation') and not resuming else ''}"
        f"{run.timesteps} PPO steps in total, {run.n_envs} envs, seed {run.seed} -> {run.run_dir}",
        flush=True,
    )
    try:
        if not resuming:
            if hp.get("imitation"):
                imitate(model, scenario, run.data_dir, hp, run.seed, run.run_dir, not args.no_progress_bar)
            validation.evaluate()  # the imitating policy is the first candidate for best_model.zip
            saver.save()
        start = int(model.num_timesteps)
        if run.timesteps > start:
            signals.learning = True
            try:
                model.learn(
                    total_timesteps=run.timesteps - start if resuming else run.timesteps,
                    callback=CallbackList([saver, validation, StopAtTotal(run.timesteps)]),
                    progress_bar=not args.no_progress_bar,
                    reset_num_timesteps=not resuming,
                )
            finally:
                signals.learning = False
            saver.save()
        atomic_save_model(model, run.run_dir / "model.zip")
    finally:
        venv.close()
    train_s = wall_before + time.time() - t0
    run.cfg["timesteps_total"] = int(model.num_timesteps)
    run.cfg["train_s"] = round(train_s, 1)
    run.cfg["best_step"] = validation.best_step
    run.cfg["learned_by"] = _label(hp, validation.best_step)
    if validation.best is not None:
        run.cfg["validation_best"] = {"deadline_met_rate": validation.best[0], "carbon_kg": validation.best[1]}
    atomic_write_text(run.run_dir / "config.yaml", yaml.safe_dump(run.cfg, sort_keys=False))
    best = validation.best
    print(
        f"trained in {train_s:.0f} s; best on validation ({run.cfg['learned_by']}, step {validation.best_step}): "
        f"{best[1]:.2f} kg, deadlines met {100 * best[0]:.1f} % -> {run.run_dir / 'best_model.zip'}"
        if best
        else f"trained in {train_s:.0f} s -> {run.run_dir}"
    )
    return run.run_dir


def fleet_agent_name(run_dir: Path) -> str:
    """The agent's row in the fleet table: ``<learned_by>:<run name>`` (how it learned, e.g. ``imitation``)."""
    cfg_path = Path(run_dir) / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
    return f"{cfg.get('learned_by', 'agent')}:{Path(run_dir).name}"
