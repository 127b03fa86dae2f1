"""Train a Stable-Baselines3 agent on CarbonMigration-v0.

    python train.py                                  # the default agent on `paper`: imitation of the oracle (minutes)
    python train.py --algo dqn --timesteps 200000 --n-envs 8
    python train.py --resume runs/dqn-paper-s0-20250101-120000 --timesteps 300000   # to 300k in total
    python train.py --scenario fleet                 # MaskablePPO on CarbonFleet-v0 (agents/fleet_train.py)

Reads top to bottom: options -> config -> environments -> model -> callbacks -> learn -> save. A run directory
``runs/<label>-<scenario>-s<seed>-<timestamp>/`` (``runs/<--name>`` if given; the label, e.g. ``imitation``, names
the agent in evaluate.py's tables) receives ``config.yaml`` (everything needed to reproduce or resume),
``progress.csv`` (SB3's learning curve), ``eval.csv`` (validation carbon per evaluation), ``best_model.zip`` (the
validation-selected model), ``model.zip`` (the last one) and ``checkpoints/step-<N>/``: complete, atomically
written saves (model and optimiser, step counter, for DQN/SAC/TD3 the replay buffer, with ``normalize_reward`` the
return statistics; see ``agents/checkpoint.py``) every ``--save-every`` steps and when the run ends or is stopped.
Ctrl-C and SIGTERM save and exit; after a SIGKILL, ``--resume`` continues from the newest complete save.
``agents.load_agent(run_dir)`` turns a run into a policy for evaluate.py.

The default agent (``agents/configs/maskable_ppo.yaml``) is a MaskablePPO policy network that first learns from
the oracle (``imitation:``, ``agents/imitation.py``: behaviour cloning, then DAgger; logged to ``imitation.csv``),
then is validated and saved (step 0) before any PPO step; its config runs no PPO step (``timesteps: 0``). A run
killed during imitation has no save yet: ``--resume`` redoes the imitation (deterministic for the seed).
"""

from __future__ import annotations

import argparse
import csv
import platform
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import yaml

from sim.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parent
DEFAULT_ALGO = "maskable_ppo"


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):  # show defaults, except "None"/"False" which say nothing
        if action.default in (None, False) or "Default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv=None) -> argparse.Namespace:
    from agents.build import ALGOS, TRAIN_DEFAULTS

    p = _Parser(
        prog="train.py",
        description="Train an agent to place and clock a training job by grid carbon. By default it learns by "
        "imitation of the oracle (behaviour cloning, then DAgger) behind a deadline shield, with no RL step.",
        formatter_class=_Formatter,
    )
    p.add_argument(
        "--algo",
        default=DEFAULT_ALGO,
        choices=list(ALGOS),
        help="algorithm of the policy network; dqn sees a flat Discrete action, sac/td3 a Box(2) "
        "(envs/wrappers.py). Default: maskable_ppo, whose config (agents/configs/maskable_ppo.yaml) trains by "
        "imitation of the oracle (behaviour cloning, then DAgger) behind a deadline shield and runs 0 PPO steps",
    )
    p.add_argument("--scenario", default="paper", help="shipped scenario name or path to a scenario YAML")
    p.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="total environment steps of the run; with --resume the new total, counting the steps already done "
        "(the run continues from its saved step count up to this). "
        "Default: 'timesteps' in the algorithm's config: 0 for maskable_ppo (imitation only; N adds N PPO steps "
        f"after it), {TRAIN_DEFAULTS['timesteps']} if the config has none; with --resume, the run's saved total",
    )
    p.add_argument(
        "--save-every",
        type=int,
        default=None,
        metavar="STEPS",
        help="environment steps between resumable saves (RUN_DIR/checkpoints/step-N/, written atomically). "
        "Default: 10%% of --timesteps, at most 'checkpoint_freq' of the config; with --resume, the run's own",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds torch, numpy, the envs and the validation episodes")
    p.add_argument(
        "--n-envs",
        type=int,
        default=None,
        help="parallel training environments. Default: 'n_envs' in the algorithm's config",
    )
    p.add_argument(
        "--vec",
        default="auto",
        choices=["auto", "batched", "dummy", "subproc"],
        help="vectorisation: batched = envs.vector.SB3VecEnv (N jobs stepped together, MultiDiscrete "
        "algorithms only); dummy = SB3 DummyVecEnv in this process; subproc = one process per env; "
        "auto = batched when the algorithm allows, else dummy",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder of carbon-intensity files that adds or overrides zones and years of the shipped traces "
        "(data/traces). Default: the scenario's data_dir, else $CARBON_DATA_DIR, else ../shared/data if present; "
        "'synthetic': synthetic profiles",
    )
    p.add_argument("--out", default="runs", help="parent folder of run directories")
    p.add_argument(
        "--name",
        default=None,
        help="the agent's name in evaluate.py's tables and plots, and its run directory (--out/NAME). Default: what "
        "the training does (imitation, imitation+<algo> with PPO steps after it, else <algo>) as the name, in "
        "--out/<name>-<scenario>-s<seed>-<YYYYmmdd-HHMMSS>",
    )
    p.add_argument(
        "--config",
        default=None,
        help="YAML of hyper-parameters merged over agents/configs/<algo>.yaml (constructor keywords, "
        "plus timesteps, n_envs, eval_freq, eval_episodes, checkpoint_freq)",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue RUN_DIR from its newest complete save (model, optimiser state, replay buffer, "
        "normalisation statistics, step counter), also after SIGKILL, up to --timesteps in total",
    )
    p.add_argument("--tensorboard", action="store_true", help="also log to RUN_DIR/tb for TensorBoard")
    p.add_argument("--no-progress-bar", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 keeps runs reproducible and is fastest for small networks)",
    )
    args = p.parse_args(argv)
    for opt in ("timesteps", "n_envs", "threads", "save_every"):
        v = getattr(args, opt)
        if v is not None and v < 1:
            p.error(f"--{opt.replace('_', '-')} must be >= 1, got {v}")
    return args


def versions() -> dict:
    import gymnasium
    import numpy
    import sb3_contrib
    import stable_baselines3
    import torch

    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": str(torch.__version__),
        "gymnasium": gymnasium.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "sb3_contrib": sb3_contrib.__version__,
        "git_commit": commit,
    }


def make_logger(run_dir: Path, tensorboard: bool, append: bool):
    """SB3 logger writing progress.csv (appended to when resuming) and optionally TensorBoard events."""
    from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

    class AppendingCSV(CSVOutputFormat):
        def __init__(self, filename: Path):
            super().__init__(str(filename)) if not (append and filename.exists()) else self._reopen(filename)

        def _reopen(self, filename: Path):
            self.file = open(filename, "r+")
            header = self.file.readline().strip()
            self.keys = header.split(",") if header else []
            self.separator, self.quotechar = ",", '"'
            self.file.seek(0, 2)

    formats = [AppendingCSV(run_dir / "progress.csv")]
    if tensorboard:
        formats.append(TensorBoardOutputFormat(str(run_dir / "tb")))
    return Logger(str(run_dir), formats)


def best_so_far(eval_csv: Path):
    """(deadline-met rate, mean carbon) of the best evaluation recorded in eval.csv, for a resumed run."""
    if not eval_csv.exists():
        return None
    with eval_csv.open() as f:
        rows = [(float(r["deadline_met_rate"]), float(r["mean_carbon_kg"])) for r in csv.DictReader(f)]
    return max(rows, key=lambda s: (s[0], -s[1])) if rows else None


def default_label(algo: str, hp: dict, timesteps: int) -> str:
    """What the training does, as the agent's default name: ``imitation`` (imitation of the oracle, no RL step),
    ``imitation+<algo>`` (RL steps after imitation) or ``<algo>``."""
    if hp.get("imitation"):
        return "imitation" if timesteps == 0 else f"imitation+{algo}"
    return algo


def default_save_every(timesteps: int, hp: dict) -> int:
    """Steps between saves: 10% of the run, at most the config's ``checkpoint_freq`` (so a kill loses <= 10%)."""
    return max(1, min(int(hp["checkpoint_freq"]), timesteps // 10))


def train(args: argparse.Namespace) -> Path:
    import torch
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.utils import set_random_seed

    from agents.build import ALGOS, algo_spec, load_hyperparams, make_model, make_vec_env, normalize_rewards
    from agents.callbacks import ValidationCallback
    from agents.checkpoint import (
        PeriodicSave,
        StopAtTotal,
        StopOnRequest,
        atomic_save_model,
        atomic_write_text,
        latest_save,
        restore_logs,
        save_training_state,
    )
    from envs.carbon_migration import CarbonMigrationEnv
    from evaluation.report import data_label
    from sim.scenario import load_scenario

    # ---- config: a fresh run from options + YAML, or the saved config of the run being resumed
    redo_imitation = False  # a run killed during imitation, before its first save, starts its imitation over
    if args.resume:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.yaml"
        saved = latest_save(run_dir) if cfg_path.is_file() else None
        # runs from before checkpoints/step-N/ existed kept their last state beside config.yaml
        save_dir = saved[0] if saved else run_dir
        if cfg_path.is_file() and not (save_dir / "model.zip").is_file():
            # imitation is deterministic for the seed, so redoing it ends the run as if it had not been killed
            redo_imitation = bool((yaml.safe_load(cfg_path.read_text()).get("hyperparams") or {}).get("imitation"))
        if not cfg_path.is_file() or not ((save_dir / "model.zip").is_file() or redo_imitation):
            raise ConfigError(
                f"--resume {run_dir}: expected a run directory with config.yaml and a complete save "
                "(checkpoints/step-N/ or model.zip) made by train.py"
            )
        cfg = yaml.safe_load(cfg_path.read_text())
        algo, seed, n_envs, vec = cfg["algo"], cfg["seed"], cfg["n_envs"], cfg["vec"]
        hp = cfg["hyperparams"]
        scenario = load_scenario(
            cfg["scenario"]["path"] if Path(cfg["scenario"]["path"]).exists() else cfg["scenario"]["name"]
        )
        data_dir = cfg["data_dir"]
        timesteps = args.timesteps or cfg["timesteps"]
        save_every = args.save_every or cfg.get("save_every") or default_save_every(timesteps, hp)
        cfg["timesteps"], cfg["save_every"] = timesteps, save_every
        if saved and saved[1]["num_timesteps"] >= timesteps:  # before building anything
            raise ConfigError(
                f"--resume {run_dir}: the run already has {saved[1]['num_timesteps']} steps and --timesteps "
                f"{timesteps} is the total; give a total above {saved[1]['num_timesteps']}"
            )
    else:
        algo, seed, vec, data_dir = args.algo, args.seed, args.vec, args.data_dir
        hp = load_hyperparams(algo, args.config)
        scenario = load_scenario(args.scenario)
        n_envs = args.n_envs or hp["n_envs"]
        timesteps = args.timesteps or hp["timesteps"]
        if timesteps == 0 and not hp.get("imitation"):
            raise ConfigError(
                f"{args.config or f'agents/configs/{algo}.yaml'}: timesteps: 0 trains nothing without an imitation "
                "section; give --timesteps or an integer >= 1"
            )
        save_every = args.save_every or default_save_every(timesteps, hp)
        label = args.name or default_label(algo, hp, timesteps)
        name = args.name or f"{label}-{scenario.name}-s{seed}-{datetime.now():%Y%m%d-%H%M%S}"
        run_dir = Path(args.out) / name
        if run_dir.exists():
            raise ConfigError(f"{run_dir} already exists; pick another --name or use --resume {run_dir}")
        cfg = {
            "name": name,
            "label": label,  # the agent's name in evaluate.py's tables and plots
            "algo": algo,
            "algo_class": ALGOS[algo].cls.__name__,
            "scenario": {"name": scenario.name, "path": str(scenario.source)},
            "train_split": "train",
            "eval_split": "validation",
            "timesteps": timesteps,
            "save_every": save_every,
            "seed": seed,
            "n_envs": n_envs,
            "vec": vec,
            "data_dir": data_dir,
            "config_file": args.config,
            "hyperparams": hp,
            "versions": versions(),
            "created": datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "scenario_resolved": scenario.to_dict(),
        }
    spec = algo_spec(algo)
    resuming = bool(args.resume) and not redo_imitation

    # ---- reproducibility: one torch thread, every RNG from the seed
    torch.set_num_threads(args.threads)
    set_random_seed(seed)

    # ---- environments: training split to learn on, validation split to select the model
    venv = make_vec_env(scenario, "train", algo, n_envs, seed, data_dir=data_dir, vec=vec)
    venv = normalize_rewards(venv, hp, save_dir / "vecnormalize.pkl" if resuming else None)
    eval_env = CarbonMigrationEnv(scenario, "validation", data_dir=data_dir)
    cfg["data_source"] = data_label(eval_env.world.carbon.source)  # real folder, or SYNTHETIC

    # ---- model: fresh, or the newest complete save (weights, optimiser, step counter, replay buffer)
    wall_before = 0.0
    if resuming:
        model = spec.cls.load(save_dir / "model.zip", env=venv, device="cpu")
        if spec.off_policy and (save_dir / "replay_buffer.pkl").exists():
            model.load_replay_buffer(save_dir / "replay_buffer.pkl")
        done = int(model.num_timesteps)
        dropped = restore_logs(run_dir, save_dir, done)  # log rows after the save are redone, not repeated
        wall_before = float((saved[1] if saved else cfg).get("wall_s", 0.0))
        venv.seed(seed + done)  # fresh episodes, still determined by the seed
        cfg.setdefault("resumed", []).append(
            {
                "at_timesteps": done,
                "from": str(save_dir),
                "log_rows_dropped": dropped,
                "to_total": timesteps,
                "when": datetime.now().isoformat(timespec="seconds"),
            }
        )
        if done >= timesteps:
            venv.close()
            raise ConfigError(
                f"--resume {run_dir}: the run already has {done} steps and --timesteps {timesteps} is the total; "
                f"give a total above {done}"
            )
    else:
        run_dir.mkdir(parents=True, exist_ok=redo_imitation)
        model = make_model(algo, hp, venv, seed)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    model.set_logger(make_logger(run_dir, args.tensorboard, append=resuming))

    # ---- callbacks: atomic resumable saves, validation-split selection of best_model.zip, stop at the total
    t0 = time.time()

    def save_state() -> dict:
        return {"wall_s": round(wall_before + time.time() - t0, 1)}

    stop = threading.Event()  # set by SIGTERM (cluster schedulers, `kill`): stop at the next step, save like Ctrl-C
    if redo_imitation:  # what the killed attempt wrote after its imitation, before its first save
        for stale in ("eval.csv", "best_model.zip", "imitation.csv", "progress.csv"):
            (run_dir / stale).unlink(missing_ok=True)
    validation = ValidationCallback(
        eval_env,
        algo,
        run_dir,
        eval_freq=hp["eval_freq"],
        n_episodes=hp["eval_episodes"],
        seed=seed,
        best=best_so_far(run_dir / "eval.csv"),
        verbose=1,
        shield_fraction=hp.get("deadline_shield"),
    )
    callbacks = CallbackList(
        [
            PeriodicSave(run_dir, save_every, venv, spec.off_policy, state=save_state),
            validation,
            StopAtTotal(timesteps),
            StopOnRequest(stop),
        ]
    )

    # ---- imitation (agents/imitation.py): clone the oracle, DAgger, then validate and save before any RL step
    if not resuming and hp.get("imitation"):
        from agents.imitation import ImitationConfig, pretrain

        print(f"imitating the oracle on {scenario.name}'s training split (seed {seed}) -> {run_dir}", flush=True)
        pretrain(
            model,
            CarbonMigrationEnv(scenario, "train", data_dir=data_dir),
            ImitationConfig.from_dict(hp["imitation"]),
            seed,
            run_dir / "imitation.csv",
            shield_fraction=hp.get("deadline_shield"),
            progress=not args.no_progress_bar,
        )
        validation.init_callback(model)
        validation.evaluate()  # the imitating policy is the first candidate for best_model.zip
        save_training_state(model, venv, run_dir, spec.off_policy, save_state())

    start = int(model.num_timesteps)
    if timesteps > start:
        print(
            f"{'resuming' if resuming else 'training'} {algo} on {scenario.name}"
            f"{f' from {start} steps' if resuming else ''} to {timesteps} steps in total "
            f"({n_envs} envs, seed {seed}, a save every {save_every} steps) -> {run_dir}",
            flush=True,
        )
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set()) if on_main else None
    try:
        if timesteps > start:  # 0 RL steps: the imitating policy is the agent
            model.learn(
                total_timesteps=timesteps - start if resuming else timesteps,  # SB3 adds the steps done on resume
                callback=callbacks,
                progress_bar=not args.no_progress_bar,
                reset_num_timesteps=not resuming,
            )
        if stop.is_set():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        print(f"interrupted at {model.num_timesteps} steps: saving so the run can be resumed", file=sys.stderr)
    finally:
        if on_main:  # a second SIGTERM must not break the final save
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        save_training_state(model, venv, run_dir, spec.off_policy, save_state())
        atomic_save_model(model, run_dir / "model.zip")
        venv.close()
        if on_main:
            signal.signal(signal.SIGTERM, previous)
    wall_s = time.time() - t0
    cfg["timesteps_total"] = int(model.num_timesteps)
    cfg["wall_s"] = round(wall_before + wall_s, 1)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    best = best_so_far(run_dir / "eval.csv")
    print(
        f"done in {wall_s:.0f} s, {model.num_timesteps} steps total. Saved {run_dir}/model.zip"
        + (
            f"; best validation: carbon {best[1]:.2f} kg, deadline met {100 * best[0]:.0f}% -> best_model.zip"
            if best
            else ""
        )
    )
    return run_dir


def main(argv=None) -> int:
    args = parse_args(argv)
    from sim.scenario import scenario_kind

    if scenario_kind(args.scenario) == "fleet":  # issue 10: CarbonFleet-v0 (agents/fleet_train.py)
        from agents.fleet_train import train_fleet

        try:
            run_dir = train_fleet(args)
        except (ConfigError, DataError, FileNotFoundError) as e:
            print(f"train.py: error: {e}", file=sys.stderr)
            return 2
        print(f"compare it with every fleet policy on the test split:\n  python evaluate.py --scenario {args.scenario}")
        return 0
    try:
        run_dir = train(args)
    except (ConfigError, DataError, FileNotFoundError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    from evaluate import evaluate_command

    prog = "cmg-evaluate" if Path(sys.argv[0]).name == "cmg-train" else "python evaluate.py"
    print(f"compare it with every baseline on the test split:\n  {evaluate_command(run_dir, prog)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
