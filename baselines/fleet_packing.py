"""Fleet-level carbon-aware packing: place and move jobs to the cleanest region with room, most urgent first.

A pure function over the fleet's arrays (no simulator state), so the fleet environment, the evaluation and the
tests call the same rule. At each decision:

1. Jobs that have arrived and have work left are ranked by slack, the time to their deadline minus their
   remaining work at the top clock in the fastest region (least slack first; ties by job index).
2. In that order, each job takes the cleanest region (lowest current intensity) that is up and still has room for
   its whole GPU request, counting the GPUs the jobs before it took. A job already running stays where it is
   unless another region is cleaner by more than ``move_margin`` (a migration costs a checkpoint transfer).
   With no room anywhere for the whole request, an elastic job takes the pool with the most free GPUs (then the
   cleanest) and runs slower on them, as the simulator allows; with none free it waits (a running job loses its
   place to more urgent ones: the pools are re-packed at every decision).
3. Clock: the level with the least energy per mini-batch among those that still finish in the chosen region
   within ``1 - reserve_frac`` of the time left to the deadline (default: all of it); if none does, the top
   level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.fleet_jobs import FleetJobs

WAIT = -1


@dataclass(frozen=True)
class Placement:
    """One decision for every job: ``region`` (``WAIT`` = hold no GPUs) and clock ``level``."""

    region: np.ndarray  # (J,) int64, target region, WAIT for jobs not placed (or not active)
    level: np.ndarray  # (J,) int64, clock level (meaningful where region != WAIT)
    gpus: np.ndarray  # (J,) int64, GPUs the job is given there (its request, fewer if elastic), 0 if waiting


def carbon_aware_packing(
    jobs: FleetJobs,
    now_s: float,
    remaining_minibatches: np.ndarray,
    current_region: np.ndarray,
    free_gpus: np.ndarray,
    intensity_g_per_kwh: np.ndarray,
    region_up: np.ndarray | None = None,
    move_margin: float = 0.1,
    elastic: bool = True,
    reserve_frac: float = 0.0,
) -> Placement:
    """The packing decision at time ``now_s`` (s after the episode start).

    :param remaining_minibatches: (J,) mini-batches still to run (0 = done).
    :param current_region: (J,) region where the job holds GPUs now, ``WAIT`` if none.
    :param free_gpus: (R,) GPUs of each pool open to the fleet now, counting those the fleet's jobs hold.
    :param intensity_g_per_kwh: (R,) current intensity.
    :param region_up: (R,) bool, False during an outage (default: all up).
    :param move_margin: relative intensity gain a running job needs before it is moved.
    :param elastic: a job may run on fewer GPUs than it asks for when no pool has room for all of them.
    :param reserve_frac: share of the time left that the clock choice keeps in hand.
    """
    J, R, L = jobs.n_jobs, jobs.n_regions, jobs.n_levels
    remaining = np.asarray(remaining_minibatches, dtype=float)
    current = np.asarray(current_region, dtype=np.int64)
    ci = np.asarray(intensity_g_per_kwh, dtype=float)
    up = np.ones(R, dtype=bool) if region_up is None else np.asarray(region_up, dtype=bool)
    room = np.where(up, np.asarray(free_gpus, dtype=float), 0.0)

    active = (jobs.arrival_s <= now_s) & (remaining > 0)
    time_left_s = jobs.deadline_s - now_s
    slack_s = time_left_s - remaining * jobs.minibatch_s[:, :, L - 1].min(axis=1)
    region = np.full(J, WAIT, dtype=np.int64)
    level = np.full(J, L - 1, dtype=np.int64)
    gpus = np.zeros(J, dtype=np.int64)
    for j in np.flatnonzero(active)[np.argsort(slack_s[active], kind="stable")]:
        fits = np.flatnonzero(room >= jobs.gpus[j])
        if fits.size:
            r = int(fits[np.argmin(ci[fits])])
            c = int(current[j])
            if c != r and c != WAIT and room[c] >= jobs.gpus[j] and ci[c] <= (1.0 + move_margin) * ci[r]:
                r = c  # not worth a migration
        elif elastic and room.max() >= 1:
            r = int(np.lexsort((ci, -room))[0])  # the most free GPUs, then the cleanest
        else:
            continue
        gpus[j] = min(int(jobs.gpus[j]), int(room[r]))
        slower = jobs.gpus[j] / gpus[j]  # linear scaling on fewer GPUs
        finishes = remaining[j] * jobs.minibatch_s[j, r] * slower <= (1.0 - reserve_frac) * time_left_s[j]
        energy = np.where(finishes, jobs.energy_per_minibatch_kwh[j, r], np.inf)
        region[j] = r
        level[j] = int(np.argmin(energy)) if finishes.any() else L - 1
        room[r] -= gpus[j]
    return Placement(region, level, gpus)
