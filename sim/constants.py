"""The constants registry (``data/derived/constants.csv``): every model constant with value, unit, source, status.

A scenario may only use constants the registry lists (spec V3): :func:`unregistered` names each value of a
loaded scenario that has no row of the same name and value. Design choices of an experiment (which job, how many
GPUs, deadlines, horizons, power caps, reward weights, data splits) are settings, not constants, and are not
checked; faults and noises switched off (0) are not constants either.
"""

from __future__ import annotations

import csv
import math
from functools import lru_cache
from pathlib import Path

from sim.paths import DERIVED_DIR

CONSTANTS_CSV = DERIVED_DIR / "constants.csv"
COLUMNS = ("name", "value", "unit", "status", "source", "used_by")
STATUSES = ("measured", "cited", "assumption")


@lru_cache(maxsize=4)
def load_registry(path: str | Path = CONSTANTS_CSV) -> tuple[dict[str, str], ...]:
    """The registry's rows (dicts of :data:`COLUMNS`), checked: every field filled, a known status."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: columns must be {', '.join(COLUMNS)}; got {reader.fieldnames}")
        rows = tuple(reader)
    for i, row in enumerate(rows, start=2):
        empty = [c for c in COLUMNS if not (row[c] or "").strip()]
        if empty:
            raise ValueError(f"{path}:{i} ({row['name']}): empty {', '.join(empty)}; every row needs all fields")
        if row["status"] not in STATUSES:
            raise ValueError(f"{path}:{i} ({row['name']}): status must be one of {', '.join(STATUSES)}")
    return rows


def _same(registered: str, value) -> bool:
    if isinstance(value, str):
        return registered == value
    try:
        return math.isclose(float(registered), float(value), rel_tol=1e-9, abs_tol=0.0)
    except ValueError:
        return False


def scenario_constants(sc) -> list[tuple[str, object]]:
    """``(registry name, value)`` of every model constant a loaded scenario (single-job or fleet) uses."""
    out: list[tuple[str, object]] = [("regions.pue", r.pue) for r in sc.regions]
    f = sc.faults
    for key in ("gpu_failure_per_gpu_hour", "transfer_failure_prob", "shortage_scale", "outage_per_region_day"):
        if getattr(f, key) > 0:
            out.append((f"faults.{key}", getattr(f, key)))
    if f.outage_per_region_day > 0:
        out.append(("faults.outage_mean_hours", f.outage_mean_hours))
    if f.gpu_failure_per_gpu_hour > 0:
        out.append(("faults.gpu_replace_s", f.gpu_replace_s))
    if f.shortage_scale > 0:
        out.append(("faults.reclaim_notice_s", f.reclaim_notice_s))
    for key in ("shortage_region_correlation", "shortage_daily_amplitude"):
        if getattr(f, key) > 0:
            out.append((f"faults.{key}", getattr(f, key)))
    if sc.forecast.kind == "noisy" and sc.forecast.error_std_per_hour > 0:
        out.append(("forecast.error_std_per_hour", sc.forecast.error_std_per_hour))
    out.append(("transfer_kwh_per_gb", sc.transfer_kwh_per_gb))
    out.append(("model.restart_s", sc.model.restart_s))
    if getattr(sc, "kind", "single") == "fleet":
        j = sc.jobs
        out += [("job.storage_gbps", j.storage_gbps), ("job.snapshot_gb_per_s", j.snapshot_gb_per_s)]
        out += [("job.bytes_per_param", w.bytes_per_param) for w in j.workloads]
        if sc.power_provisioning_factor is not None:
            out.append(("power_provisioning_factor", sc.power_provisioning_factor))
        return out
    j = sc.job
    out += [
        ("job.storage_gbps", j.storage_gbps),
        ("job.snapshot_gb_per_s", j.snapshot_gb_per_s),
        ("job.bytes_per_param", j.bytes_per_param),
        ("job.work_scale", j.work_scale),
        ("job.parallel_group_gpus", j.parallel_group_gpus),
    ]
    if j.noise_std > 0:
        out.append(("job.noise_std", j.noise_std))
    if j.phase_hours > 0:
        out += [("job.phase_multipliers", m) for m in j.phase_multipliers]
    if j.scaling_curve:
        out.append(("job.scaling_curve", " ".join(f"{g:g}:{s!r}" for g, s in j.scaling_curve)))
    return out


def unregistered(sc, rows: tuple[dict[str, str], ...] | None = None) -> list[str]:
    """``"name = value"`` for each constant of ``sc`` with no registry row of that name and value."""
    rows = load_registry() if rows is None else rows
    by_name: dict[str, list[str]] = {}
    for row in rows:
        by_name.setdefault(row["name"], []).append(row["value"])
    return [f"{n} = {v}" for n, v in scenario_constants(sc) if not any(_same(r, v) for r in by_name.get(n, ()))]
