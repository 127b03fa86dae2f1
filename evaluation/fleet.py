"""Fleet evaluation (``python evaluate.py --scenario fleet``): every fleet policy, the LP bound and trained agents
on the same episodes of the scenario's split (CarbonFleet-v0, issue 10).

Writes into the output folder:

- ``episodes.csv``: one row per policy and episode, columns :data:`EPISODE_COLUMNS` plus ``bound_kg`` (the
  episode's LP lower bound, ``baselines/fleet_bound.py``) and ``bound_gap_pct`` (carbon over the bound, %);
- ``summary.csv``: one row per policy, ``<metric>_mean`` / ``<metric>_ci95`` (Student-t 95% half-width over
  episodes) and ``bound_gap_pct_mean``;
- ``carbon.png`` (carbon per policy, 95% intervals) and ``gpus_in_use.png`` (GPUs each policy holds per region over
  one episode, against the pools' free GPUs).

Episode ``e`` is ``env.reset(seed=seed * 1000 + e)`` for every policy: the same jobs, carbon window and pools.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from baselines.fleet_policies import FLEET_POLICIES, FleetPolicy, episode_bound, run_fleet_episode
from envs.fleet import CarbonFleetEnv
from evaluation.report import ci95_half_width
from sim.errors import ConfigError
from sim.scenario import load_fleet_scenario

EPISODE_COLUMNS = (
    "policy",
    "episode",
    "seed",
    "carbon_kg",
    "energy_kwh",
    "jobs",
    "jobs_completed",
    "deadline_met_rate",
    "jct_h_mean",
    "queue_h_mean",
    "migrations",
    "gpu_util",
    "cap_violation_s",
    "lost_minibatches",
)
METRICS = EPISODE_COLUMNS[3:] + ("bound_gap_pct",)


class AgentFleetPolicy(FleetPolicy):
    """A trained MaskablePPO agent on CarbonFleet-v0's slot action (``train.py --scenario fleet``)."""

    uses_slots = True

    def __init__(self, run_dir: str | Path):
        from sb3_contrib import MaskablePPO

        run = Path(run_dir)
        path = run / "best_model.zip" if (run / "best_model.zip").is_file() else run / "model.zip"
        if not path.is_file():
            raise ConfigError(f"--agent {run_dir}: no best_model.zip or model.zip (train with train.py)")
        self.model = MaskablePPO.load(str(path), device="cpu")
        self.name = f"agent:{run.name}"

    def act_slots(self, env: CarbonFleetEnv, obs: np.ndarray) -> np.ndarray:
        action, _ = self.model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        return action


def run_agent_episode(env: CarbonFleetEnv, policy: AgentFleetPolicy, seed: int, log_gpus: bool = False) -> dict:
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
) -> tuple[pd.DataFrame, pd.DataFrame, Path, float]:
    """Run the policies and agents; write the tables and plots. Returns (episodes, summary, out dir, wall s)."""
    t0 = time.perf_counter()
    sc = load_fleet_scenario(scenario)
    env = CarbonFleetEnv(sc, split, data_dir)
    runners = [(name, FLEET_POLICIES[name]()) for name in policies]
    runners += [(a.name, a) for a in (AgentFleetPolicy(p) for p in agents)]
    rows, gpus = [], {}
    for e in range(episodes):
        s = seed * 1000 + e
        env.reset(seed=s)
        bound_kg = episode_bound(env, schedule=False).carbon_kg
        start_utc = str(env.start_utc)
        for name, pol in runners:
            log = e == timeline_episode
            if isinstance(pol, AgentFleetPolicy):
                m = run_agent_episode(env, pol, s, log)
            else:
                m = run_fleet_episode(env, pol, s, log)
            if log:
                gpus[name] = (m.pop("gpus_in_use"), env.free[0].copy(), start_utc)
            gap = 100.0 * (m["carbon_kg"] - bound_kg) / bound_kg if math.isfinite(bound_kg) else math.nan
            rows.append({"policy": name, "episode": e, "seed": s, **m, "bound_kg": bound_kg, "bound_gap_pct": gap})
    ep = pd.DataFrame(rows)[list(EPISODE_COLUMNS) + ["bound_kg", "bound_gap_pct"]]
    summary = summarize_fleet(ep)
    out = Path(out or f"results/{sc.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    ep.to_csv(out / "episodes.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    carbon_plot(summary, out / "carbon.png", f"{sc.name}, {split} split, {episodes} episodes")
    if gpus:
        gpus_plot(gpus, sc.region_names, sc.step_s, out / "gpus_in_use.png")
    return ep, summary, out, time.perf_counter() - t0


def summarize_fleet(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per policy (first-appearance order): ``<metric>_mean`` and ``<metric>_ci95`` for every metric."""
    rows = []
    for policy, g in episodes.groupby("policy", sort=False):
        row: dict = {"policy": policy, "episodes": len(g)}
        for col in METRICS:
            vals = g[col].astype(float)
            row[f"{col}_mean"] = float(vals.mean()) if vals.notna().any() else math.nan
            if col != "bound_gap_pct":
                row[f"{col}_ci95"] = ci95_half_width(vals)
        rows.append(row)
    return pd.DataFrame(rows)


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


def fleet_main(args, t0: float, newest_run) -> int:
    """``evaluate.py``'s branch for ``kind: fleet`` scenarios (``args``: its parsed options)."""
    sc = load_fleet_scenario(args.scenario)
    for flag, used in (
        ("--backend ray", args.backend != "processes"),
        ("--workers", args.workers not in (None, 1)),
        ("--period", args.period is not None),
    ):
        if used:
            raise ConfigError(f"{flag}: not supported for fleet scenarios yet (one process, the --split's dates)")
    policies = fleet_policy_names(args.policies)
    agents = [a for a in args.agent if a != "none"]
    if not args.agent:
        run = newest_run(args.runs, sc.name)
        if run is not None:
            agents = [str(run)]
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
    )
    cols = [
        "policy",
        "carbon_kg_mean",
        "carbon_kg_ci95",
        "deadline_met_rate_mean",
        "jobs_completed_mean",
        "jct_h_mean_mean",
        "migrations_mean",
        "gpu_util_mean",
        "bound_gap_pct_mean",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary[cols].round(3).to_string(index=False))
    print(f"bound_kg_mean: {ep.groupby('episode')['bound_kg'].first().mean():.3f}")
    print(f"wrote {out}/episodes.csv, summary.csv, carbon.png, gpus_in_use.png")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    return 0
