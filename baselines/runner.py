"""The one evaluation loop: every policy (rule-based, oracle, learned) is run by :func:`run_episode`."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

from baselines.base import Policy


def run_episode(
    env: gym.Env, policy: Policy, seed: int, start_hour: int | None = None, keep_history: bool = True
) -> dict[str, Any]:
    """Run one episode of ``policy`` on ``env`` and return its metrics.

    :param env: a ``CarbonMigration-v0`` environment (``gymnasium.make`` wrappers are fine).
    :param policy: any :class:`baselines.base.Policy`.
    :param seed: the reset seed (work noise, availability, faults, forecast noise) and the policy's seed.
    :param start_hour: episode start (index into the split's carbon table); drawn from ``seed`` when None.
    :param keep_history: include ``history`` (per-step arrays from ``env.history()``).
    :returns: every W8 episode metric (``carbon_g``, ``facility_energy_kwh``, ...) plus ``policy``, ``seed``,
        ``start_hour``, ``completed``, ``deadline_met``, ``jct_h`` (NaN when not completed), ``steps``,
        ``return``, ``invalid_actions``, ``policy_s`` (wall time inside the policy), the policy's
        ``extra_metrics()`` if it has one (the oracle adds ``oracle_bound_carbon_g``), and ``history``.
    """
    base = env.unwrapped
    options = None if start_hour is None else {"start_hour": int(start_hour)}
    obs, info = env.reset(seed=int(seed), options=options)
    t0 = time.perf_counter()
    policy.reset(base, int(seed))
    policy_s = time.perf_counter() - t0
    total_reward = 0.0
    steps = 0
    done = False
    while not done:
        view = base.view()
        t0 = time.perf_counter()
        action = policy.act(obs, view)
        policy_s += time.perf_counter() - t0
        obs, reward, terminated, truncated, info = env.step(np.asarray(action))
        total_reward += float(reward)
        steps += 1
        done = terminated or truncated
    out: dict[str, Any] = {"policy": policy.name, "seed": int(seed), "start_hour": int(base.start_hour)}
    out.update(info["episode_metrics"])
    out.update(
        completed=bool(info["completed"]),
        deadline_met=bool(info["deadline_met"]),
        jct_h=float(info.get("jct_h", np.nan)),
        steps=steps,
        invalid_actions=int(info["invalid_actions"]),
        policy_s=policy_s,
    )
    out["return"] = total_reward
    extra = getattr(policy, "extra_metrics", None)
    if extra is not None:
        out.update(extra())
    if keep_history:
        out["history"] = base.history()
    return out
