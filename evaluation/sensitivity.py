"""Which conclusions survive each model term: the headline ranking and savings with one term switched at a time.

Each variant is the evaluated scenario with one issue-14 term changed (``VARIANTS``), written as a YAML file beside
the report (so a row can be re-run alone with ``python evaluate.py --scenario <file>``), and run on the same
episodes as the headline table. ``sensitivity_markdown`` turns the per-variant summaries into the report section.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from sim.scenario import Scenario

BASELINE_POLICY = "stay"  # savings are relative to the carbon-agnostic stay-home run


def _model(sc: Scenario, **kw) -> Scenario:
    return dataclasses.replace(sc, model=dataclasses.replace(sc.model, **kw))


# term -> (what the variant does, how to build it from the evaluated scenario)
VARIANTS: dict[str, tuple[str, Callable[[Scenario], Scenario]]] = {
    "host_power": ("host power off", lambda sc: _model(sc, host_power=False)),
    "checkpoint_stall": ("free checkpoints (no snapshot stall)", lambda sc: _model(sc, checkpoint_stall=False)),
    "scaling_efficiency": ("linear speed on any GPU count", lambda sc: _model(sc, scaling_efficiency=False)),
    "restart_s": ("no restart overhead", lambda sc: _model(sc, restart_s=0.0)),
    "transfer_kwh_per_gb": (
        "transfer 0.06 kWh/GB (2015 figure)",
        lambda sc: dataclasses.replace(sc, transfer_kwh_per_gb=0.06),
    ),
    "shortages": (
        "no GPU shortages",
        lambda sc: dataclasses.replace(sc, faults=dataclasses.replace(sc.faults, shortage_scale=0.0)),
    ),
}


def write_variants(scenario: Scenario, folder: Path) -> dict[str, Path]:
    """One YAML per variant in ``folder`` (plain data, re-validated when loaded); returns term -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for term, (_, make) in VARIANTS.items():
        variant = make(scenario)
        data = variant.to_dict()
        data["name"] = f"{scenario.name}-{term}-off"
        data["description"] = f"{scenario.description} Sensitivity variant: {VARIANTS[term][0]}."
        path = folder / f"{data['name']}.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        tmp.replace(path)
        out[term] = path
    return out


def _ranking_and_savings(summary: pd.DataFrame) -> tuple[str, dict[str, float]]:
    s = summary.set_index("policy")
    order = s["carbon_kg_mean"].sort_values().index.tolist()
    savings = {}
    if BASELINE_POLICY in s.index:
        base = s.loc[BASELINE_POLICY, "carbon_kg_mean"]
        savings = {p: 100.0 * (s.loc[p, "carbon_kg_mean"] - base) / base for p in s.index if p != BASELINE_POLICY}
    return " < ".join(order), savings


def with_embodied(base_episodes: pd.DataFrame) -> pd.DataFrame:
    """Per policy (in order of appearance), mean of operational + embodied carbon as ``carbon_kg_mean``."""
    total = base_episodes["carbon_kg"] + base_episodes["embodied_kg"]
    means = total.groupby(base_episodes["policy"], sort=False).mean()
    return pd.DataFrame({"policy": means.index, "carbon_kg_mean": means.to_numpy()})


def sensitivity_markdown(
    base: pd.DataFrame, variants: dict[str, pd.DataFrame], episodes: int, base_episodes: pd.DataFrame | None = None
) -> str:
    """The report section: one row for the full model, one per term switched off, and one with embodied carbon
    added to operational carbon (from the headline episodes; embodied carbon is never in the other rows).

    :param base: ``summarize`` output of the headline run (every term on).
    :param variants: term -> ``summarize`` output of that variant on the same episodes.
    :param base_episodes: the headline run's ``episodes.csv`` rows (for the embodied row).
    """
    rank0, save0 = _ranking_and_savings(base)
    policies = [p for p in base["policy"] if p != BASELINE_POLICY]
    head = "| model | ranking by mean carbon (lowest first) | same ranking | " + " | ".join(
        f"{p} vs {BASELINE_POLICY}" for p in policies
    )
    lines = [
        "## Sensitivity to the model terms",
        "",
        f"The headline run (all terms on) and one variant per term switched off, on the same {episodes} episodes "
        f"per policy. Savings are the change in mean carbon against `{BASELINE_POLICY}` (negative = less carbon), "
        "with the policy's deadline-met rate in that row in brackets: a saving bought by missing deadlines is "
        "not a saving. "
        "Variant scenarios are written to `sensitivity/` and can be re-run alone with "
        "`python evaluate.py --scenario sensitivity/<file>.yaml`.",
        "",
        head + " |",
        "|" + "---|" * (3 + len(policies)),
    ]

    def row(label: str, summary: pd.DataFrame) -> str:
        rank, save = _ranking_and_savings(summary)
        same = "yes" if rank == rank0 else "**no**"
        met = summary.set_index("policy")["deadline_met_rate"] if "deadline_met_rate" in summary else {}
        cells = [
            (f"{save[p]:+.0f} %" + (f" ({met[p]:.0%} met)" if p in met else "")) if p in save else "n/a"
            for p in policies
        ]
        return f"| {label} | {rank} | {same} | " + " | ".join(cells) + " |"

    lines.append(row("all terms on (headline)", base))
    for term, summary in variants.items():
        lines.append(row(f"{VARIANTS[term][0]}", summary))
    if base_episodes is not None and "embodied_kg" in base_episodes:
        lines.append(row("all on, ranked by operational + embodied carbon", with_embodied(base_episodes)))
    del save0
    lines += [
        "",
        "Embodied carbon is reported beside operational carbon (`embodied_kg` in `episodes.csv`); it is in the "
        "last row only, not in the headline table nor in the default reward (`reward.embodied_per_kg` = 0).",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ how savings scale with the checkpoint

# model sizes of the checkpoint sweep (parameters): BERT-base-like to Llama-2-70B-like; each checkpoint is
# params x the scenario's bytes per parameter (16 for mixed-precision Adam, ZeRO Sec. 3.1; data/derived/constants.csv)
CHECKPOINT_PARAMS = (0.1e9, 1e9, 7e9, 13e9, 70e9)
CHECKPOINT_POLICIES = ("stay", "greedy", "mpc", "caftm", "oracle")
CHECKPOINT_EPISODES = 3  # at most this many episodes per size: the sweep is kept cheap


def write_checkpoint_variants(scenario: Scenario, folder: Path, params=CHECKPOINT_PARAMS) -> dict[float, Path]:
    """One YAML per model size in ``folder`` (the evaluated scenario with ``job.params`` changed); params -> path.
    Only the checkpoint changes: the job's speed, mini-batches and checkpoint interval stay those of the scenario."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for p in params:
        data = dataclasses.replace(scenario, job=dataclasses.replace(scenario.job, params=float(p))).to_dict()
        data["name"] = f"{scenario.name}-ckpt-{p / 1e9:g}B"
        gb = p * scenario.job.bytes_per_param / 1e9
        data["description"] = f"{scenario.description} Checkpoint sweep: {p / 1e9:g}B parameters, {gb:g} GB."
        path = folder / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        out[float(p)] = path
    return out


def checkpoint_savings(rows: dict[float, pd.DataFrame]) -> pd.DataFrame:
    """Per size and policy: mean change in carbon against ``stay`` on the same episodes (%, negative = less),
    deadline-met rate and mean lateness. ``rows``: params -> that size's episodes.csv rows."""
    out = []
    for p, ep in rows.items():
        base = ep[ep["policy"] == BASELINE_POLICY].set_index("episode")["carbon_kg"]
        for policy, g in ep.groupby("policy", sort=False):
            if policy == BASELINE_POLICY:
                continue
            x = g.set_index("episode")["carbon_kg"]
            change = (100.0 * (x - base) / base).dropna()
            out.append(
                {
                    "params": p,
                    "policy": policy,
                    "change_vs_stay_pct": float(change.mean()),
                    "deadline_met_rate": float(g["deadline_met"].astype(float).mean()),
                    "late_h_mean": float(g["late_h"].mean()) if "late_h" in g else float("nan"),
                    "episodes": len(g),
                }
            )
    return pd.DataFrame(out)


def checkpoint_markdown(table: pd.DataFrame, bytes_per_param: float, plot_file: str | None) -> str:
    """The report section of the checkpoint-size sweep."""
    sizes = sorted(table["params"].unique())
    policies = list(dict.fromkeys(table["policy"]))
    n = int(table["episodes"].max()) if len(table) else 0
    lines = [
        "## Sensitivity to the checkpoint size",
        "",
        f"The same job and episodes ({n} per size) with the model size changed, so only the checkpoint grows "
        f"({bytes_per_param:g} bytes per parameter: fp16 weights and gradients, fp32 master weights and two Adam "
        "moments, ZeRO Sec. 3.1); the job's speed, mini-batches and checkpoint interval stay the scenario's, so the "
        "periodic snapshot stall grows with it too. Change in carbon against `stay` on the same episode "
        "(negative = less carbon), with the deadline-met rate in brackets.",
        "",
        "| parameters | checkpoint (GB) | " + " | ".join(policies) + " |",
        "|---:|---:|" + "---:|" * len(policies),
    ]
    t = table.set_index(["params", "policy"])
    for p in sizes:
        cells = []
        for pol in policies:
            if (p, pol) in t.index:
                r = t.loc[(p, pol)]
                cells.append(f"{r['change_vs_stay_pct']:+.0f} % ({r['deadline_met_rate']:.0%})")
            else:
                cells.append("n/a")
        lines.append(f"| {p / 1e9:g}B | {p * bytes_per_param / 1e9:,.0f} | " + " | ".join(cells) + " |")
    lines.append("")
    if plot_file:
        lines += [f"![Savings against stay by checkpoint size]({plot_file})", ""]
    return "\n".join(lines)
