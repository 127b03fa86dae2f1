"""CAFTM against its migration threshold: carbon and deadline rate of ``caftm`` / ``caftm_guarded`` with one
theta_CI for every zone, on the same episodes as the main evaluation (the paper-claims section of report.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation import plots
from evaluation.episodes import G_PER_KG, EpisodeTask, _env
from evaluation.report import append_to_report, caftm_claims_section, caftm_units_section

# one theta_CI (g/kWh) for every zone; spans the paper scenario's zones (CAISO ~200 to JP-TK ~500 median)
THETAS_G_PER_KWH = tuple(float(x) for x in np.arange(150.0, 551.0, 50.0))
VARIANTS = ("caftm", "caftm_guarded")


def run_theta_sweep(tasks: list[EpisodeTask], thetas=THETAS_G_PER_KWH, variants=VARIANTS) -> pd.DataFrame:
    """Rows ``variant, theta_g_per_kwh, episode, carbon_kg, avg_power_w, deadline_met`` for each variant,
    threshold and task (one task per episode, any policy: only its environment, start hour and seed are used)."""
    from baselines import make_policy
    from baselines.runner import run_episode
    from evaluation.episodes import _avg_power_w

    rows = []
    for variant in variants:
        for theta in thetas:
            for t in tasks:
                m = run_episode(_env(t.env), make_policy(variant, theta_ci=theta), t.seed, t.start_hour, False)
                rows.append(
                    {
                        "variant": variant,
                        "theta_g_per_kwh": theta,
                        "episode": t.episode,
                        "carbon_kg": m["carbon_g"] / G_PER_KG,
                        "avg_power_w": _avg_power_w(m),
                        "deadline_met": bool(m["deadline_met"]),
                    }
                )
    return pd.DataFrame(rows)


def run_unit_readings(tasks: list[EpisodeTask]) -> pd.DataFrame:
    """Rows ``units, episode, carbon_kg, jct_h, deadline_met, late_h, clock_mhz`` of ``caftm`` under every reading
    of its cost's units (``baselines.caftm.UNIT_READINGS``) on the episodes of ``tasks``; ``clock_mhz`` is the
    mean clock over the decision steps the job ran (Tolerance)."""
    from baselines import make_policy
    from baselines.caftm import UNIT_READINGS
    from baselines.runner import run_episode
    from sim.states import State

    rows = []
    for units in UNIT_READINGS:
        for t in tasks:
            m = run_episode(_env(t.env), make_policy("caftm", units=units), t.seed, t.start_hour, True)
            h = m["history"]
            running = np.asarray(h["state"]) == State.TOLERANCE
            rows.append(
                {
                    "units": units,
                    "episode": t.episode,
                    "carbon_kg": m["carbon_g"] / G_PER_KG,
                    "jct_h": float(m["jct_h"]),
                    "deadline_met": bool(m["deadline_met"]),
                    "late_h": float(m.get("late_h", 0.0)),
                    "clock_mhz": float(np.mean(np.asarray(h["clock_mhz"])[running])) if running.any() else np.nan,
                }
            )
    return pd.DataFrame(rows)


def write_caftm_claims(out, episodes: pd.DataFrame, tasks: list[EpisodeTask], label: str) -> None:
    """Run the theta_CI sweep on the episodes of ``tasks``, save ``theta_sweep.csv`` and ``caftm_theta.png``,
    and append the paper-claims section to ``out/report.md`` (needs ``caftm`` and ``stay`` in ``episodes``)."""
    first = {}
    for t in tasks:
        first.setdefault(t.episode, t)
    sweep = run_theta_sweep(list(first.values()))
    sweep.to_csv(out / "theta_sweep.csv", index=False)
    plots.theta_sweep(sweep, out / "caftm_theta.png", title=f"CAFTM against its threshold theta_CI\n({label})")
    append_to_report(out / "report.md", caftm_claims_section(episodes, sweep, "caftm_theta.png"))


UNIT_EPISODES = 5  # episodes of the unit readings in the default report (the readings differ by whole hours)


def write_caftm_units(out, tasks: list[EpisodeTask], n: int = UNIT_EPISODES) -> None:
    """Run ``caftm`` under every unit reading on the first ``n`` episodes of ``tasks``; ``caftm_units.csv`` and
    the section of ``report.md`` (``evaluation.report.caftm_units_section``)."""
    first = {}
    for t in tasks:
        first.setdefault(t.episode, t)
    units = run_unit_readings(list(first.values())[:n])
    units.to_csv(out / "caftm_units.csv", index=False)
    append_to_report(out / "report.md", caftm_units_section(units))
