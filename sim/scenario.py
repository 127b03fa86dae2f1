"""Scenarios are data: a YAML file describing regions, the job, faults, forecasts, rewards and splits.

``load_scenario(name_or_path)`` reads ``scenarios/<name>.yaml`` or any path, validates every field
and returns a frozen :class:`Scenario`. Errors name the file and the field path, e.g.
``scenarios/paper.yaml: job.gpus: must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim.errors import ConfigError
from sim.hardware import peak_w_per_gpu
from sim.paths import SCENARIO_DIR  # shipped scenarios, found through importlib.resources

# Defaults with a source (data/derived/constants.csv): AWS's 2023 global PUE, and an EBS gp3 volume's maximum
# throughput, 1,000 MiB/s = 8.39 Gbit/s, for checkpoint writes and restores
PUE_DEFAULT = 1.15
# An episode's length (episode_hours) is a safety limit, not a budget: at least this many times the deadline, so that
# every policy finishes the whole job in every episode (spec V1; a job still unfinished there is charged for its
# remaining work by baselines.runner.equal_work and flagged)
SAFETY_LIMIT_X_DEADLINE = 2.0
STORAGE_GBPS_DEFAULT = 1000 * 2**20 * 8 / 1e9


@dataclass(frozen=True)
class RegionSpec:
    """A cloud region: its grid zone, facility PUE and the GPU pool open to this tenant."""

    name: str
    zone: str
    gpu: str
    gpus: int
    pue: float = PUE_DEFAULT


@dataclass(frozen=True)
class CapWindow:
    """A demand-response window: between these UTC hours of the day the cap is ``cap_w``.

    Always ``start_hour_utc < end_hour_utc``: a YAML window across midnight (``20`` to ``5``) is stored as two,
    20-24 and 0-5 (see :func:`_cap_window_pieces`).
    """

    start_hour_utc: int
    end_hour_utc: int
    cap_w: float


@dataclass(frozen=True)
class JobSpec:
    """One training job. Progress is counted in mini-batches; work per mini-batch varies by phases and noise."""

    workload: str
    params: float  # parameter count
    bytes_per_param: float = 16.0  # mixed-precision Adam: fp16 weights + fp32 master, m, v
    gpus: int = 8
    minibatches: int = 100_000
    checkpoint_interval_minibatches: int = 1000
    home: str = ""
    deadline_hours: float | None = None
    power_cap_w: float = math.inf
    cap_windows: tuple[CapWindow, ...] = ()
    work_scale: float = 1.0  # multiplies the per-mini-batch time of the GPU profile
    noise_std: float = 0.0  # per-step lognormal noise on work per mini-batch
    phase_hours: float = 0.0  # 0 = no phases
    phase_multipliers: tuple[float, ...] = (1.0,)
    storage_gbps: float = STORAGE_GBPS_DEFAULT  # checkpoint write / restore bandwidth, Gbit/s
    elastic: bool = True  # run on fewer GPUs than requested (else wait for all)
    # --- issue 14: checkpoint stall and scaling (see ModelSpec for the switches)
    snapshot_gb_per_s: float = 12.0  # GPU -> host copy (CheckFreq snapshot); assumed (PCIe 3.0 x16 peak 15.75 GB/s)
    parallel_group_gpus: int = 1  # pipeline x tensor parallel group: runs only on multiples of it
    scaling_curve: tuple[tuple[float, float], ...] = ()  # (GPUs, speed-up vs 1 GPU) points; () = linear

    @property
    def checkpoint_gb(self) -> float:
        return self.params * self.bytes_per_param / 1e9


@dataclass(frozen=True)
class FaultSpec:
    gpu_failure_per_gpu_hour: float = 0.0
    outage_per_region_day: float = 0.0
    outage_mean_hours: float = 2.0
    transfer_failure_prob: float = 0.0
    shortage_scale: float = 0.0  # 0 = full pools always free, 1 = calibrated spot availability
    shortage_region_correlation: float = 0.0  # share of the latent availability common to all regions (assumed)
    shortage_daily_amplitude: float = 0.0  # latent shift (std units) toward shortage at the peak hour (assumed)
    shortage_peak_hour_utc: float = 14.0  # UTC hour of the deepest daily shortage
    # faults as clouds deliver them (spec V4; data/derived/constants.csv): a failed GPU's replacement is
    # provisioned before the job restarts on it; a spot reclaim comes with the provider's notice (AWS: 2 min)
    gpu_replace_s: float = 300.0
    reclaim_notice_s: float = 120.0


@dataclass(frozen=True)
class ForecastSpec:
    kind: str = "noisy"  # perfect | noisy | persistence | seasonal_naive
    horizon_hours: int = 6
    error_std_per_hour: float = 0.02  # relative error std grows with sqrt(lead hours)


@dataclass(frozen=True)
class RewardSpec:
    """Weights of the per-step reward (a cost, negated): see envs/carbon_migration.py."""

    carbon_per_kg: float = 1.0
    energy_per_kwh: float = 0.0
    lateness_per_hour: float = 30.0  # an hour late must cost more than the carbon slower running saves (~1 kg/h)
    cap_violation_per_kj: float = 0.01
    migration_per_count: float = 0.0
    progress_per_job: float = 0.0
    embodied_per_kg: float = 0.0  # embodied carbon is reported, not in the default reward


@dataclass(frozen=True)
class ModelSpec:
    """Switches for the model terms of issue 14 (each off reproduces the earlier model for that term).

    :param host_power: count host (CPU, memory) power of the GPU servers in IT energy (``sim/hardware.py``).
    :param embodied_carbon: report amortised embodied carbon of GPUs and servers (``embodied_carbon_g``).
    :param checkpoint_stall: each periodic checkpoint stalls training for its GPU->host snapshot.
    :param scaling_efficiency: the job's ``scaling_curve`` and ``parallel_group_gpus`` (else linear, any count).
    :param restart_s: fixed overhead of every restore (after a migration, pause or fault), seconds.
    """

    host_power: bool = True
    embodied_carbon: bool = True
    checkpoint_stall: bool = True
    scaling_efficiency: bool = True
    restart_s: float = 20.0  # TrainMover (Lao et al., arXiv:2412.12636v3): ~20 s downtime at 1024 GPUs


@dataclass(frozen=True)
class Scenario:
    name: str
    regions: tuple[RegionSpec, ...]
    job: JobSpec
    splits: dict[str, tuple[np.datetime64, np.datetime64]]
    faults: FaultSpec = FaultSpec()
    forecast: ForecastSpec = ForecastSpec()
    reward: RewardSpec = RewardSpec()
    description: str = ""
    step_minutes: float = 15.0
    episode_hours: float = 48.0
    clock_levels: int = 5
    signal: str = "direct"
    cap_enforcement: str = "measure"  # measure | throttle
    transfer_kwh_per_gb: float = 0.006  # assumption: Aslan et al. 2018's trend to ~2021-22; data/derived/README.md
    data_dir: str | None = None
    model: ModelSpec = ModelSpec()
    source: str = ""

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(r.zone for r in self.regions)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    @property
    def home_index(self) -> int:
        return self.region_names.index(self.job.home)

    @property
    def step_s(self) -> float:
        return self.step_minutes * 60.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (YAML-serialisable), the inverse of parse_scenario."""
        return _plain(self)


def _plain(obj):
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.name != "source"}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.datetime64):
        return str(np.datetime_as_string(obj, unit="D"))
    if isinstance(obj, float) and math.isinf(obj):
        return None
    return obj


# ---------------------------------------------------------------- validation


class _Fields:
    """Reads one mapping of the YAML, naming ``file: path.field`` in every error."""

    def __init__(self, data: Any, where: str, path: str):
        self.where, self.path = where, path
        if not isinstance(data, dict):
            raise self.error("", f"must be a mapping, got {type(data).__name__}")
        self.data = dict(data)

    def error(self, key: str, msg: str) -> ConfigError:
        name = f"{self.path}.{key}" if self.path and key else (self.path or key)
        return ConfigError(f"{self.where}: {name}: {msg}")

    def get(self, key, kind, default=..., *, lo=None, hi=None, choices=None, lo_open=False):
        if key not in self.data or self.data[key] is None and default is not ...:
            if default is ...:
                raise self.error(key, "is required")
            self.data.pop(key, None)
            return default
        value = self.data.pop(key)
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
                raise self.error(key, f"must be a finite number, got {value!r}")
            value = float(value)
        elif kind is int:
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            ):
                raise self.error(key, f"must be an integer, got {value!r}")
            value = int(value)
        elif kind is bool:
            if not isinstance(value, bool):
                raise self.error(key, f"must be true or false, got {value!r}")
        elif kind is str:
            if not isinstance(value, str) or not value:
                raise self.error(key, f"must be a non-empty string, got {value!r}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise self.error(key, f"must be {'>' if lo_open else '>='} {lo}, got {value!r}")
        if hi is not None and value > hi:
            raise self.error(key, f"must be <= {hi}, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(key, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value

    def sub(self, key, required=False) -> _Fields:
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.error(key, "is required")
            self.data.pop(key, None)
            return _Fields({}, self.where, f"{self.path}.{key}" if self.path else key)
        return _Fields(self.data.pop(key), self.where, f"{self.path}.{key}" if self.path else key)

    def done(self):
        if self.data:
            raise self.error(next(iter(self.data)), "unknown field (misspelt?)")


# ---- job.bytes_per_param: checkpoint bytes per model parameter. Low end: 4-bit quantised weights alone (0.5 B);
# mixed-precision Adam stores fp16/bf16 weights + fp32 master weights + two fp32 moments = 2 + 4 + 4 + 4 = 14,
# 16 with fp16 gradients (ZeRO, Rajbhandari et al. SC 2020, Sec. 3.1); fp64 weights + fp64 Adam moments = 24.
# 32 leaves room for extra state (EMA weights, fp32 gradients); 1e6 is a unit mistake (bytes, not bytes/param).
BYTES_PER_PARAM_MIN = 0.5
BYTES_PER_PARAM_MAX = 32.0


def _cap_window_pieces(w: _Fields, start: int, end: int, cap_w: float) -> list[CapWindow]:
    """A cap window as pieces with start < end: one across midnight (start > end) becomes start-24 and 0-end."""
    if start == end:
        raise w.error("end_hour_utc", f"equals start_hour_utc ({start}); for an all-day cap set job.power_cap_w")
    if start < end:
        return [CapWindow(start, end, cap_w)]
    return [CapWindow(start, 24, cap_w)] + ([CapWindow(0, end, cap_w)] if end > 0 else [])


def _date(f: _Fields, key: str, value) -> np.datetime64:
    try:
        return np.datetime64(str(value), "h")
    except ValueError:
        raise f.error(key, f"not a date (YYYY-MM-DD): {value!r}") from None


def _model_fields(top: _Fields) -> tuple[int, str, str, float, str | None]:
    """The model settings a single-job and a fleet scenario share: clock levels, carbon signal, cap enforcement,
    transfer energy [kWh/GB], data folder."""
    return (
        top.get("clock_levels", int, 5, lo=1, hi=64),
        top.get("signal", str, "direct", choices=("direct", "lca")),
        top.get("cap_enforcement", str, "measure", choices=("measure", "throttle")),
        top.get("transfer_kwh_per_gb", float, 0.006, lo=0.0),
        top.get("data_dir", str, None),
    )


def _region_fields(top: _Fields, where: str, extra: dict | None = None) -> list[dict]:
    """The ``regions`` list checked (name, zone, gpu, gpus, pue, plus ``extra`` fields: name -> getter of a
    region's ``_Fields``), names unique, as keyword dicts for the region spec."""
    if "regions" not in top.data or not isinstance(top.data["regions"], list) or not top.data["regions"]:
        raise top.error("regions", "must be a non-empty list of regions")
    regions = []
    for i, raw in enumerate(top.data.pop("regions")):
        r = _Fields(raw, where, f"regions[{i}]")
        fields = {
            "name": r.get("name", str),
            "zone": r.get("zone", str),
            "gpu": r.get("gpu", str),
            "gpus": r.get("gpus", int, lo=1),
            "pue": r.get("pue", float, PUE_DEFAULT, lo=1.0, hi=3.0),
        }
        fields.update({key: get(r) for key, get in (extra or {}).items()})
        r.done()
        regions.append(fields)
    names = [f["name"] for f in regions]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise top.error(f"regions[{i}].name", f"duplicate region name {n!r}")
    return regions


def parse_scenario(data: dict, where: str = "<scenario>") -> Scenario:
    """Validate a scenario mapping; ``where`` names its file in errors."""
    top = _Fields(data, where, "")
    name = top.get("name", str)
    top.get("kind", str, "single", choices=("single",))
    description = top.get("description", str, "")
    step_minutes = top.get("step_minutes", float, 15.0, lo=1.0, hi=24 * 60)
    episode_hours = top.get("episode_hours", float, 48.0, lo=step_minutes / 60.0, lo_open=False)
    clock_levels, signal, cap_enforcement, transfer_kwh_per_gb, data_dir = _model_fields(top)
    regions = [RegionSpec(**fields) for fields in _region_fields(top, where)]
    names = [r.name for r in regions]

    j = top.sub("job", required=True)
    home = j.get("home", str, names[0])
    if home not in names:
        raise j.error("home", f"unknown region {home!r}; regions are {', '.join(names)}")
    windows = []
    raw_windows = j.data.pop("cap_windows", None) or []
    if not isinstance(raw_windows, list):
        raise j.error("cap_windows", "must be a list")
    for i, raw in enumerate(raw_windows):
        w = _Fields(raw, where, f"job.cap_windows[{i}]")
        windows += _cap_window_pieces(
            w,
            w.get("start_hour_utc", int, lo=0, hi=23),
            w.get("end_hour_utc", int, lo=0, hi=24),
            w.get("cap_w", float, lo=0.0, lo_open=True),
        )
        w.done()
    says_elastic = j.data.get("elastic") is True  # a job larger than every pool must say it runs on fewer
    mult = j.data.pop("phase_multipliers", None) or [1.0]
    if not isinstance(mult, list) or not all(isinstance(m, (int, float)) and m > 0 for m in mult):
        raise j.error("phase_multipliers", f"must be a list of positive numbers, got {mult!r}")
    job = JobSpec(
        workload=j.get("workload", str),
        params=j.get("params", float, lo=1.0),
        bytes_per_param=j.get("bytes_per_param", float, 16.0, lo=BYTES_PER_PARAM_MIN, hi=BYTES_PER_PARAM_MAX),
        gpus=j.get("gpus", int, 8, lo=1),
        minibatches=j.get("minibatches", int, lo=1),
        checkpoint_interval_minibatches=j.get("checkpoint_interval_minibatches", int, 1000, lo=1),
        home=home,
        deadline_hours=j.get("deadline_hours", float, None, lo=0.0, lo_open=True),
        power_cap_w=j.get("power_cap_w", float, math.inf, lo=0.0, lo_open=True),
        cap_windows=tuple(windows),
        work_scale=j.get("work_scale", float, 1.0, lo=0.0, lo_open=True),
        noise_std=j.get("noise_std", float, 0.0, lo=0.0, hi=1.0),
        phase_hours=j.get("phase_hours", float, 0.0, lo=0.0),
        phase_multipliers=tuple(float(m) for m in mult),
        storage_gbps=j.get("storage_gbps", float, STORAGE_GBPS_DEFAULT, lo=0.0, lo_open=True),
        elastic=j.get("elastic", bool, True),
        **_job_overheads(j),
    )
    j.done()
    if job.gpus % job.parallel_group_gpus:
        raise j.error(
            "parallel_group_gpus", f"{job.parallel_group_gpus} must divide job.gpus ({job.gpus}) for the job to run"
        )
    if job.scaling_curve and job.scaling_curve[-1][0] < job.gpus:
        raise j.error("scaling_curve", f"must reach job.gpus ({job.gpus}); last point is {job.scaling_curve[-1]}")
    largest = max(regions, key=lambda r: r.gpus)
    if job.gpus > largest.gpus and not says_elastic:
        fix = "(with elastic: false it never starts)" if not job.elastic else "or write job.elastic: true to say"
        raise j.error(
            "gpus",
            f"{job.gpus} GPUs exceeds every pool (largest: {largest.name}, {largest.gpus} GPUs); give <= "
            + (f"{largest.gpus} {fix}" if not job.elastic else f"{largest.gpus}, {fix} it runs on the GPUs a pool has"),
        )

    if job.deadline_hours is not None and episode_hours < SAFETY_LIMIT_X_DEADLINE * job.deadline_hours:
        raise top.error(
            "episode_hours",
            f"{episode_hours:g} is the safety limit of an episode and must be >= {SAFETY_LIMIT_X_DEADLINE:g} x "
            f"job.deadline_hours = {SAFETY_LIMIT_X_DEADLINE * job.deadline_hours:g}, so that every policy finishes "
            "the same work (spec V1)",
        )
    faults, forecast, reward, model, splits = _shared_sections(top)
    top.done()
    return Scenario(
        name=name,
        regions=tuple(regions),
        job=job,
        splits=splits,
        faults=faults,
        forecast=forecast,
        reward=reward,
        description=description,
        step_minutes=step_minutes,
        episode_hours=episode_hours,
        clock_levels=clock_levels,
        signal=signal,
        cap_enforcement=cap_enforcement,
        transfer_kwh_per_gb=transfer_kwh_per_gb,
        data_dir=data_dir,
        model=model,
        source=where,
    )


# ---------------------------------------------------------------- sections shared by every scenario kind


def _shared_sections(top: _Fields) -> tuple[FaultSpec, ForecastSpec, RewardSpec, ModelSpec, dict]:
    """``faults``, ``forecast``, ``reward``, ``model`` and ``splits`` (validated), the same for every kind."""
    fl = top.sub("faults")
    faults = FaultSpec(
        gpu_failure_per_gpu_hour=fl.get("gpu_failure_per_gpu_hour", float, 0.0, lo=0.0, hi=1.0),
        outage_per_region_day=fl.get("outage_per_region_day", float, 0.0, lo=0.0, hi=24.0),
        outage_mean_hours=fl.get("outage_mean_hours", float, 2.0, lo=0.0, lo_open=True),
        transfer_failure_prob=fl.get("transfer_failure_prob", float, 0.0, lo=0.0, hi=1.0),
        shortage_scale=fl.get("shortage_scale", float, 0.0, lo=0.0, hi=1.0),
        shortage_region_correlation=fl.get("shortage_region_correlation", float, 0.0, lo=0.0, hi=1.0),
        shortage_daily_amplitude=fl.get("shortage_daily_amplitude", float, 0.0, lo=0.0, hi=3.0),
        shortage_peak_hour_utc=fl.get("shortage_peak_hour_utc", float, 14.0, lo=0.0, hi=24.0),
        gpu_replace_s=fl.get("gpu_replace_s", float, 300.0, lo=0.0),
        reclaim_notice_s=fl.get("reclaim_notice_s", float, 120.0, lo=0.0),
    )
    fl.done()
    fc = top.sub("forecast")
    forecast = ForecastSpec(
        kind=fc.get("kind", str, "noisy", choices=("perfect", "noisy", "persistence", "seasonal_naive")),
        horizon_hours=fc.get("horizon_hours", int, 6, lo=1, hi=72),
        error_std_per_hour=fc.get("error_std_per_hour", float, 0.02, lo=0.0, hi=1.0),
    )
    fc.done()
    rw = top.sub("reward")
    reward = RewardSpec(**{f.name: rw.get(f.name, float, f.default, lo=0.0) for f in fields(RewardSpec)})
    rw.done()
    md = top.sub("model")
    model = ModelSpec(
        host_power=md.get("host_power", bool, True),
        embodied_carbon=md.get("embodied_carbon", bool, True),
        checkpoint_stall=md.get("checkpoint_stall", bool, True),
        scaling_efficiency=md.get("scaling_efficiency", bool, True),
        restart_s=md.get("restart_s", float, 20.0, lo=0.0),
    )
    md.done()

    sp = top.sub("splits", required=True)
    splits = {}
    for key in ("train", "validation", "test"):
        raw = sp.data.pop(key, None)
        if not (isinstance(raw, list) and len(raw) == 2):
            raise sp.error(key, f"must be [start, end] dates (UTC, end exclusive), got {raw!r}")
        start, end = _date(sp, key, raw[0]), _date(sp, key, raw[1])
        if end <= start:
            raise sp.error(key, f"end {raw[1]} must be after start {raw[0]}")
        splits[key] = (start, end)
    sp.done()
    ordered = sorted(splits.items(), key=lambda kv: kv[1][0])
    for (ka, (_, ea)), (kb, (sb, _)) in zip(ordered, ordered[1:]):
        if sb < ea:
            raise top.error("splits", f"{ka} and {kb} overlap; splits must be disjoint time ranges")
    return faults, forecast, reward, model, splits


# ---------------------------------------------------------------- issue 14: overhead fields of the job


def _job_overheads(j: _Fields) -> dict:
    """``snapshot_gb_per_s``, ``parallel_group_gpus`` and ``scaling_curve`` of ``job`` (validated)."""
    out = dict(
        snapshot_gb_per_s=j.get("snapshot_gb_per_s", float, 12.0, lo=0.0, lo_open=True),
        parallel_group_gpus=j.get("parallel_group_gpus", int, 1, lo=1),
    )
    raw = j.data.pop("scaling_curve", None) or []
    want = (
        "a list of [gpus, speed-up] pairs with gpus increasing from 1 and speed-up increasing, e.g. [[1, 1], [8, 7.6]]"
    )
    if not isinstance(raw, list):
        raise j.error("scaling_curve", f"must be {want}; got {raw!r}")
    points = []
    for i, pt in enumerate(raw):
        ok = isinstance(pt, list) and len(pt) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in pt)
        if not ok:
            raise j.error(f"scaling_curve[{i}]", f"must be [gpus, speed-up], both > 0; got {pt!r}")
        points.append((float(pt[0]), float(pt[1])))
    if points and (points[0][0] != 1 or any(b[0] <= a[0] or b[1] <= a[1] for a, b in zip(points, points[1:]))):
        raise j.error("scaling_curve", f"must be {want}; got {raw!r}")
    out["scaling_curve"] = tuple(points)
    return out


# ---------------------------------------------------------------- issue 10: fleet scenarios (many jobs, CarbonFleet-v0)


@dataclass(frozen=True)
class FleetRegionSpec:
    """A region of a fleet: its grid zone, facility PUE and the GPU pool shared by all jobs of the fleet."""

    name: str
    zone: str
    gpu: str
    gpus: int  # pool capacity, GPUs (other tenants and shortages take some, as in single-job scenarios)
    pue: float = PUE_DEFAULT
    # the fleet's power budget in this region, W of IT power (GPU boards + hosts, before PUE); with the scenario's
    # power_provisioning_factor and no explicit value: gpus x (TDP + host busy W per GPU) x factor
    power_cap_w: float = math.inf


@dataclass(frozen=True)
class WorkloadSpec:
    """A measured workload (a row of ``data/derived/gpu_models.csv``) jobs are mapped to, with its model size."""

    name: str
    params: float  # parameter count
    bytes_per_param: float = 16.0  # mixed-precision Adam training state, as JobSpec

    @property
    def checkpoint_gb(self) -> float:
        return self.params * self.bytes_per_param / 1e9


@dataclass(frozen=True)
class ListedJob:
    """One job written out in the scenario (``jobs.source: list``), for small hand-checked fleets."""

    arrival_hours: float  # after the episode start
    gpus: int
    duration_hours: float  # at the top clock of the reference GPU, as a trace duration
    workload: str
    home: str


@dataclass(frozen=True)
class FleetJobSource:
    """Where the fleet's jobs come from and how they become jobs of the simulator.

    ``source: philly``: the trace rows arriving in ``window_days`` (days after the trace's first job) whose
    duration and GPU count fall in the given ranges; ``n_jobs`` of them are drawn without replacement by the
    episode seed, each keeping its own arrival offset (from the window start), GPU count and duration.
    The trace duration is wall time on Philly's GPUs (2017, Pascal generation; an assumption), so it becomes
    mini-batches at the top clock of ``reference_gpu`` for the job's workload (drawn uniformly from
    ``workloads`` by the seed). The deadline (``deadline``): ``fifo`` (default) ``arrival + slack_factor x`` the
    job's time from arrival to completion under the carbon-agnostic FIFO schedule of the same episode (every job at
    home at the top clock, the pools serving waiting jobs first come, first served; ``sim/fleet_jobs.py``), or
    ``alone``: ``arrival + slack_factor x`` the job's time at the top clock in its home region; both capped at the
    horizon. ``home``: ``cluster`` (the Philly virtual cluster, by sorted hash,
    modulo the number of regions: a tenant's jobs share a home), ``uniform`` (drawn by the seed) or a region name.
    """

    source: str  # philly | list
    workloads: tuple[WorkloadSpec, ...]
    n_jobs: int = 0  # philly only
    window_days: tuple[float, float] = (0.0, 0.0)  # philly only: [start, end) in days after the first job
    duration_hours: tuple[float, float] = (0.0, math.inf)  # keep rows with duration in [lo, hi]
    gpus: tuple[int, int] = (1, 1 << 30)  # keep rows with num_gpus in [lo, hi]
    slack_factor: float = 2.0
    deadline: str = "fifo"  # fifo | alone (sim/fleet_jobs.py DEADLINE_RULES)
    home: str = "cluster"
    reference_gpu: str = "P100"
    checkpoint_interval_minibatches: int = 1000
    storage_gbps: float = STORAGE_GBPS_DEFAULT  # checkpoint write / restore bandwidth, Gbit/s (as JobSpec)
    snapshot_gb_per_s: float = 12.0  # GPU -> host copy of a checkpoint (as JobSpec)
    listed: tuple[ListedJob, ...] = ()  # list only


@dataclass(frozen=True)
class FleetScenario:
    """A fleet scenario (``kind: fleet``): regions with GPU pools, a job source, a horizon and the shared sections."""

    name: str
    regions: tuple[FleetRegionSpec, ...]
    jobs: FleetJobSource
    splits: dict[str, tuple[np.datetime64, np.datetime64]]
    faults: FaultSpec = FaultSpec()
    forecast: ForecastSpec = ForecastSpec()
    reward: RewardSpec = RewardSpec()
    model: ModelSpec = ModelSpec()
    description: str = ""
    step_minutes: float = 15.0
    horizon_hours: float = 168.0
    clock_levels: int = 5
    signal: str = "direct"
    cap_enforcement: str = "measure"  # measure | throttle
    transfer_kwh_per_gb: float = 0.006  # as Scenario
    data_dir: str | None = None
    source: str = ""
    kind: str = "fleet"
    # fraction of the pools' theoretical peak power provisioned as each region's cap (None: no derived caps)
    power_provisioning_factor: float | None = None

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(r.zone for r in self.regions)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    @property
    def step_s(self) -> float:
        return self.step_minutes * 60.0

    @property
    def horizon_s(self) -> float:
        return self.horizon_hours * 3600.0

    @property
    def safety_limit_s(self) -> float:
        """Where a fleet episode stops at the latest (spec V1, as the single job's ``episode_hours``): every deadline
        is at most the horizon (``sim.fleet_jobs``), so ``SAFETY_LIMIT_X_DEADLINE`` x the horizon is at least that
        many times every job's deadline; an episode runs past the horizon until every job completed or this limit,
        where a job still unfinished is charged its remaining work (``CarbonFleetEnv.episode_metrics``)."""
        return SAFETY_LIMIT_X_DEADLINE * self.horizon_s

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (YAML-serialisable), the inverse of parse_fleet_scenario."""
        out = _plain(self)
        jobs = out["jobs"]
        jobs["source"] = self.jobs.source  # _plain drops fields named source (the file path elsewhere)
        listed = jobs.pop("listed")
        if self.jobs.source == "list":
            for key in ("n_jobs", "window_days", "duration_hours", "gpus"):
                del jobs[key]
            jobs["list"] = listed
        else:
            jobs["duration_hours"] = list(self.jobs.duration_hours)  # keeps an open upper end as .inf
        return out


def _pair(f: _Fields, key: str, kind, default, lo, what: str) -> tuple:
    """``[lo, hi]`` with ``lo <= hi``, both of ``kind`` and >= ``lo``."""
    raw = f.data.pop(key, None)
    if raw is None:
        return default
    ok = isinstance(raw, list) and len(raw) == 2
    ok = ok and all(not isinstance(v, bool) and isinstance(v, (int, float)) and not math.isnan(v) for v in raw)
    ok = ok and math.isfinite(raw[0]) and (kind is float or all(float(v).is_integer() for v in raw))
    if not ok:
        raise f.error(key, f"must be [low, high] {what}, got {raw!r}")
    low, high = kind(raw[0]), kind(raw[1])
    if low < lo or high < low:
        raise f.error(key, f"must be [low, high] {what} with {lo} <= low <= high, got {raw!r}")
    return low, high


def parse_fleet_scenario(data: dict, where: str = "<scenario>") -> FleetScenario:
    """Validate a fleet scenario mapping (``kind: fleet``); ``where`` names its file in errors."""
    top = _Fields(data, where, "")
    top.get("kind", str, choices=("fleet",))
    name = top.get("name", str)
    description = top.get("description", str, "")
    step_minutes = top.get("step_minutes", float, 15.0, lo=1.0, hi=24 * 60)
    horizon_hours = top.get("horizon_hours", float, 168.0, lo=step_minutes / 60.0)
    clock_levels, signal, cap_enforcement, transfer_kwh_per_gb, data_dir = _model_fields(top)
    cap = {"power_cap_w": lambda r: r.get("power_cap_w", float, math.nan, lo=0.0, lo_open=True)}
    provisioning = top.get("power_provisioning_factor", float, math.nan, lo=0.0, hi=1.0, lo_open=True)
    regions = []
    for i, spec in enumerate(_region_fields(top, where, cap)):
        if math.isnan(spec["power_cap_w"]):  # no explicit cap: provisioned from the pool, or none
            spec["power_cap_w"] = math.inf
            if not math.isnan(provisioning):
                try:
                    spec["power_cap_w"] = spec["gpus"] * peak_w_per_gpu(spec["gpu"]) * provisioning
                except ConfigError as e:
                    raise top.error(f"regions[{i}].gpu", str(e)) from None
        regions.append(FleetRegionSpec(**spec))
    names = [r.name for r in regions]
    largest = max(regions, key=lambda r: r.gpus)

    def fits_a_pool(f: _Fields, key: str, gpus: int) -> None:
        if gpus > largest.gpus:
            raise f.error(
                key,
                f"{gpus} GPUs exceeds every pool (largest: {largest.name}, {largest.gpus} GPUs); "
                f"must be <= {largest.gpus}",
            )

    j = top.sub("jobs", required=True)
    source = j.get("source", str, choices=("philly", "list"))
    raw_workloads = j.data.pop("workloads", None)
    if not isinstance(raw_workloads, list) or not raw_workloads:
        raise j.error("workloads", "must be a non-empty list of {name, params, bytes_per_param}")
    workloads = []
    for i, raw in enumerate(raw_workloads):
        w = _Fields(raw, where, f"jobs.workloads[{i}]")
        workloads.append(
            WorkloadSpec(
                w.get("name", str),
                w.get("params", float, lo=1.0),
                w.get("bytes_per_param", float, 16.0, lo=0.0, lo_open=True),
            )
        )
        w.done()
    wnames = [w.name for w in workloads]
    for i, n in enumerate(wnames):
        if wnames.index(n) != i:
            raise j.error(f"workloads[{i}].name", f"duplicate workload {n!r}")
    home = j.get("home", str, "cluster")
    if home not in ("cluster", "uniform", *names):
        raise j.error("home", f"unknown region {home!r}; expected cluster, uniform or one of {', '.join(names)}")
    common = dict(
        workloads=tuple(workloads),
        slack_factor=j.get("slack_factor", float, 2.0, lo=1.0),
        deadline=j.get("deadline", str, "fifo", choices=("fifo", "alone")),
        home=home,
        reference_gpu=j.get("reference_gpu", str, "P100"),
        checkpoint_interval_minibatches=j.get("checkpoint_interval_minibatches", int, 1000, lo=1),
        storage_gbps=j.get("storage_gbps", float, STORAGE_GBPS_DEFAULT, lo=0.0, lo_open=True),
        snapshot_gb_per_s=j.get("snapshot_gb_per_s", float, 12.0, lo=0.0, lo_open=True),
    )
    if source == "philly":
        window = _pair(j, "window_days", float, None, 0.0, "days after the trace's first job")
        if window is None:
            raise j.error("window_days", "is required for source: philly ([start, end) days after the first job)")
        if window[1] == window[0]:
            raise j.error("window_days", f"is empty: start {window[0]} == end {window[1]}")
        if (window[1] - window[0]) * 24.0 >= horizon_hours:
            raise j.error(
                "window_days",
                f"arrivals span {(window[1] - window[0]) * 24.0:g} h; must be shorter than horizon_hours "
                f"({horizon_hours:g}) so that jobs can finish",
            )
        gpus = _pair(j, "gpus", int, (1, largest.gpus), 1, "GPUs per job")
        fits_a_pool(j, "gpus", gpus[1])
        jobs = FleetJobSource(
            source=source,
            n_jobs=j.get("n_jobs", int, lo=1),
            window_days=window,
            duration_hours=_pair(j, "duration_hours", float, (0.0, math.inf), 0.0, "hours"),
            gpus=gpus,
            **common,
        )
    else:
        raw_list = j.data.pop("list", None)
        if not isinstance(raw_list, list) or not raw_list:
            raise j.error("list", "must be a non-empty list of jobs for source: list")
        listed = []
        for i, raw in enumerate(raw_list):
            b = _Fields(raw, where, f"jobs.list[{i}]")
            job = ListedJob(
                arrival_hours=b.get("arrival_hours", float, lo=0.0),
                gpus=b.get("gpus", int, lo=1),
                duration_hours=b.get("duration_hours", float, lo=0.0, lo_open=True),
                workload=b.get("workload", str, choices=tuple(wnames)),
                home=b.get("home", str),
            )
            if job.home not in names:
                raise b.error("home", f"unknown region {job.home!r}; regions are {', '.join(names)}")
            fits_a_pool(b, "gpus", job.gpus)
            if job.arrival_hours >= horizon_hours:
                raise b.error("arrival_hours", f"must be < horizon_hours ({horizon_hours:g}), got {job.arrival_hours}")
            b.done()
            listed.append(job)
        jobs = FleetJobSource(source=source, listed=tuple(listed), **common)
    j.done()

    faults, forecast, reward, model, splits = _shared_sections(top)
    top.done()
    return FleetScenario(
        name=name,
        regions=tuple(regions),
        jobs=jobs,
        splits=splits,
        faults=faults,
        forecast=forecast,
        reward=reward,
        model=model,
        description=description,
        step_minutes=step_minutes,
        horizon_hours=horizon_hours,
        clock_levels=clock_levels,
        signal=signal,
        cap_enforcement=cap_enforcement,
        transfer_kwh_per_gb=transfer_kwh_per_gb,
        data_dir=data_dir,
        source=where,
        power_provisioning_factor=None if math.isnan(provisioning) else provisioning,
    )


def fleet_scenario_names() -> list[str]:
    return scenario_names("fleet")


def load_fleet_scenario(name_or_path: str | Path = "fleet") -> FleetScenario:
    """A shipped fleet scenario by name (``fleet``, ``fleet_small``) or a YAML file path with ``kind: fleet``."""
    data, where = _read_yaml(name_or_path)
    if not (isinstance(data, dict) and data.get("kind") == "fleet"):
        raise ConfigError(f"{where}: kind: must be fleet for a fleet scenario (single-job: load_scenario)")
    return parse_fleet_scenario(data, where=where)


def scenario_names(kind: str = "single") -> list[str]:
    """Shipped scenarios of one kind: ``single`` (one job, ``CarbonMigration-v0``) or ``fleet`` (many jobs)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml") if _kind_of(p) == kind)


def scenario_kind(name_or_path: str | Path) -> str:
    """``fleet`` or ``single`` for a shipped scenario name or a YAML path (``single`` when unreadable: loading it
    then reports the problem). The environment id follows it: CarbonFleet-v0 or CarbonMigration-v0."""
    path = Path(name_or_path)
    return _kind_of(path if path.suffix else SCENARIO_DIR / f"{name_or_path}.yaml")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` whose timestamps fail as YAML errors naming the line (PyYAML raises a bare ValueError
    for a date such as ``2023-13-01``, which matches its date pattern but is no date)."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as e:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a date ({e}); expected YYYY-MM-DD", node.start_mark
        ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def _safe_load(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)


def _kind_of(path: Path) -> str:
    try:
        data = _safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return "single"  # reported properly when loaded
    return data.get("kind", "single") if isinstance(data, dict) else "single"


def load_scenario(name_or_path: str | Path = "paper") -> Scenario:
    """A shipped scenario by name (``paper``, ``global``, ``llm``, ``faults``) or a YAML file path."""
    data, where = _read_yaml(name_or_path)
    if isinstance(data, dict) and data.get("kind") == "fleet":
        raise ConfigError(
            f"{where}: kind: fleet is a multi-job scenario; load it with sim.scenario.load_fleet_scenario "
            "(CarbonMigration-v0 runs one job)"
        )
    return parse_scenario(data, where=where)


def _read_yaml(name_or_path: str | Path) -> tuple[Any, str]:
    """The YAML data of a shipped scenario name or a file path, and the path to name in errors."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
            raise ConfigError(
                f"unknown scenario {str(name_or_path)!r}; shipped: {shipped}, or give a path to a .yaml file"
            )
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read scenario file ({e.strerror})") from None
    try:
        return _safe_load(text), str(path)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: not valid YAML: {where}{e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None


# ---------------------------------------------------------------- reward overrides (CarbonMigrationEnv(reward=...))


def reward_with_overrides(base: RewardSpec, overrides: Any, where: str) -> RewardSpec:
    """``base`` with the weights in ``overrides`` (a dict, or None) replaced, checked as the YAML ``reward``
    section is: known keys only, finite numbers >= 0. ``where`` names the caller in errors."""
    if overrides is None:
        return base
    rw = _Fields(overrides, where, "reward")
    spec = RewardSpec(**{f.name: rw.get(f.name, float, getattr(base, f.name), lo=0.0) for f in fields(RewardSpec)})
    rw.done()
    return spec
