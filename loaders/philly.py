"""Microsoft Philly DL job trace, Pollux-processed copy (SPEC W6): job arrivals and sizes for multi-job scenarios.

Source: ``job_traces/philly_pollux/philly.csv`` from petuum/adaptdl ``osdi21-artifact`` (Apache-2.0); upstream
msr-fiddle/philly-traces, CC BY 4.0 -- Jeon et al., "Analysis of Large-Scale Multi-Tenant GPU Clusters for DNN
Training Workloads", USENIX ATC '19. Columns: ``timestamp`` (arrival, timezone not given), ``duration`` (s),
``num_gpus``, ``gpu_time`` (GPU-seconds), ``cluster`` (hashed virtual-cluster id).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from loaders.common import read_checked_csv
from sim.errors import ConfigError, DataError
from sim.fleet_jobs import FleetJobs, build_fleet_jobs, draw_trace_jobs, listed_draws
from sim.paths import TRACES_DIR, trace_roots
from sim.scenario import FleetJobSource, FleetScenario

PHILLY_RELPATH = Path("job_traces") / "philly_pollux" / "philly.csv"
RAW_COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")


def philly_path() -> Path:
    """The Philly trace file: ``job_traces/philly_pollux/philly.csv`` or ``.csv.gz`` in the raw-data folder,
    else the shipped copy (:func:`sim.paths.trace_roots`; synthetic carbon data does not change the job trace)."""
    roots = trace_roots() or [TRACES_DIR]
    candidates = [r / PHILLY_RELPATH.with_name(name) for r in roots for name in ("philly.csv", "philly.csv.gz")]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"the Philly job trace is in none of {[str(p) for p in candidates]}")


def load_philly(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The trace in file order, with columns ``arrival_s`` (s since the earliest job), ``duration_s``,
    ``num_gpus`` (int), ``gpu_time_s`` and ``cluster``.

    :param path: the csv; default ``job_traces/philly_pollux/philly.csv`` (or ``.csv.gz``) in the first folder of
        :func:`sim.paths.trace_roots` that has it: the raw-data folder, else the copy shipped in ``data/traces``.
    :raises DataError: missing file or column, unparsable timestamp, NaN, duration <= 0, num_gpus < 1 or not
        an integer; the message names the file, the column and the first bad data row (1 = first after header).
    """
    if path is None:
        path = philly_path()
    df = read_checked_csv(Path(path), RAW_COLUMNS)

    def check(col: str, ok: np.ndarray, expected: str) -> None:
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise DataError(f"{path}: column {col!r}, data row {i + 1}: got {df[col].iloc[i]!r}, expected {expected}")

    ts = pd.to_datetime(df["timestamp"], errors="coerce", format="%Y-%m-%d %H:%M:%S")
    check("timestamp", ts.notna().to_numpy(), "a time 'YYYY-MM-DD HH:MM:SS'")
    cols = {}
    for col in ("duration", "gpu_time"):
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        check(col, np.isfinite(v) & (v > 0), "a finite number of seconds > 0")
        cols[col] = v
    g = pd.to_numeric(df["num_gpus"], errors="coerce").to_numpy(dtype=float)
    check("num_gpus", np.isfinite(g) & (g >= 1) & (g == np.round(g)), "an integer >= 1")
    arrival = (ts - ts.min()).dt.total_seconds().to_numpy()
    return pd.DataFrame(
        {
            "arrival_s": arrival,
            "duration_s": cols["duration"],
            "num_gpus": g.astype(np.int64),
            "gpu_time_s": cols["gpu_time"],
            "cluster": df["cluster"].astype(str),
        }
    )


def sample_jobs(rng: np.random.Generator, n: int, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` jobs' (num_gpus, duration_s) jointly from the trace's empirical distribution (rows with
    replacement, so a size keeps its own duration). Returns two arrays of length ``n``: int64 GPUs, float s."""
    rows = rng.integers(0, len(df), size=n)
    return df["num_gpus"].to_numpy()[rows], df["duration_s"].to_numpy()[rows]


def philly_window(df: pd.DataFrame, source: FleetJobSource, where: str = "<scenario>") -> pd.DataFrame:
    """The rows a fleet may draw (``source`` is a fleet scenario's ``jobs``):
    arrival in ``window_days`` (days after the trace's first job, end exclusive), duration in ``duration_hours``
    and GPUs in ``gpus`` (both inclusive). Adds ``row`` (file row, 0 = first data row), ``offset_s`` (arrival
    after the window start) and ``cluster_index`` (the cluster's rank among the trace's sorted cluster ids).

    :raises ConfigError: no row matches, naming ``jobs.window_days`` and the filters.
    """
    start_s, end_s = (d * 86_400.0 for d in source.window_days)
    lo_h, hi_h = source.duration_hours
    ok = (df["arrival_s"] >= start_s) & (df["arrival_s"] < end_s)
    ok &= (df["duration_s"] >= lo_h * 3600.0) & (df["duration_s"] <= hi_h * 3600.0)
    ok &= (df["num_gpus"] >= source.gpus[0]) & (df["num_gpus"] <= source.gpus[1])
    if not ok.any():
        span_days = df["arrival_s"].max() / 86_400.0
        raise ConfigError(
            f"{where}: jobs.window_days: no trace job arrives in {list(source.window_days)} with duration_hours "
            f"{list(source.duration_hours)} and gpus {list(source.gpus)} (the trace spans days 0 to {span_days:.1f})"
        )
    clusters = np.unique(df["cluster"].to_numpy())
    out = df.loc[ok].copy()
    out.insert(0, "row", np.flatnonzero(ok.to_numpy()))
    out["offset_s"] = out["arrival_s"] - start_s
    out["cluster_index"] = np.searchsorted(clusters, out["cluster"].to_numpy())
    return out.reset_index(drop=True)


def fleet_jobs(
    scenario: FleetScenario, seed: int, df: pd.DataFrame | None = None, window: pd.DataFrame | None = None
) -> FleetJobs:
    """The jobs of one fleet episode, resampled from the trace by ``seed``
    (``jobs.source: philly``) or as listed (``jobs.source: list``). Same scenario and seed -> same jobs.

    :param df: the loaded trace (default :func:`load_philly`); unused for listed jobs.
    :param window: ``philly_window(df, scenario.jobs)`` if the caller keeps it (it is the same every episode)
    """
    if scenario.jobs.source == "list":
        return build_fleet_jobs(scenario, listed_draws(scenario))
    if window is None:
        window = philly_window(load_philly() if df is None else df, scenario.jobs, scenario.source)
    draws = draw_trace_jobs(
        scenario,
        np.random.default_rng(seed),
        arrival_s=window["offset_s"].to_numpy(),
        duration_s=window["duration_s"].to_numpy(),
        gpus=window["num_gpus"].to_numpy(),
        cluster_index=window["cluster_index"].to_numpy(),
        rows=window["row"].to_numpy(),
    )
    return build_fleet_jobs(scenario, draws)
