"""The one reward table of both environments (``CarbonMigration-v0`` and ``CarbonFleet-v0``).

Each term is a weight (``sim.scenario.RewardSpec``, named in ``REWARD_WEIGHTS``) times an accounted quantity of
the step (``numerator / divisor``, in the weight's unit); ``info["reward_terms"]`` reports each term signed as it
enters the reward (progress positive, costs negative), in the order ``REWARD_TERMS``.

| term | weight | quantity (per step) |
|---|---|---|
| progress | progress_per_job | fraction of the job done (mini-batches done - lost) / total; the fleet sums its jobs' |
| carbon | carbon_per_kg | operational + transfer carbon, kg |
| energy | energy_per_kwh | facility + transfer energy, kWh |
| lateness | lateness_per_hour | hours past the deadline; at truncation also the work left, at home at the top clock |
| cap_violation | cap_violation_per_kj | energy over the power cap, kJ (fleet: over each region's cap) |
| migration | migration_per_count | migrations started |
| embodied | embodied_per_kg | embodied carbon of the GPU-hours used, kg |

``reward = progress - carbon - energy - lateness - cap_violation - migration - embodied``. The single job
subtracts the costs one by one and the fleet sums them first (``fleet_reward``): the same number up to rounding,
each in the order its recorded golden trajectories were computed in. To add a term: a row here (name, weight,
quantity in ``job_quantities`` / the fleet's ``book_step``) and its weight in ``RewardSpec``.
"""

from __future__ import annotations

from numba import njit

from sim.layout import M_CAPJ, M_DONE, M_EMB, M_FAC, M_LOST, M_MIG, M_OPC, M_TXC, M_TXE

REWARD_TERMS = ("progress", "carbon", "energy", "lateness", "cap_violation", "migration", "embodied")
REWARD_WEIGHTS = (
    "progress_per_job",
    "carbon_per_kg",
    "energy_per_kwh",
    "lateness_per_hour",
    "cap_violation_per_kj",
    "migration_per_count",
    "embodied_per_kg",
)
N_REWARD_TERMS = len(REWARD_TERMS)
T_PROGRESS = REWARD_TERMS.index("progress")  # the one term that is a gain; the others are costs


def weights(spec) -> tuple[float, ...]:
    """The weights of a ``RewardSpec`` in the order ``REWARD_WEIGHTS``."""
    return tuple(float(getattr(spec, name)) for name in REWARD_WEIGHTS)


@njit(cache=True, inline="always")
def weigh(w, q, out):
    """``out[k] :=`` term ``k`` signed as it enters the reward: ``w[k] * num / div`` for ``q[k] = (num, div)``
    (positive for progress, negative for the costs). Returns ``out``."""
    for k in range(len(q)):
        x = w[k] * q[k][0] / q[k][1]
        out[k] = x if k == T_PROGRESS else -x
    return out


@njit(cache=True, inline="always")
def job_quantities(acc, late_h, total_mb):
    """One job's step quantities ``(numerator, divisor)`` per term from its accounting row ``acc``
    (``sim.layout.METRICS``), with ``late_h`` hours late and ``total_mb`` mini-batches in the job."""
    return (
        (acc[M_DONE] - acc[M_LOST], total_mb),
        ((acc[M_OPC] + acc[M_TXC]) / 1000.0, 1.0),
        (acc[M_FAC] + acc[M_TXE], 1.0),
        (late_h, 1.0),
        (acc[M_CAPJ], 1000.0),
        (acc[M_MIG], 1.0),
        (acc[M_EMB], 1000.0),
    )


@njit(cache=True, inline="always")
def job_reward(acc, late_h, total_mb, w, out):
    """The single job's reward from its step accounting (terms into ``out``): progress minus each cost in turn."""
    t = weigh(w, job_quantities(acc, late_h, total_mb), out)
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6]


@njit(cache=True, inline="always")
def fleet_reward(out):
    """The fleet's reward from its signed terms ``out``: minus (the costs summed, less progress)."""
    cost = -out[1] + -out[2] + -out[3] + -out[4] + -out[5]
    cost = cost + -out[6]
    return -(cost - out[0])
