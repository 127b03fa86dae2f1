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
from sim.errors import DataError
from sim.paths import raw_data_dir

PHILLY_RELPATH = Path("job_traces") / "philly_pollux" / "philly.csv"
RAW_COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")


def load_philly(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The trace in file order, with columns ``arrival_s`` (s since the earliest job), ``duration_s``,
    ``num_gpus`` (int), ``gpu_time_s`` and ``cluster``.

    :param path: the csv; default ``<raw data>/job_traces/philly_pollux/philly.csv``.
    :raises DataError: missing file or column, unparsable timestamp, NaN, duration <= 0, num_gpus < 1 or not
        an integer; the message names the file, the column and the first bad data row (1 = first after header).
    """
    if path is None:
        root = raw_data_dir()
        if root is None:
            raise DataError("no raw data directory (set CARBON_DATA_DIR or put shared/data beside the repo)")
        path = Path(root) / PHILLY_RELPATH
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
