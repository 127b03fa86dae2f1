"""Offline optimum: a carbon lower bound for any deadline-meeting schedule, and a clairvoyant plan.

Source: this project (spec B3), a Lagrangian-relaxed dynamic programme over
(decision step x region) on the environment's own discretisation (steps, regions, clock levels).

The bound
---------
A schedule must do ``M`` mini-batches before the deadline. Doing ``m`` mini-batches in region ``r``
at clock level ``l`` during step ``k`` costs exactly ``m * e[k, r, l] * ci[r, h]`` grams (energy per
mini-batch ``e = N * w_k * t(l) * P(l) * PUE / 3.6e6`` kWh does not depend on how many of the ``N``
requested GPUs run: ``n`` GPUs draw ``n * P`` for ``N * w * t / n`` seconds). Everything else a real
trajectory pays (checkpoint/restore idle power, work lost to faults and redone, transfer energy) is
``>= 0``. The relaxation, each item only ever *lowers* the minimum carbon:

* progress is continuous (any fraction of a step may be used, levels may be mixed within a step);
* intensity of a step is the minimum over the hours it overlaps (exact for 15-min steps);
* GPUs usable in step ``k`` are ``min(N, max free GPUs over steps k - m .. k)`` with ``m`` covering a
  restore that straddles steps (the simulator sets the GPU count when a run starts), outages ignored;
* energy per mini-batch counts GPU and host busy power on the job's most energy-efficient runnable GPU count
  (``sim.energy_floor``: a data-parallel job's scaling curve makes fewer GPUs cheaper per mini-batch), the rate
  the speed-up on the usable GPUs (``sim.speed``); checkpoint stalls and restart overheads are left out;
* every clock level is allowed, also those over the power cap (so the bound holds for capped policies
  and for violators alike), and faults are ignored (they only add work and idle energy);
* a migration ``r -> r'`` (shortest-path WAN time plus one restore, ``D``) takes away at most
  ``min(D, step)`` seconds, charged at the *lower* of the two regions' Lagrangian gain rates, and in the step of
  a move the job may work at the best region's rate; transfer carbon is charged at each end's minimum
  intensity over the episode.

For a price ``lam`` (g per mini-batch), ``L(lam) = lam * M - max_paths sum_k gain_k`` with per-second
gain ``g[k, r] = max(0, max_l rate[k, r, l] * (lam - c[k, r, l]))``; any feasible schedule costs
``>= L(lam)`` (weak duality), so ``max over evaluated lam`` of ``L`` is a valid lower bound. ``L`` is
concave in ``lam``; it is maximised on a log grid refined twice plus the per-mini-batch costs inside the
final bracket (where its kinks lie), vectorised over ``lam`` (numpy).
If even the relaxation cannot finish by the deadline, the deadline is moved to the earliest
step by which the relaxation can finish (minimum lateness first, then carbon) and ``feasible`` is False.

The plan
--------
The same DP without the relaxations (usable GPUs as the simulator will see them, outages, clock levels
under the cap for the GPUs used, full migration time spent in the destination's step) gives a region,
run/pause flag and clock per step; :class:`OraclePolicy` executes it, planning to finish a reserve
(default 1 h) before the deadline, and re-plans from the current state after any fault (GPU failure,
reclaimed GPUs, outage, failed transfer, rollback) and whenever overheads leave it more than 1 % of the job
behind the plan. When the reserve cannot be kept, the plan is the earliest finish the model allows. The
executed episode may emit more than the bound (tables report the gap to both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from baselines.base import Policy
from baselines.rules import TIMED, cap_safe_level, continue_target
from envs.carbon_migration import CarbonMigrationEnv, PolicyView

_J_PER_KWH = 3.6e6


def step_min(by_hour: np.ndarray, n_steps: int, step_s: float) -> np.ndarray:
    """Per decision step, the minimum of an hourly table over the hours the step overlaps.

    :param by_hour: (..., hours) values per hour of the episode (intensity g/kWh per region, or cap W).
    :returns: (n_steps, ...).
    """
    t0 = np.arange(n_steps) * step_s
    h0 = (t0 // 3600.0).astype(int)
    h1 = np.minimum(((t0 + step_s - 1e-6) // 3600.0).astype(int), by_hour.shape[-1] - 1)
    out = np.moveaxis(by_hour[..., h0], -1, 0).copy()
    for extra in range(1, int(np.max(h1 - h0)) + 1):  # steps longer than an hour
        out = np.minimum(out, np.moveaxis(by_hour[..., np.minimum(h0 + extra, h1)], -1, 0))
    return out


@dataclass
class EpisodeFacts:
    """The clairvoyant episode data the oracle reads from the simulator (per step ``k``, region ``r``)."""

    step_s: float
    n_steps: int
    total_mb: float
    requested_gpus: int
    home: int
    deadline_s: float
    horizon_s: float
    work: np.ndarray  # (K,) work multiplier
    t_mb_s: np.ndarray  # (R, L) seconds per mini-batch on all requested GPUs
    p_gpu_w: np.ndarray  # (R, L)
    pue: np.ndarray  # (R,)
    ci_step: np.ndarray  # (K, R) minimum intensity over the hours step k overlaps
    ci_min: np.ndarray  # (R,) minimum intensity over the episode
    cap_step: np.ndarray  # (K,) minimum power cap over the step's hours (inf if uncapped)
    u_relaxed: np.ndarray  # (K, R) GPUs a run can hold in step k, upper bound
    u_plan: np.ndarray  # (K, R) GPUs usable at the start of step k (0 if an outage touches the step)
    xfer_s: np.ndarray  # (R, R)
    io_s: float
    restore_s: float  # one restore: io_s plus the restart overhead
    xfer_kwh: float
    host_busy_w: np.ndarray  # (R,) host W per GPU while training (0 when the model term is off)
    speed: np.ndarray  # (N + 1,) speed on n GPUs as a fraction of the speed on all N (the job's scaling curve)
    energy_floor: float  # lowest energy per mini-batch on any runnable GPU count relative to all N (<= 1)

    @classmethod
    def from_env(cls, env: CarbonMigrationEnv) -> EpisodeFacts:
        tab, ep = env.tables, env.episode  # the scenario's tables and this episode's draws (sim/tables.py)
        K, s = tab.n_steps, tab.step_s
        t0 = np.arange(K) * s
        ci = ep.ci_g_per_kwh  # (R, hours)
        ci_step = step_min(ci, K, s)
        N = tab.requested_gpus
        free = ep.free_gpus[:, :K].T.astype(float)  # (K, R)
        m = int(math.ceil(tab.restore_s / s)) + 1
        u_rel = free.copy()
        for j in range(1, m + 1):
            u_rel[j:] = np.maximum(u_rel[j:], free[:-j])
        u_rel = np.minimum(u_rel, N)
        u_plan = np.minimum(free, N)
        if not tab.elastic:
            u_plan = np.where(free >= N, N, 0.0)
        for r, spans in enumerate(ep.outages):
            for a, b in spans:
                u_plan[(t0 + s > a) & (t0 < b), r] = 0.0
        return cls(
            **static_facts(env),
            work=ep.work[:K].astype(float),
            ci_step=ci_step,
            ci_min=ci.min(axis=1),
            u_relaxed=u_rel,
            u_plan=u_plan,
        )


def static_facts(env: CarbonMigrationEnv) -> dict:
    """The :class:`EpisodeFacts` fields fixed by the scenario (and the cap schedule, which draws nothing): what a
    non-clairvoyant planner (``mpc``) may know as well as the oracle."""
    tab = env.tables
    return dict(
        step_s=tab.step_s,
        n_steps=tab.n_steps,
        total_mb=tab.total_mb,
        requested_gpus=tab.requested_gpus,
        home=tab.home,
        deadline_s=tab.deadline_s,
        horizon_s=tab.horizon_s,
        t_mb_s=tab.t_mb_s,
        p_gpu_w=tab.p_gpu_w,
        pue=tab.pue,
        cap_step=step_min(env.episode.cap_w, tab.n_steps, tab.step_s),
        xfer_s=tab.xfer_s,
        io_s=tab.io_s,
        restore_s=tab.restore_s,
        xfer_kwh=tab.xfer_kwh,
        host_busy_w=tab.host_busy_w,
        speed=tab.speed,
        energy_floor=tab.energy_floor,
    )


def _shortest_paths(d: np.ndarray) -> np.ndarray:
    d = d.copy()
    for k in range(d.shape[0]):  # Floyd-Warshall
        d = np.minimum(d, d[:, k : k + 1] + d[k : k + 1, :])
    return d


class _Model:
    """Per-step rates and costs of one DP model (relaxed bound or executable plan)."""

    def __init__(self, f: EpisodeFacts, relaxed: bool, k0: int = 0, deadline_s: float | None = None):
        K, s, N = f.n_steps, f.step_s, f.requested_gpus
        self.k0 = k0
        ks = np.arange(k0, K)
        dl = min(f.deadline_s if deadline_s is None else deadline_s, f.horizon_s)
        self.avail = np.clip(dl - ks * s, 0.0, s)  # (K',) seconds usable before the deadline
        nz = np.flatnonzero(self.avail > 0)
        self.n = int(nz[-1]) + 1 if nz.size else 0  # steps that matter
        self.avail = self.avail[: self.n]
        ks = ks[: self.n]
        u = (f.u_relaxed if relaxed else f.u_plan)[ks]  # (K', R)
        w = f.work[ks]
        t = f.t_mb_s[None] * w[:, None, None] * N  # N*w*t: GPU-equivalent s per mini-batch
        # (K', R, L) kWh per mini-batch: GPUs and host; the bound takes the most efficient GPU count (energy_floor)
        p_w = f.p_gpu_w + f.host_busy_w[:, None]
        e_kwh = t * p_w[None] * f.pue[None, :, None] * (f.energy_floor if relaxed else 1.0) / _J_PER_KWH
        self.cost = e_kwh * f.ci_step[ks][:, :, None]  # g per mini-batch
        self.rate = f.speed[u.astype(int)][:, :, None] * N / t  # mini-batches per second (u / t when linear)
        if not relaxed:  # only clock levels whose power for the GPUs used stays under the cap
            over = u[:, :, None] * f.p_gpu_w[None] > f.cap_step[ks][:, None, None] + 1e-9
            over[..., 0] = False  # lowest clock always allowed
            self.rate = np.where(over, 0.0, self.rate)
        R = f.pue.shape[0]
        off = ~np.eye(R, dtype=bool)
        if relaxed:
            self.loss_s = np.where(off, _shortest_paths(f.xfer_s) + f.io_s, 0.0)
            self.txc = np.where(off, f.xfer_kwh * 0.5 * (f.ci_min[:, None] + f.ci_min[None, :]), 0.0)
        else:
            self.loss_s = np.where(off, f.xfer_s + f.io_s + f.restore_s, 0.0)
            self.txc = np.where(off, f.xfer_kwh * 0.5 * (f.ci_step[k0][:, None] + f.ci_step[k0][None, :]), 0.0)
        self.relaxed = relaxed
        self.R = R

    def gains(self, lam: np.ndarray):
        """Per-second gain (lam, K', R), its level and the matching work rate."""
        v = self.rate[None] * (lam[:, None, None, None] - self.cost[None])  # (Λ, K', R, L)
        lvl = v.argmax(axis=3)
        g = np.take_along_axis(v, lvl[..., None], axis=3)[..., 0]
        run = g > 0
        return np.where(run, g, 0.0), lvl, run

    def dp(self, g: np.ndarray, start: int, keep_path: bool = False):
        """Maximise the summed gain over region paths; returns best value per lam (and the argmax table)."""
        L_, R = g.shape[0], self.R
        V = np.full((L_, R), -np.inf)
        V[:, start] = 0.0
        g_prev = None
        eye = np.eye(R, dtype=bool)
        back = np.empty((self.n, L_, R), dtype=np.int8) if keep_path else None
        for i in range(self.n):
            a = self.avail[i]
            gk = g[:, i, :]
            stay = V + a * gk
            if self.relaxed:
                lt = np.minimum(self.loss_s, a)
                gp = gk if g_prev is None else g_prev
                m = np.minimum(gp[:, :, None], gk[:, None, :])
                move = (V[:, :, None] - lt[None] * m - self.txc[None]) + a * gk.max(axis=1)[:, None, None]
            else:
                left = np.maximum(a - self.loss_s, 0.0)  # seconds left in the destination
                move = V[:, :, None] - self.txc[None] + left[None] * gk[:, None, :]
            move = np.where(eye[None], stay[:, :, None], move)
            if keep_path:
                arg = move.argmax(axis=1)
                back[i] = arg
                V = np.take_along_axis(move, arg[:, None, :], axis=1)[:, 0, :]
            else:
                V = move.max(axis=1)
            g_prev = gk
        return V, back


def _lambda_grid(cost: np.ndarray, n: int = 40) -> np.ndarray:
    pos = cost[cost > 0]
    lo = max(float(pos.min()) * 0.5, 1e-12) if pos.size else 1e-9
    hi = max(float(cost.max()), lo) * 1e3
    return np.geomspace(lo, hi, n)


def _max_work_end(model: _Model, f: EpisodeFacts, start: int, total: float) -> float:
    """Max work by the end of each step (relaxation); returns work reachable overall."""
    g = model.rate.max(axis=2)[None]  # gain = work, lam -> inf
    V, _ = model.dp(g, start)
    return float(V.max())


def _earliest_feasible_deadline(f: EpisodeFacts, relaxed: bool, start: int, total: float, k0: int = 0) -> float:
    """Smallest step end (s) by which the model can finish ``total`` mini-batches (horizon if never)."""
    lo, hi = k0 + 1, f.n_steps
    full = _Model(f, relaxed, k0, deadline_s=f.horizon_s)
    if _max_work_end(full, f, start, total) < total:
        return f.horizon_s
    while lo < hi:  # bisection on the number of steps
        mid = (lo + hi) // 2
        if _max_work_end(_Model(f, relaxed, k0, deadline_s=mid * f.step_s), f, start, total) >= total:
            hi = mid
        else:
            lo = mid + 1
    return lo * f.step_s


def oracle_bound(f: EpisodeFacts) -> dict:
    """Lower bound on carbon (g) of any schedule finishing the job by the deadline (see module doc)."""
    M = f.total_mb
    model = _Model(f, relaxed=True)
    feasible = model.n > 0 and _max_work_end(model, f, f.home, M) >= M
    deadline = f.deadline_s
    if not feasible:
        deadline = _earliest_feasible_deadline(f, True, f.home, M)
        model = _Model(f, relaxed=True, deadline_s=deadline)
    lam = _lambda_grid(model.cost)
    best, best_lam = 0.0, 0.0
    for _ in range(3):
        g, _, _ = model.gains(lam)
        V, _ = model.dp(g, f.home)
        Lv = lam * M - V.max(axis=1)
        i = int(np.argmax(Lv))
        if Lv[i] > best:
            best, best_lam = float(Lv[i]), float(lam[i])
        lo = lam[max(i - 1, 0)]
        hi = lam[min(i + 1, len(lam) - 1)]
        lam = np.linspace(lo, hi, 24)
    # L is piecewise linear with kinks where a per-mini-batch cost is crossed: try the costs in the bracket
    c = np.unique(model.cost[(model.cost >= lam[0]) & (model.cost <= lam[-1])])
    if c.size:
        c = c[np.linspace(0, c.size - 1, min(c.size, 32)).astype(int)]
        V, _ = model.dp(model.gains(c)[0], f.home)
        Lv = c * M - V.max(axis=1)
        i = int(np.argmax(Lv))
        if Lv[i] > best:
            best, best_lam = float(Lv[i]), float(c[i])
    return {
        "bound_carbon_g": best,
        "lambda_g_per_mb": best_lam,
        "feasible": bool(feasible),
        "deadline_s": float(deadline),
    }


@dataclass
class Plan:
    k0: int
    region: np.ndarray
    run: np.ndarray
    level: np.ndarray
    work_mb: np.ndarray  # planned mini-batches per step


def make_plan(
    f: EpisodeFacts,
    k0: int,
    region0: int,
    remaining_mb: float,
    margin: float = 0.03,
    deadline_s: float | None = None,
) -> Plan:
    """Executable plan from step ``k0`` in ``region0``: cheapest region/clock path doing ``remaining*(1+margin)``
    by ``deadline_s`` (default the job's deadline); when that cannot be done, the earliest finish possible."""
    target = remaining_mb * (1.0 + margin)
    model = _Model(f, relaxed=False, k0=k0, deadline_s=deadline_s)
    if model.n == 0 or _max_work_end(model, f, region0, target) < target:
        dl = _earliest_feasible_deadline(f, False, region0, target, k0)
        model = _Model(f, relaxed=False, k0=k0, deadline_s=dl)
    if model.n == 0:
        model = _Model(f, relaxed=False, k0=k0, deadline_s=f.horizon_s)
    lam = _lambda_grid(model.cost)
    chosen = lam[-1] * 1e6
    for _ in range(3):  # smallest price whose plan does the target work
        g, lvl, run = model.gains(lam)
        work = _paths(model, g, lvl, run, region0)[3].sum(axis=1)
        ok = np.flatnonzero(work >= target)
        if ok.size == 0:
            break
        i = int(ok[0])
        chosen = lam[i]
        if i == 0:
            break
        lam = np.linspace(lam[i - 1], lam[i], 16)
    return _extract(model, float(chosen), region0, target)


def _paths(model: _Model, g, lvl, run, start) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best region path per lam (vectorised backtrack): region, run flag, level, work (each (Λ, n))."""
    V, back = model.dp(g, start, keep_path=True)
    L_, n = g.shape[0], model.n
    lam_i = np.arange(L_)
    region = np.empty((L_, n), dtype=int)
    r = np.argmax(V, axis=1)
    for i in range(n - 1, -1, -1):
        region[:, i] = r
        r = back[i, lam_i, r].astype(int)
    prev = np.concatenate([np.full((L_, 1), start), region[:, :-1]], axis=1)
    idx = np.arange(n)[None, :]
    level = lvl[lam_i[:, None], idx, region]
    runs = run[lam_i[:, None], idx, region]
    rate = model.rate[idx, region, level]
    secs = np.where(prev == region, model.avail[None], np.maximum(model.avail[None] - model.loss_s[prev, region], 0.0))
    work = np.where(runs, rate * secs, 0.0)
    return region, runs, level, work


def _extract(model: _Model, lam: float, start: int, target: float = 0.0) -> Plan:
    """The path at price ``lam``; then, on that fixed region path, the cheapest clocks/run steps at the
    smallest price that still does ``target`` (the path's price also paid for its moves)."""
    g, lvl, run = model.gains(np.array([lam]))
    region, runs, level, work = _paths(model, g, lvl, run, start)
    region = region[0]
    if target > 0:
        n = model.n
        idx = np.arange(n)
        prev = np.concatenate([[start], region[:-1]])
        secs = np.where(prev == region, model.avail, np.maximum(model.avail - model.loss_s[prev, region], 0.0))
        rate = model.rate[idx, region]  # (n, L)
        cost = model.cost[idx, region]
        lams = np.concatenate([np.unique(cost[cost <= lam]), [lam]])[None, :] if np.any(cost <= lam) else None
        if lams is not None:
            lams = lams[0][np.linspace(0, lams.shape[1] - 1, min(lams.shape[1], 256)).astype(int)]
            v = rate[None] * (lams[:, None, None] - cost[None])  # (Λ', n, L)
            lv = v.argmax(axis=2)
            on = np.take_along_axis(v, lv[..., None], axis=2)[..., 0] > 0
            wk = np.where(
                on, np.take_along_axis(rate[None].repeat(len(lams), 0), lv[..., None], axis=2)[..., 0] * secs[None], 0.0
            )
            ok = np.flatnonzero(wk.sum(axis=1) >= target)
            if ok.size:
                j = int(ok[0])
                return Plan(model.k0, region, on[j], lv[j], wk[j])
    return Plan(model.k0, region, runs[0], level[0], work[0])


def plan_action(plan: Plan, k: int, view: PolicyView) -> np.ndarray:
    """The action that follows ``plan`` at decision step ``k``: move to / run in the planned region at the
    planned clock (lowered to the cap for the GPUs held), pause when the plan pauses or the region is masked;
    during a timed phase the phase's own target. Past the plan's end: run here, as fast as the cap allows."""
    i = k - plan.k0
    if i >= len(plan.region):
        rho, run, lvl = view.region, True, view.n_levels - 1
    else:
        rho, run, lvl = int(plan.region[i]), bool(plan.run[i]), int(plan.level[i])
    if view.state in TIMED:
        target = continue_target(view)
    elif run and view.mask[rho]:
        target = rho
    else:
        target = view.wait
    return np.array([target, cap_safe_level(view, target, lvl)])


def planned_preemptions(plan: Plan, f: EpisodeFacts) -> int:
    """Steps where ``plan`` keeps running in one region while its usable GPUs drop (the simulator then
    reclaims GPUs from the running job: a fault that rolls back to the last checkpoint)."""
    if len(plan.region) < 2:
        return 0
    r, k = plan.region, plan.k0 + np.arange(len(plan.region))
    u = f.u_plan[k, r]
    u_before = f.u_plan[k[1:] - 1, r[1:]]
    keep = plan.run[1:] & plan.run[:-1] & (r[1:] == r[:-1])
    return int(np.count_nonzero(keep & (u[1:] < u_before)))


class OraclePolicy(Policy):
    """Clairvoyant offline optimum (spec B3): computes the carbon lower bound and follows its plan.

    Rule: at ``reset`` read the episode's future (intensity, work multipliers, free GPUs, outages) from
    the simulator, compute :func:`oracle_bound` and an executable :func:`make_plan` that finishes
    ``reserve_h`` before the deadline; ``act`` follows the plan (:func:`plan_action`), re-planning from the
    current state after any fault and when the job falls more than ``replan_tolerance`` of its work behind the
    plan. GPUs reclaimed from a running job are foreseeable (the free-GPU series is known), so each plan adds
    half a checkpoint interval of work per reclaim on its path (:func:`planned_preemptions`) and is redone
    with that work until the count settles. Source: this project.

    :param margin: extra work fraction the plan schedules to absorb checkpoint/restore overheads.
    :param reserve_h: hours before the deadline the plan aims to finish (room for faults it cannot foresee:
        GPU failures and transfer failures are random draws at run time).
    """

    name = "oracle"
    clairvoyant = True

    def __init__(self, margin: float = 0.03, replan_tolerance: float = 0.01, reserve_h: float = 1.0):
        self.margin = margin
        self.replan_tolerance = replan_tolerance
        self.reserve_h = reserve_h
        self.bound: dict = {}

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        self.env = env
        self.facts = EpisodeFacts.from_env(env)
        self.bound = oracle_bound(self.facts)
        self.plan_deadline_s = self.facts.deadline_s - self.reserve_h * 3600.0
        self.ckpt_mb = env.tables.ckpt_interval_mb
        self.plan = self._plan(0, self.facts.home, self.facts.total_mb)
        self.replans = 0
        self.faults_seen = 0.0
        self.replan_pending = False

    def extra_metrics(self) -> dict:
        return {
            "oracle_bound_carbon_g": self.bound["bound_carbon_g"],
            "oracle_feasible": self.bound["feasible"],
            "oracle_replans": self.replans,
        }

    def _plan(self, k: int, region: int, left_mb: float) -> Plan:
        """The cheapest plan that also redoes the work its foreseeable GPU reclaims roll back (3 rounds at most)."""
        extra_mb = 0.0
        for _ in range(3):
            plan = make_plan(self.facts, k, region, left_mb + extra_mb, self.margin, self.plan_deadline_s)
            need_mb = 0.5 * self.ckpt_mb * planned_preemptions(plan, self.facts)
            if need_mb <= extra_mb:
                break
            extra_mb = need_mb
        return plan

    def _planned_left(self, k: int) -> float:
        i = k - self.plan.k0
        return float(self.plan.work_mb[max(i, 0) :].sum())

    def act(self, obs: np.ndarray, view: PolicyView) -> np.ndarray:
        k = view.step_index
        f = self.facts
        faults = view.faults  # a change since the last decision means a fault: re-plan
        if faults != self.faults_seen:
            self.faults_seen, self.replan_pending = faults, True
        left = view.remaining_mb
        behind = left > self._planned_left(k) + self.replan_tolerance * f.total_mb
        if view.state not in TIMED and (behind or self.replan_pending) and k < f.n_steps:
            self.plan = self._plan(k, view.region, left)
            self.replans += 1
            self.replan_pending = False
        return plan_action(self.plan, k, view)
