"""The fleet's elastic jobs scale on the single job's cited curve (envs/fleet.py fleet_speed_table), and the LP
bound's floor follows it (baselines/fleet_policies.py speed_floor); values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.fleet_policies import speed_floor
from envs.fleet import FLEET_SCALING_CURVE, fleet_speed_table
from sim.constants import load_registry


def test_the_curve_is_the_registered_single_job_curve():
    row = next(r for r in load_registry() if r["name"] == "job.scaling_curve")
    points = tuple((int(a), float(b)) for a, b in (p.split(":") for p in row["value"].split()))
    assert points == FLEET_SCALING_CURVE


def test_speed_on_fewer_gpus_follows_the_curve_and_extends_past_8_gpus_along_its_last_slope():
    speed = fleet_speed_table(np.array([1, 4, 8, 16]))
    assert speed.shape == (4, 17)
    assert speed[0, :3].tolist() == [0.0, 1.0, 1.0]  # one GPU: its whole request
    # 4 GPUs: S(1) = 1, S(2) = 1 + (3.82 - 1) / 3 = 1.94, S(4) = 3.82
    assert speed[1, [1, 2, 4]] == pytest.approx([1 / 3.82, 1.94 / 3.82, 1.0])
    assert speed[2, [1, 4, 8]] == pytest.approx([1 / 7.62, 3.82 / 7.62, 1.0])
    # 16 GPUs: S(16) = 7.62 + 8 x (7.62 - 3.82) / 4 = 15.22
    assert speed[3, [8, 16]] == pytest.approx([7.62 / 15.22, 1.0])
    assert fleet_speed_table(np.array([4]), scaling_efficiency=False)[0].tolist() == [0, 0.25, 0.5, 0.75, 1.0]


def test_the_floor_is_the_least_gpu_time_per_mini_batch_over_the_gpu_counts():
    gpus = np.array([1, 8])
    # 8 GPUs: n / (8 x speed[n]) = n x 7.62 / (8 x S(n)), least on 1 GPU: 7.62 / 8 = 0.9525
    assert speed_floor(fleet_speed_table(gpus), gpus) == pytest.approx([1.0, 0.9525])
    assert speed_floor(fleet_speed_table(gpus, False), gpus) == pytest.approx([1.0, 1.0])
