"""Faults as clouds deliver them in CarbonFleet-v0 (spec V4, issue 25), the single job's rules
(tests/test_cloud_faults.py) on one fleet job worked out by hand: a 2-GPU resnet50 job at home in KR (4 V100s) at
the top clock, 0.70300 s per mini-batch (compute + checkpoint stall), checkpoints every 500 mini-batches written in
io_s = 0.4096 GB x 8 / 8.39 Gbit/s = 0.39 s, restore 0.39 + 20 s."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from envs.fleet import CarbonFleetEnv
from sim import layout as core
from sim.paths import SCENARIO_DIR
from sim.scenario import parse_fleet_scenario

SMALL = yaml.safe_load((SCENARIO_DIR / "fleet_small.yaml").read_text())
JOB = {"arrival_hours": 0.0, "gpus": 2, "duration_hours": 3.0, "workload": "resnet50", "home": "KR"}


def _env(**faults) -> CarbonFleetEnv:
    d = copy.deepcopy(SMALL)
    d["faults"] = {"gpu_failure_per_gpu_hour": 1e-9, **faults}  # failures placed by hand below
    d["jobs"]["list"] = [dict(JOB)]
    env = CarbonFleetEnv(parse_fleet_scenario(d, "t.yaml"), "test", n_slots=1)
    env.reset(seed=0)
    return env


def _per_mb_s(env) -> float:
    j = env.jobs
    return j.minibatch_s[0, 0, 2] + j.checkpoint_gb[0] / j.snapshot_gb_per_s[0] / j.checkpoint_interval_minibatches[0]


def _io_s(env) -> float:
    return env.jobs.checkpoint_gb[0] * 8.0 / env.jobs.storage_gbps[0]


def _two_steps(env) -> float:
    for _ in range(2):
        info = env.step_jobs(np.zeros(1, dtype=np.int64), np.full(1, 2))[4]
    return float(info["job_progress_mb"][0])


def test_a_failed_gpus_replacement_takes_its_provisioning_time_in_the_fleet():
    env = _env(gpu_replace_s=300.0)
    per_mb, restore_s = _per_mb_s(env), _io_s(env) + env.scenario.model.restart_s
    p1 = _two_steps(env)  # 2,531.4 after a restore and 1.98 steps
    env._f[0, 0, core.F_FAIL_LEFT_GPU_H] = 2 * 100 / 3600  # fails 100 s into the next step (2 GPUs)
    info = env.step_jobs(np.zeros(1, dtype=np.int64), np.full(1, 2))[4]
    at_fault = p1 + 100 / per_mb  # 2,673.7: the write of checkpoint 2,500 (0.39 s) had ended
    assert info["lost_minibatches"] == pytest.approx(at_fault - 2500.0, rel=1e-9)
    # a spare exists (4 - 2 GPUs free): 300 s for the replacement, the restore, then training on both GPUs
    assert info["job_gpus"][0] == 2
    assert info["job_progress_mb"][0] == pytest.approx(2500.0 + (800.0 - 300.0 - restore_s) / per_mb, rel=1e-9)


@pytest.mark.parametrize("notice_s", [120.0, 0.0])
def test_a_spot_reclaim_with_notice_checkpoints_before_it_in_the_fleet(notice_s):
    env = _env(reclaim_notice_s=notice_s)
    per_mb = _per_mb_s(env)
    p1 = _two_steps(env)
    env.free[0, 0, env.k :] = 1  # other tenants take 3 of KR's 4 GPUs back at the next step: the job is reclaimed
    info = env.step_jobs(np.zeros(1, dtype=np.int64), np.full(1, 2))[4]
    # with 120 s of notice the checkpoint written in the last io_s before the reclaim holds: io_s of training lost;
    # without, back to checkpoint 2,500
    lost = _io_s(env) / per_mb if notice_s else p1 - 2500.0
    assert info["lost_minibatches"] == pytest.approx(lost, rel=1e-9)
    assert env.episode_metrics()["lost_minibatches"] == pytest.approx(lost, rel=1e-9)


def test_a_checkpoint_whose_write_has_not_ended_is_not_durable_in_the_fleet():
    # storage at 0.05 Gbit/s: a write takes 0.4096 x 8 / 0.05 = 65.5 s, 93 mini-batches of training
    d = copy.deepcopy(SMALL)
    d["faults"] = {"gpu_failure_per_gpu_hour": 1e-9}
    d["jobs"]["storage_gbps"] = 0.05
    d["jobs"]["list"] = [dict(JOB)]
    env = CarbonFleetEnv(parse_fleet_scenario(d, "t.yaml"), "test", n_slots=1)
    env.reset(seed=0)
    per_mb, io_s = _per_mb_s(env), _io_s(env)
    assert io_s == pytest.approx(65.536)
    p1 = _two_steps(env)
    boundary = (p1 // 500 + 1) * 500  # the next checkpoint; fail 30 s of training after it: its write is not over
    env._f[0, 0, core.F_FAIL_LEFT_GPU_H] = 2 * ((boundary - p1) * per_mb + 30.0) / 3600
    info = env.step_jobs(np.zeros(1, dtype=np.int64), np.full(1, 2))[4]
    assert info["lost_minibatches"] == pytest.approx(30.0 / per_mb + 500.0, rel=1e-9)  # back to the one before


def test_the_fleet_scenarios_have_the_cloud_fault_timing():
    env = CarbonFleetEnv("fleet", "test")
    env.reset(seed=0)
    P = dict(zip(core.PARAMS, env._P[0]))
    assert (P["gpu_replace_s"], P["reclaim_notice_s"], P["durable_after_write"]) == (300.0, 120.0, 1.0)
