"""sim.core with several jobs per environment: a job parked on a GPU-failure draw does not re-step the others."""

import numpy as np

from sim.core import Batch
from sim.layout import I_K, M
from tests.test_simulator import make_sim


def test_every_job_takes_one_step_per_call_when_some_park_on_a_draw():
    sim = make_sim(0, faults=dict(gpu_failure_per_gpu_hour=0.5))  # a failure every ~30 min on 4 GPUs
    b = Batch(sim.tables, 2, n_jobs=3)
    rows = np.array([0, 1])
    for i in rows:
        b.set_rng(i, np.random.default_rng(10 + i))
    b.begin(rows, np.array([0, 5]), sim.draw)
    home = sim.tables.home
    targets, levels = np.full(2, home), np.full(2, sim.n_levels - 1)
    for k in range(1, 60):
        b.step(rows, targets, levels)
        assert b.core.i[:, :, I_K].tolist() == [[k] * 3] * 2
    assert b.core.episode_acc[:, :, M["gpu_failures"]].sum() > 10  # many draws were parked and resumed
