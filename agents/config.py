"""The agents' configuration types, a leaf module: ``agents.build`` checks configs with them and
``agents.imitation`` / ``agents.policy`` use them, without importing each other in a circle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.errors import ConfigError


class AgentConfigError(ConfigError):
    """A bad algorithm name, hyper-parameter file or key; the message says which and where."""


@dataclass(frozen=True)
class ImitationConfig:
    """The ``imitation:`` mapping of an agent config (all counts >= 0, rates in (0, 1]).

    :param demo_episodes: oracle-executed training episodes before the first fit
    :param dagger_rounds: DAgger rounds after behaviour cloning
    :param dagger_episodes: agent-executed episodes per DAgger round
    :param beta: probability of executing the oracle's action in DAgger round 1 (halved each round)
    :param epochs: passes over the data set per fit
    :param batch_size: samples per gradient step
    :param learning_rate: Adam step size of the fits
    :param reserve_h: hours before the deadline the oracle teacher plans to finish (its own default is 1 h; more
        leaves the imitating agent room for its mistakes)
    :param gpu_weight: the fleet agent's loss weight of a job's decision is its GPUs to this power (0: equal
        weights; 1: in proportion to the GPUs, so to the carbon a decision moves)
    :param oracle_moves_per_job: the fleet oracle teacher's rip-up-and-re-plan moves per job
        (``OracleFleetPolicy.improve_moves_per_job``; fewer plan faster, a little less well)
    """

    demo_episodes: int = 40
    dagger_rounds: int = 3
    dagger_episodes: int = 20
    beta: float = 0.5
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1.0e-3
    reserve_h: float = 1.0
    gpu_weight: float = 0.0
    oracle_moves_per_job: int = 12

    @classmethod
    def from_dict(cls, data: Any, source: str = "imitation") -> ImitationConfig:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise AgentConfigError(
                f"{source}: must be a mapping of {', '.join(cls.__dataclass_fields__)}, got {data!r}"
            )
        kw = {}
        for key, value in data.items():
            if key not in cls.__dataclass_fields__:
                raise AgentConfigError(
                    f"{source}.{key}: unknown imitation setting; valid: {', '.join(cls.__dataclass_fields__)}"
                )
            default = cls.__dataclass_fields__[key].default
            if isinstance(value, str):  # YAML reads 1e-3 as a string
                try:
                    value = float(value)
                except ValueError:
                    pass
            if isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise AgentConfigError(f"{source}.{key}: must be an integer >= 0, got {value!r}")
            elif key == "gpu_weight":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) <= 2:
                    raise AgentConfigError(f"{source}.{key}: must be a number in [0, 2], got {value!r}")
                value = float(value)
            elif key == "reserve_h":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) < 24:
                    raise AgentConfigError(f"{source}.{key}: must be a number of hours in [0, 24), got {value!r}")
                value = float(value)
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) <= 1:
                    raise AgentConfigError(f"{source}.{key}: must be a number in (0, 1], got {value!r}")
                value = float(value)
            kw[key] = value
        if kw.get("batch_size", 1) < 1 or kw.get("epochs", 1) < 1:
            raise AgentConfigError(f"{source}: epochs and batch_size must be >= 1")
        return cls(**kw)
