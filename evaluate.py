"""Compare policies on held-out episodes: ``python evaluate.py``.

Runs the chosen policies (default: every baseline and the oracle, plus the ``--agent`` runs, by default the
newest run under ``runs/`` trained on the scenario) on the same episodes of the scenario's test split,
through the one evaluation loop ``baselines.runner.run_episode``, and writes into ``--out``:

- ``episodes.csv``: one row per policy and episode (carbon, energy, completion time, migrations, ...,
  gap to the executed oracle and to its relaxed lower bound on the same episode);
- ``summary.csv``: one row per policy, means and Student-t 95% interval half-widths over episodes;
- ``report.md`` with the table and the plots ``carbon.png``, ``energy_vs_jct.png``, ``timeline_<policy>.png``;
  with ``caftm`` and ``stay`` among the policies, a section comparing CAFTM with its paper's claims.

The table and the results folder are printed as soon as this main comparison is done. ``--sensitivity`` then adds
the sensitivity to the model terms and a sweep of CAFTM's threshold (``theta_sweep.csv``, ``caftm_theta.png``).
Examples::

    python evaluate.py
    python evaluate.py --sensitivity                                     # + model-term sensitivity, theta sweep
    python evaluate.py --policies stay,caftm,oracle --episodes 50 --workers 2
    python evaluate.py --agent runs/imitation-paper-s0-20250101-120000 --period 2023-06-01:2023-09-01
    python evaluate.py --backend ray --episodes 200                      # Ray tasks on a local Ray
    python evaluate.py --backend ray --address ray://head:10001 --episodes 2000
    python evaluate.py --scenario fleet --episodes 5                     # CarbonFleet-v0 (evaluation/fleet.py)
    python evaluate.py --scenario fleet --period 2022-01-01:2023-01-01 --slack 1.0,1.5,3.0
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from evaluation import plots
from evaluation.episodes import AGENT_PREFIX, COLUMNS, EnvSpec, PolicySpec, plan_episodes, run_task
from evaluation.output import begin_output, publish
from evaluation.report import (
    ORACLE,
    add_oracle_gap,
    append_to_report,
    caftm_claims_section,
    data_label,
    print_table,
    summarize,
    write_report,
)
from loaders.carbon import PeriodOutOfRange
from loaders.world import build_world
from sim.carbon_synth import SOURCE as SYNTHETIC_SOURCE
from sim.errors import ConfigError, DataError
from sim.scenario import load_scenario, scenario_kind


class BadInput(Exception):
    """Invalid command-line input; the message names the option and the problem."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other bad-input error of this script
        raise BadInput(f"{message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description="Evaluate policies on the same held-out episodes: tables, 95% intervals, plots.")
    p.add_argument(
        "--policies",
        default="all",
        help="comma-separated baseline names (see baselines.POLICIES), 'all' (default), or 'none' (agents only)",
    )
    p.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="RUN_DIR_OR_MODEL",
        help="a trained agent (run directory or model .zip); repeatable; named after its run directory. "
        "Default: the newest run under --runs trained on --scenario; 'none': baselines only",
    )
    p.add_argument(
        "--runs", default="runs", metavar="DIR", help="where the default agent is looked for (default: runs)"
    )
    p.add_argument("--scenario", default="paper", help="shipped scenario name or path to a YAML file (default: paper)")
    p.add_argument(
        "--split",
        default="test",
        choices=("train", "validation", "test"),
        help="the scenario's date split to draw episodes from (default: test)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder of carbon-intensity files that adds or overrides zones and years of the shipped traces "
        "(data/traces; default: $CARBON_DATA_DIR, else ../shared/data if present); 'synthetic': synthetic profiles",
    )
    p.add_argument(
        "--period", default=None, metavar="START:END", help="UTC dates, e.g. 2023-03-01:2023-04-01 (overrides --split)"
    )
    p.add_argument("--episodes", type=int, default=20, help="episodes per policy (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed of episode starts and reset seeds (default: 0)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="episodes run in parallel processes; same results as 1 (default: 1; with --backend ray: the local "
        "Ray's CPUs, default all)",
    )
    p.add_argument(
        "--backend",
        default="processes",
        choices=("processes", "ray"),
        help="processes: --workers local processes (default); ray: one Ray task per episode, on a local Ray "
        "(--workers CPUs, default all) or the cluster at --address; same results either way",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="with --backend ray: a Ray cluster (ray://head:10001, or auto on a cluster node); default: local Ray",
    )
    p.add_argument(
        "--slack",
        default=None,
        metavar="F1,F2,...",
        help="fleet scenarios: deadline slack factors to sweep on the same episodes (writes slack.csv, slack.png)",
    )
    p.add_argument("--timeline-episode", type=int, default=0, help="episode whose timeline is plotted (default: 0)")
    p.add_argument(
        "--sensitivity",
        action="store_true",
        help="after the main comparison, add to report.md the sensitivity to the model terms (the policies "
        "re-run with each term switched off) and the CAFTM theta_CI sweep; off by default (several minutes)",
    )
    p.add_argument(
        "--sensitivity-episodes",
        type=int,
        default=10,
        help="with --sensitivity: episodes per policy and model term (default: 10, at most --episodes)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default results/<scenario>-<timestamp>); written complete or not at all",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    return p.parse_args(argv)


def parse_period(text: str) -> tuple[str, str]:
    """``"2023-03-01:2023-04-01"`` -> ``("2023-03-01", "2023-04-01")``, checked to be dates with START < END."""
    parts = text.split(":")
    if len(parts) != 2:
        raise BadInput(f"--period {text!r}: expected START:END as UTC dates, e.g. 2023-03-01:2023-04-01")
    try:
        start, end = (np.datetime64(p.strip(), "D") for p in parts)
    except ValueError:
        raise BadInput(f"--period {text!r}: {parts[0]!r} or {parts[1]!r} is not a date YYYY-MM-DD") from None
    if not start < end:
        raise BadInput(f"--period {text!r}: START must be before END")
    return str(start), str(end)


def choose_policies(text: str) -> list[str]:
    from baselines import POLICIES

    if text.strip() == "all":
        return list(POLICIES)
    if text.strip() == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise BadInput(
            f"--policies: unknown policy {', '.join(map(repr, unknown))}; "
            f"expected 'all' or some of {', '.join(POLICIES)}"
        )
    if not names:
        raise BadInput(f"--policies {text!r}: no policy named")
    return list(dict.fromkeys(names))


def check_agent(path: str, env_spec: EnvSpec, taken: set[str]) -> PolicySpec:
    """Load the agent once here so a missing/corrupt model or a scenario mismatch fails before any episode."""
    from agents.policy import load_agent
    from envs.carbon_migration import CarbonMigrationEnv

    try:
        agent = load_agent(path)
    except Exception as e:  # FileNotFoundError, AgentConfigError, ...: already name the file
        raise BadInput(f"--agent {path}: {e}") from None
    with warnings.catch_warnings():  # the data-source warning was already printed once by main
        warnings.simplefilter("ignore")
        env = CarbonMigrationEnv(env_spec.scenario, env_spec.split, env_spec.data_dir, env_spec.period)
    want, got = env.observation_space.shape, getattr(agent.model.observation_space, "shape", None)
    if got != want:
        raise BadInput(
            f"--agent {path}: model observes shape {got} but scenario {env.scenario.name!r} "
            f"gives {want}; evaluate it on the scenario it was trained on"
        )
    name, k = agent.name, 2
    while name in taken:
        name, k = f"{agent.name}-{k}", k + 1
    return PolicySpec(name, AGENT_PREFIX + str(path))


def print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Each distinct warning once, as one clean ``warning: ...`` line on stderr (no file/line/category)."""
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"warning: {message}", file=sys.stderr)


def newest_run(runs_dir: str | Path, scenario_name: str) -> Path | None:
    """The most recently saved training run under ``runs_dir`` trained on ``scenario_name``, or None.

    A run is a folder with ``config.yaml`` and ``best_model.zip`` or ``model.zip`` (what ``train.py`` writes);
    "most recent" is the newest model file's modification time.
    """
    import yaml

    found = []
    for cfg_path in Path(runs_dir).glob("*/config.yaml"):
        models = [m for m in (cfg_path.parent / "best_model.zip", cfg_path.parent / "model.zip") if m.is_file()]
        if not models:
            continue
        try:
            cfg = yaml.safe_load(cfg_path.read_text()) or {}
            name = cfg["scenario"]["name"]
        except (yaml.YAMLError, OSError, KeyError, TypeError):
            continue  # not a train.py run (or a damaged one): not a candidate for the default
        if name == scenario_name:
            found.append((max(m.stat().st_mtime for m in models), cfg_path.parent.name, cfg_path.parent))
    return max(found)[2] if found else None


def default_agents(agent_args: list[str], runs_dir: str, scenario_name: str) -> list[str]:
    """The ``--agent`` paths to evaluate: as given, none for ``--agent none``, else the newest matching run."""
    if agent_args:
        return [a for a in agent_args if a.strip().lower() != "none"]
    run = newest_run(runs_dir, scenario_name)
    if run is None:
        print(f"no trained agent under {runs_dir}/ for scenario {scenario_name!r}: baselines only (python train.py)")
        return []
    print(f"agent: the newest run under {runs_dir}/, {run} (pick one with --agent RUN_DIR, or --agent none)")
    return [str(run)]


def evaluate_command(run_dir: str | Path, prog: str = "python evaluate.py") -> str:
    """The command that compares the run in ``run_dir`` with every baseline on its scenario's test split."""
    import yaml

    from sim.scenario import SCENARIO_DIR

    cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    name, path = cfg["scenario"]["name"], cfg["scenario"]["path"]
    argv = ["--agent", str(run_dir)]
    shipped = Path(SCENARIO_DIR) / f"{name}.yaml"
    is_shipped = shipped.is_file() and Path(path).resolve() == shipped.resolve()
    if not (is_shipped and name == "paper"):  # paper is evaluate.py's default
        argv += ["--scenario", name if is_shipped else path]
    if cfg.get("data_dir"):
        argv += ["--data-dir", str(cfg["data_dir"])]
    return f"{prog} {shlex.join(argv)}"


def run_all(tasks, workers: int) -> list[dict]:
    """Run every task (progress bar over episodes); results in task order whatever ``workers`` is."""
    bar = tqdm(total=len(tasks), desc="episodes", unit="ep", file=sys.stderr)
    if workers == 1:
        results = []
        for t in tasks:
            results.append(run_task(t))
            bar.update()
    else:
        # spawn when torch models are involved (forking a process that runs torch threads can hang)
        import multiprocessing as mp

        ctx = mp.get_context("spawn" if any(t.policy.is_agent for t in tasks) else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(run_task, t) for t in tasks]
            for f in futures:  # in order; the bar still moves as each finishes
                f.add_done_callback(lambda _: bar.update())
            results = [f.result() for f in futures]
    bar.close()
    return results


def run_sensitivity(scenario, world, env_spec: EnvSpec, specs, args, out: Path) -> None:
    """Re-run the policies with each model term switched off and append the section to ``report.md``."""
    from evaluation.sensitivity import VARIANTS, sensitivity_markdown, write_variants

    n = min(args.sensitivity_episodes, args.episodes)
    paths = write_variants(scenario, out / "sensitivity")
    base_tasks = plan_episodes(world, env_spec, specs, n, args.seed, -1)
    summaries = {"": base_tasks}
    print(f"sensitivity: {len(VARIANTS)} variants x {len(base_tasks)} episodes", file=sys.stderr)
    for term, path in paths.items():
        spec = dataclasses.replace(env_spec, scenario=str(path))
        summaries[term] = plan_episodes(world, spec, specs, n, args.seed, -1)
    results = {k: run_all(t, args.workers) for k, t in summaries.items()}
    rows = {
        k: add_oracle_gap(pd.DataFrame([r["row"] for r in res], columns=list(COLUMNS))) for k, res in results.items()
    }
    tables = {k: summarize(df) for k, df in rows.items()}
    base = tables.pop("")
    with open(out / "report.md", "a", encoding="utf-8") as f:
        f.write("\n" + sensitivity_markdown(base, tables, n, rows[""]))
    run_checkpoint_sweep(scenario, world, env_spec, specs, args, out)


def run_checkpoint_sweep(scenario, world, env_spec: EnvSpec, specs, args, out: Path) -> None:
    """How savings scale with the model: the policies of ``CHECKPOINT_POLICIES`` (and any agent) on a few episodes
    per model size; ``checkpoint_sweep.csv``, ``checkpoint_sweep.png`` and a section of ``report.md``."""
    from evaluation import plots
    from evaluation.sensitivity import (
        CHECKPOINT_EPISODES,
        CHECKPOINT_POLICIES,
        checkpoint_markdown,
        checkpoint_savings,
        write_checkpoint_variants,
    )

    chosen = [s for s in specs if s.is_agent or s.source in CHECKPOINT_POLICIES]
    if not any(s.source == "stay" for s in chosen):
        return
    n = min(args.sensitivity_episodes, args.episodes, CHECKPOINT_EPISODES)
    paths = write_checkpoint_variants(scenario, out / "sensitivity")
    print(f"checkpoint sweep: {len(paths)} sizes x {len(chosen)} policies x {n} episodes", file=sys.stderr)
    rows = {}
    for params, path in paths.items():
        spec = dataclasses.replace(env_spec, scenario=str(path))
        res = run_all(plan_episodes(world, spec, chosen, n, args.seed, -1), args.workers)
        rows[params] = pd.DataFrame([r["row"] for r in res], columns=list(COLUMNS))
    table = checkpoint_savings(rows)
    table.to_csv(out / "checkpoint_sweep.csv", index=False)
    bpp = scenario.job.bytes_per_param
    plots.checkpoint_sweep(table, bpp, out / "checkpoint_sweep.png", title=f"{scenario.name}: savings by checkpoint")
    with open(out / "report.md", "a", encoding="utf-8") as f:
        f.write("\n" + checkpoint_markdown(table, bpp, "checkpoint_sweep.png"))


def run_all_ray(tasks, address: str | None, num_cpus: int | None, carbon_source: str) -> list[dict]:
    """:func:`run_all` as Ray tasks (one per episode), on a local Ray or the cluster at ``address``.

    The tasks are the same :class:`EpisodeTask` objects, seeded per episode, so the rows equal ``--workers 1``'s
    byte for byte. Paths are made absolute (a worker does not share this process's working directory), the raw
    data folder this process found is passed explicitly, and each worker checks it reads the same carbon data
    (``carbon_source``) before running an episode.
    """
    import dataclasses

    from evaluation.distributed import init_ray, ray_map, run_task_checked
    from sim.paths import SYNTHETIC, raw_data_dir

    # workers may not share this process's environment: name the data (or the synthetic series) explicitly
    found = SYNTHETIC if carbon_source == SYNTHETIC_SOURCE else raw_data_dir(None)

    def absolute(t):
        env = dataclasses.replace(
            t.env,
            scenario=str(Path(t.env.scenario).resolve()) if Path(t.env.scenario).exists() else t.env.scenario,
            data_dir=(str(Path(t.env.data_dir).resolve()) if t.env.data_dir != SYNTHETIC else SYNTHETIC)
            if t.env.data_dir
            else (str(found) if found else None),
        )
        policy = t.policy
        if policy.is_agent:
            policy = dataclasses.replace(policy, source=AGENT_PREFIX + str(Path(policy.path).resolve()))
        return dataclasses.replace(t, env=env, policy=policy)

    started = init_ray(address, num_cpus)
    bar = tqdm(total=len(tasks), desc="episodes (ray)", unit="ep", file=sys.stderr)
    try:
        return ray_map(run_task_checked, [(absolute(t), carbon_source) for t in tasks], on_done=bar.update)
    finally:
        bar.close()
        if started:
            import ray

            ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    from evaluation.distributed import exit_code, interrupts_unwind
    from evaluation.output import discard_unpublished

    try:
        with interrupts_unwind():  # SIGTERM unwinds like Ctrl-C: Ray is shut down, a half-written --out removed
            return _main(argv, t0)
    except BadInput as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        what = "SIGTERM" if exit_code(e) == 143 else "interrupted (Ctrl-C)"
        print(f"evaluate.py: {what}: stopped (--out holds complete results only)", file=sys.stderr)
        return exit_code(e)
    finally:
        discard_unpublished()


def _main(argv: list[str] | None, t0: float) -> int:
    args = parse_args(argv)
    if args.episodes < 1:
        raise BadInput(f"--episodes {args.episodes}: expected at least 1")
    if args.address and args.backend != "ray":
        raise BadInput(f"--address {args.address}: only used with --backend ray")
    if args.workers is not None and args.workers < 1:
        raise BadInput(f"--workers {args.workers}: expected at least 1")
    if not 0 <= args.timeline_episode < args.episodes:
        raise BadInput(f"--timeline-episode {args.timeline_episode}: expected 0..{args.episodes - 1}")
    period = parse_period(args.period) if args.period else None
    if scenario_kind(args.scenario) == "fleet":  # issue 10: CarbonFleet-v0, its own tables (evaluation/fleet.py)
        from evaluation.fleet import fleet_main

        try:
            return fleet_main(args, t0, newest_run, period)
        except (ConfigError, DataError) as e:  # they name the file or the option
            raise BadInput(str(e)) from None

    if args.slack:
        raise BadInput(f"--slack {args.slack}: only for fleet scenarios (kind: fleet)")

    # ---- scenario and held-out data
    try:
        scenario = load_scenario(args.scenario)
    except (ConfigError, DataError, OSError) as e:
        raise BadInput(f"--scenario {args.scenario}: {e}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            world = build_world(scenario, args.split, data_dir=args.data_dir, period=period)
        except (ConfigError, DataError) as e:  # data and scenario errors name their file; only this is --period's
            where = f"--period {args.period}: " if period and isinstance(e, PeriodOutOfRange) else ""
            raise BadInput(f"{where}{e}") from None
    print_warnings(caught)
    carbon = world.carbon
    env_spec = EnvSpec(str(scenario.source), args.split, args.data_dir, period)

    # ---- policies: baselines by name, agents loaded once to check them
    specs = [PolicySpec(n, n) for n in choose_policies(args.policies)]
    for path in default_agents(args.agent, args.runs, scenario.name):
        try:
            specs.append(check_agent(path, env_spec, {s.name for s in specs}))
        except BadInput as e:
            if args.agent:
                raise
            raise BadInput(
                f"{e} (the newest run under {args.runs}/, evaluated by default; --agent none skips it)"
            ) from None
    if not specs:
        raise BadInput("nothing to evaluate: --policies none and no --agent")

    # ---- results go to a hidden sibling of --out, moved into place when complete (evaluation/output.py)
    final = Path(args.out or f"results/{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        out = begin_output(final, args.overwrite)
    except ConfigError as e:
        raise BadInput(str(e)) from None

    # ---- the same episodes for every policy
    tasks = plan_episodes(world, env_spec, specs, args.episodes, args.seed, args.timeline_episode)
    if args.backend == "ray":
        results = run_all_ray(tasks, args.address, args.workers, carbon.source)
    else:
        results = run_all(tasks, args.workers or 1)

    # ---- per-episode rows, gap to the oracle, per-policy summary
    episodes = add_oracle_gap(pd.DataFrame([r["row"] for r in results], columns=list(COLUMNS)))
    if episodes["oracle_bound_kg"].isna().all():
        episodes = episodes.drop(columns="oracle_bound_kg")
    episodes.to_csv(out / "episodes.csv", index=False)
    summary = summarize(episodes)
    summary.to_csv(out / "summary.csv", index=False)

    # ---- plots and report
    data = data_label(carbon.source)
    label = f"{scenario.name}, {carbon.start_h} to {carbon.end_h} UTC, {args.episodes} episodes, {data}"
    figs = {"Carbon per episode": "carbon.png", "Energy vs completion time": "energy_vs_jct.png"}
    plots.carbon_bars(summary, out / "carbon.png", title=f"Carbon per episode, mean and 95% CI\n({label})")
    plots.energy_vs_jct(
        summary,
        out / "energy_vs_jct.png",
        scenario.job.deadline_hours,
        title=f"Energy vs completion time, mean and 95% CI\n({label})",
    )
    ci = carbon.intensity_g_per_kwh
    limits = plots.shared_limits([r["history"] for r in results if r["history"] is not None])
    for t, r in zip(tasks, results):
        if r["history"] is None:
            continue
        fname = f"timeline_{plots.safe_name(t.policy.name)}.png"
        plots.timeline(
            r["history"],
            ci[:, t.start_hour : t.start_hour + world.episode_hours],
            scenario.region_names,
            out / fname,
            title=f"{t.policy.name}: episode {t.episode} from {t.start_utc} UTC\n({scenario.name}, {data})",
            limits=limits,
            deadline_h=scenario.job.deadline_hours,
        )
        figs[f"Timeline of episode {t.episode}: {t.policy.name}"] = fname
    meta = {
        "scenario": scenario.name,
        "description": scenario.description,
        "scenario_file": scenario.source,
        "period": f"{carbon.start_h} to {carbon.end_h}",
        "split": f"{args.split} split" if period is None else "explicit --period",
        "data_source": carbon.source,
        "data_label": data,
        "synthetic": carbon.source == SYNTHETIC_SOURCE,
        "episodes": args.episodes,
        "seed": args.seed,
        "episode_hours": scenario.episode_hours,
        "step_minutes": scenario.step_minutes,
        "command": "python evaluate.py " + shlex.join(sys.argv[1:] if argv is None else argv),
    }
    write_report(out / "report.md", summary, meta, figs)
    claims = {"caftm", "stay"} <= set(episodes["policy"])  # the paper-claims section (+ theta sweep: --sensitivity)
    if claims and not args.sensitivity:
        append_to_report(out / "report.md", caftm_claims_section(episodes, None, None))
    if claims:  # CAFTM under each reading of its cost's units, side by side (a few episodes)
        from evaluation.theta_sweep import write_caftm_units

        write_caftm_units(out, tasks)

    # ---- the main comparison is done: publish it, say so before the optional extras
    publish(out, final.absolute())
    print_table(summary, title=f"{label} (mean ± 95% CI half-width, Student t)")
    if ORACLE not in set(episodes["policy"]):
        print("(no oracle run: gap to oracle not computed)")
    print(
        f"wrote {final}/ in {time.perf_counter() - t0:.1f} s: report.md (open this), summary.csv, episodes.csv, "
        f"{len(figs)} PNGs",
        flush=True,
    )
    if not args.sensitivity:
        print("(sensitivity to the model terms and the CAFTM theta_CI sweep: add --sensitivity)")
        return 0
    t1 = time.perf_counter()
    out = begin_output(final, copy=True)  # the extras go into a copy, published whole: a kill keeps the main result
    if args.sensitivity_episodes > 0:
        run_sensitivity(scenario, world, env_spec, specs, args, out)
    if claims:
        from evaluation.theta_sweep import write_caftm_claims

        print("CAFTM theta_CI sweep", file=sys.stderr, flush=True)
        write_caftm_claims(out, episodes, tasks, label)
    publish(out, final.absolute())
    print(f"added the sensitivity sections to {final}/report.md in {time.perf_counter() - t1:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
