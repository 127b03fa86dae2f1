"""Readers for the measured GPU speed/power data in ``<raw>/gpu_power`` (see ``SOURCES.md`` section 2).

* Perseus (SOSP '24) ``stage_profile/<model>+<gpu>_bf16.csv``: per SM clock, the time (s) and energy (J) of one
  forward and one backward microbatch of every pipeline stage, per GPU.
* Zeus (NSDI '23) ``summary_power_<gpu>.csv``: per (workload, batch size, optimizer) and power limit (W),
  the time per epoch (s) and the average board power (W).

Every reader validates columns and values and raises :class:`sim.errors.DataError` naming the file,
the row or column, and what was expected.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from loaders.common import read_checked_csv
from sim.errors import DataError
from sim.gpu_models import FLOAT_FIELDS

PERSEUS_DIR = Path("gpu_power") / "perseus_sosp24" / "stage_profile"
ZEUS_DIR = Path("gpu_power") / "zeus_nsdi23"

STAGE_PROFILE_COLUMNS = ("stage", "instruction", "frequency", "time", "energy")
ZEUS_POWER_COLUMNS = ("dataset", "network", "batch_size", "optimizer", "power_limit", "time_per_epoch", "average_power")

# Training-set size (samples per epoch) of each Zeus dataset, used to turn time per epoch into time per
# mini-batch: time_per_epoch / ceil(samples / batch_size).
#   cifar100      50,000 training images (Krizhevsky 2009; torchvision CIFAR100(train=True), used by
#                 ml-energy/zeus examples/cifar100/train.py).
#   imagenet      1,281,167 ILSVRC-2012 training images (Russakovsky et al., IJCV 2015).
#   librispeech   281,241 utterances in the 960 h training split: train-clean-100 28,539 + train-clean-360
#                 104,014 + train-other-500 148,688 (Panayotov et al., ICASSP 2015).
#   movielens-1m  4,970,845 = (1,000,209 ratings - 6,040 leave-one-out test ratings) x (1 positive + 4
#                 sampled negatives), the NCF training protocol (He et al., WWW 2017). Assumption: Zeus's
#                 NCF follows that protocol; the trace does not say.
#   squad         87,599 SQuAD v1.1 training questions (Rajpurkar et al., EMNLP 2016); BERT's doc-stride
#                 windowing adds ~1 % more features, ignored.
#   sentiment140  1,600,000 training tweets (Go et al. 2009).
# A different size only rescales t0_s and t1_s_mhz of that workload; fit errors are unaffected.
ZEUS_TRAIN_SAMPLES = {
    "cifar100": 50_000,
    "imagenet": 1_281_167,
    "librispeech": 281_241,
    "movielens-1m": 4_970_845,
    "squad": 87_599,
    "sentiment140": 1_600_000,
}


def _positive(df: pd.DataFrame, path: Path, column: str) -> np.ndarray:
    """Column ``column`` as float64, checked to be finite and > 0 (row numbers are 1-based data rows)."""
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"{path}: row {row + 2}, column '{column}': expected a positive number, got {df[column].iloc[row]!r}"
        )
    return values


def read_stage_profile(path: str | Path) -> pd.DataFrame:
    """One Perseus stage profile: columns ``stage, instruction, frequency_mhz, time_s, energy_j``."""
    path = Path(path)
    df = read_checked_csv(path, STAGE_PROFILE_COLUMNS)
    bad = ~df["instruction"].isin(["forward", "backward"])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: row {row + 2}, column 'instruction': expected 'forward' or 'backward', "
            f"got {df['instruction'].iloc[row]!r}"
        )
    stage = pd.to_numeric(df["stage"], errors="coerce")
    if stage.isna().any() or (stage < 0).any():
        row = int(np.flatnonzero(stage.isna() | (stage < 0))[0])
        raise DataError(
            f"{path}: row {row + 2}, column 'stage': expected a stage index >= 0, got {df['stage'].iloc[row]!r}"
        )
    out = pd.DataFrame(
        {
            "stage": stage.astype(int),
            "instruction": df["instruction"],
            "frequency_mhz": _positive(df, path, "frequency"),
            "time_s": _positive(df, path, "time"),
            "energy_j": _positive(df, path, "energy"),
        }
    )
    dup = out.duplicated(["stage", "instruction", "frequency_mhz"])
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataError(f"{path}: row {row + 2}: duplicate (stage, instruction, frequency)")
    return out


def stage_mean_minibatch(profile: pd.DataFrame, path: str | Path = "<stage profile>") -> pd.DataFrame:
    """Per SM clock, the stage-mean of one forward + one backward microbatch.

    Returns columns ``frequency_mhz, time_s, energy_j, power_w`` sorted by clock, where time and energy are
    averaged over the pipeline stages (the average GPU of the pipeline) and power = energy / time.
    Raises DataError if some (stage, clock) lacks its forward or backward row.
    """
    per_stage = profile.pivot_table(
        index=["stage", "frequency_mhz"], columns="instruction", values=["time_s", "energy_j"], aggfunc="sum"
    )
    if per_stage.isna().any().any() or per_stage.shape[1] != 4:
        raise DataError(f"{path}: every (stage, frequency) needs one 'forward' and one 'backward' row")
    counts = per_stage.groupby(level="frequency_mhz").size()
    if counts.nunique() != 1:
        raise DataError(f"{path}: clocks {list(counts[counts != counts.max()].index)} lack some stages")
    slice_ = pd.DataFrame({"time_s": per_stage["time_s"].sum(axis=1), "energy_j": per_stage["energy_j"].sum(axis=1)})
    mean = slice_.groupby(level="frequency_mhz").mean().reset_index().sort_values("frequency_mhz")
    mean["power_w"] = mean["energy_j"] / mean["time_s"]
    return mean.reset_index(drop=True)


def read_zeus_power(path: str | Path) -> pd.DataFrame:
    """One Zeus power trace with columns ``dataset, network, batch_size, optimizer, power_limit_w,
    time_per_epoch_s, average_power_w``."""
    path = Path(path)
    df = read_checked_csv(path, ZEUS_POWER_COLUMNS)
    out = pd.DataFrame(
        {
            "dataset": df["dataset"].astype(str),
            "network": df["network"].astype(str),
            "batch_size": _positive(df, path, "batch_size").astype(int),
            "optimizer": df["optimizer"].astype(str),
            "power_limit_w": _positive(df, path, "power_limit"),
            "time_per_epoch_s": _positive(df, path, "time_per_epoch"),
            "average_power_w": _positive(df, path, "average_power"),
        }
    )
    return out


def zeus_sweep(
    power: pd.DataFrame, dataset: str, batch_size: int, optimizer: str, path: str | Path = "<zeus power trace>"
) -> pd.DataFrame:
    """The power-limit sweep of one config: columns ``power_limit_w, time_per_minibatch_s, average_power_w``.

    Time per mini-batch = time_per_epoch / ceil(ZEUS_TRAIN_SAMPLES[dataset] / batch_size).
    """
    if dataset not in ZEUS_TRAIN_SAMPLES:
        raise DataError(
            f"{path}: dataset {dataset!r} has no documented training-set size; known: {sorted(ZEUS_TRAIN_SAMPLES)}"
        )
    rows = power[
        (power["dataset"] == dataset) & (power["batch_size"] == batch_size) & (power["optimizer"] == optimizer)
    ].sort_values("power_limit_w")
    if len(rows) < 2:
        raise DataError(
            f"{path}: expected a power-limit sweep (>= 2 rows) for dataset={dataset}, "
            f"batch_size={batch_size}, optimizer={optimizer}; found {len(rows)}"
        )
    if rows["power_limit_w"].duplicated().any():
        raise DataError(
            f"{path}: duplicate power_limit rows for dataset={dataset}, batch_size={batch_size}, optimizer={optimizer}"
        )
    steps = math.ceil(ZEUS_TRAIN_SAMPLES[dataset] / batch_size)
    return pd.DataFrame(
        {
            "power_limit_w": rows["power_limit_w"].to_numpy(),
            "time_per_minibatch_s": rows["time_per_epoch_s"].to_numpy() / steps,
            "average_power_w": rows["average_power_w"].to_numpy(),
        }
    )


# --- calibration table (data/derived/gpu_models.csv) ----------------------------------------------------------
GPU_MODEL_COLUMNS = (
    "gpu",
    "workload",
    "source",
    *FLOAT_FIELDS,  # what sim.gpu_models reads back
    "minibatch_note",
    "n_points",
    "time_median_rel_err",
    "time_max_rel_err",
    "power_median_rel_err",
    "power_max_rel_err",
    "cap_ratio",
)

# Perseus blocking (idle-wait) power per GPU, W: the Perseus SOSP '24 artifact notebook
# (ml-energy/zeus, branch kronos, commit 38cb3f9; SOURCES.md section 2b).
PERSEUS_BLOCKING_W = {"a100_sxm": 83.64, "a40": 70.38}
# Perseus profile file stem -> (GPU name, workload name) in our tables.
PERSEUS_PROFILES = {
    ("gpt3-175b", "a100_sxm"): ("A100", "gpt3_stage"),
    ("bloom", "a100_sxm"): ("A100", "bloom_stage"),
    ("gpt3-175b", "a40"): ("A40", "gpt3_stage"),
    ("bloom", "a40"): ("A40", "bloom_stage"),
}

# Zeus GPUs: (name, lowest, highest SM clock MHz). Highest = max boost clock from NVIDIA's datasheets: A40 1740
# (A40 datasheet), V100 PCIe 1380 (Tesla V100 PCIe product brief PB-08744), P100 PCIe 1329 (Tesla P100 PCIe
# datasheet), Quadro RTX 6000 1770 (Quadro RTX 6000 datasheet). PCIe, not SXM2, variants: the traces sweep up
# to 250 W on V100 and 125-250 W on P100, exactly the PCIe boards' power-limit ranges (SXM2 boards go to 300 W).
# Lowest = lowest graphics clock nvidia-smi lists under SUPPORTED_CLOCKS for that architecture (Ampere 210,
# Volta 135, Pascal GP100 544, Turing 300 MHz; from NVIDIA driver listings, not re-measured here).
ZEUS_GPUS = {
    "a40": ("A40", 210.0, 1740.0),
    "v100": ("V100", 135.0, 1380.0),
    "p100": ("P100", 544.0, 1329.0),
    "rtx6000": ("RTX6000", 300.0, 1770.0),
}
# Clock grid for Zeus GPUs, MHz: the spacing of the clocks Perseus measured on A100 and A40 (15 MHz).
ZEUS_CLOCK_STEP_MHZ = 15.0
# Zeus workloads: dataset -> (workload name, network, default batch size, optimizer). The defaults are those of
# get_job_with_defaults() in ml-energy/zeus examples/research_reproducibility/zeus_nsdi23/run_alibaba.py
# (commit 3db0d49); like there, the batch size is capped at the largest one in that GPU's power trace.
ZEUS_WORKLOADS = {
    "cifar100": ("shufflenetv2", "shufflenetv2", 1024, "adadelta"),
    "imagenet": ("resnet50", "resnet50", 256, "adadelta"),
    "librispeech": ("deepspeech2", "deepspeech2", 256, "adamw"),
    "movielens-1m": ("ncf", "ncf", 1024, "adam"),
    "squad": ("bert_squad", "bert_base_uncased", 32, "adamw"),
    "sentiment140": ("bert_sentiment", "bert_base_uncased", 128, "adamw"),
}


def zeus_idle_w(raw_dir: Path) -> dict[str, float]:
    """Idle (blocking) power per Zeus GPU, W.

    A40: the Perseus blocking power (70.38 W). The Zeus traces have no idle figure for the others, so each is
    its lowest average power in any Zeus run (NCF with large batches, where the GPU mostly waits on the data
    loader) times the A40's ratio of blocking power to that same lowest Zeus average.
    """
    lowest = {
        g: read_zeus_power(raw_dir / ZEUS_DIR / f"summary_power_{g}.csv")["average_power_w"].min() for g in ZEUS_GPUS
    }
    ratio = PERSEUS_BLOCKING_W["a40"] / lowest["a40"]
    return {g: PERSEUS_BLOCKING_W["a40"] if g == "a40" else float(lowest[g] * ratio) for g in ZEUS_GPUS}


def _row(gpu, workload, source, clocks, fit, note, n, err_t, err_p) -> dict:
    return {
        "gpu": gpu,
        "workload": workload,
        "source": source,
        "clocks_min_mhz": clocks[0],
        "clocks_max_mhz": clocks[1],
        "clock_step_mhz": clocks[2],
        "t0_s": fit.t0_s,
        "t1_s_mhz": fit.t1_s_mhz,
        "p0_w": fit.p0_w,
        "p1_w_per_mhz": fit.p1_w_per_mhz,
        "p3_w_per_mhz3": fit.p3_w_per_mhz3,
        "idle_w": clocks[3],
        "minibatch_note": note,
        "n_points": n,
        "time_median_rel_err": err_t[0],
        "time_max_rel_err": err_t[1],
        "power_median_rel_err": err_p[0],
        "power_max_rel_err": err_p[1],
        "cap_ratio": fit.cap_ratio,
    }


def perseus_points(raw_dir: Path, model: str, gpu: str) -> pd.DataFrame:
    """Stage-mean forward+backward points of one Perseus profile (see :func:`stage_mean_minibatch`)."""
    path = raw_dir / PERSEUS_DIR / f"{model}+{gpu}_bf16.csv"
    return stage_mean_minibatch(read_stage_profile(path), path)


def zeus_points(raw_dir: Path, gpu: str, dataset: str) -> tuple[pd.DataFrame, int, str]:
    """(sweep, batch size, optimizer) of the default config of ``dataset`` on Zeus GPU ``gpu``."""
    path = raw_dir / ZEUS_DIR / f"summary_power_{gpu}.csv"
    power = read_zeus_power(path)
    _, _, batch, optimizer = ZEUS_WORKLOADS[dataset]
    batch = min(batch, int(power.loc[power["dataset"] == dataset, "batch_size"].max()))
    return zeus_sweep(power, dataset, batch, optimizer, path), batch, optimizer


def build_gpu_model_table(raw_dir: Path) -> pd.DataFrame:
    """Fit every (GPU, workload) pair; one row each with coefficients and the fit's relative errors."""
    from sim import gpu_fit

    rows = []
    for (model, gpu), (name, workload) in PERSEUS_PROFILES.items():
        pts = perseus_points(raw_dir, model, gpu)
        f = pts["frequency_mhz"].to_numpy()
        idle = PERSEUS_BLOCKING_W[gpu]
        fit = gpu_fit.fit_clock_sweep(f, pts["time_s"], pts["power_w"], idle)
        step = float(np.median(np.diff(f)))
        note = (
            f"Perseus {model}+{gpu}_bf16: mean over pipeline stages of one forward + one backward microbatch "
            f"per GPU (slice-level, before the notebook's x10 / x8 scaling); measured at the SM clocks"
        )
        rows.append(
            _row(
                name,
                workload,
                f"perseus_sosp24/stage_profile/{model}+{gpu}_bf16.csv",
                (f.min(), f.max(), step, idle),
                fit,
                note,
                len(f),
                gpu_fit.relative_errors(fit.time_s(f), pts["time_s"]),
                gpu_fit.relative_errors(fit.power_w(f), pts["power_w"]),
            )
        )
    idle_w = zeus_idle_w(raw_dir)
    for gpu, (name, f_min, f_max) in ZEUS_GPUS.items():
        for dataset, (workload, network, _, _) in ZEUS_WORKLOADS.items():
            sweep, batch, optimizer = zeus_points(raw_dir, gpu, dataset)
            limit, t, p = (sweep[c].to_numpy() for c in ("power_limit_w", "time_per_minibatch_s", "average_power_w"))
            fit = gpu_fit.fit_power_limit_sweep(limit, t, p, idle_w[gpu], f_min, f_max)
            t_hat, p_hat = gpu_fit.predict_power_limit_sweep(fit, limit, f_min, f_max)
            # The board never runs above its highest power limit, so neither does the supported clock range.
            f_top = float(gpu_fit.clock_under_limit_mhz(fit, limit.max(), f_min, f_max)[0])
            top = f_max - ZEUS_CLOCK_STEP_MHZ * np.ceil((f_max - f_top) / ZEUS_CLOCK_STEP_MHZ - 1e-9)
            note = (
                f"Zeus {dataset}/{network} batch {batch} {optimizer}: time_per_epoch / "
                f"ceil({ZEUS_TRAIN_SAMPLES[dataset]} / {batch}); power = epoch-average; clock mapped from "
                f"the power limit through cap_ratio * P(f) = limit"
            )
            rows.append(
                _row(
                    name,
                    workload,
                    f"zeus_nsdi23/summary_power_{gpu}.csv",
                    (f_min, top, ZEUS_CLOCK_STEP_MHZ, idle_w[gpu]),
                    fit,
                    note,
                    len(limit),
                    gpu_fit.relative_errors(t_hat, t),
                    gpu_fit.relative_errors(p_hat, p),
                )
            )
    return pd.DataFrame(rows, columns=list(GPU_MODEL_COLUMNS))
