"""Faults as clouds deliver them (spec V4), hand-computed on the toy world of tests/test_simulator.py (1 s per
mini-batch on all GPUs at the top clock, 16 GB checkpoints, checkpoints every 1,000 mini-batches, no overheads)."""

from __future__ import annotations

import pytest

from tests.test_simulator import make_sim


def test_a_periodic_checkpoint_is_durable_only_when_its_write_ends():
    # 16 GB at 0.5 Gbit/s: every write and restore takes 256 s
    sim = make_sim(job=dict(storage_gbps=0.5))
    sim.step(0, 2)  # restore 256 s, then 644 mini-batches
    assert sim.progress_mb == pytest.approx(644.0)
    sim.fail_left_gpu_h = 4 * 456 / 3600.0  # fails at mini-batch 1,100: 100 s into the write of checkpoint 1,000
    sim.step(0, 2)
    ep = sim.metrics(sim.episode_acc)
    assert ep["gpu_failures"] == 1
    # the write of 1,000 had 156 s left: the last durable checkpoint is the start (0), all 1,100 are lost
    assert ep["lost_minibatches"] == pytest.approx(1100.0)


def test_a_checkpoint_whose_write_has_ended_is_kept():
    sim = make_sim(job=dict(storage_gbps=0.5))
    sim.step(0, 2)  # 644
    sim.fail_left_gpu_h = 4 * 656 / 3600.0  # fails at 1,300: 300 s after the boundary, the 256-s write ended
    sim.step(0, 2)
    assert sim.metrics(sim.episode_acc)["lost_minibatches"] == pytest.approx(300.0)


def test_a_failed_gpus_replacement_takes_its_provisioning_time():
    # 3 of the pool's 4 GPUs: a spare exists, so the job waits for it (300 s) and restores (8 s) on all 3
    sim = make_sim(job=dict(gpus=3), faults=dict(gpu_replace_s=300.0))
    sim.step(0, 2)  # restore 8 s, then 892 mini-batches
    sim.step(0, 2)  # 1,792
    sim.fail_left_gpu_h = 3 * 100 / 3600.0  # fails 100 s into the third step, at 1,892
    sim.step(0, 2)
    assert sim.n_gpus == 3
    assert sim.metrics(sim.episode_acc)["lost_minibatches"] == pytest.approx(892.0)
    # back to checkpoint 1,000, then 900 - 100 - 300 - 8 = 492 s of training in the step
    assert sim.progress_mb == pytest.approx(1000.0 + 492.0)


@pytest.mark.parametrize(("notice_s", "lost"), [(120.0, 8.0), (0.0, 792.0)])
def test_a_spot_reclaim_with_notice_checkpoints_before_it(notice_s, lost):
    sim = make_sim(faults=dict(reclaim_notice_s=notice_s))
    sim.step(0, 2)
    sim.step(0, 2)  # 1,792 at 1,800 s
    sim.free[0, sim.k :] = 3  # one of the 4 GPUs is reclaimed at the next step
    sim.step(0, 2)
    ep = sim.metrics(sim.episode_acc)
    assert ep["preemptions"] == 1
    # notice 120 s >= the 8-s write: the checkpoint taken 8 s before the reclaim holds 1,784, 8 mini-batches are
    # lost; with no notice the job rolls back to checkpoint 1,000 and loses 792
    assert ep["lost_minibatches"] == pytest.approx(lost)
