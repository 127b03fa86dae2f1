"""Per-policy aggregation with Student-t 95% intervals, the printed table and ``report.md``."""

from __future__ import annotations

import math
import os
import re
import shutil
import sys

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
ORACLE = "oracle"
SYNTHETIC_LABEL = "SYNTHETIC carbon data, no traces found"
PIPE_WIDTH = 100  # printed table width when stdout is not a terminal (and COLUMNS is unset)

# summary.csv: metric -> (episodes.csv column, with a 95% interval?)
MEANS = {
    "carbon_kg": True,
    "energy_kwh": True,
    "jct_h": True,
    "late_h": True,
    "migrations": False,
    "transfer_h": False,
    "transfer_gb": False,
    "egress_usd": False,
    "cap_violations": False,
    "cap_violation_s": False,
    "lost_minibatches": False,
    "oracle_gap_pct": True,
    "bound_gap_pct": True,
    "avg_power_w": True,
    "oracle_bound_kg": False,  # only in the oracle's rows (its relaxed lower bound), when reported
}

# the printed / Markdown table: (header, summary column, its ci95 column or None, format, display scale)
TABLE = (
    ("carbon (kg)", "carbon_kg_mean", "carbon_kg_ci95", "{:.2f}", 1.0),
    ("energy (kWh)", "energy_kwh_mean", "energy_kwh_ci95", "{:.1f}", 1.0),
    ("JCT (h)", "jct_h_mean", "jct_h_ci95", "{:.1f}", 1.0),
    ("deadline met", "deadline_met_rate", None, "{:.0%}", 1.0),
    ("late (h)", "late_h_mean", None, "{:.2f}", 1.0),
    ("migrations", "migrations_mean", None, "{:.2f}", 1.0),
    ("transfer (min)", "transfer_h_mean", None, "{:.1f}", 60.0),
    ("transfer (GB)", "transfer_gb_mean", None, "{:.1f}", 1.0),
    ("egress ($)", "egress_usd_mean", None, "{:.2f}", 1.0),
    ("cap viol. (h)", "cap_violation_s_mean", None, "{:.1f}", 1.0 / 3600.0),
    ("gap to oracle (%)", "oracle_gap_pct_mean", "oracle_gap_pct_ci95", "{:+.1f}", 1.0),
    ("gap to bound (%)", "bound_gap_pct_mean", "bound_gap_pct_ci95", "{:+.1f}", 1.0),
)
CAP_MARK = " †"  # appended to the name of a policy that exceeded its power cap in any episode


def ci95_half_width(values) -> float:
    """Half-width of the two-sided 95% Student-t interval of the mean (NaNs dropped; NaN below 2 values).

    ``t_{0.975, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation (ddof 1).
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))


def add_oracle_gap(episodes: pd.DataFrame) -> pd.DataFrame:
    """Fill ``oracle_gap_pct`` = 100 (carbon - oracle carbon) / oracle carbon and ``bound_gap_pct`` =
    100 (carbon - relaxed lower bound) / bound, both matched by episode (the bound comes from the oracle's row)."""
    out = episodes.copy()
    oracle = out[out["policy"] == ORACLE].set_index("episode")
    if oracle.empty:
        out["oracle_gap_pct"] = math.nan
        out["bound_gap_pct"] = math.nan
        return out
    ref = out["episode"].map(oracle["carbon_kg"])
    out["oracle_gap_pct"] = 100.0 * (out["carbon_kg"] - ref) / ref
    bound = out["episode"].map(oracle["oracle_bound_kg"]) if "oracle_bound_kg" in oracle else math.nan
    out["bound_gap_pct"] = 100.0 * (out["carbon_kg"] - bound) / bound
    return out


def summarize(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per policy (in first-appearance order): means, 95% half-widths and rates."""
    rows = []
    for policy, g in episodes.groupby("policy", sort=False):
        row = {"policy": policy, "episodes": len(g)}
        for col, with_ci in MEANS.items():
            if col not in g:
                continue
            vals = g[col].astype(float)
            row[f"{col}_mean"] = float(vals.mean()) if vals.notna().any() else math.nan
            if with_ci:
                row[f"{col}_ci95"] = ci95_half_width(vals)
        row["deadline_met_rate"] = float(g["deadline_met"].astype(float).mean())
        row["completed_rate"] = float(g["completed"].astype(float).mean())
        if "work_charged" in g:  # jobs unfinished at the safety limit, their remaining work charged (V1)
            row["work_charged_rate"] = float(g["work_charged"].astype(float).mean())
        rows.append(row)
    first = [
        "policy",
        "episodes",
        "carbon_kg_mean",
        "carbon_kg_ci95",
        "energy_kwh_mean",
        "energy_kwh_ci95",
        "jct_h_mean",
        "jct_h_ci95",
        "deadline_met_rate",
        "completed_rate",
    ]
    first += [c for c in ("late_h_mean", "late_h_ci95", "work_charged_rate") if c in rows[0]]
    df = pd.DataFrame(rows)
    return df[first + [c for c in df.columns if c not in first]]


def _cell(row, mean_col, ci_col, fmt, scale) -> str:
    v = row[mean_col]
    if pd.isna(v):
        return "-"
    s = fmt.format(v * scale)
    if ci_col is not None and not pd.isna(row[ci_col]):
        s += " ± " + fmt.replace("+", "").format(row[ci_col] * scale)
    return s


def table_cells(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells (``mean ± 95% half-width``) of the comparison table."""
    header = ["policy"] + [spec[0] for spec in TABLE]
    body = [[policy_label(r)] + [_cell(r, *spec) for _, *spec in TABLE] for _, r in summary.iterrows()]
    return header, body


def policy_label(row) -> str:
    """The policy's name, marked with :data:`CAP_MARK` when it drew more than its power cap in any episode."""
    over = row.get("cap_violation_s_mean", 0.0)
    return str(row["policy"]) + (CAP_MARK if pd.notna(over) and over > 0 else "")


def data_label(source: str) -> str:
    """Short data-source label for titles: ``real data: <folder>`` or :data:`SYNTHETIC_LABEL`.

    :param source: ``CarbonTable.source`` (``"carbon-intensity files under <folder>"`` or the synthetic source).
    """
    from sim.carbon_synth import SOURCE as SYNTHETIC_SOURCE

    if source == SYNTHETIC_SOURCE:
        return SYNTHETIC_LABEL
    m = re.fullmatch(r"carbon-intensity files under (.+)", source)
    return f"real data: {m.group(1) if m else source}"


def table_width() -> int:
    """Columns available for the printed table: the terminal's (or ``$COLUMNS``), else :data:`PIPE_WIDTH`."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    return PIPE_WIDTH


def _min_width(header: str, cells: list[str]) -> int:
    # numbers never wrap; a header may wrap between words
    return max([len(c) for c in cells] + [max(len(w) for w in header.split())])


def column_groups(header: list[str], body: list[list[str]], width: int) -> tuple[list[int], list[list[int]]]:
    """Column widths, and the value columns split into groups that each fit ``width`` beside the policy column.

    A column costs its content width + 3 (padding, border), the table 1 more border. When the whole table fits
    with one-line headers it is one group; otherwise headers wrap between words, the policy column takes at most
    a quarter of the width (longer names wrap) and value columns go over as many tables as needed.
    :return: (content width of every column, groups of value-column indices into ``header``)
    """
    cols = list(zip(header, *body))
    natural = [max(len(x) for x in col) for col in cols]
    if sum(w + 3 for w in natural) + 1 <= width:
        return natural, [list(range(1, len(header)))]
    widths = [max(len(header[0]), min(natural[0], max(12, width // 4)))]
    widths += [_min_width(h, [r[j] for r in body]) for j, h in enumerate(header) if j > 0]
    groups: list[list[int]] = [[]]
    used = 1 + widths[0] + 3
    for j in range(1, len(header)):
        if groups[-1] and used + widths[j] + 3 > width:
            groups.append([])
            used = 1 + widths[0] + 3
        groups[-1].append(j)
        used += widths[j] + 3
    return widths, groups


def print_table(summary: pd.DataFrame, title: str = "", width: int | None = None) -> None:
    """Print the comparison table within ``width`` columns (default :func:`table_width`).

    When every column does not fit, the value columns are split over several tables, each repeating the
    policy column; long policy names wrap inside their cell, numbers never wrap.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    width = width or table_width()
    header, body = table_cells(summary)
    widths, groups = column_groups(header, body, width)
    console = Console(width=width, highlight=False, soft_wrap=False)
    for k, group in enumerate(groups):
        caption = title if k == 0 else "(continued)"
        t = Table(title=caption or None, box=box.HEAVY_HEAD, title_justify="left")
        t.add_column(header[0], justify="left", overflow="fold", width=widths[0])
        for j in group:
            t.add_column(header[j], justify="right", width=widths[j])
        for line in body:
            t.add_row(line[0], *(line[j] for j in group))
        console.print(t)


def markdown_table(summary: pd.DataFrame) -> str:
    header, body = table_cells(summary)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _bound_note(summary: pd.DataFrame) -> list[str]:
    if "oracle_bound_kg_mean" not in summary or ORACLE not in set(summary["policy"]):
        return []
    r = summary.set_index("policy").loc[ORACLE]
    if pd.isna(r["oracle_bound_kg_mean"]):
        return []
    return [
        f"The oracle's executed schedule emitted {r['carbon_kg_mean']:.2f} kg per episode on average; its "
        f"relaxed lower bound (no deadline-meeting schedule can emit less) averaged "
        f"{r['oracle_bound_kg_mean']:.2f} kg (`oracle_bound_kg` in `episodes.csv`).",
        "",
    ]


def write_report(path, summary: pd.DataFrame, meta: dict, plots: dict[str, str]) -> None:
    """``report.md``: what was run on which data, how intervals are computed, the table and the plots.

    :param meta: ``scenario, description, scenario_file, period, split, data_source, synthetic, episodes, seed,
        episode_hours, step_minutes, command``.
    :param plots: caption -> PNG file name (relative to the report).
    """
    n = meta["episodes"]
    data = (
        "**synthetic** carbon intensity (no trace files found; month×hour profiles + noise)"
        if meta["synthetic"]
        else "real hourly carbon-intensity traces"
    )
    lines = [
        f"# Evaluation: {meta['scenario']} ({meta.get('data_label') or data_label(meta['data_source'])})",
        "",
        f"- **Scenario:** `{meta['scenario']}` ({meta['scenario_file']}): {meta['description']}",
        f"- **Period:** {meta['period']} UTC ({meta['split']}); {meta['episode_hours']:g} h episodes, "
        f"{meta['step_minutes']:g}-minute decision steps",
        f"- **Data source:** {data}: {meta['data_source']}",
        f"- **Episodes:** {n} per policy, evaluation seed {meta['seed']}; every policy runs the same episodes "
        "(same start hours, and the same reset seed per episode, hence the same faults, GPU availability, "
        "work noise and forecast errors)",
        f"- **Command:** `{meta['command']}`",
        "",
        "## Method",
        "",
        "Each cell is the mean over episodes; `±` is the half-width of the two-sided 95% confidence interval "
        "of the mean from Student's t distribution over episodes: t(0.975, n−1) · s / √n with s the sample "
        "standard deviation (ddof = 1, `scipy.stats.t`). **Every row is the same work** (spec V1): the episode "
        "length is a safety limit (at least twice the deadline), every episode runs until the whole job is done, "
        "and a job still unfinished at the limit has its remaining mini-batches charged (energy at the highest "
        "clock under the cap on the full GPU request in its region, carbon at that region's mean intensity over "
        "the episode; `baselines.runner.equal_work`) and is flagged `work_charged` in `episodes.csv`. JCT "
        "counts every episode; *late (h)* is the time past the deadline (0 when on time). *Gap to oracle* is, "
        "per episode, 100 · (carbon − oracle carbon) / oracle carbon, the oracle being the clairvoyant planner "
        "run on the same episode; a negative gap can only come from faults the oracle could not foresee or "
        "from finishing later than the oracle's deadline-meeting plan allows. Carbon includes the network "
        "transfer's; energy is facility energy (IT × PUE) plus transfer energy. *Cap viol.* is the time the job "
        "drew more than its power cap; "
        f"policies marked{CAP_MARK} did so in some episode (their figures break the rule the others keep). "
        "*Gap to bound* is, per episode, 100 · (carbon − bound) / bound against the oracle's relaxed lower bound "
        "(no deadline-meeting schedule can emit less), so unlike the gap to the executed oracle it is never "
        "negative for a policy that meets the deadline.",
        "",
        "## Results",
        "",
        markdown_table(summary),
        "",
        *_bound_note(summary),
        "Per-episode rows are in `episodes.csv`, per-policy aggregates (incl. rates and all intervals) "
        "in `summary.csv`.",
        "",
        "## Plots",
        "",
    ]
    for caption, fname in plots.items():
        lines += [f"### {caption}", "", f"![{caption}]({fname})", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


# ---------------------------------------------------------------------------------------------- CAFTM claims

# Park et al., IEEE CLOUD 2024 (CAFTM): carbon and average power against existing approaches, and the
# authors' follow-up's figures, as quoted in issue 11; percent change (negative = reduction)
CAFTM_CLAIMS_PCT = {"CAFTM paper": (-46.77, -27.17), "follow-up": (-20.22, -22.68)}
CARBON_AGNOSTIC = "stay"


def paired_change_pct(episodes: pd.DataFrame, policy: str, ref: str, col: str) -> tuple[float, float]:
    """Mean and 95% half-width over episodes of ``100 (x_policy - x_ref) / x_ref``, paired by episode."""
    x = episodes[episodes["policy"] == policy].set_index("episode")[col]
    r = episodes[episodes["policy"] == ref].set_index("episode")[col]
    d = (100.0 * (x - r) / r).dropna()
    return (float(d.mean()) if len(d) else math.nan), ci95_half_width(d)


def caftm_claims_section(episodes: pd.DataFrame, sweep: pd.DataFrame | None, plot_file: str | None) -> list[str]:
    """Markdown lines: CAFTM's carbon and average-power change against the carbon-agnostic reference, beside
    the published figures, and the theta_CI sweep (``evaluation.theta_sweep``)."""
    have = set(episodes["policy"])
    refs = [p for p in (CARBON_AGNOSTIC, CARBON_AGNOSTIC + "_uncapped") if p in have]
    pols = [p for p in ("caftm", "caftm_guarded") if p in have]
    if not refs or not pols:
        return []
    fmt = "{:+.1f} ± {:.1f}"
    lines = [
        "## CAFTM against its paper's claims",
        "",
        "Change per episode against the carbon-agnostic reference on the same episode, mean ± 95% half-width "
        "(Student t over episodes). *Power* is the job's mean IT power while it holds GPUs (IT energy / time "
        "holding GPUs, `avg_power_w`). `stay` runs at home at the highest clock under the power cap; "
        "`stay_uncapped` at the top clock, over the cap. Published: CAFTM paper (Park et al., IEEE CLOUD 2024) "
        f"{CAFTM_CLAIMS_PCT['CAFTM paper'][0]:+.2f} % carbon, {CAFTM_CLAIMS_PCT['CAFTM paper'][1]:+.2f} % power "
        f"against existing approaches; the authors' follow-up {CAFTM_CLAIMS_PCT['follow-up'][0]:+.2f} % / "
        f"{CAFTM_CLAIMS_PCT['follow-up'][1]:+.2f} %.",
        "",
        "| policy | reference | carbon change (%) | power change (%) | deadline met | paper (carbon / power) "
        "| follow-up (carbon / power) |",
        "|:---|:---|---:|---:|---:|---:|---:|",
    ]
    paper, follow = CAFTM_CLAIMS_PCT["CAFTM paper"], CAFTM_CLAIMS_PCT["follow-up"]
    for p in pols:
        met = float(episodes.loc[episodes["policy"] == p, "deadline_met"].astype(float).mean())
        for ref in refs:
            c = paired_change_pct(episodes, p, ref, "carbon_kg")
            w = paired_change_pct(episodes, p, ref, "avg_power_w")
            lines.append(
                f"| {p} | {ref} | {fmt.format(*c)} | {fmt.format(*w)} | {met:.0%} | "
                f"{paper[0]:+.2f} / {paper[1]:+.2f} | {follow[0]:+.2f} / {follow[1]:+.2f} |"
            )
    lines.append("")
    if sweep is not None and len(sweep):
        lines += [
            "### CAFTM against theta_CI",
            "",
            "One threshold for every zone, the same episodes; mean carbon (kg) and share of deadlines met. "
            "The default `caftm` uses per-zone thresholds (KR 320, US-CAL-CISO 250 g/kWh from the authors' "
            "prototype, other zones their training-split median).",
            "",
            "| theta_CI (g/kWh) | "
            + " | ".join(f"{v}: carbon (kg) | {v}: deadline met" for v in _variants(sweep))
            + " |",
            "|---:|" + "---:|---:|" * len(_variants(sweep)),
        ]
        g = sweep.groupby(["theta_g_per_kwh", "variant"], sort=True)
        carbon, met = g["carbon_kg"].mean(), g["deadline_met"].mean()
        for theta in sorted(sweep["theta_g_per_kwh"].unique()):
            cells = [f"{carbon[theta, v]:.2f} | {met[theta, v]:.0%}" for v in _variants(sweep)]
            lines.append(f"| {theta:g} | " + " | ".join(cells) + " |")
        lines.append("")
        if plot_file:
            lines += [f"![CAFTM carbon and deadline rate against theta_CI]({plot_file})", ""]
    return lines


def caftm_units_section(units: pd.DataFrame) -> list[str]:
    """Markdown lines: ``caftm`` under each reading of its cost's units (``theta_sweep.run_unit_readings``)."""
    from baselines.caftm import PROTOTYPE_READING

    if units is None or not len(units):
        return []
    lines = [
        "## CAFTM under each reading of its cost's units",
        "",
        "CAFTM's clock cost adds a time, a power and a squared clock, J(f) = 0.05 k_t W / f + 0.75 (10 k_p W f^3) + "
        "0.2 (f_prev - f)^2, so the clock it picks is set by the units, not by the weights alone. The paper does not "
        "state them; the authors' prototype (datascience-labs/GreenAccounter, VGGNet/gpu_utils.py) measures power "
        "in W (nvidia-smi power.draw), clocks in MHz and time in s, and has no frequency controller. "
        f"`caftm` uses `{PROTOTYPE_READING}` (the prototype's units) sampled per mini-batch. Which term sets the "
        "clock: in s with W and MHz the smoothing term (0.2 x MHz^2) outweighs the others, so the clock stays near "
        "the previous one (clipped by the cap); in s with kW and GHz the power term (7.5 k_p f^3 ~ 0.1-1) outweighs "
        "the time term (0.05 t ~ 0.03), so the lowest clock in CAFTM's range wins; in ms the time term "
        "(0.05 t ~ 30) wins, so the highest clock under the cap. Same episodes; mean over episodes.",
        "",
        "| units (time, power, clock) | mean clock running (MHz) | carbon (kg) | JCT (h) | late (h) | deadline met |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for u, g in units.groupby("units", sort=False):
        mark = " (default)" if u == PROTOTYPE_READING else ""
        lines.append(
            f"| {u}{mark} | {g['clock_mhz'].mean():.0f} | {g['carbon_kg'].mean():.2f} | {g['jct_h'].mean():.1f} | "
            f"{g['late_h'].mean():.2f} | {g['deadline_met'].astype(float).mean():.0%} |"
        )
    lines.append("")
    return lines


def _variants(sweep: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(sweep["variant"]))


def append_to_report(path, lines: list[str]) -> None:
    """Append a section (Markdown lines) to an existing ``report.md``."""
    if lines:
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n" + "\n".join(lines) + "\n")
