"""GPU speed/power models by (gpu, workload), read from ``data/derived/gpu_models.csv``.

That table is fitted by ``data/derive.py`` (``derive_gpu_models``) on the Perseus per-clock profiles (A100 SXM,
A40) and the Zeus power-limit sweeps (A40, V100, P100, RTX6000); see ``data/derived/README.md`` for the fit
errors. GPU names: ``A100, A40, V100, P100, RTX6000``. Workloads: ``resnet50, bert_squad, bert_sentiment,
deepspeech2, shufflenetv2, ncf`` (Zeus) and ``gpt3_stage, bloom_stage`` (Perseus).
For other GPUs, :func:`analytic_gpu_model` builds the CAFTM analytic model.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np

from sim.errors import ConfigError, DataError
from sim.gpu import GpuModel
from sim.paths import DERIVED_DIR

GPU_MODELS_CSV = DERIVED_DIR / "gpu_models.csv"
FLOAT_FIELDS = (  # the numeric columns of gpu_models.csv (loaders.gpu_power writes them)
    "clocks_min_mhz",
    "clocks_max_mhz",
    "clock_step_mhz",
    "t0_s",
    "t1_s_mhz",
    "p0_w",
    "p1_w_per_mhz",
    "p3_w_per_mhz3",
    "idle_w",
)


def clock_grid_mhz(min_mhz: float, max_mhz: float, step_mhz: float) -> np.ndarray:
    """Ascending clocks ``max, max - step, ...`` down to ``min`` (``min`` itself is always included)."""
    n = int(np.floor((max_mhz - min_mhz) / step_mhz + 1e-9))
    grid = max_mhz - step_mhz * np.arange(n + 1)
    if grid[-1] - min_mhz > 1e-6:
        grid = np.append(grid, min_mhz)
    return np.sort(grid)


@lru_cache(maxsize=4)
def load_gpu_models(path: str | Path = GPU_MODELS_CSV) -> dict[tuple[str, str], GpuModel]:
    """All models in the table, keyed by ``(gpu, workload)``. Cached per path."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("gpu", "workload", "source", *FLOAT_FIELDS) if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}")
            rows = list(reader)
    except OSError as exc:
        raise DataError(f"{path}: cannot read GPU model table ({exc}); run data/derive.py") from exc
    models = {}
    for i, row in enumerate(rows, start=2):
        values = {}
        for name in FLOAT_FIELDS:
            try:
                values[name] = float(row[name])
            except (TypeError, ValueError):
                raise DataError(f"{path}: row {i}, column '{name}': expected a number, got {row[name]!r}") from None
        if not 0 < values["clocks_min_mhz"] <= values["clocks_max_mhz"] or values["clock_step_mhz"] <= 0:
            raise DataError(f"{path}: row {i}: expected 0 < clocks_min_mhz <= clocks_max_mhz and clock_step_mhz > 0")
        key = (row["gpu"], row["workload"])
        if key in models:
            raise DataError(f"{path}: row {i}: duplicate (gpu, workload) {key}")
        clocks = clock_grid_mhz(values["clocks_min_mhz"], values["clocks_max_mhz"], values["clock_step_mhz"])
        models[key] = GpuModel(
            gpu=key[0],
            workload=key[1],
            clocks_mhz=clocks,
            t0_s=values["t0_s"],
            t1_s_mhz=values["t1_s_mhz"],
            p0_w=values["p0_w"],
            p1_w_per_mhz=values["p1_w_per_mhz"],
            p3_w_per_mhz3=values["p3_w_per_mhz3"],
            idle_w=values["idle_w"],
            source=row["source"],
        )
    return models


def gpu_model(gpu: str, workload: str, path: str | Path = GPU_MODELS_CSV) -> GpuModel:
    """The fitted model of ``workload`` on ``gpu``; ConfigError listing the known pairs on a miss."""
    models = load_gpu_models(path)
    try:
        return models[gpu, workload]
    except KeyError:
        known = ", ".join(f"{g}/{w}" for g, w in sorted(models))
        raise ConfigError(
            f"no GPU model for gpu={gpu!r}, workload={workload!r} in {path}; known: {known}. "
            f"For another GPU use sim.gpu_models.analytic_gpu_model"
        ) from None


def analytic_gpu_model(
    gpu: str, workload: str, k_t_s_mhz: float, k_p_w_per_mhz3: float, idle_w: float, clocks_mhz
) -> GpuModel:
    """CAFTM analytic model: t(f) = k_t / f per mini-batch, P(f) = k_p * f**3 + idle.

    :param k_t_s_mhz: mini-batch work over the clock, s*MHz (CAFTM's k_t * W).
    :param k_p_w_per_mhz3: dynamic-power coefficient, W/MHz^3 (CAFTM's k_p * W).
    :param idle_w: idle/blocking power per GPU, W.
    :param clocks_mhz: supported SM clocks, MHz.
    """
    clocks = np.sort(np.asarray(clocks_mhz, dtype=float))
    if clocks.size == 0 or clocks[0] <= 0 or k_t_s_mhz <= 0 or k_p_w_per_mhz3 < 0 or idle_w < 0:
        raise ConfigError(
            f"analytic_gpu_model({gpu!r}, {workload!r}): expected positive clocks and k_t, "
            f"k_p >= 0, idle_w >= 0; got clocks={clocks.tolist()}, k_t={k_t_s_mhz}, "
            f"k_p={k_p_w_per_mhz3}, idle_w={idle_w}"
        )
    return GpuModel(
        gpu=gpu,
        workload=workload,
        clocks_mhz=clocks,
        t0_s=0.0,
        t1_s_mhz=float(k_t_s_mhz),
        p0_w=float(idle_w),
        p1_w_per_mhz=0.0,
        p3_w_per_mhz3=float(k_p_w_per_mhz3),
        idle_w=float(idle_w),
        source="CAFTM analytic fallback",
    )
