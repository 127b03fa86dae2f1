"""The tables a simulation reads and never writes, apart from its state (``sim.simulator``, ``sim.core``).

- :class:`StaticTables`: fixed by the scenario, the same for every episode (GPU model per region and clock level,
  PUE, host power, scaling curve, network matrices, job constants);
- :class:`EpisodeTables`: drawn at each reset (intensity, power cap per hour, work multipliers, free GPUs,
  outages), read-only arrays;
- :class:`EpisodeArrays`: the episode tables of N environments stacked for the array core.

The simulator, the environments, the oracle and the baselines all read these instead of each other's fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.layout import PARAMS, JobTables
from sim.states import ALLOWED

__all__ = ["PARAMS", "EpisodeArrays", "EpisodeTables", "StaticTables"]


class StaticTables:
    """What a scenario fixes for every episode, as read-only arrays (per region r, clock level l, GPU count n).

    ``pue`` (R,), ``t_mb_s`` (R, L) s per mini-batch on all requested GPUs, ``p_gpu_w`` (R, L) busy W per GPU,
    ``idle_w`` / ``host_busy_w`` / ``host_idle_w`` (R,) W per GPU, ``embodied_g_per_gpu_h`` (R,),
    ``speed`` (N+1,) speed on n GPUs / speed on all N, ``xfer_s`` (R, R) checkpoint transfer s,
    ``egress_usd`` (R, R) per checkpoint, ``clocks_mhz`` (R, L); scalars (``step_s``, ``horizon_s``,
    ``total_mb``, ``requested_gpus``, ``group``, ``elastic``, ``io_s``, ``restore_s``, ``xfer_kwh``, ``deadline_s``,
    ``ckpt_gb``, ``energy_floor``, ...) by name and as one vector ``params`` (order ``PARAMS``) for compiled code.
    Built once per simulator (``Simulator.tables``) from what it derives from the scenario and models.
    """

    def __init__(self, sim):
        def ro(x, dtype=np.float64):
            a = np.array(x, dtype=dtype)
            a.setflags(write=False)
            return a

        self.n_regions, self.n_levels = sim.n_regions, sim.n_levels
        self.home = sim.home
        self.pue = ro(sim.pue)
        self.t_mb_s = ro(sim.t_mb_s)
        self.p_gpu_w = ro(sim.p_gpu_w)
        self.idle_w = ro(sim.idle_w)
        self.host_busy_w = ro(sim.host_busy_w)
        self.host_idle_w = ro(sim.host_idle_w)
        self.embodied_g_per_gpu_h = ro(sim.embodied_g_per_gpu_h)
        self.speed = ro(sim.speed)
        self.xfer_s = ro(sim.xfer_s)
        self.egress_usd = ro(sim.egress_usd)
        self.clocks_mhz = ro(sim.clocks_mhz)
        self.allowed = ro(ALLOWED, np.bool_)
        values = {
            "step_s": sim.step_s,
            "horizon_s": sim.horizon_s,
            "n_steps": sim.n_steps,
            "n_hours": sim.n_hours,
            "total_mb": sim.total_mb,
            "ckpt_interval_mb": sim.ckpt_interval_mb,
            "requested_gpus": sim.requested_gpus,
            "group": sim.group,
            "elastic": float(sim.elastic),
            "io_s": sim.io_s,
            "restore_s": sim.restore_s,
            "stall_per_mb_s": sim.stall_per_mb_s,
            "xfer_kwh": sim.xfer_kwh,
            "deadline_s": sim.deadline_s,
            "ckpt_gb": sim.ckpt_gb,
            "throttle": float(sim.throttle),
            "transfer_failure_prob": sim.faults.transfer_failure_prob,
            "gpu_replace_s": sim.faults.gpu_replace_s,
            "reclaim_notice_s": sim.faults.reclaim_notice_s,
            "durable_after_write": 1.0,
        }
        self.params = ro([values[k] for k in PARAMS])
        for name, value in values.items():  # each scalar also by name (units in the names)
            setattr(self, name, value)
        self.elastic, self.throttle = bool(sim.elastic), bool(sim.throttle)
        self.n_steps, self.n_hours = sim.n_steps, sim.n_hours
        self.energy_floor = sim.energy_floor
        self.gpu_failure_per_gpu_hour = sim.faults.gpu_failure_per_gpu_hour

    def job_tables(self) -> JobTables:
        """The job's tables as the compiled physics reads them (``sim.layout.JobTables``)."""
        return JobTables(
            self.params,
            self.t_mb_s,
            self.p_gpu_w,
            self.idle_w,
            self.host_busy_w,
            self.host_idle_w,
            self.pue,
            self.embodied_g_per_gpu_h,
            self.speed,
            self.xfer_s,
            self.egress_usd,
            self.allowed,
        )


class EpisodeArrays:
    """Per-episode tables of ``n_envs`` environments (rows replaced at each reset, read-only to the step).

    ``ci`` (n_envs, R, hours) g/kWh, ``cap_w`` (n_envs, hours) W, ``work`` (n_envs, steps + 1) multiplier,
    ``free`` (n_envs, R, steps + 1) GPUs, ``outage_start_s`` / ``outage_end_s`` (n_envs, R, max outages) s with
    ``n_outages`` (n_envs, R).
    """

    def __init__(self, n_envs: int, tables: StaticTables, max_outages: int = 4):
        R, H, K1 = tables.n_regions, tables.n_hours, tables.n_steps + 1
        self.ci = np.zeros((n_envs, R, H))
        self.cap_w = np.zeros((n_envs, H))
        self.work = np.zeros((n_envs, K1))
        self.free = np.zeros((n_envs, R, K1), dtype=np.int64)
        self.outage_start_s = np.zeros((n_envs, R, max_outages))
        self.outage_end_s = np.zeros((n_envs, R, max_outages))
        self.n_outages = np.zeros((n_envs, R), dtype=np.int64)


@dataclass(frozen=True)
class EpisodeTables:
    """One episode's drawn tables (read-only arrays; R regions, H hours, K decision steps).

    :param ci_g_per_kwh: (R, H) grid intensity per region and hour of the episode [g/kWh]
    :param cap_w: (H,) the job's power cap per hour [W] (inf: uncapped)
    :param work: (K + 1,) work-per-mini-batch multiplier per decision step [-]
    :param free_gpus: (R, K + 1) GPUs free to this tenant per region and step [GPUs]
    :param outages: per region, ``(start_s, end_s)`` spans of outages from the episode start [s]
    """

    ci_g_per_kwh: np.ndarray
    cap_w: np.ndarray
    work: np.ndarray
    free_gpus: np.ndarray
    outages: tuple[tuple[tuple[float, float], ...], ...]

    def __post_init__(self):
        for a in (self.ci_g_per_kwh, self.cap_w, self.work, self.free_gpus):
            a.setflags(write=False)
