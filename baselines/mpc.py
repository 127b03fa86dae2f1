"""Receding-horizon model-predictive control (MPC): the oracle's planner on what a policy may know.

Source: this project (the standard receding-horizon scheme; e.g. Camacho & Bordons, *Model Predictive
Control*, 2007). Every decision step the policy builds an :class:`baselines.oracle.EpisodeFacts` from
information it is allowed to see, plans the rest of the episode with the oracle's solver
(:func:`baselines.oracle.make_plan`) and applies only the plan's first step:

- intensity: the current hour and the forecast the environment publishes (``view.forecast_g_per_kwh``);
  hours past the forecast horizon use the zone's mean intensity at that hour of day over the scenario's
  TRAINING split (a climatological forecast; no test data);
- GPUs usable per region: the current count for the current step, then the mean count seen so far in the
  episode (a persisted momentary shortage would make the plan flip between regions step after step);
- the work multiplier: the one measured on the step just run, assumed to persist (no peeking, no fault foresight);
- static scenario facts: clock table, PUE, WAN transfer times, checkpoint size, deadline and the job's
  power-cap schedule (a constant cap plus fixed daily windows, known in advance).

With a perfect forecast covering the rest of the episode and no noise or faults, its facts equal the
oracle's, hence so does its plan (``tests/test_mpc.py``).
"""

from __future__ import annotations

import numpy as np

from baselines.base import Policy
from baselines.oracle import EpisodeFacts, Plan, make_plan, plan_action, static_facts, step_min
from baselines.rules import TIMED, training_intensity
from envs.carbon_migration import CarbonMigrationEnv, PolicyView
from sim.errors import ConfigError


def hour_of_day_means(ci_g_per_kwh: np.ndarray, first_hour_of_day: int) -> np.ndarray:
    """(zones, 24) mean intensity per UTC hour of day of an hourly table whose first column is at
    ``first_hour_of_day``."""
    hod = (first_hour_of_day + np.arange(ci_g_per_kwh.shape[1])) % 24
    return np.stack([ci_g_per_kwh[:, hod == h].mean(axis=1) for h in range(24)], axis=1)


class MpcPolicy(Policy):
    """Receding-horizon MPC: re-plan the rest of the episode every step on forecasts, apply the first step.

    Rule: at each decision step outside a timed phase, plan with the oracle's solver on the facts listed in
    the module docstring (forecast intensity, climatology beyond the horizon, GPUs usable now and on average so
    far, today's work rate), aiming to finish ``reserve_h`` before the deadline with ``margin`` extra work, and
    take the plan's first action (:func:`baselines.oracle.plan_action`); during a timed phase keep the last
    plan. Not clairvoyant: reads the environment only for static scenario facts.

    :param margin: extra work fraction the plan schedules to absorb checkpoint/restore overheads.
    :param reserve_h: hours before the deadline the plan aims to finish (faults and forecast errors).
    """

    name = "mpc"

    def __init__(self, margin: float = 0.03, reserve_h: float = 1.0):
        if margin < 0 or reserve_h < 0:
            raise ConfigError(f"mpc: margin={margin} and reserve_h={reserve_h} must be >= 0")
        self.margin = margin
        self.reserve_h = reserve_h

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        tab = env.tables  # static facts only: tables fixed by the scenario, not this episode's draws
        self.env = env
        self.n_hours = tab.n_hours
        self.static = static_facts(env)
        self.climate: np.ndarray | None = None  # (R, 24), loaded when a plan first looks past the forecast
        self.plan: Plan | None = None
        self.replans = 0
        self.usable_sum = np.zeros(len(tab.pue))
        self.views = 0

    def _climatology(self) -> np.ndarray:
        if self.climate is None:
            train = training_intensity(self.env)
            hod0 = int(train.start_h.astype("datetime64[h]").astype(np.int64) % 24)
            self.climate = hour_of_day_means(train.intensity_g_per_kwh, hod0)
        return self.climate

    def facts(self, view: PolicyView) -> EpisodeFacts:
        """The episode as this policy forecasts it from ``view`` (same layout as the oracle's facts)."""
        st = self.static
        K, R = st["n_steps"], view.n_regions
        h_now = min(int(view.t_s // 3600.0), self.n_hours - 1)
        ci = np.empty((R, self.n_hours))
        ci[:, : h_now + 1] = view.intensity_g_per_kwh[:, None]  # the past is not planned; now is known
        seen = min(view.forecast_g_per_kwh.shape[1], self.n_hours - h_now - 1)
        ci[:, h_now + 1 : h_now + 1 + seen] = view.forecast_g_per_kwh[:, :seen]
        later = np.arange(h_now + 1 + seen, self.n_hours)
        if later.size:
            ci[:, later] = self._climatology()[:, (view.hour_of_day + later - h_now) % 24]
        k = int(round(view.t_s / view.step_s))
        usable = np.broadcast_to(self.usable_sum / max(self.views, 1), (K, R)).copy()
        usable[min(k, K - 1)] = view.usable_gpus
        return EpisodeFacts(
            **st,
            work=np.full(K, float(view.work)),
            ci_step=step_min(ci, K, st["step_s"]),
            ci_min=ci.min(axis=1),
            u_relaxed=usable,
            u_plan=usable,
        )

    def act(self, obs, view: PolicyView) -> np.ndarray:
        k = int(round(view.t_s / view.step_s))
        self.usable_sum += view.usable_gpus
        self.views += 1
        if self.plan is None or (view.state not in TIMED and k < self.static["n_steps"]):
            dl = self.static["deadline_s"] - self.reserve_h * 3600.0
            self.plan = make_plan(self.facts(view), k, view.region, view.remaining_mb, self.margin, dl)
            self.replans += 1
        return plan_action(self.plan, k, view)
