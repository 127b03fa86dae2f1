"""Policies: the known heuristics, CAFTM, receding-horizon MPC and the offline-optimal oracle, all behind one interface.

``POLICIES`` maps a name to its class; ``make_policy(name, **kw)`` builds one. Run any policy with
``baselines.runner.run_episode``.
"""

from __future__ import annotations

from baselines.base import Policy
from baselines.caftm import CaftmGuardedPolicy, CaftmPolicy, FrequencyController
from baselines.carbon_scaler import CarbonScalerPolicy
from baselines.mpc import MpcPolicy
from baselines.oracle import OraclePolicy, oracle_bound
from baselines.rules import (
    DvfsOnlyPolicy,
    GreedyPolicy,
    RandomPolicy,
    StayPolicy,
    StayUncappedPolicy,
    ThresholdPolicy,
    WaitAwhilePolicy,
)
from sim.errors import ConfigError

POLICIES: dict[str, type[Policy]] = {
    "stay": StayPolicy,
    "stay_uncapped": StayUncappedPolicy,
    "threshold": ThresholdPolicy,
    "greedy": GreedyPolicy,
    "caftm": CaftmPolicy,
    "caftm_guarded": CaftmGuardedPolicy,
    "wait_awhile": WaitAwhilePolicy,
    "dvfs_only": DvfsOnlyPolicy,
    "random": RandomPolicy,
    "mpc": MpcPolicy,
    "oracle": OraclePolicy,
    "carbon_scaler": CarbonScalerPolicy,
}


def make_policy(name: str, **kwargs) -> Policy:
    """Build the policy registered as ``name`` with keyword arguments ``kwargs``."""
    if name not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; available: {', '.join(POLICIES)}")
    try:
        return POLICIES[name](**kwargs)
    except TypeError as e:
        raise ConfigError(f"policy {name!r}: bad arguments {sorted(kwargs)}: {e}") from None


__all__ = ["POLICIES", "make_policy", "Policy", "FrequencyController", "oracle_bound"]
