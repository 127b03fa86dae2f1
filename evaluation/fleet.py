"""Fleet evaluation (``python evaluate.py --scenario fleet``): every fleet policy, the LP bound and trained agents
on the same episodes of the scenario's split or an explicit ``--period`` (CarbonFleet-v0, issues 10 and 25).

Writes into the output folder:

- ``episodes.csv``: one row per policy and episode, columns :data:`EPISODE_COLUMNS` plus ``bound_kg`` (the
  episode's LP lower bound, ``baselines/fleet_bound.py``) and ``bound_gap_pct`` (carbon over the bound, %; only
  where the policy completed every job: the same work as the bound, else empty);
- ``summary.csv``: one row per policy, ``<metric>_mean`` / ``<metric>_ci95`` (Student-t 95% half-width over
  episodes), ``bound_gap_pct_mean`` / ``bound_gap_pct_max`` (over the episodes with the same work) and
  ``bound_ratio_mean`` / ``bound_ratio_max`` (carbon / bound);
- ``report.md``: the table, the command, what the bound relaxes, and any episode below the bound;
- ``carbon.png`` (carbon per policy, 95% intervals) and ``gpus_in_use.png`` (GPUs each policy holds per region over
  one episode, against the pools' free GPUs);
- with ``--slack a,b,c``: the same episodes at each deadline slack factor, ``slack.csv`` (policy, slack_factor,
  carbon_kg_mean, deadline_met_rate, savings_vs_stay_pct) and ``slack.png``.

Episode ``e`` is ``env.reset(seed=seed * 1000 + e)`` for every policy: the same jobs, carbon window and pools. Each
episode is one task (:func:`run_fleet_task`), run in this process, in ``--workers`` processes or as Ray tasks
(``--backend ray``); the results are the same whichever runs them.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from baselines.fleet_policies import FLEET_POLICIES, FleetPolicy, episode_bound, run_fleet_episode
from envs.fleet import CarbonFleetEnv
from evaluation.output import begin_output, check_output, publish
from evaluation.report import ci95_half_width
from sim.errors import ConfigError
from sim.scenario import FleetScenario, load_fleet_scenario

EPISODE_COLUMNS = (
    "policy",
    "episode",
    "seed",
    "slack_factor",
    "carbon_kg",
    "energy_kwh",
    "jobs",
    "jobs_completed",
    "completed_rate",
    "work_charged_rate",
    "deadline_met_rate",
    "late_h",
    "jct_h_mean",
    "queue_h_mean",
    "migrations",
    "gpu_util",
    "cap_violation_s",
    "lost_minibatches",
)
METRICS = EPISODE_COLUMNS[4:] + ("bound_gap_pct",)
# what the LP bound (baselines/fleet_bound.py) leaves out: report.md lists it next to the gap column
BOUND_RELAXES = (
    "a job may split a decision step between regions and clock levels, in any fractions, with no checkpoint, "
    "transfer or restart between them (no migration or pause costs time, energy or a rollback)",
    "the pools' capacity is GPU-time per step (the step's free GPUs x the share of it the region is up), not whole "
    "GPUs held for the step: two jobs may share a GPU within a step, and a job's GPUs count only while it trains, "
    "not through the step it leaves a region in (the simulator counts the most GPUs a job held in the step)",
    "only busy energy counts (GPU + host at the chosen clock, x PUE): no idle power while restoring or writing "
    "checkpoints, no checkpoint stalls, no transfer energy",
    "perfect foresight of intensity and free GPUs, and no GPU failures, failed transfers or preemptions",
    "a regional power cap limits the power of the jobs above the lowest clock averaged over a step (the engine "
    "throttles at every instant, in service order); the lowest clock may exceed it, as in the engine",
)


class AgentFleetPolicy(FleetPolicy):
    """A trained fleet agent (``train.py --scenario fleet``): the per-job agent of ``agents/fleet_agent.py``
    (``action: per_job`` in its ``config.yaml``; played through ``step_jobs`` behind the deadline shield, its row
    named ``<learned_by>:<run name>``, e.g. ``imitation:fleet-s0-...``), or an earlier slot agent
    (``CarbonFleetEnv.step``, ``agent:<run name>``)."""

    def __init__(self, run_dir: str | Path):
        import yaml
        from sb3_contrib import MaskablePPO

        run = Path(run_dir)
        path = run / "best_model.zip" if (run / "best_model.zip").is_file() else run / "model.zip"
        if not path.is_file():
            raise ConfigError(f"--agent {run_dir}: no best_model.zip or model.zip (train with train.py)")
        self.model = MaskablePPO.load(str(path), device="cpu")
        cfg_path = run / "config.yaml"
        cfg = (yaml.safe_load(cfg_path.read_text()) or {}) if cfg_path.is_file() else {}
        self.uses_slots = cfg.get("action") != "per_job"
        if self.uses_slots:
            self.name = f"agent:{run.name}"
        else:
            from agents.fleet_agent import FleetAgentPolicy, n_job_features

            where = cfg["scenario"]["path"]
            sc = load_fleet_scenario(where if Path(where).exists() else cfg["scenario"]["name"])
            want = (n_job_features(len(sc.regions), sc.clock_levels),)
            got = getattr(self.model.observation_space, "shape", None)
            if got != want:
                raise ConfigError(
                    f"--agent {run_dir}: the model observes {got} features per job, this version's per-job "
                    f"observation has {want} (agents/fleet_agent.py changed since it was trained: train it again)"
                )
            self.name = f"{cfg.get('learned_by', 'agent')}:{run.name}"
            self.per_job = FleetAgentPolicy(self.model, self.name)

    def act_slots(self, env: CarbonFleetEnv, obs: np.ndarray) -> np.ndarray:
        action, _ = self.model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        return action


def run_agent_episode(env: CarbonFleetEnv, policy: AgentFleetPolicy, seed: int, log_gpus: bool = False) -> dict:
    if not policy.uses_slots:
        return run_fleet_episode(env, policy.per_job, seed, log_gpus)
    obs, _ = env.reset(seed=seed)
    done = truncated = False
    info: dict = {}
    while not (done or truncated):
        obs, _, done, truncated, info = env.step(policy.act_slots(env, obs))
    out = dict(info["fleet_episode"])
    if log_gpus:
        out["gpus_in_use"] = env.gpus_in_use_log()
    return out


def fleet_policy_names(text: str) -> list[str]:
    if text == "all":
        return list(FLEET_POLICIES)
    if text == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in FLEET_POLICIES]
    if bad:
        raise ConfigError(f"--policies: unknown fleet policy {bad[0]!r}; expected any of {', '.join(FLEET_POLICIES)}")
    return names


@dataclasses.dataclass(frozen=True)
class FleetTask:
    """One episode of every policy and agent (what a worker process or Ray task runs)."""

    scenario: FleetScenario
    split: str
    data_dir: str | None
    period: tuple[str, str] | None
    policies: tuple[str, ...]
    agents: tuple[str, ...]
    episode: int
    seed: int
    log_gpus: bool


_ENVS: dict = {}
_AGENTS: dict = {}


def run_fleet_task(task: FleetTask) -> dict:
    """Run one episode of every policy of ``task``: ``{"rows": [...], "gpus": {policy: (log, free, start)},
    "carbon_source": ...}``. Environments and agents are cached per process (a worker runs many episodes)."""
    key = (repr(task.scenario), task.split, task.data_dir, task.period)
    if key not in _ENVS:
        _ENVS[key] = CarbonFleetEnv(task.scenario, task.split, task.data_dir, period=task.period)
    env = _ENVS[key]
    runners: list = [(name, FLEET_POLICIES[name]()) for name in task.policies]
    for path in task.agents:
        if path not in _AGENTS:
            _AGENTS[path] = AgentFleetPolicy(path)
        runners.append((_AGENTS[path].name, _AGENTS[path]))
    s = task.seed
    env.reset(seed=s)
    bound_kg = episode_bound(env, schedule=False).carbon_kg
    start_utc = str(env.start_utc)
    rows, gpus = [], {}
    for name, pol in runners:
        if isinstance(pol, AgentFleetPolicy):
            m = run_agent_episode(env, pol, s, task.log_gpus)
        else:
            m = run_fleet_episode(env, pol, s, task.log_gpus)
        if task.log_gpus:
            gpus[name] = (m.pop("gpus_in_use"), env.free[0].copy(), start_utc)
        same_work = m["jobs_completed"] == m["jobs"] and math.isfinite(bound_kg)
        gap = 100.0 * (m["carbon_kg"] - bound_kg) / bound_kg if same_work else math.nan
        rows.append(
            {
                "policy": name,
                "episode": task.episode,
                "seed": s,
                "slack_factor": task.scenario.jobs.slack_factor,
                **m,
                "bound_kg": bound_kg,
                "bound_gap_pct": gap,
            }
        )
    return {"rows": rows, "gpus": gpus, "carbon_source": env.world.carbon.source}


def run_fleet_tasks(tasks: list[FleetTask], workers: int = 1, backend: str = "processes", address=None) -> list:
    """Every task's result, in task order, whichever runs them (same results)."""
    if backend == "ray":
        from evaluation.distributed import init_ray, ray_map

        started = init_ray(address, workers)
        try:
            return ray_map(run_fleet_task, tasks)
        finally:
            if started:
                import ray

                ray.shutdown()
    if workers == 1:
        return [run_fleet_task(t) for t in tasks]
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # torch (agents) and forked threads do not mix
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(run_fleet_task, tasks))


def evaluate_fleet(
    scenario: str,
    policies: list[str],
    agents: list[str],
    episodes: int,
    split: str = "test",
    seed: int = 0,
    out: str | Path | None = None,
    timeline_episode: int = 0,
    data_dir: str | None = None,
    period: tuple[str, str] | None = None,
    slacks: list[float] | None = None,
    workers: int = 1,
    backend: str = "processes",
    address: str | None = None,
    command: str = "",
    overwrite: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, Path, float]:
    """Run the policies and agents; write the tables, report and plots into a hidden sibling of ``out`` that
    becomes ``out`` when complete (``evaluation.output``; an existing non-empty ``out`` only with ``overwrite``).
    Returns (episodes, summary, out dir, wall s). ``slacks``: deadline slack factors to sweep (``slack.csv``); the
    summary is at the scenario's own factor when it is among them, else at the first."""
    t0 = time.perf_counter()
    sc = load_fleet_scenario(scenario)
    final = Path(out or f"results/{sc.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_output(final.absolute(), overwrite)  # refuse before the episodes run, not after
    factors = list(slacks) if slacks else [sc.jobs.slack_factor]
    main_factor = sc.jobs.slack_factor if sc.jobs.slack_factor in factors else factors[0]
    tasks = [
        FleetTask(
            dataclasses.replace(sc, jobs=dataclasses.replace(sc.jobs, slack_factor=float(f))),
            split,
            data_dir,
            period,
            tuple(policies),
            tuple(str(a) for a in agents),
            e,
            seed * 1000 + e,
            e == timeline_episode and f == main_factor,
        )
        for f in factors
        for e in range(episodes)
    ]
    results = run_fleet_tasks(tasks, workers, backend, address)
    rows = [r for res in results for r in res["rows"]]
    gpus = next((res["gpus"] for res in results if res["gpus"]), {})
    all_ep = pd.DataFrame(rows)[list(EPISODE_COLUMNS) + ["bound_kg", "bound_gap_pct"]]
    ep = all_ep[all_ep["slack_factor"] == main_factor].reset_index(drop=True)
    summary = summarize_fleet(ep)
    out = begin_output(final, overwrite)
    all_ep.to_csv(out / "episodes.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    where = f"{period[0]} to {period[1]}" if period else f"{split} split"
    carbon_plot(summary, out / "carbon.png", f"{sc.name}, {where}, {episodes} episodes")
    if gpus:
        gpus_plot(gpus, sc.region_names, sc.step_s, out / "gpus_in_use.png")
    if slacks:
        table = slack_table(all_ep)
        table.to_csv(out / "slack.csv", index=False)
        slack_plot(table, out / "slack.png", f"{sc.name}, {where}, {episodes} episodes per slack factor")
    write_fleet_report(out / "report.md", summary, ep, sc, where, episodes, results[0]["carbon_source"], command)
    publish(out, final.absolute())
    return all_ep, summary, final, time.perf_counter() - t0


def summarize_fleet(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per policy (first-appearance order): ``<metric>_mean`` and ``<metric>_ci95`` for every metric;
    the gap to the bound and carbon / bound over the episodes where the policy did the same work (every job)."""
    rows = []
    for policy, g in episodes.groupby("policy", sort=False):
        row: dict = {"policy": policy, "episodes": len(g)}
        for col in METRICS:
            vals = g[col].astype(float)
            row[f"{col}_mean"] = float(vals.mean()) if vals.notna().any() else math.nan
            if col != "bound_gap_pct":
                row[f"{col}_ci95"] = ci95_half_width(vals)
        gaps = g["bound_gap_pct"].astype(float).dropna()
        row["bound_gap_pct_max"] = float(gaps.max()) if len(gaps) else math.nan
        row["bound_ratio_mean"] = 1.0 + row["bound_gap_pct_mean"] / 100.0
        row["bound_ratio_max"] = 1.0 + row["bound_gap_pct_max"] / 100.0
        row["same_work_episodes"] = len(gaps)
        rows.append(row)
    return pd.DataFrame(rows)


def slack_table(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per slack factor and policy: mean carbon, deadline-met rate, and savings against ``stay`` at the same
    factor (%, of the means; empty without stay)."""
    rows = []
    for f, g in episodes.groupby("slack_factor", sort=True):
        means = g.groupby("policy", sort=False)[["carbon_kg", "deadline_met_rate"]].mean()
        stay = means["carbon_kg"].get("stay", math.nan)
        for policy, m in means.iterrows():
            rows.append(
                {
                    "policy": policy,
                    "slack_factor": float(f),
                    "carbon_kg_mean": float(m["carbon_kg"]),
                    "deadline_met_rate": float(m["deadline_met_rate"]),
                    "savings_vs_stay_pct": 100.0 * (stay - m["carbon_kg"]) / stay if stay == stay else math.nan,
                }
            )
    return pd.DataFrame(rows)


def slack_plot(table: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for policy, g in table.groupby("policy", sort=False):
        a1.plot(g["slack_factor"], g["carbon_kg_mean"], "o-", label=policy)
        a2.plot(g["slack_factor"], 100 * g["deadline_met_rate"], "o-", label=policy)
    a1.set_xlabel("deadline slack factor (x FIFO time)")
    a1.set_ylabel("fleet carbon per episode [kg CO2e]")
    a2.set_xlabel("deadline slack factor (x FIFO time)")
    a2.set_ylabel("deadlines met [%]")
    a1.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fleet_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The fleet table's columns (policy, carbon kg, deadline met, late_h, gap to bound), rounded."""
    t = pd.DataFrame(
        {
            "policy": summary["policy"],
            "carbon_kg": summary["carbon_kg_mean"].round(2),
            "carbon_kg_ci95": summary["carbon_kg_ci95"].round(2),
            "deadline_met_pct": (100 * summary["deadline_met_rate_mean"]).round(1),
            "late_h": summary["late_h_mean"].round(2),
            "jobs_completed": summary["jobs_completed_mean"].round(1),
            "work_charged_pct": (100 * summary["work_charged_rate_mean"]).round(1),
            "gap_to_bound_pct": summary["bound_gap_pct_mean"].round(1),
            "gap_worst_pct": summary["bound_gap_pct_max"].round(1),
            "migrations": summary["migrations_mean"].round(0),
        }
    )
    return t


def write_fleet_report(path, summary, episodes, sc, where, n_episodes, carbon_source, command) -> None:
    """report.md: the fleet table, how it was made, what the bound relaxes, episodes below the bound."""
    t = fleet_table(summary)
    lines = [
        f"# {sc.name}: fleet policies, {where}, {n_episodes} episodes",
        "",
        f"Command: `{command}`" if command else "",
        "",
        f"Carbon data: {carbon_source}. Deadlines: `{sc.jobs.deadline}` rule, slack factor "
        f"{sc.jobs.slack_factor:g} (sim/fleet_jobs.py). Means over episodes; `gap_to_bound_pct` is carbon over the "
        "episode's LP bound, averaged over the episodes where the policy completed every job (the same work as the "
        "bound); `gap_worst_pct` is the worst such episode. Equal work: an episode runs past the horizon until "
        "every job completed or the safety limit (2 x the horizon); a job unfinished there is charged its remaining "
        "work (top clock, home region, the region's mean intensity; `work_charged_pct` of the jobs), included in "
        "`carbon_kg` and `late_h`, so every row accounts for the same jobs.",
        "",
        "| " + " | ".join(t.columns) + " |",
        "|" + "---|" * len(t.columns),
    ]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in t.itertuples(index=False)]
    lines += ["", f"Bound (mean over episodes): {episodes.groupby('episode')['bound_kg'].first().mean():.3f} kg.", ""]
    lines += ["## What the bound relaxes", ""] + [f"- {x}" for x in BOUND_RELAXES]
    below = episodes[episodes["bound_gap_pct"] < -1e-6]
    lines += ["", "## Episodes below the bound", ""]
    if below.empty:
        lines.append("None: no policy that completed every job emitted less than the bound.")
    else:
        for r in below.itertuples():
            lines.append(
                f"- {r.policy}, episode {r.episode}: {r.carbon_kg:.3f} kg < bound {r.bound_kg:.3f} kg "
                f"(deadlines met {100 * r.deadline_met_rate:.1f} %: late jobs had longer windows than the bound)"
            )
    Path(path).write_text("\n".join(lines) + "\n")


def carbon_plot(summary: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(summary)), 4))
    x = np.arange(len(summary))
    ax.bar(x, summary["carbon_kg_mean"], yerr=np.nan_to_num(summary["carbon_kg_ci95"].to_numpy(float)), capsize=3)
    ax.set_xticks(x, summary["policy"], rotation=30, ha="right")
    ax.set_ylabel("fleet carbon per episode [kg CO2e]")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def gpus_plot(gpus: dict, regions, step_s: float, path: Path) -> None:
    """Per policy, stacked GPUs in use per region over the episode, and the fleet's free GPUs (all pools)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(gpus)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.6 * n + 0.6), sharex=True, squeeze=False)
    for ax, (name, (use, free, _start)) in zip(axes[:, 0], gpus.items()):
        t_h = np.arange(1, use.shape[0] + 1) * step_s / 3600.0
        ax.stackplot(t_h, use.T, labels=regions, step="pre")
        ax.step(t_h, free[:, 1 : use.shape[0] + 1].sum(axis=0), "k-", lw=0.7, where="pre", label="free (all pools)")
        ax.set_ylabel(name, rotation=0, ha="right", fontsize=8)
    start_utc = next(iter(gpus.values()))[2]
    axes[0, 0].set_title(f"GPUs in use per region, episode from {start_utc} UTC")
    axes[0, 0].legend(fontsize=6, ncol=len(regions) + 1, loc="upper right")
    axes[-1, 0].set_xlabel("hours since the episode start")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fleet_main(args, t0: float, newest_run, period: tuple[str, str] | None = None) -> int:
    """``evaluate.py``'s branch for ``kind: fleet`` scenarios (``args``: its parsed options; ``period``: the
    parsed ``--period``)."""
    import shlex

    sc = load_fleet_scenario(args.scenario)
    slacks = parse_slacks(args.slack) if args.slack else None
    policies = fleet_policy_names(args.policies)
    agents = [a for a in args.agent if a != "none"]
    if not args.agent:
        run = newest_run(args.runs, sc.name)
        if run is not None:
            agents = [str(run)]
    workers = args.workers or (None if args.backend == "ray" else 1)
    ep, summary, out, wall_s = evaluate_fleet(
        args.scenario,
        policies,
        agents,
        args.episodes,
        args.split,
        args.seed,
        args.out,
        args.timeline_episode,
        args.data_dir,
        period,
        slacks,
        workers,
        args.backend,
        args.address,
        "python evaluate.py " + shlex.join(sys.argv[1:]),
        args.overwrite,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(fleet_table(summary).to_string(index=False))
    print(f"bound_kg_mean: {ep.groupby(['slack_factor', 'episode'])['bound_kg'].first().mean():.3f}")
    extra = ", slack.csv, slack.png" if slacks else ""
    print(f"wrote {out}/episodes.csv, summary.csv, report.md, carbon.png, gpus_in_use.png{extra}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    return 0


def parse_slacks(text: str) -> list[float]:
    """``"1.0,1.5,3.0"`` -> [1.0, 1.5, 3.0]; each >= 1 (a deadline before the FIFO completion is not meetable)."""
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--slack {text!r}: expected comma-separated numbers >= 1, e.g. 1.0,1.5,3.0") from None
    if not out or min(out) < 1.0:
        raise ConfigError(f"--slack {text!r}: expected comma-separated numbers >= 1, e.g. 1.0,1.5,3.0")
    return out
