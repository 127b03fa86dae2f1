"""Specification of baselines/fleet_packing.py on a hand-made fleet: urgent first, cleanest region with room."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines.fleet_packing import WAIT, carbon_aware_packing
from tests.fleet_helpers import MB, make_jobs

# Five jobs, three regions (intensity 300, 100, 200 g/kWh; pools 8, 4, 8 GPUs), two clock levels
# (level 0 slower and cheaper). Hours of the whole job at [level 0, level 1], the same in every region:
#   A: 4 GPUs, due at 3 h,  [3.5, 2] -> slack 3 - 2 = 1 h; level 0 would miss the deadline
#   B: 4 GPUs, due at 20 h, [3, 2]   -> slack 18 h
#   C: 8 GPUs, due at 10 h, [4.5, 3] -> slack 7 h
#   D: arrives at 5 h; E: done.
HOURS = {"A": [3.5, 2], "B": [3, 2], "C": [4.5, 3], "D": [2, 1], "E": [2, 1]}
A, B, C, D, E = range(5)


def fleet():
    work = [[HOURS[k]] * 3 for k in "ABCDE"]
    energy = [[[1.0, 1.5]] * 3] * 5
    return make_jobs([0, 0, 0, 5, 0], [3, 20, 10, 20, 20], [4, 4, 8, 1, 2], work, energy, 24)


def decide(current=(WAIT,) * 5, up=None, ci=(300.0, 100.0, 200.0)):
    remaining = np.array([MB, MB, MB, MB, 0])
    return carbon_aware_packing(fleet(), 0.0, remaining, np.array(current), np.array([8, 4, 8]), np.array(ci), up)


def test_the_most_urgent_job_gets_the_cleanest_pool_and_the_rest_fill_by_slack():
    # A (slack 1 h) takes region 1 (100 g, 4 GPUs: now full); C (7 h) needs 8: regions 0 and 2 fit, 2 is cleaner;
    # B (18 h) finds room only in region 0. D has not arrived, E is done.
    p = decide()
    assert p.region.tolist() == [1, 0, 2, WAIT, WAIT]


def test_clock_is_the_cheapest_level_that_still_meets_the_deadline():
    p = decide()
    assert p.level[A] == 1  # level 0 needs 3.5 h, the deadline is 3 h away
    assert p.level[B] == 0 and p.level[C] == 0  # 3 h in 20 h, 4.5 h in 10 h


def test_an_outage_moves_the_packing_to_the_regions_still_up():
    # region 1 down: A takes region 2 (200 g, 4 of 8 left), C needs 8: only region 0; B takes region 2's last 4
    p = decide(up=np.array([True, False, True]))
    assert p.region.tolist() == [2, 2, 0, WAIT, WAIT]


def test_a_running_job_moves_only_for_a_clearly_cleaner_region():
    # C runs in region 0 (300 g); region 2 is 33 % cleaner than its place: it moves (move_margin 10 %)
    assert decide(current=(WAIT, WAIT, 0, WAIT, WAIT)).region[C] == 2
    # with region 0 at 210 g (within 10 % of 200 g) C stays; B then finds region 2's 8 GPUs
    p = decide(current=(WAIT, WAIT, 0, WAIT, WAIT), ci=(210.0, 100.0, 200.0))
    assert p.region.tolist() == [1, 2, 0, WAIT, WAIT]


def test_with_no_pool_big_enough_an_elastic_job_runs_on_the_most_free_gpus():
    # only C (8 GPUs) active; pools have 6, 3 and 0 free: C runs on region 0's 6, at 6/8 speed: its 4.5 h at
    # level 0 become 6 h, still inside the 10 h to its deadline, so the cheaper level
    remaining = np.array([0, 0, MB, 0, 0])
    p = carbon_aware_packing(fleet(), 0.0, remaining, np.full(5, WAIT), np.array([6, 3, 0]), np.array([300.0, 1, 1]))
    assert (p.region[C], p.gpus[C], p.level[C]) == (0, 6, 0)
    rigid = carbon_aware_packing(
        fleet(), 0.0, remaining, np.full(5, WAIT), np.array([6, 3, 0]), np.array([300.0, 1, 1]), elastic=False
    )
    assert rigid.region[C] == WAIT and rigid.gpus[C] == 0


def test_with_no_room_anywhere_a_job_waits():
    remaining = np.array([MB, MB, MB, MB, 0])
    p = carbon_aware_packing(fleet(), 0.0, remaining, np.full(5, WAIT), np.array([4, 0, 0]), np.array([1.0, 1, 1]))
    assert p.region.tolist() == [0, WAIT, WAIT, WAIT, WAIT] and p.gpus.tolist() == [4, 0, 0, 0, 0]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31))
def test_placements_never_overfill_a_pool_and_only_place_active_jobs_in_regions_up(seed):
    rng = np.random.default_rng(seed)
    J, R, L = 12, 4, 3
    work = np.sort(rng.uniform(0.5, 6, (J, R, L)), axis=2)[:, :, ::-1]
    arrival = rng.uniform(0, 10, J)
    jobs = make_jobs(
        arrival, arrival + rng.uniform(1, 20, J), rng.integers(1, 9, J), work, rng.uniform(1, 5, (J, R, L)), 48
    )
    now = rng.uniform(0, 12)
    remaining = np.where(rng.random(J) < 0.2, 0, rng.integers(1, MB + 1, J))
    free, up = rng.integers(0, 12, R), rng.random(R) < 0.8
    current = np.where(rng.random(J) < 0.5, rng.integers(0, R, J), WAIT)
    p = carbon_aware_packing(jobs, now, remaining, current, free, rng.uniform(10, 600, R), up)
    placed = p.region != WAIT
    assert np.all(jobs.arrival_s[placed] <= now) and np.all(remaining[placed] > 0) and np.all(up[p.region[placed]])
    used = np.bincount(p.region[placed], weights=p.gpus[placed], minlength=R)
    assert np.all(used <= free) and np.all((p.gpus[placed] >= 1) & (p.gpus[placed] <= jobs.gpus[placed]))
    assert np.all(p.gpus[~placed] == 0)
    assert np.all((p.level >= 0) & (p.level < L))
