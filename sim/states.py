"""The CAFTM scheduler state machine (Park et al., IEEE CLOUD 2024, Fig. 2), extended.

Paper states: Tolerance (run, profile time/power) -> Suspend (intensity >= theta_CI: write a
checkpoint) -> Migration (transfer the state) -> Scaling (restore, set the clock) -> Tolerance;
Tolerance -> Scaling when the clock or GPU count changes. Added for the rest of the product:
Queued (not started), Waiting (paused: temporal shift, no GPUs, outage), Recovering (restore
after a fault), Completed.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from sim.errors import IllegalTransition


class State(IntEnum):
    QUEUED = 0
    TOLERANCE = 1
    SUSPEND = 2
    MIGRATION = 3
    SCALING = 4
    WAITING = 5
    RECOVERING = 6
    COMPLETED = 7


N_STATES = len(State)


class Event(IntEnum):
    """What ends a piece of simulated time inside a decision step (``sim.simulator``, ``sim.core``).

    A piece also ends at an hour boundary (the grid intensity changes) or at the step's end: ``NONE``, no
    handler runs. The others change the state along the table below.
    """

    NONE = 0  # hour boundary or end of the decision step
    PHASE_END = 1  # a timed phase (checkpoint write, transfer, restore) ends
    GPU_FAILURE = 2  # a held GPU fails: roll back to the last checkpoint
    TRANSFER_FAILURE = 3  # the WAN transfer fails mid-flight: the checkpoint is still at the source
    OUTAGE = 4  # the region holding the job's GPUs goes down
    COMPLETION = 5  # the last mini-batch finishes
    MINIBATCH_BOUNDARY = 6  # the mini-batch in flight finishes, so the pending checkpoint can be written


_ALLOWED = {
    State.QUEUED: {State.SCALING, State.MIGRATION, State.WAITING},
    State.TOLERANCE: {State.SUSPEND, State.SCALING, State.RECOVERING, State.COMPLETED},
    State.SUSPEND: {State.MIGRATION, State.WAITING, State.RECOVERING},
    State.MIGRATION: {State.SCALING, State.WAITING, State.RECOVERING},
    State.SCALING: {State.TOLERANCE, State.RECOVERING, State.WAITING},
    State.WAITING: {State.SCALING, State.MIGRATION},
    State.RECOVERING: {State.TOLERANCE, State.WAITING, State.MIGRATION, State.SCALING},
    State.COMPLETED: set(),
}

# ALLOWED[a, b] is True when a -> b is legal; a matrix so the hot path is one lookup.
ALLOWED = np.zeros((N_STATES, N_STATES), dtype=bool)
for _src, _dsts in _ALLOWED.items():
    for _dst in _dsts:
        ALLOWED[_src, _dst] = True
_ALLOWED_LIST = ALLOWED.tolist()


def check_transition(src: int, dst: int) -> None:
    """Raise IllegalTransition unless ``src -> dst`` is an edge of the state machine."""
    if not _ALLOWED_LIST[src][dst]:
        allowed = ", ".join(s.name for s in sorted(_ALLOWED[State(src)])) or "none (terminal)"
        raise IllegalTransition(
            f"illegal scheduler transition {State(src).name} -> {State(dst).name}; "
            f"from {State(src).name} the allowed next states are: {allowed}"
        )
