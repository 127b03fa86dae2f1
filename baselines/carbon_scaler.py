"""CarbonScaler: scale the job's GPU count with the grid's carbon intensity (W. A. Hanafy, Q. Liang, N. Bashir,
D. Irwin, P. Shenoy, "CarbonScaler: Leveraging Cloud Workload Elasticity for Optimizing Carbon-Efficiency",
Proc. ACM Meas. Anal. Comput. Syst. (POMACS) 7(3), 2023; SIGMETRICS 2024).

CarbonScaler's greedy marginal allocation (the paper's Algorithm 1), on this environment's GPU-count action: split
the time to the deadline into decision steps; each step offers its GPUs one parallel group at a time, the k-th
group adding the work ``(rate(k) - rate(k-1)) x step`` (the job's scaling curve, ``JobTables.speed``) for the carbon
``(power(k) - power(k-1)) x PUE x intensity x step`` (the forecast of that hour); take the increments with the most
work per gram first, each step's in order (a priority queue of each step's next increment), until the work left
(with a margin) is covered. Run now on the groups the plan gives the current step: more GPUs when the grid is
clean, fewer when it is dirty, the deadline met by construction. The job stays home (CarbonScaler scales, it does
not move), at the highest clock whose power fits the cap on the GPUs it runs on (as ``stay``).
"""

from __future__ import annotations

import heapq

import numpy as np

from baselines.base import Policy
from baselines.rules import TIMED, _run_or_wait, continue_target, max_level_under_cap
from envs.carbon_migration import CarbonMigrationEnv, PolicyView

_J_PER_KWH = 3.6e6


class CarbonScalerPolicy(Policy):
    """CarbonScaler's greedy marginal GPU allocation (see the module docstring).

    :param margin: plan for this multiple of the work left (room for rollbacks and work noise)
    :param reserve_h: hours before the deadline the plan must finish by
    """

    name = "carbon_scaler"

    def __init__(self, margin: float = 1.05, reserve_h: float = 1.0):
        self.margin, self.reserve_h = float(margin), float(reserve_h)

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        tab = env.tables  # static scenario facts: the job's scaling curve and parallel group
        self.home = env.scenario.home_index
        self.speed = np.asarray(tab.speed, dtype=float)  # (N + 1,) speed on n GPUs / on all N
        self.group = max(1, int(tab.group))
        self.n_groups = max(1, int(tab.requested_gpus) // self.group)
        self.elastic = bool(tab.elastic)

    def act(self, obs, view: PolicyView) -> np.ndarray:
        tgt = continue_target(view) if view.state in TIMED else _run_or_wait(view, self.home)
        dest = view.region if tgt == view.wait else tgt
        k = self._groups_now(view, dest) if self.elastic else self.n_groups
        n = min(k * self.group, max(int(view.usable_gpus[dest]), self.group))
        return np.array([tgt, max_level_under_cap(view, dest, n), k - 1])

    def _hourly_intensity(self, view: PolicyView, region: int, n_steps: int) -> np.ndarray:
        """(n_steps,) g/kWh of each step from now: the intensity now, then the forecast by hour, then its mean."""
        fc = np.asarray(view.forecast_g_per_kwh[region], dtype=float)
        by_hour = np.concatenate([[view.intensity_g_per_kwh[region]], fc])
        tail = float(fc.mean()) if fc.size else float(view.intensity_g_per_kwh[region])
        hours = ((view.t_s % 3600.0) + np.arange(n_steps) * view.step_s) // 3600.0
        idx = hours.astype(int)
        return np.where(idx < by_hour.size, by_hour[np.minimum(idx, by_hour.size - 1)], tail)

    def _groups_now(self, view: PolicyView, region: int) -> int:
        """Parallel groups for the current step by greedy marginal allocation (all of them if infeasible)."""
        G, g = self.n_groups, self.group
        left_mb = view.remaining_mb * self.margin
        n_steps = int((view.deadline_s - view.t_s - self.reserve_h * 3600.0) // view.step_s)
        if left_mb <= 0 or n_steps < 1:
            return G
        n_steps = min(n_steps, 4 * 24 * 3600 // int(view.step_s))  # a week ahead is plenty
        # work and power on k groups, at the highest clock under the cap on k x g GPUs
        work_mb, power_w = np.zeros(G + 1), np.zeros(G + 1)
        for k in range(1, G + 1):
            lvl = max_level_under_cap(view, region, k * g)
            work_mb[k] = self.speed[k * g] / view.t_mb_s[region, lvl] * view.step_s
            power_w[k] = k * g * view.p_gpu_w[region, lvl]
        d_work, d_power = np.diff(work_mb), np.diff(power_w)  # (G,) the k-th group's increments
        ci = self._hourly_intensity(view, region, n_steps)
        kg_per_w = view.pue[region] * ci * view.step_s / _J_PER_KWH / 1000.0  # (n_steps,) kg per W over a step
        heap = [(-d_work[0] / max(d_power[0] * kg_per_w[s], 1e-12), s) for s in range(n_steps)]
        heapq.heapify(heap)
        taken = np.zeros(n_steps, dtype=int)
        done = 0.0
        while heap and done < left_mb:
            _, s = heapq.heappop(heap)
            done += d_work[taken[s]]
            taken[s] += 1
            if taken[s] < G:
                k = taken[s]
                heapq.heappush(heap, (-d_work[k] / max(d_power[k] * kg_per_w[s], 1e-12), s))
        if done < left_mb:
            return G  # even all GPUs every step would not make it: run flat out
        return max(1, int(taken[0]))
