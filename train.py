"""Train a Stable-Baselines3 agent on CarbonMigration-v0.

    python train.py                                  # the default agent on `paper`: imitation of the oracle (minutes)
    python train.py --algo dqn --timesteps 200000 --n-envs 8
    python train.py --resume runs/dqn-paper-s0-20250101-120000 --timesteps 300000   # to 300k in total
    python train.py --scenario fleet                 # the fleet agent: per-job, imitation (agents/fleet_train.py)

Reads top to bottom: options -> config -> environments -> model -> callbacks -> learn -> save. A run directory
``runs/<label>-<scenario>-s<seed>-<timestamp>/`` (``runs/<--name>`` if given; the label, e.g. ``imitation``, names
the agent in evaluate.py's tables) receives ``config.yaml`` (everything needed to reproduce or resume),
``progress.csv`` (SB3's learning curve), ``eval.csv`` (validation carbon per evaluation), ``best_model.zip`` (the
validation-selected model), ``model.zip`` (the last one) and ``checkpoints/step-<N>/``: complete, atomically
written saves (model and optimiser, step counter, for DQN/SAC/TD3 the replay buffer, with ``normalize_reward`` the
return statistics; see ``agents/checkpoint.py``) every ``--save-every`` steps and when the run ends or is stopped.
Ctrl-C and SIGTERM stop at the next rollout boundary, save, print the resume command and exit 130/143; after a
SIGKILL, ``--resume`` continues from the newest complete save. A resumed run ends bit-identical to the same run left
alone (the saves hold every generator and the envs' state, ``agents/checkpoint.py``).
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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

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
    from agents.fleet_train import fleet_hyperparameters

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
        f"after it), {fleet_hyperparameters(None)['timesteps']} PPO job decisions after imitation for a fleet "
        "scenario (agents/configs/fleet.yaml), "
        f"{TRAIN_DEFAULTS['timesteps']} if the config has none; with --resume, the run's saved total",
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
    """SB3 logger writing progress.csv (appended to when resuming) and optionally TensorBoard events.

    ``iterations_before`` (set when resuming) is added to SB3's ``time/iterations``, which counts the rollouts of
    one ``learn`` call, so a resumed run logs what the uninterrupted one would."""
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

    class RunLogger(Logger):
        iterations_before = 0

        def record(self, key, value, exclude=None):
            if key == "time/iterations":
                value += self.iterations_before
            super().record(key, value, exclude)

    formats = [AppendingCSV(run_dir / "progress.csv")]
    if tensorboard:
        formats.append(TensorBoardOutputFormat(str(run_dir / "tb")))
    return RunLogger(str(run_dir), formats)


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


@dataclass
class Run:
    """What a run is made of, whether it starts now or resumes: its folder, config and where it stands."""

    run_dir: Path
    cfg: dict
    algo: str
    seed: int
    n_envs: int
    vec: str
    hp: dict
    scenario: Any
    data_dir: str | None
    timesteps: int
    save_every: int
    save_dir: Path | None = None  # the save resumed from
    saved_state: dict = field(default_factory=dict)  # its state.yaml
    redo_imitation: bool = False  # killed during imitation, before its first save: imitation starts over

    @property
    def resuming(self) -> bool:
        return self.save_dir is not None


class Interrupted(Exception):
    """SIGTERM/SIGINT stopped the run; ``save_dir`` is the save it resumes from (None: nothing saved yet)."""

    def __init__(self, signum: int, run: Run, step: int | None, save_dir: Path | None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.run, self.step, self.save_dir = signum, run, step, save_dir


def check_batch_size(hp: dict, n_envs: int, source: str) -> None:
    """On-policy mini-batches are cut from one rollout of ``n_steps x n_envs`` steps: a larger batch is never full."""
    n_steps, batch = hp.get("n_steps"), hp.get("batch_size")
    if n_steps is not None and batch is not None and batch > n_steps * n_envs:
        raise ConfigError(
            f"{source}: batch_size: {batch} is larger than a rollout (n_steps {n_steps} x n_envs {n_envs} = "
            f"{n_steps * n_envs} steps); give batch_size <= {n_steps * n_envs} or more n_steps/n_envs"
        )


def resume_run(args: argparse.Namespace) -> Run:
    """The saved config of ``--resume RUN_DIR`` and its newest complete save."""
    from agents.checkpoint import latest_save
    from sim.scenario import load_scenario

    run_dir = Path(args.resume)
    cfg_path = run_dir / "config.yaml"
    saved = latest_save(run_dir) if cfg_path.is_file() else None
    # runs from before checkpoints/step-N/ existed kept their last state beside config.yaml
    save_dir = saved[0] if saved else run_dir
    redo_imitation = False
    if cfg_path.is_file() and not (save_dir / "model.zip").is_file():
        # imitation is deterministic for the seed, so redoing it ends the run as if it had not been killed
        redo_imitation = bool((yaml.safe_load(cfg_path.read_text()).get("hyperparams") or {}).get("imitation"))
    if not cfg_path.is_file() or not ((save_dir / "model.zip").is_file() or redo_imitation):
        raise ConfigError(
            f"--resume {run_dir}: expected a run directory with config.yaml and a complete save "
            "(checkpoints/step-N/ or model.zip) made by train.py"
        )
    cfg = yaml.safe_load(cfg_path.read_text())
    hp = cfg["hyperparams"]
    path = cfg["scenario"]["path"]
    scenario = load_scenario(path if Path(path).exists() else cfg["scenario"]["name"])
    timesteps = args.timesteps or cfg["timesteps"]
    save_every = args.save_every or cfg.get("save_every") or default_save_every(timesteps, hp)
    cfg["timesteps"], cfg["save_every"] = timesteps, save_every
    done = saved[1]["num_timesteps"] if saved else None
    if done is not None and done >= timesteps:  # before building anything
        raise ConfigError(
            f"--resume {run_dir}: the run already has {done} steps and --timesteps {timesteps} is the total; "
            f"give a total above {done}"
        )
    return Run(
        run_dir,
        cfg,
        cfg["algo"],
        cfg["seed"],
        cfg["n_envs"],
        cfg["vec"],
        hp,
        scenario,
        cfg["data_dir"],
        timesteps,
        save_every,
        None if redo_imitation else save_dir,
        saved[1] if saved else {},
        redo_imitation,
    )


def new_run(args: argparse.Namespace) -> Run:
    """A fresh run from the options and the algorithm's YAML config."""
    from agents.build import ALGOS, load_hyperparams
    from sim.scenario import load_scenario

    algo, seed = args.algo, args.seed
    source = args.config or f"agents/configs/{algo}.yaml"
    hp = load_hyperparams(algo, args.config)
    scenario = load_scenario(args.scenario)
    n_envs = args.n_envs or hp["n_envs"]
    check_batch_size(hp, n_envs, source)
    timesteps = args.timesteps or hp["timesteps"]
    if timesteps == 0 and not hp.get("imitation"):
        raise ConfigError(
            f"{source}: timesteps: 0 trains nothing without an imitation section; give --timesteps or an integer >= 1"
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
        "vec": args.vec,
        "data_dir": args.data_dir,
        "config_file": args.config,
        "hyperparams": hp,
        "versions": versions(),
        "created": datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "scenario_resolved": scenario.to_dict(),
    }
    return Run(run_dir, cfg, algo, seed, n_envs, args.vec, hp, scenario, args.data_dir, timesteps, save_every)


def load_model(run: Run, venv):
    """The model of the save resumed from: weights, optimiser, step counter, last observations, replay buffer."""
    from agents.build import algo_spec
    from agents.checkpoint import restore_logs

    spec = algo_spec(run.algo)
    # force_reset=False keeps the saved last observations: the restored envs continue those episodes
    model = spec.cls.load(run.save_dir / "model.zip", env=venv, device="cpu", force_reset=False)
    if spec.off_policy and (run.save_dir / "replay_buffer.pkl").exists():
        model.load_replay_buffer(run.save_dir / "replay_buffer.pkl")
    done = int(model.num_timesteps)
    dropped = restore_logs(run.run_dir, run.save_dir, done)  # log rows after the save are redone, not repeated
    run.cfg.setdefault("resumed", []).append(
        {
            "at_timesteps": done,
            "from": str(run.save_dir),
            "log_rows_dropped": dropped,
            "to_total": run.timesteps,
            "when": datetime.now().isoformat(timespec="seconds"),
        }
    )
    return model


def imitate(run: Run, model, validation, save, progress: bool) -> None:
    """agents/imitation.py: clone the oracle, DAgger, then validate and save before any RL step."""
    from agents.imitation import ImitationConfig, pretrain
    from envs.carbon_migration import CarbonMigrationEnv

    print(f"imitating the oracle on {run.scenario.name}'s training split (seed {run.seed}) -> {run.run_dir}")
    pretrain(
        model,
        CarbonMigrationEnv(run.scenario, "train", data_dir=run.data_dir),
        ImitationConfig.from_dict(run.hp["imitation"]),
        run.seed,
        run.run_dir / "imitation.csv",
        shield_fraction=run.hp.get("deadline_shield"),
        progress=progress,
    )
    validation.init_callback(model)
    validation.evaluate()  # the imitating policy is the first candidate for best_model.zip
    save()


class StopSignals:
    """SIGTERM (cluster schedulers, ``kill``) and SIGINT (Ctrl-C) while training: the first one asks training to
    stop at the next rollout boundary, where a save is exact (``agents.checkpoint.PeriodicSave``); a second one,
    or one outside ``learn`` (imitation), stops at once. The handler only sets a flag while learning: an exception
    raised from it could land in code that swallows it (a ``__del__`` running when the signal arrives)."""

    def __init__(self):
        self.stop = threading.Event()
        self.signum: int | None = None
        self.learning = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if self.learning and first:
            name = signal.Signals(signum).name
            print(f"\n{name}: stopping at the next save point (send it again to stop now)", file=sys.stderr)
            self.stop.set()
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def learn(run: Run, model, callbacks, signals: StopSignals, no_progress_bar: bool) -> None:
    """PPO/DQN/... steps from the model's step counter up to ``run.timesteps`` in total."""
    start = int(model.num_timesteps)
    if run.timesteps <= start:  # 0 RL steps: the imitating policy is the agent
        return
    print(
        f"{'resuming' if run.resuming else 'training'} {run.algo} on {run.scenario.name}"
        f"{f' from {start} steps' if run.resuming else ''} to {run.timesteps} steps in total "
        f"({run.n_envs} envs, seed {run.seed}, a save every {run.save_every} steps) -> {run.run_dir}",
        flush=True,
    )
    signals.learning = True
    try:
        model.learn(
            total_timesteps=run.timesteps - start if run.resuming else run.timesteps,  # SB3 adds the steps done
            callback=callbacks,
            progress_bar=not no_progress_bar,
            reset_num_timesteps=not run.resuming,
        )
    finally:
        signals.learning = False


def train(args: argparse.Namespace) -> Path:
    """Options -> run config -> environments -> model -> callbacks -> imitation -> learn -> save.

    :raises Interrupted: SIGTERM/SIGINT stopped the run (after a save at a rollout boundary, or at once)
    """
    from agents.checkpoint import TrainingStopped, latest_save

    # ---- config: a fresh run from options + YAML, or the saved config of the run being resumed
    run = resume_run(args) if args.resume else new_run(args)
    with StopSignals() as signals:
        try:
            return run_training(run, args, signals)
        except TrainingStopped as stopped:  # a requested stop, saved at the rollout boundary
            raise Interrupted(signals.signum, run, int(stopped.step), stopped.save_dir) from None
        except KeyboardInterrupt:  # a second signal, or one outside learn: the newest save is where it resumes
            saved = latest_save(run.run_dir)
            step, save_dir = (saved[1]["num_timesteps"], saved[0]) if saved else (None, None)
            raise Interrupted(signals.signum or signal.SIGINT, run, step, save_dir) from None


def run_training(run: Run, args: argparse.Namespace, signals: StopSignals) -> Path:
    import torch
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.utils import set_random_seed

    from agents.build import algo_spec, make_model, make_vec_env, normalize_rewards
    from agents.callbacks import ValidationCallback
    from agents.checkpoint import (
        PeriodicSave,
        StopAtTotal,
        atomic_save_model,
        atomic_write_text,
        load_resume_state,
        restore_resume_state,
    )
    from envs.carbon_migration import CarbonMigrationEnv
    from evaluation.report import data_label

    spec = algo_spec(run.algo)
    # ---- reproducibility: one torch thread, every RNG from the seed
    torch.set_num_threads(args.threads)
    set_random_seed(run.seed)

    # ---- environments: training split to learn on, validation split to select the model
    venv = make_vec_env(run.scenario, "train", run.algo, run.n_envs, run.seed, data_dir=run.data_dir, vec=run.vec)
    venv = normalize_rewards(venv, run.hp, run.save_dir / "vecnormalize.pkl" if run.resuming else None)
    eval_env = CarbonMigrationEnv(run.scenario, "validation", data_dir=run.data_dir)
    run.cfg["data_source"] = data_label(eval_env.world.carbon.source)  # real folder, or SYNTHETIC

    # ---- model: fresh, or the newest complete save (weights, optimiser, step counter, replay buffer)
    if run.resuming:
        model = load_model(run, venv)
    else:
        run.run_dir.mkdir(parents=True, exist_ok=run.redo_imitation)
        model = make_model(run.algo, run.hp, venv, run.seed)
    atomic_write_text(run.run_dir / "config.yaml", yaml.safe_dump(run.cfg, sort_keys=False))
    if run.redo_imitation:  # what the killed attempt wrote after its imitation, before its first save
        for stale in ("eval.csv", "best_model.zip", "imitation.csv", "progress.csv"):
            (run.run_dir / stale).unlink(missing_ok=True)

    # ---- callbacks: validation-split selection of best_model.zip, exact resumable saves, stop at the total
    t0, wall_before = time.time(), float((run.saved_state or run.cfg).get("wall_s", 0.0))
    validation = ValidationCallback(
        eval_env,
        run.algo,
        run.run_dir,
        eval_freq=run.hp["eval_freq"],
        n_episodes=run.hp["eval_episodes"],
        seed=run.seed,
        best=best_so_far(run.run_dir / "eval.csv"),
        verbose=1,
        shield_fraction=run.hp.get("deadline_shield"),
    )
    saver = PeriodicSave(
        run.run_dir,
        run.save_every,
        venv,
        spec.off_policy,
        stop=signals.stop,
        stateful={"validation": validation},
        state=lambda: {"wall_s": round(wall_before + time.time() - t0, 1)},
    )
    model.set_logger(make_logger(run.run_dir, args.tensorboard, append=run.resuming))
    resume_state = load_resume_state(run.save_dir) if run.resuming else None
    if resume_state is not None:  # last: loading the model reseeded the generators
        saver.rollouts = restore_resume_state(model, venv, resume_state, {"validation": validation})["rollouts"]
        model.logger.iterations_before = saver.rollouts
    elif run.resuming:  # a save from before resume.pkl existed: fresh episodes, still determined by the seed
        venv.seed(run.seed + int(model.num_timesteps))
        model._last_obs = None
    callbacks = CallbackList([saver, validation, StopAtTotal(run.timesteps)])
    saver.init_callback(model)  # saves before learn(): after imitation, and at the end of a 0-step run

    # ---- imitation (agents/imitation.py), then RL steps up to the total
    try:
        if not run.resuming and run.hp.get("imitation"):
            imitate(run, model, validation, saver.save, progress=not args.no_progress_bar)
        learn(run, model, callbacks, signals, args.no_progress_bar)
        saver.save()
        atomic_save_model(model, run.run_dir / "model.zip")
    finally:
        venv.close()
    wall_s = time.time() - t0
    run.cfg["timesteps_total"] = int(model.num_timesteps)
    run.cfg["wall_s"] = round(wall_before + wall_s, 1)
    atomic_write_text(run.run_dir / "config.yaml", yaml.safe_dump(run.cfg, sort_keys=False))
    best = best_so_far(run.run_dir / "eval.csv")
    best_text = ""
    if best:
        best_text = f"; best validation: carbon {best[1]:.2f} kg, deadline met {100 * best[0]:.0f}% -> best_model.zip"
    print(f"done in {wall_s:.0f} s, {model.num_timesteps} steps total. Saved {run.run_dir}/model.zip{best_text}")
    return run.run_dir


def report_interrupt(e: Interrupted) -> int:
    """Say on stderr what was saved and the exact command that continues the run; return 128 + the signal."""
    import shlex
    import shutil

    from agents.checkpoint import atomic_write_text

    prog = "cmg-train" if Path(sys.argv[0]).name == "cmg-train" else "python train.py"
    name, code = signal.Signals(e.signum).name, 128 + int(e.signum)
    run_dir = e.run.run_dir
    command = f"{prog} --resume {shlex.quote(str(run_dir))} --timesteps {e.run.timesteps}"
    if e.save_dir is None:
        if not e.run.hp.get("imitation"):  # nothing --resume could start from
            clear = f"rm -r {shlex.quote(str(run_dir))}; " if run_dir.exists() else ""
            command = clear + f"{prog} {shlex.join(sys.argv[1:])}"
        print(f"train.py: {name}: interrupted before the first save; start again with:\n  {command}", file=sys.stderr)
        return code
    # model.zip and config.yaml describe the save the run resumes from, not the steps after it
    shutil.copyfile(e.save_dir / "model.zip", run_dir / "model.tmp.zip")
    (run_dir / "model.tmp.zip").replace(run_dir / "model.zip")
    e.run.cfg["timesteps_total"] = e.step
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(e.run.cfg, sort_keys=False))
    print(
        f"train.py: {name}: interrupted, not finished: {e.step} of {e.run.timesteps} steps saved in {e.save_dir}; "
        f"to continue exactly where it stopped:\n  {command}",
        file=sys.stderr,
    )
    return code


def is_fleet_run(args: argparse.Namespace) -> bool:
    """A fleet scenario, or ``--resume`` of a fleet run (its config.yaml says ``env_id: CarbonFleet-v0``)."""
    from sim.scenario import scenario_kind

    if args.resume:
        cfg = Path(args.resume) / "config.yaml"
        return cfg.is_file() and (yaml.safe_load(cfg.read_text()) or {}).get("env_id") == "CarbonFleet-v0"
    return scenario_kind(args.scenario) == "fleet"


def main(argv=None) -> int:
    args = parse_args(argv)
    if is_fleet_run(args):  # issue 25: the per-job fleet agent on CarbonFleet-v0 (agents/fleet_train.py)
        from agents.fleet_train import train_fleet

        try:
            run_dir = train_fleet(args)
        except (ConfigError, DataError, FileNotFoundError) as e:
            print(f"train.py: error: {e}", file=sys.stderr)
            return 2
        except Interrupted as e:
            return report_interrupt(e)
        scenario = yaml.safe_load((run_dir / "config.yaml").read_text())["scenario"]["name"]
        print(
            "compare it with every fleet policy on the test split:\n"
            f"  python evaluate.py --scenario {scenario} --agent {run_dir}"
        )
        return 0
    try:
        run_dir = train(args)
    except (ConfigError, DataError, FileNotFoundError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        return report_interrupt(e)
    from evaluate import evaluate_command

    prog = "cmg-evaluate" if Path(sys.argv[0]).name == "cmg-train" else "python evaluate.py"
    print(f"compare it with every baseline on the test split:\n  {evaluate_command(run_dir, prog)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
