"""Fleet jobs given directly by their whole-job hours and kWh (for hand-computed bound and packing tests)."""

from __future__ import annotations

import numpy as np

from sim.fleet_jobs import FleetJobs

MB = 1000  # mini-batches per synthetic job


def make_jobs(arrival_h, deadline_h, gpus, work_h, energy_kwh, horizon_h) -> FleetJobs:
    """Jobs given directly by their whole-job hours and kWh per (job, region, level)."""
    work_h, energy_kwh = np.asarray(work_h, dtype=float), np.asarray(energy_kwh, dtype=float)
    J, R, L = work_h.shape
    z = np.zeros(J)
    return FleetJobs(
        arrival_s=np.asarray(arrival_h, dtype=float) * 3600,
        deadline_s=np.asarray(deadline_h, dtype=float) * 3600,
        gpus=np.asarray(gpus, dtype=np.int64),
        minibatches=np.full(J, MB, dtype=np.int64),
        workload=np.zeros(J, dtype=np.int64),
        home=np.zeros(J, dtype=np.int64),
        checkpoint_gb=z,
        checkpoint_interval_minibatches=np.full(J, 100, dtype=np.int64),
        storage_gbps=np.full(J, 10.0),
        snapshot_gb_per_s=np.full(J, 12.0),
        trace_row=np.full(J, -1, dtype=np.int64),
        trace_duration_s=z,
        clocks_mhz=np.broadcast_to(np.arange(1.0, L + 1), (J, R, L)),
        minibatch_s=work_h * 3600 / MB,
        gpu_power_w=np.zeros((J, R, L)),
        idle_w=np.zeros((J, R)),
        host_power_w=np.zeros(R),
        pue=np.ones(R),
        energy_per_minibatch_kwh=energy_kwh / MB,
        horizon_s=horizon_h * 3600.0,
        workloads=("w",),
        regions=tuple(f"r{i}" for i in range(R)),
    )
