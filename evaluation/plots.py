"""PNG figures of an evaluation: carbon per policy, energy vs completion time, one episode's timelines."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from envs.plotting import fit_title, timeline_figure  # noqa: E402

DPI = 120
MARKERS = "osD^vP*Xh<>p"


def _colors(n: int):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _err(series: pd.Series) -> np.ndarray:
    return np.nan_to_num(series.to_numpy(dtype=float), nan=0.0)


LABEL_CHARS = 14  # tick labels of the bar chart wrap at this many characters


def wrap_label(name: str, chars: int = LABEL_CHARS) -> str:
    """``name`` on lines of at most ``chars`` characters, broken after ``-``/``_``/space where possible."""
    lines, line = [], ""
    for piece in re.findall(r"[^-_ ]+[-_ ]*|[-_ ]+", name):
        while len(piece) > chars:  # one piece longer than a line: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(piece[:chars])
            piece = piece[chars:]
        if len(line) + len(piece) > chars and line:
            lines.append(line)
            line = ""
        line += piece
    if line:
        lines.append(line)
    return "\n".join(s.strip() for s in lines)


def carbon_bars(summary: pd.DataFrame, path, title: str = "") -> None:
    """Mean carbon per episode and policy, with 95% interval error bars.

    Long policy names (an agent is named by train.py's ``--name``) wrap under their bar instead of squeezing
    the plot: each bar gets room for :data:`LABEL_CHARS` characters and the figure grows with the label lines.
    """
    n = len(summary)
    labels = [wrap_label(str(p)) for p in summary["policy"]]
    label_lines = max((lab.count("\n") + 1 for lab in labels), default=1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * n + 1.5), 4.0 + 0.18 * label_lines), constrained_layout=True)
    x = np.arange(n)
    ax.bar(
        x,
        summary["carbon_kg_mean"],
        yerr=_err(summary["carbon_kg_ci95"]),
        capsize=4,
        color=_colors(n),
        edgecolor="black",
        linewidth=0.6,
    )
    ax.set_xticks(x, labels, fontsize=8 if n > 6 else 9)
    ax.set_ylabel("carbon per episode (kg CO2eq)")
    ax.set_xlabel("policy")
    ax.set_title(fit_title(title or "Carbon per episode (mean, 95% CI)", fig))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def energy_vs_jct(summary: pd.DataFrame, path, deadline_h: float | None = None, title: str = "") -> None:
    """One marker per policy at (mean completion time, mean energy) with 95% interval error bars."""
    fig, ax = plt.subplots(figsize=(8.0, 5.0), constrained_layout=True)
    for i, (color, (_, r)) in enumerate(zip(_colors(len(summary)), summary.iterrows())):
        if pd.isna(r["jct_h_mean"]):  # never completed: no completion time to plot
            continue
        ax.errorbar(
            r["jct_h_mean"],
            r["energy_kwh_mean"],
            xerr=_err(pd.Series([r["jct_h_ci95"]])),
            yerr=_err(pd.Series([r["energy_kwh_ci95"]])),
            fmt=MARKERS[i % len(MARKERS)],
            color=color,
            ms=8,
            capsize=3,
            label=r["policy"],
        )
    if deadline_h is not None and np.isfinite(deadline_h):
        ax.axvline(deadline_h, ls="--", color="grey", lw=1, label=f"deadline ({deadline_h:g} h)")
    ax.set_xlabel("job completion time (h, completed episodes)")
    ax.set_ylabel("energy per episode (kWh, facility + transfer)")
    # a figure title over axes and legend together: an axes title centred over the plot alone overflows to the
    # left when the legend beside it takes the width
    fig.suptitle(fit_title(title or "Energy vs completion time (mean, 95% CI)", fig))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def shared_limits(histories: list[dict]) -> dict:
    """Axis ranges common to the timelines of several policies, so they compare by eye.

    :return: ``t_max_h`` (the latest step of any policy), ``clock_mhz`` and ``power_kw`` as (low, high) with 5%
        margins over every policy's values (and power caps).
    """

    def span(arrays, pad=0.05):
        vals = np.concatenate([a[np.isfinite(a)] for a in arrays] or [np.zeros(1)])
        lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0)
        margin = pad * (hi - lo) if hi > lo else max(abs(hi), 1.0) * pad
        return lo - margin, hi + margin

    def col(h, key, scale=1.0):
        v = h.get(key)
        return np.zeros(0) if v is None else np.asarray(v, dtype=float) * scale

    t_max = max((float(np.max(h["t_h"])) for h in histories if len(h["t_h"])), default=1.0)
    return {
        "t_max_h": t_max,
        "clock_mhz": span([col(h, "clock_mhz") for h in histories]),
        "power_kw": span([col(h, "power_w", 1e-3) for h in histories] + [col(h, "cap_w", 1e-3) for h in histories]),
    }


def timeline(
    history: dict,
    ci_g_per_kwh: np.ndarray,
    region_names,
    path,
    title: str = "",
    limits: dict | None = None,
    deadline_h: float | None = None,
) -> None:
    """One episode of one policy: intensity of each region, the job's region, power against the cap, clock.

    :param limits: :func:`shared_limits` of every policy's timeline, so all of them share the time, clock and
        power axes; None autoscales this one.
    :param deadline_h: the job's deadline (h since the episode start), marked on every panel.
    """
    t_h = np.asarray(history["t_h"], dtype=float)
    t_end = limits["t_max_h"] if limits else (t_h[-1] if len(t_h) else 0.0)
    n_h = int(np.ceil(t_end)) + 1
    ci = ci_g_per_kwh[:, : min(n_h, ci_g_per_kwh.shape[1])]
    cap = history.get("cap_w")
    fig = timeline_figure(
        t_h,
        ci,
        list(region_names),
        np.asarray(history["region"]),
        np.asarray(history["clock_mhz"], dtype=float),
        np.asarray(history["power_w"], dtype=float),
        None if cap is None else np.asarray(cap, dtype=float),
        title=title,
        deadline_h=deadline_h,
    )
    if limits:
        t_max = max(limits["t_max_h"], deadline_h or 0.0)
        fig.axes[0].set_xlim(0.0, t_max)  # the panels share x
        fig.axes[2].set_ylim(*limits["power_kw"])
        fig.axes[3].set_ylim(*limits["clock_mhz"])
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def safe_name(name: str) -> str:
    """A file-name-safe version of a policy name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "policy"


def theta_sweep(sweep: pd.DataFrame, path, title: str = "") -> None:
    """CAFTM's mean carbon (with 95% interval) and share of deadlines met against one theta_CI for all zones.

    :param sweep: rows ``variant, theta_g_per_kwh, episode, carbon_kg, deadline_met`` (``evaluation.theta_sweep``).
    """
    from evaluation.report import ci95_half_width

    fig, (ax_c, ax_d) = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True, constrained_layout=True)
    variants = list(dict.fromkeys(sweep["variant"]))
    for i, (color, v) in enumerate(zip(_colors(len(variants)), variants)):
        g = sweep[sweep["variant"] == v].groupby("theta_g_per_kwh", sort=True)
        theta = np.array(list(g.groups), dtype=float)
        ax_c.errorbar(
            theta,
            g["carbon_kg"].mean(),
            yerr=_err(g["carbon_kg"].agg(ci95_half_width)),
            fmt=MARKERS[i] + "-",
            color=color,
            capsize=3,
            label=v,
        )
        ax_d.plot(theta, 100.0 * g["deadline_met"].mean(), MARKERS[i] + "-", color=color, label=v)
    ax_c.set_ylabel("carbon per episode (kg CO2eq)")
    ax_c.set_title(title or "CAFTM against theta_CI")
    ax_c.legend(fontsize=9)
    ax_d.set_ylabel("deadline met (% of episodes)")
    ax_d.set_ylim(-5, 105)
    ax_d.set_xlabel("theta_CI, one threshold for every zone (g CO2eq/kWh)")
    for ax in (ax_c, ax_d):
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def checkpoint_sweep(table: pd.DataFrame, bytes_per_param: float, path, title: str = "") -> None:
    """Change in carbon against ``stay`` (%) per policy against the checkpoint size (log scale).

    :param table: rows ``params, policy, change_vs_stay_pct`` (``evaluation.sensitivity.checkpoint_savings``).
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.5), constrained_layout=True)
    policies = list(dict.fromkeys(table["policy"]))
    for i, (color, p) in enumerate(zip(_colors(len(policies)), policies)):
        g = table[table["policy"] == p].sort_values("params")
        ax.plot(g["params"] * bytes_per_param / 1e9, g["change_vs_stay_pct"], MARKERS[i] + "-", color=color, label=p)
    ax.set_xscale("log")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("checkpoint (GB, log scale)")
    ax.set_ylabel("carbon change against stay (%)")
    ax.set_title(title or "Savings against the checkpoint size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
