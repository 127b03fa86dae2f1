"""Training seeds and hyper-parameter searches on Ray Tune: ``python sweep.py``.

Every trial calls ``train.train`` (what ``python train.py`` runs) with its own config file, so a trial's run
directory is an ordinary ``train.py`` run (``config.yaml``, ``eval.csv``, ``best_model.zip``, ...) that
``evaluate.py --agent`` accepts. Trials are scored like ``train.py`` selects its best model: on the validation
split, highest deadline-met rate first, then lowest carbon (see ``--help`` for the objective).

    python sweep.py --seeds 0,1,2,3                                  # the default agent over four seeds
    python sweep.py --space space.yaml --trials 20 --seeds 0,1       # Optuna search, each trial on 2 seeds
    python sweep.py --space space.yaml --trials 200 --address ray://head:10001   # on a Ray cluster

Writes into ``--out``: ``results.csv`` (one row per trial, best first), ``best_config.yaml`` (the best trial's
hyper-parameters, for ``train.py --config``), ``sweep.yaml`` (what was run) and ``runs/`` (every trial's runs).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

DISTRIBUTIONS = ("loguniform", "uniform", "int", "choice")
# missed deadlines dominate: this weight exceeds any policy's carbon per episode (stay on paper emits ~22 kg),
# so a config meeting more deadlines always ranks first, as in train.py's model selection
DEADLINE_WEIGHT_KG = 1000.0

SPACE_HELP = """\
search-space file (YAML): hyper-parameter -> a fixed value or ONE of
  {loguniform: [LOW, HIGH]}  float, log-uniform       e.g. learning_rate: {loguniform: [1.0e-4, 1.0e-3]}
  {uniform: [LOW, HIGH]}     float, uniform           e.g. ent_coef: {uniform: [0.0, 0.02]}
  {int: [LOW, HIGH]}         integer, both inclusive  e.g. n_epochs: {int: [5, 20]}
  {choice: [A, B, ...]}      one of the values        e.g. batch_size: {choice: [64, 128, 256]}
                                                      policy_kwargs: {choice: [{net_arch: [64]}, {net_arch: [128]}]}
Keys are those of agents/configs/<algo>.yaml (constructor keywords, plus n_envs, eval_freq, eval_episodes, ...);
the file's values go over --config's, which go over the shipped config. Without --space (or with no
distribution in it) the sweep runs the --seeds as independent trials."""


class BadInput(Exception):
    """Invalid command-line input or search-space file; the message names the option or key."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"{message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(
        prog="sweep.py",
        description="Training seeds and hyper-parameter searches (Ray Tune, Optuna search); each trial runs "
        "train.py's training function and is scored on the validation split: objective = mean validation carbon "
        f"(kg/episode) + {DEADLINE_WEIGHT_KG:g} x (1 - deadline-met rate), lower is better.",
        epilog=SPACE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--space", default=None, metavar="YAML", help="search-space file (format below)")
    p.add_argument(
        "--trials", type=int, default=10, help="trials of the Optuna search (default: 10; ignored for seeds only)"
    )
    p.add_argument(
        "--seeds", default="0", help="comma-separated training seeds; each search trial trains all (default: 0)"
    )
    p.add_argument("--algo", default="maskable_ppo", help="algorithm key of train.py (default: maskable_ppo)")
    p.add_argument("--scenario", default="paper", help="shipped scenario name or scenario YAML (default: paper)")
    p.add_argument("--timesteps", type=int, default=None, help="steps per training run (default: the config's)")
    p.add_argument("--config", default=None, metavar="YAML", help="fixed hyper-parameters under the space's")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="carbon traces (on a cluster: same path on nodes)")
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to run on (ray://head:10001, or auto on a cluster node); default: a local Ray",
    )
    p.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray (default: all of this machine)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs reserved per trial (default: 1)")
    p.add_argument("--search-seed", type=int, default=0, help="seed of the Optuna sampler (default: 0)")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="default: sweeps/<scenario>-<algo>-<timestamp>; written complete or not at all",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    args = p.parse_args(argv)
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise BadInput(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not args.seed_list:
        raise BadInput(f"--seeds {args.seeds!r}: no seed given")
    for opt in ("trials", "timesteps", "cpus"):
        v = getattr(args, opt)
        if v is not None and v < 1:
            raise BadInput(f"--{opt} {v}: expected at least 1")
    return args


def read_space(path: str | None) -> tuple[dict, dict]:
    """(fixed hyper-parameters, distributions ``key -> (kind, args)``) of a search-space file."""
    if path is None:
        return {}, {}
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise BadInput(f"--space {path}: {e}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise BadInput(f"--space {path}: expected a mapping of hyper-parameter -> value or distribution")
    fixed, dists = {}, {}
    for key, value in data.items():
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS:
            kind, spec = next(iter(value.items()))
            ok = isinstance(spec, list) and (
                len(spec) >= 1 if kind == "choice" else len(spec) == 2 and all(_is_num(x) for x in spec)
            )
            if ok and kind != "choice":
                ok = spec[0] < spec[1] and (kind != "loguniform" or spec[0] > 0)
                ok = ok and (kind != "int" or all(float(x).is_integer() for x in spec))
            if not ok:
                want = "a non-empty list" if kind == "choice" else "[LOW, HIGH] numbers with LOW < HIGH"
                want += " (LOW > 0)" if kind == "loguniform" else ""
                raise BadInput(f"--space {path}: {key}: {kind} needs {want}, got {spec!r}")
            dists[key] = (kind, spec)
        else:
            fixed[key] = value
    return fixed, dists


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def tune_space(dists: dict) -> dict:
    """Ray Tune sampling domains of the distributions (Optuna samples them through ``OptunaSearch``).

    Choices that are not scalars (e.g. ``{net_arch: [64, 64]}``) are sampled as their YAML text
    (Optuna's categories must be scalars) and decoded by :func:`decode`.
    """
    from ray import tune

    space = {}
    for key, (kind, spec) in dists.items():
        if kind == "loguniform":
            space[key] = tune.loguniform(float(spec[0]), float(spec[1]))
        elif kind == "uniform":
            space[key] = tune.uniform(float(spec[0]), float(spec[1]))
        elif kind == "int":
            space[key] = tune.randint(int(spec[0]), int(spec[1]) + 1)  # randint's upper bound is exclusive
        else:
            scalar = all(v is None or isinstance(v, (bool, int, float, str)) for v in spec)
            space[key] = tune.choice(spec if scalar else [yaml.safe_dump(v, default_flow_style=True) for v in spec])
    return space


def decode(params: dict, dists: dict) -> dict:
    """Sampled values as plain YAML data (non-scalar choices parsed back from their text)."""
    out = {}
    for key, value in params.items():
        kind, spec = dists.get(key, (None, None))
        if kind == "choice" and isinstance(value, str) and value not in spec:
            value = yaml.safe_load(value)
        elif hasattr(value, "item"):  # numpy scalar
            value = value.item()
        out[key] = value
    return out


def best_row(eval_csv: Path) -> dict:
    """The evaluation train.py would keep (highest deadline-met rate, then lowest carbon) from ``eval.csv``."""
    import csv

    with eval_csv.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise RuntimeError(f"{eval_csv}: no validation evaluation recorded")
    r = max(rows, key=lambda r: (float(r["deadline_met_rate"]), -float(r["mean_carbon_kg"])))
    return {"carbon_kg": float(r["mean_carbon_kg"]), "deadline_met_rate": float(r["deadline_met_rate"])}


def train_trial(config: dict) -> dict:
    """One trial: ``train.train`` on every seed with the trial's hyper-parameters; returns its scores.

    :param config: ``hp`` (sampled values), ``setup`` (the sweep's fixed settings), optionally ``seed``.
    """
    from ray import tune

    import train

    setup = config["setup"]
    hp = decode(config.get("hp", {}), setup["dists"])

    trial = tune.get_context().get_trial_id() or f"t{int(time.time())}"
    seeds = [config["seed"]] if "seed" in config else setup["seeds"]
    out = Path(setup["out"])
    cfg_file = out / "configs" / f"{trial}.yaml"
    cfg_file.parent.mkdir(parents=True, exist_ok=True)
    trial_hp = {**setup["fixed"], **hp}
    cfg_file.write_text(yaml.safe_dump(trial_hp, sort_keys=False))
    t0 = time.time()
    scores, run_dirs = [], []
    for seed in seeds:
        argv = ["--algo", setup["algo"], "--scenario", setup["scenario"], "--seed", str(seed)]
        argv += ["--config", str(cfg_file), "--out", str(out / "runs"), "--name", f"{trial}-s{seed}"]
        argv += ["--no-progress-bar"] + (["--timesteps", str(setup["timesteps"])] if setup["timesteps"] else [])
        argv += ["--data-dir", setup["data_dir"]] if setup["data_dir"] else []
        run_dir = train.train(train.parse_args(argv))
        scores.append(best_row(run_dir / "eval.csv"))
        run_dirs.append(str(run_dir))
    carbon = sum(s["carbon_kg"] for s in scores) / len(scores)
    met = sum(s["deadline_met_rate"] for s in scores) / len(scores)
    return {
        "objective": carbon + DEADLINE_WEIGHT_KG * (1.0 - met),
        "val_carbon_kg": carbon,
        "val_deadline_met_rate": met,
        "seeds": ",".join(map(str, seeds)),
        "wall_s": round(time.time() - t0, 1),
        "run_dirs": ";".join(run_dirs),
    }


def main(argv: list[str] | None = None) -> int:
    from evaluation.distributed import exit_code, interrupts_unwind
    from evaluation.output import discard_unpublished

    try:
        with interrupts_unwind():  # SIGTERM unwinds like Ctrl-C: Ray is shut down, a half-written --out removed
            return _main(argv)
    except BadInput as e:
        print(f"sweep.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        what = "SIGTERM" if exit_code(e) == 143 else "interrupted (Ctrl-C)"
        print(f"sweep.py: {what}: stopped (--out holds complete results only)", file=sys.stderr)
        return exit_code(e)
    finally:
        discard_unpublished()


def _main(argv: list[str] | None) -> int:
    """Options -> checked inputs -> Ray Tune -> one row per trial -> results, into a staged --out."""
    from evaluation.output import begin_output, publish
    from sim.errors import ConfigError

    args = parse_args(argv)
    t0 = time.perf_counter()
    scenario, fixed, dists = read_inputs(args)
    final = Path(args.out or f"sweeps/{scenario.name}-{args.algo}-{datetime.now():%Y%m%d-%H%M%S}").absolute()
    try:
        out = begin_output(final, args.overwrite)  # moved to --out when complete (evaluation/output.py)
    except ConfigError as e:
        raise BadInput(str(e)) from None
    check_fixed(args, fixed, dists, out / "configs" / "fixed.yaml")  # fail before starting Ray
    setup = {
        "algo": args.algo,
        "scenario": str(Path(scenario.source).resolve()),
        "timesteps": args.timesteps,
        "data_dir": str(Path(args.data_dir).resolve()) if args.data_dir else None,
        "seeds": args.seed_list,
        "fixed": fixed,
        "dists": dists,
        "out": str(out),
    }
    write_sweep_yaml(out / "sweep.yaml", args, argv, setup, dists, final)
    rows, failed = collect_rows(run_tune(args, setup, dists, out), dists, str(out), str(final))
    for line in failed:
        print(f"sweep.py: trial failed: {line}", file=sys.stderr)
    if not rows:
        publish(out, final)  # the failed trials' logs are the result
        print(f"sweep.py: error: no trial finished (see {final}/tune)", file=sys.stderr)
        return 1
    best = write_results(out, rows, fixed)
    publish(out, final)
    report(args, rows, failed, final, bool(dists), t0)
    return 0 if not math.isnan(best["objective"]) else 1


def read_inputs(args: argparse.Namespace) -> tuple:
    """The scenario, the fixed hyper-parameters (--config under --space's fixed values) and the distributions."""
    from sim.errors import ConfigError
    from sim.scenario import load_scenario

    fixed, dists = read_space(args.space)
    if args.config:
        try:
            base = yaml.safe_load(Path(args.config).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise BadInput(f"--config {args.config}: {e}") from None
        fixed = {**base, **fixed}
    try:
        scenario = load_scenario(args.scenario)
    except (ConfigError, OSError) as e:
        raise BadInput(f"--scenario {args.scenario}: {e}") from None
    return scenario, fixed, dists


def check_fixed(args: argparse.Namespace, fixed: dict, dists: dict, check: Path) -> None:
    """The fixed keys, with an example value of each distribution, must be what train.py accepts."""
    from agents.build import load_hyperparams
    from sim.errors import ConfigError

    check.parent.mkdir(exist_ok=True)
    check.write_text(yaml.safe_dump({**fixed, **{k: _example(*d) for k, d in dists.items()}}))
    try:
        load_hyperparams(args.algo, check)
    except ConfigError as e:
        raise BadInput(str(e).replace(str(check), args.space or args.config or "--space")) from None


def write_sweep_yaml(path: Path, args, argv, setup: dict, dists: dict, final: Path) -> None:
    search = bool(dists)
    what = {
        "command": "python sweep.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "mode": "optuna search" if search else "seeds",
        "trials": args.trials if search else len(args.seed_list),
        **{k: v for k, v in setup.items() if k != "dists"},
        "out": str(final),
        "space": {k: {kind: spec} for k, (kind, spec) in dists.items()},
        "objective": f"val_carbon_kg + {DEADLINE_WEIGHT_KG:g} * (1 - val_deadline_met_rate), minimised",
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    path.write_text(yaml.safe_dump(what, sort_keys=False))


def run_tune(args: argparse.Namespace, setup: dict, dists: dict, out: Path):
    """Every trial on Ray Tune (an Optuna search over ``dists``, else one trial per seed); the result grid."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no per-trial progress tables
    import optuna
    import ray
    from ray import tune

    from evaluation.distributed import init_ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = init_ray(args.address, args.cpus)
    try:
        trainable = tune.with_resources(train_trial, {"cpu": args.cpus_per_trial})
        names = {"trial_name_creator": _trial_name, "trial_dirname_creator": _trial_name}
        if dists:
            from ray.tune.search.optuna import OptunaSearch

            param_space = {"setup": setup, "hp": tune_space(dists)}
            search = OptunaSearch(seed=args.search_seed)
            tune_config = tune.TuneConfig(
                metric="objective", mode="min", search_alg=search, num_samples=args.trials, **names
            )
        else:
            param_space = {"setup": setup, "seed": tune.grid_search(args.seed_list)}
            tune_config = tune.TuneConfig(metric="objective", mode="min", **names)
        run_config = tune.RunConfig(name="tune", storage_path=str(out), verbose=0)
        return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()
    finally:
        if started:
            ray.shutdown()


def collect_rows(grid, dists: dict, staged: str, final: str) -> tuple[list[dict], list[str]]:
    """One row per finished trial, best first (run folders named where they will be: under --out), and one line
    per failed trial."""
    rows, failed = [], []
    for result in grid:
        cfg = result.config or {}
        if result.error is not None or not result.metrics or "objective" not in result.metrics:
            failed.append(f"{result.path}: {type(result.error).__name__}: {result.error}".splitlines()[0])
            continue
        m = result.metrics
        hp = decode(cfg.get("hp", {}), dists)
        row = {"trial": m.get("trial_id")}
        row.update(
            {
                k: (yaml.safe_dump(v, default_flow_style=True).strip() if isinstance(v, (dict, list)) else v)
                for k, v in hp.items()
            }
        )
        row.update({k: m[k] for k in ("objective", "val_carbon_kg", "val_deadline_met_rate", "seeds", "wall_s")})
        row["run_dirs"] = m["run_dirs"].replace(staged, final)
        row["_hp"] = hp
        rows.append(row)
    rows.sort(key=lambda r: (r["objective"], str(r["trial"])))
    return rows, failed


def write_results(out: Path, rows: list[dict], fixed: dict) -> dict:
    """``results.csv`` and ``best_config.yaml``; returns the best row."""
    import pandas as pd

    pd.DataFrame([{k: v for k, v in r.items() if k != "_hp"} for r in rows]).to_csv(out / "results.csv", index=False)
    (out / "best_config.yaml").write_text(yaml.safe_dump({**fixed, **rows[0]["_hp"]}, sort_keys=False))
    return rows[0]


def report(args: argparse.Namespace, rows: list[dict], failed: list[str], out: Path, search: bool, t0: float) -> None:
    import pandas as pd

    table = pd.DataFrame([{k: v for k, v in r.items() if k != "_hp"} for r in rows])
    best = rows[0]
    shown = table.drop(columns=["run_dirs"])
    with pd.option_context("display.width", 120, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(shown.to_string(index=False))
    if not search and len(rows) > 1:  # seeds: the spread over training seeds is the result
        from evaluation.report import ci95_half_width

        c = table["val_carbon_kg"]
        print(
            f"over {len(rows)} seeds: validation carbon {c.mean():.2f} ± {ci95_half_width(c):.2f} kg "
            f"(95% CI), deadline met {100 * table['val_deadline_met_rate'].mean():.0f}%"
        )
    ts = f" --timesteps {args.timesteps}" if args.timesteps else ""
    print(
        f"best trial {best['trial']}: validation carbon {best['val_carbon_kg']:.2f} kg, deadline met "
        f"{100 * best['val_deadline_met_rate']:.0f}% ({len(rows)} trials, {len(failed)} failed)\n"
        f"wrote {out}/ (results.csv, best_config.yaml, sweep.yaml, runs/) in {time.perf_counter() - t0:.0f} s\n"
        f"train it: python train.py --algo {args.algo} --config {shlex.quote(str(out / 'best_config.yaml'))}{ts}"
    )


def _trial_name(trial) -> str:
    return f"trial-{trial.trial_id}"  # short: the default name spells out the whole config


def _example(kind: str, spec: list):
    """A value of the distribution, to validate the key and its type before any trial runs."""
    return spec[0] if kind in ("choice", "int") else float(spec[0])


if __name__ == "__main__":
    sys.exit(main())
