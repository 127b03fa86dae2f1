"""The default agent over training seeds, beside the baselines it must beat, on paper's test split and elsewhere.

    python train.py --seed 0 --name paper-s0 && python train.py --seed 1 --name paper-s1 && ...
    python bench/agent_seeds.py runs/paper-s0 runs/paper-s1 runs/paper-s2 --out results/agent-seeds

For each scenario (``paper``'s held-out 2023 and, for generalisation, :data:`OTHER_ZONES`: the same job, GPUs and
faults in four Electricity Maps zones the agent never saw, also 2023), every baseline and every agent run the
same ``--episodes`` episodes (``evaluation.compare``). Per policy: mean carbon with a 95 % Student-t interval over
episodes (for the agent: the per-episode mean over seeds), deadline-met rate, cap violations, gap to the executed
oracle and to the oracle's relaxed bound; for the agent also the mean and 95 % interval of the per-seed means
(across training seeds). Writes ``<scenario>-episodes.csv`` and ``summary.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.compare import compare  # noqa: E402
from evaluation.report import ci95_half_width  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402

BASELINES = ("stay", "greedy", "caftm", "caftm_guarded", "mpc", "oracle")
# a region set the paper-trained agent never saw: same size (its observation has one block per region), home in
# PJM (US mid-Atlantic), two wind-heavy grids (ERCOT, Great Britain) and a coal-heavy, solar-dipping one (NSW)
OTHER_ZONES = [
    {"name": "US-PJM", "zone": "US-MIDA-PJM", "gpu": "V100", "gpus": 10, "pue": 1.2},
    {"name": "US-TEX", "zone": "US-TEX-ERCO", "gpu": "V100", "gpus": 10, "pue": 1.2},
    {"name": "GB", "zone": "GB", "gpu": "V100", "gpus": 10, "pue": 1.2},
    {"name": "AU-NSW", "zone": "AU-NSW", "gpu": "V100", "gpus": 10, "pue": 1.3},
]


def other_zones_scenario(folder: Path) -> Path:
    """``paper`` with :data:`OTHER_ZONES` as its regions (home US-PJM), written as a scenario YAML in ``folder``."""
    data = load_scenario("paper").to_dict()
    data["name"] = "paper-other-zones"
    data["description"] = "paper's job, GPUs and faults in US-PJM (home), US-TEX, GB and AU-NSW (generalisation)."
    data["regions"] = OTHER_ZONES
    data["job"]["home"] = "US-PJM"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "paper-other-zones.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def seed_table(episodes: pd.DataFrame, agents: list[str]) -> pd.DataFrame:
    """One row per baseline and one for the agent (its seeds pooled), with intervals over episodes and seeds."""
    rows = []
    for name in [*BASELINES, "agent"]:
        names = agents if name == "agent" else [name]
        ep = episodes[episodes["policy"].isin(names)]
        if ep.empty:
            continue
        per_episode = ep.groupby("episode")[["carbon_kg", "oracle_gap_pct", "bound_gap_pct"]].mean()
        per_seed = ep.groupby("policy")["carbon_kg"].mean()
        rows.append(
            {
                "policy": name,
                "carbon_kg": per_episode["carbon_kg"].mean(),
                "ci95_episodes": ci95_half_width(per_episode["carbon_kg"]),
                "ci95_seeds": ci95_half_width(per_seed) if len(per_seed) > 1 else np.nan,
                "seed_means": ", ".join(f"{v:.2f}" for v in per_seed.loc[names]) if name == "agent" else "",
                "deadline_met": ep["deadline_met"].mean(),
                "cap_violations": int(ep["cap_violations"].sum()),
                "oracle_gap_pct": per_episode["oracle_gap_pct"].mean(),
                "bound_gap_pct": per_episode["bound_gap_pct"].mean(),
            }
        )
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, title: str) -> str:
    lines = [
        f"### {title}",
        "",
        "| policy | carbon (kg) | 95 % over episodes | 95 % over seeds | per-seed means | deadline met "
        "| cap violations | gap to oracle (%) | gap to bound (%) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        seeds = "" if np.isnan(r.ci95_seeds) else f"± {r.ci95_seeds:.2f}"
        lines.append(
            f"| {r.policy} | {r.carbon_kg:.2f} | ± {r.ci95_episodes:.2f} | {seeds} | {r.seed_means} "
            f"| {100 * r.deadline_met:.0f} % | {r.cap_violations} | {r.oracle_gap_pct:+.1f} | {r.bound_gap_pct:+.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories of the agent, one per training seed")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--out", default="results/agent-seeds")
    p.add_argument("--skip-other-zones", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scenarios = [("paper", "paper, test split 2023 (trained on 2021 to mid-2022)")]
    if not args.skip_other_zones:
        scenarios.append((str(other_zones_scenario(out)), "unseen zones US-PJM, US-TEX, GB, AU-NSW, 2023"))
    agents = [Path(r).name for r in args.runs]
    text = []
    for scenario, title in scenarios:
        episodes, _ = compare(list(BASELINES), agents=args.runs, scenario=scenario, episodes=args.episodes)
        episodes.to_csv(out / f"{Path(scenario).stem}-episodes.csv", index=False)
        text.append(markdown(seed_table(episodes, agents), title))
        print(text[-1], flush=True)
    (out / "summary.md").write_text("\n".join(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
