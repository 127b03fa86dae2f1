"""Specification of sim/fleet_jobs.py on fleet_small's listed jobs, values worked out from the calibration table."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from loaders.philly import fleet_jobs
from sim.errors import ConfigError
from sim.fleet_jobs import NO_TRACE_ROW, JobDraws, build_fleet_jobs
from sim.hardware import host_server
from sim.scenario import WorkloadSpec, load_fleet_scenario

# V100 / resnet50 row of data/derived/gpu_models.csv: t(f) = t0 + t1 / f, P(f) = p0 + p1 f + p3 f^3
T0, T1, P0, P1, P3 = 0.5194258377, 253.239456, 67.08590767, 0.0926076649, 9.66825924e-09
# host power per busy V100 is sim/hardware.py's figure (tested there), an input here: ~50-53 W
HOST_V100_W = host_server("V100").busy_w / host_server("V100").gpus_per_server
P100_RESNET_TOP_S = 0.5699319619 + 79.69445704 / 1329


@pytest.fixture(scope="module")
def small():
    return load_fleet_scenario("fleet_small")


@pytest.fixture(scope="module")
def jobs(small):
    return fleet_jobs(small, seed=0)


def test_listed_jobs_keep_their_order_homes_and_sizes(jobs):
    assert jobs.n_jobs == 6 and jobs.n_regions == 3 and jobs.n_levels == 3
    assert jobs.arrival_s.tolist() == [0, 1800, 3600, 7200, 21600, 28800]
    assert jobs.gpus.tolist() == [1, 2, 4, 1, 2, 1] and jobs.home.tolist() == [0, 1, 0, 2, 1, 0]
    assert jobs.trace_row.tolist() == [NO_TRACE_ROW] * 6
    assert jobs.checkpoint_gb[0] == pytest.approx(25.6e6 * 16 / 1e9)  # 0.4096 GB
    assert jobs.idle_w[0].tolist() == [30.5989448, 70.38, 70.38]  # idle_w of V100 / A40 resnet50 in the table
    assert jobs.storage_gbps.tolist() == [1000 * 2**20 * 8 / 1e9] * 6  # the default (EBS gp3 1,000 MiB/s)


def test_first_job_work_deadline_and_energy_by_hand(jobs):
    # 2 h on a P100 at 1329 MHz, 0.6299 s per mini-batch -> 11430.4 -> 11430 mini-batches
    assert jobs.minibatches[0] == 11430 == round(7200 / P100_RESNET_TOP_S)
    # V100 clocks 135..1380 MHz by 15 (84 clocks): 3 levels at indices 0, 42, 83 -> 135, 765, 1380 MHz
    assert jobs.clocks_mhz[0, 0].tolist() == [135.0, 765.0, 1380.0]
    # deadline = 2 x 11430 x t(1380) at home (KR, V100) = 2 x 11430 x 0.70293 s = 16069 s
    assert jobs.deadline_s[0] == pytest.approx(2 * 11430 * (T0 + T1 / 1380))
    # facility kWh per mini-batch at 1380 MHz in KR: 1 GPU x (P + host) x t x PUE 1.15
    p_w = P0 + P1 * 1380 + P3 * 1380**3  # 220.29 W
    expected_kwh = (p_w + HOST_V100_W) * (T0 + T1 / 1380) * 1.15 / 3.6e6
    assert jobs.energy_per_minibatch_kwh[0, 0, 2] == pytest.approx(expected_kwh, rel=1e-12)


def test_energy_optimal_level_is_the_middle_clock_for_resnet_on_v100(jobs):
    # J per mini-batch before PUE, (P + host 50-53 W) x t: 135 MHz (79.6 + 53.4) W x 2.395 s = 318.7 J;
    # 765 MHz (142.3 + 53.4) W x 0.850 s = 166.4 J; 1380 MHz (220.3 + 53.4) W x 0.703 s = 192.4 J
    # (with 50.0 W host: 310.5, 163.5, 190.1 J): the middle level either way
    assert jobs.energy_optimal_level[0, 0] == 1


def one_draw(gpus: int) -> JobDraws:
    one = np.array([0])
    return JobDraws(np.array([0.0]), np.array([3600.0]), np.array([gpus]), one, one, np.array([5]))


def test_a_drawn_job_larger_than_every_pool_is_named(small):
    with pytest.raises(ConfigError, match=r"jobs: job 0 \(trace row 5\) asks for 8 GPUs, more than any pool"):
        build_fleet_jobs(small, one_draw(8))


def test_a_workload_without_a_measurement_on_a_region_gpu_is_named(small):
    llm = replace(small, jobs=replace(small.jobs, workloads=(WorkloadSpec("gpt3_stage", 1.75e11),)))
    with pytest.raises(ConfigError, match=r"regions\[0\].gpu / jobs.workloads\[0\].name: no GPU model for gpu='V100'"):
        build_fleet_jobs(llm, one_draw(1))


def test_deadlines_never_pass_the_horizon(small):
    late = replace(small, jobs=replace(small.jobs, slack_factor=50.0))
    assert fleet_jobs(late, 0).deadline_s.max() == 24 * 3600.0
