"""Action-space adapters for algorithms that need a single Discrete action (DQN) or a Box (SAC, TD3)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class FlatActionWrapper(gym.ActionWrapper):
    """``Discrete((R + 1) * L)``: action ``a`` means target ``a // L`` and clock level ``a % L``.

    ``action_masks()`` is the outer product of the target and level masks, flattened the same way.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.n_targets, self.n_levels = (int(n) for n in env.action_space.nvec)
        self.action_space = spaces.Discrete(self.n_targets * self.n_levels)

    def action(self, action) -> np.ndarray:
        a = int(action)
        if not 0 <= a < self.action_space.n:
            raise ValueError(f"flat action {action!r} out of range 0..{self.action_space.n - 1}")
        return np.array([a // self.n_levels, a % self.n_levels])

    def action_masks(self) -> np.ndarray:
        m = self.env.unwrapped.action_masks()
        return np.outer(m[: self.n_targets], m[self.n_targets :]).ravel()


class ContinuousClockWrapper(gym.ActionWrapper):
    """``Box([0, 0], [1, 1])``: ``x[0]`` picks the target (``floor(x0 * (R + 1))``, the last bin = wait) and
    ``x[1]`` the clock as a fraction of the region's range, rounded to the nearest supported level."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.n_targets, self.n_levels = (int(n) for n in env.action_space.nvec)
        self.action_space = spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)

    def action(self, action) -> np.ndarray:
        x = np.asarray(action, dtype=np.float64)
        if x.shape != (2,) or not np.all(np.isfinite(x)):
            raise ValueError(f"continuous action {action!r} must be 2 finite numbers in [0, 1]")
        x = np.clip(x, 0.0, 1.0)
        target = min(int(x[0] * self.n_targets), self.n_targets - 1)
        level = int(round(x[1] * (self.n_levels - 1)))
        return np.array([target, level])
