"""The one interface every policy implements: rule-based, oracle and learned alike."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from envs.carbon_migration import CarbonMigrationEnv, PolicyView


class Policy(ABC):
    """Decides ``[target, clock level]`` each step.

    ``act`` receives the observation vector and the :class:`PolicyView` (public facts in physical
    units, including the action mask). A policy with ``clairvoyant = True`` (the oracle) is also
    handed the environment itself at ``reset`` and may read the episode's future from it.
    """

    name: str = "policy"
    clairvoyant: bool = False

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        """Called after ``env.reset``; ``env`` is only for static scenario facts unless clairvoyant."""
        return None  # stateless policies need no reset

    @abstractmethod
    def act(self, obs: np.ndarray, view: PolicyView) -> np.ndarray:
        """The action for this step: ``np.array([target, level])`` with target ``view.wait`` meaning pause."""
