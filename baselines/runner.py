"""The one evaluation loop: every policy (rule-based, oracle, learned) is run by :func:`run_episode`."""

from __future__ import annotations

import math
import time
from typing import Any

import gymnasium as gym
import numpy as np

from baselines.base import Policy

_S_PER_H = 3600.0
_J_PER_KWH = 3.6e6


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
        ``start_hour``, ``completed`` (the whole job accounted for: finished, or charged at the safety limit by
        :func:`equal_work`), ``work_charged``, ``late_h``, ``deadline_met``, ``jct_h``, ``steps``,
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
    out.update(equal_work(base, out))
    out["return"] = total_reward
    extra = getattr(policy, "extra_metrics", None)
    if extra is not None:
        out.update(extra())
    if keep_history:
        out["history"] = base.history()
    return out


def equal_work(base, m: dict[str, Any]) -> dict[str, Any]:
    """Every row the same work (spec V1): lateness, and the charge for work left at the safety limit.

    The episode's horizon (``episode_hours``, at least twice the deadline: ``sim.scenario``) is a safety limit,
    not a budget. A job that finished gets ``late_h = max(0, completion - deadline)``. A job still unfinished at
    the limit is charged, and flagged ``work_charged``, for its remaining mini-batches as if they ran right after
    the limit in the region the job is in, on its full GPU request at the highest clock level under the power cap
    (the lowest level if none fits), at the profiled speed (work multiplier 1): energy = remaining x time per
    mini-batch x GPUs x (GPU busy W + host busy W per GPU) x PUE, carbon at that region's mean intensity over the
    episode; its completion time (``jct_h``) is the limit plus that run time, and it is late by the difference to
    the deadline. Its ``completed`` is then True: every row accounts for the whole job.

    :returns: ``late_h``, ``work_charged`` and, for a charged job, the updated ``carbon_g``,
        ``facility_energy_kwh``, ``it_energy_kwh``, ``jct_h``, ``completed`` plus ``charged_carbon_g``.
    """
    sim = base.sim
    deadline_s = sim.deadline_s
    if m["completed"]:
        late_s = max(0.0, sim.completed_at_s - deadline_s) if math.isfinite(deadline_s) else 0.0
        return {"late_h": late_s / _S_PER_H, "work_charged": False, "charged_carbon_g": 0.0}
    view = base.view()
    r = int(view.region)
    n = int(view.requested_gpus)
    under = np.flatnonzero(n * view.p_gpu_w[r] <= view.cap_w + 1e-9)
    lv = int(under[-1]) if under.size else 0
    t_mb_s = float(view.t_mb_s[r, lv])
    remaining = float(view.remaining_mb)
    run_s = remaining * t_mb_s
    it_kwh = run_s * n * (float(view.p_gpu_w[r, lv]) + float(sim.host_busy_w[r])) / _J_PER_KWH
    facility_kwh = it_kwh * float(view.pue[r])
    carbon_g = facility_kwh * float(np.mean(sim.ci[r]))
    end_s = float(sim.t_s) + run_s
    late_s = max(0.0, end_s - deadline_s) if math.isfinite(deadline_s) else 0.0
    return {
        "late_h": late_s / _S_PER_H,
        "work_charged": True,
        "charged_carbon_g": carbon_g,
        "carbon_g": m["carbon_g"] + carbon_g,
        "facility_energy_kwh": m["facility_energy_kwh"] + facility_kwh,
        "it_energy_kwh": m["it_energy_kwh"] + it_kwh,
        "jct_h": end_s / _S_PER_H,
        "completed": True,
    }
