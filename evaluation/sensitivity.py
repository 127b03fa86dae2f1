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
