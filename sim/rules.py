"""Scheduling rules shared by the simulator, the array core, the environments and the baselines, defined once.

Each is a plain function of numbers so that Python callers (baselines, tests) call it directly and ``sim.core``
compiles the very same source with numba (``njit(rule)``); nothing here may use Python objects the compiler rejects.
"""

from __future__ import annotations

from sim.states import State

# Timed phases run to their end once started; during one, the only valid action target is the phase's own.
TIMED_STATES = (int(State.SUSPEND), int(State.MIGRATION), int(State.SCALING), int(State.RECOVERING))
WAIT = -1  # the simulator's "pause here" target (the env maps its action index R to it)


def is_timed(state: int) -> bool:
    """True during a checkpoint write, a transfer, a restore after a move or a restore after a fault."""
    return state == 2 or state == 3 or state == 4 or state == 6  # TIMED_STATES, spelled out for the compiler


def usable_gpus(free: int, requested: int, group: int, elastic: bool) -> int:
    """GPUs a job can run on out of ``free``: at most its request, in whole parallel groups of ``group``, and
    none if it is rigid (not ``elastic``) and short."""
    n = free if free < requested else requested
    if group > 1:
        n -= n % group  # a pipeline / tensor-parallel job runs on whole parallel groups only
    return n if (elastic or n >= requested) else 0


def continue_target(state: int, region: int, dest: int, after_suspend: int, n_regions: int) -> int:
    """The action target that keeps the job on its course (``n_regions`` = wait): the destination of a transfer,
    where a checkpoint write leads, wait when paused or queued, else the current region."""
    if state == 3:  # MIGRATION
        return dest
    if state == 2:  # SUSPEND
        return n_regions if after_suspend == WAIT else after_suspend
    if state == 5 or state == 0:  # WAITING, QUEUED
        return n_regions
    return region


def level_under_cap(p_gpu_w_by_level, n_gpus: int, cap_w: float, level: int) -> int:
    """``level`` lowered, one clock level at a time, until ``n_gpus`` GPUs at it draw at most ``cap_w``
    (``p_gpu_w_by_level``: busy W per GPU at each level, rising with the clock); level 0 if none does."""
    while level > 0 and n_gpus * p_gpu_w_by_level[level] > cap_w:
        level -= 1
    return level
