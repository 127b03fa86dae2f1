"""Compiled halves of ``CarbonMigration-v0``'s step around ``sim.core.advance``: action -> decision, and
state -> observation, action mask and reward, for rows of ``envs.batch.EnvRows`` (the single environment is one
row, the vector environment N). The observation layout is documented in ``envs.carbon_migration``; these are
the same operations in the same order as the NumPy code they replaced (``tests/test_golden.py``).

The kernels take the engine's bundles (``sim.core.Batch.engine()``) and the rows' buffers (:class:`RowBuffers`),
each as a plain tuple (see ``sim.layout`` for why), and name them again inside.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from sim.core import AHEAD, advance, begin_episodes
from sim.forecast import draw_forecast
from sim.layout import (
    COMPLETED,
    EPS_S,
    F_COMPLETED_AT_S,
    F_POWER_W,
    F_PROGRESS_MB,
    F_T_S,
    I_AFTER_SUSPEND,
    I_DEST,
    I_GPU_CAP,
    I_K,
    I_LEVEL,
    I_N_GPUS,
    I_REGION,
    I_STATE,
    M_LATE,
    M_LOST,
    M_OPC,
    M_TXC,
    MIGRATION,
    P_DEADLINE,
    P_ELASTIC,
    P_GROUP,
    P_HORIZON,
    P_NHOURS,
    P_NSTEPS,
    P_REQ,
    P_TOTAL,
    RECOVERING,
    SCALING,
    SUSPEND,
    TOLERANCE,
    EpisodeRows,
    Generators,
    JobTables,
    Pool,
    StateRows,
)
from sim.physics import continue_target, floor_div, mod, prefetch, region_down, usable
from sim.reward import job_reward
from sim.rules import WAIT

_TWO_PI = 2 * math.pi
N_TIME_FEATURES = 4
N_JOB_FEATURES = 8
CI_SCALE_G_PER_KWH = 1000.0  # intensities are divided by this (the dirtiest zone averages ~700)


class RowBuffers(NamedTuple):
    """What ``EnvRows`` holds per row besides the engine (n rows, H hours, D observation features, R regions, L
    clock levels, T reward terms)."""

    templates: np.ndarray  # (n, H, D) float32 the episode's intensity and forecast features per hour
    hour0: np.ndarray  # (n,) int UTC hour of day at the episode start
    dow0: np.ndarray  # (n,) int day of week at the episode start (0 = Monday)
    start_hour: np.ndarray  # (n,) int the episode's first hour index in the carbon table
    xfer_h: np.ndarray  # (R, R) float32 transfer time h, capped at 24
    weights: np.ndarray  # (T,) reward weights, order sim.reward.REWARD_WEIGHTS
    layout: np.ndarray  # (4,) int F forecast hours, region block, first job feature, clock-level divisor
    t_mb_home_s: float  # s per mini-batch at home at the top clock (the lateness of unfinished work)
    targets: np.ndarray  # (n,) int the action: target region (R = wait) -> region or WAIT
    levels: np.ndarray  # (n,) int the action: clock level
    gpus: np.ndarray  # (n,) int the action: GPU-count choice g (g + 1 parallel groups; -1: all requested)
    obs: np.ndarray  # (n, D) float32 observations
    masks: np.ndarray  # (n, R + 1 + L) bool action masks
    rewards: np.ndarray  # (n,) the step's reward
    term: np.ndarray  # (n,) bool terminated
    trunc: np.ndarray  # (n,) bool truncated
    terms: np.ndarray  # (n, T) the step's weighted reward terms (sim.reward.REWARD_TERMS)
    invalid: np.ndarray  # (n,) int masked actions ignored this episode


class InfoBlocks(NamedTuple):
    """``info_columns``' inputs and outputs (N rows; empty blocks: no infos wanted)."""

    total_mb: float  # mini-batches of the job
    clocks_mhz: np.ndarray  # (R, L) MHz
    deadline_s: float  # s
    cols: np.ndarray  # (rows, N) float64 out
    ints: np.ndarray  # (N_INT + 1, N) int64 out
    flags: np.ndarray  # (2, N) bool out


class ActionInput(NamedTuple):
    """The step's actions, checked and split into :class:`RowBuffers`' action columns by ``step_rows`` itself."""

    values: np.ndarray  # (N, 2) or (N, 3) int64 [target, clock level(, GPU choice)]; (0, 2): already in the rows
    n_levels: int  # clock levels L
    n_gpu_choices: int  # GPU-count choices G


@njit(cache=True, _nrt=False)
def split_actions(actions, n_regions, n_levels, n_gpu_choices, buf):
    """``targets[i], levels[i] (, gpus[i]) := actions[i]`` for the (N, 2) or (N, 3) integer ``actions`` into the
    rows' buffers ``buf`` (:class:`RowBuffers`, plain); two columns: all GPUs. Returns the first row outside
    ``[0, n_regions] x [0, n_levels) x [0, n_gpu_choices)`` (nothing is trusted from it), or -1."""
    b = RowBuffers(*buf)
    three = actions.shape[1] == 3
    for i in range(actions.shape[0]):
        t, lv = actions[i, 0], actions[i, 1]
        g = actions[i, 2] if three else -1
        if t < 0 or t > n_regions or lv < 0 or lv >= n_levels or g < -1 or g >= n_gpu_choices:
            return i
        b.targets[i] = t
        b.levels[i] = lv
        b.gpus[i] = g
    return -1


# The per-step kernels are compiled without reference counting (``_nrt=False``, as ``sim.core.advance``): they
# allocate nothing, and each per-row view (obs[i], free[i], ...) would otherwise cost atomic increfs and decrefs.
@njit(cache=True, _nrt=False)
def _prepare(envs, st, P, buf, n_regions):
    """Masked targets become the continue target (counted in ``invalid``); the wait index becomes ``WAIT``; the
    GPU-count choice becomes the job's ``I_GPU_CAP`` (0: all; a rigid job always runs on all)."""
    targets, masks = buf.targets, buf.masks
    req, group = int(P[P_REQ]), int(P[P_GROUP])
    for e in range(envs.shape[0]):
        i = envs[e]
        g = buf.gpus[i]
        cap = (g + 1) * group if g >= 0 and P[P_ELASTIC] != 0.0 else 0
        st.i[i, 0, I_GPU_CAP] = cap if cap < req else 0
        t = targets[i]
        if not masks[i, t]:
            iv = st.i[i, 0]
            buf.invalid[i] += 1
            t = continue_target(iv[I_STATE], iv[I_REGION], iv[I_DEST], iv[I_AFTER_SUSPEND], n_regions)
        targets[i] = WAIT if t == n_regions else t


@njit(cache=True, inline="always")
def _reward(i, st, P, buf):
    """Row ``i``'s reward, its terms and its end flags after a step."""
    fv, iv, acc = st.f[i, 0], st.i[i, 0], st.step_acc[i, 0]
    done = iv[I_STATE] == COMPLETED
    truncated = fv[F_T_S] >= P[P_HORIZON] - EPS_S and not done
    late_h = acc[M_LATE]
    if truncated:  # the hours the work left would still take at full speed count as late
        late_h += (P[P_TOTAL] - fv[F_PROGRESS_MB]) * buf.t_mb_home_s / 3600.0
    buf.rewards[i] = job_reward(acc, late_h, P[P_TOTAL], buf.weights, buf.terms[i])
    buf.term[i] = done
    buf.trunc[i] = truncated


@njit(cache=True, inline="always")
def _mask_and_regions(i, st, ep, P, buf):
    """Row ``i``'s action mask and per-region features (usable GPUs, health, transfer time, here)."""
    fv, iv = st.f[i, 0], st.i[i, 0]
    F, block = buf.layout[0], buf.layout[1]
    R = buf.xfer_h.shape[0]
    n_steps = int(P[P_NSTEPS])
    s, here, t = iv[I_STATE], iv[I_REGION], fv[F_T_S]
    k = iv[I_K]
    kk = k if k < n_steps else n_steps
    o, m = buf.obs[i], buf.masks[i]
    pool = Pool(ep.free[i], ep.outage_start_s[i], ep.outage_end_s[i], ep.n_outages[i])
    timed = s == SUSPEND or s == MIGRATION or s == SCALING or s == RECOVERING
    if timed:
        for r in range(R + 1):
            m[r] = False
        m[continue_target(s, here, iv[I_DEST], iv[I_AFTER_SUSPEND], R)] = True
    for r in range(R):
        b = N_TIME_FEATURES + r * block + F
        if region_down(pool, r, t):
            u = 0
            o[b + 2] = 0.0
        else:
            u = usable(pool.free[r, kk], P)
            o[b + 2] = 1.0
        if not timed:
            m[r] = u != 0
        o[b + 1] = u / int(P[P_REQ])
        o[b + 3] = buf.xfer_h[here, r]
    if not timed:
        if s == TOLERANCE:
            m[here] = True
        m[R] = True


@njit(cache=True, inline="always")
def _job_features(i, st, ep, P, buf, h):
    """Row ``i``'s time and job features, its region and state one-hots."""
    fv, iv = st.f[i, 0], st.i[i, 0]
    block, job_at, level_div = buf.layout[1], buf.layout[2], buf.layout[3]
    n_steps = int(P[P_NSTEPS])
    total, horizon = P[P_TOTAL], P[P_HORIZON]
    s, here, t = iv[I_STATE], iv[I_REGION], fv[F_T_S]
    k = iv[I_K]
    kk = k if k < n_steps else n_steps
    o = buf.obs[i]
    x = buf.hour0[i] + t / 3600.0
    a_hod = _TWO_PI * mod(x, 24.0) / 24.0
    a_dow = _TWO_PI * mod(buf.dow0[i] + x / 24.0, 7.0) / 7.0
    o[0] = math.sin(a_hod)
    o[1] = math.cos(a_hod)
    o[2] = math.sin(a_dow)
    o[3] = math.cos(a_dow)
    deadline = P[P_DEADLINE]
    dl = deadline if deadline < math.inf else horizon
    to_deadline = (dl - t) / horizon
    cap_w = ep.cap_w[i, h]
    power = fv[F_POWER_W] / cap_w if cap_w < math.inf else 0.0
    work = ep.work[i, kk - 1] if kk > 0 else 1.0  # measured on the step just run, not the coming one's draw (V2)
    lost = st.episode_acc[i, 0, M_LOST] / total
    o[job_at] = fv[F_PROGRESS_MB] / total
    o[job_at + 1] = to_deadline if to_deadline > -1.0 else -1.0
    o[job_at + 2] = t / horizon
    o[job_at + 3] = iv[I_LEVEL] / level_div
    o[job_at + 4] = power if power < 4.0 else 4.0
    o[job_at + 5] = iv[I_N_GPUS] / int(P[P_REQ])
    o[job_at + 6] = work if work < 4.0 else 4.0
    o[job_at + 7] = lost if lost < 1.0 else 1.0
    o[N_TIME_FEATURES + here * block + buf.layout[0] + 4] = 1.0
    o[job_at + N_JOB_FEATURES + s] = 1.0


@njit(cache=True, _nrt=False)
def observe_rows(envs, stepped, engine, rows):
    """Rewards and flags (when ``stepped``), observation rows and action masks of ``envs`` (``engine``:
    ``Batch.engine()``, ``rows``: :class:`RowBuffers`, both plain tuples)."""
    st, tab, ep, buf = StateRows(*engine[0]), JobTables(*engine[1]), EpisodeRows(*engine[2]), RowBuffers(*rows)
    P = tab.params
    R = buf.xfer_h.shape[0]
    n_hours = int(P[P_NHOURS])
    n_steps = int(P[P_NSTEPS])
    templates = buf.templates
    for e in range(envs.shape[0]):
        i = envs[e]
        if e + AHEAD < envs.shape[0]:  # a later env's template row and free GPUs (as in sim.core.advance)
            i2 = envs[e + AHEAD]
            h2 = floor_div(st.f[i2, 0, F_T_S], 3600.0)
            h2 = h2 if h2 < n_hours else n_hours - 1
            for c in range(0, templates.shape[2], 16):  # 16 float32 a cache line
                prefetch(templates, (i2, h2, c))
            k2 = st.i[i2, 0, I_K]
            for r in range(R):
                prefetch(ep.free, (i2, r, k2 if k2 < n_steps else n_steps))
        if stepped:
            _reward(i, st, P, buf)
        h = floor_div(st.f[i, 0, F_T_S], 3600.0)
        if h >= n_hours:
            h = n_hours - 1
        o = buf.obs[i]
        tpl = templates[i, h]
        for c in range(o.shape[0]):  # a loop: slice assignment needs the refcounting that is off
            o[c] = tpl[c]
        _mask_and_regions(i, st, ep, P, buf)
        _job_features(i, st, ep, P, buf, h)


@njit(cache=True, _nrt=False)
def info_columns(st, terms, invalid, info):
    """Job 0's state, accounting and reward terms of every env as rows of fresh ``info.cols`` (floats),
    ``info.ints`` and ``info.flags`` (booleans), one row per info value (the layout
    ``envs.vector.CarbonMigrationVectorEnv._infos`` reads): float fields, step metrics + ``carbon_g``, episode
    metrics + ``carbon_g``, reward terms, remaining mini-batches, JCT, clock MHz; int fields then invalid actions;
    completed, deadline met. ``st``: ``StateRows``; ``info``: :class:`InfoBlocks`."""
    f, iv_all, step_acc, ep_acc = st
    total_mb, clocks_mhz, deadline_s, cols, ints, flags = info
    n_f, n_m, n_t = f.shape[2], step_acc.shape[2], terms.shape[1]
    n_i, N = iv_all.shape[2], f.shape[0]
    # row by row (contiguous writes): env by env would write each value to another cache line
    for c in range(n_f):
        for e in range(N):
            cols[c, e] = f[e, 0, c]
    r = n_f
    for acc in (step_acc, ep_acc):
        for m in range(n_m):
            for e in range(N):
                cols[r + m, e] = acc[e, 0, m]
        for e in range(N):
            cols[r + n_m, e] = acc[e, 0, M_OPC] + acc[e, 0, M_TXC]
        r += n_m + 1
    for m in range(n_t):
        for e in range(N):
            cols[r + m, e] = terms[e, m]
    r += n_t
    for e in range(N):
        done = iv_all[e, 0, I_STATE] == COMPLETED
        at = f[e, 0, F_COMPLETED_AT_S]
        cols[r, e] = total_mb - f[e, 0, F_PROGRESS_MB]
        cols[r + 1, e] = at / 3600.0 if done else 0.0
        cols[r + 2, e] = clocks_mhz[iv_all[e, 0, I_REGION], iv_all[e, 0, I_LEVEL]]
        flags[0, e] = done
        flags[1, e] = done and at <= deadline_s
    for c in range(n_i):
        for e in range(N):
            ints[c, e] = iv_all[e, 0, c]
    for e in range(N):
        ints[n_i, e] = invalid[e]


@njit(cache=True)
def fill_ci_template(template, ci, start, fc, region_block):
    """``template[h, time features + r * region_block + j]`` := region r's [intensity at hour ``start + h``,
    its forecasts ``fc[r, h]``...] / ``CI_SCALE_G_PER_KWH``, at most 5, as float32 (divide, clip, round: the order
    the recorded golden observations were computed in)."""
    R, H, F = fc.shape
    for r in range(R):
        b = N_TIME_FEATURES + r * region_block
        for h in range(H):
            x = ci[r, start + h] / CI_SCALE_G_PER_KWH
            template[h, b] = np.float32(x if x < 5.0 else 5.0)
            for j in range(F):
                x = fc[r, h, j] / CI_SCALE_G_PER_KWH
                template[h, b + 1 + j] = np.float32(x if x < 5.0 else 5.0)


@njit(cache=True)
def begin_rows(rows, starts, n_start, draw, fresh, engine, forecast, start_h, buffers):
    """Rows ``rows`` start episodes at hour indices ``starts`` (-1: drawn) in one compiled call:
    ``sim.core.begin_episodes`` (``n_start``, ``draw``, ``fresh`` as it takes them), ``begin_observations``
    (``forecast``, ``start_h``; the carbon table is ``draw``'s) and their first observations and masks
    (``observe_rows``). Returns ``begin_episodes``' outage arrays and whether the rows were observed: not when the
    outage arrays grew (rare; ``engine`` holds the old ones), then the caller observes after adopting them."""
    o_start, o_end = begin_episodes(rows, starts, n_start, draw, engine, fresh)
    begin_observations(rows, starts, engine[3], forecast, draw[3], start_h, buffers)
    grown = o_start.shape[2] != EpisodeRows(*engine[2]).outage_start_s.shape[2]
    if not grown:
        observe_rows(rows, False, engine, buffers)
    return o_start, o_end, not grown


@njit(cache=True)
def begin_observations(rows, starts, gens, forecast, ci_all, start_h, buffers):
    """The environment's part of starting episodes at hour indices ``starts`` (after ``sim.core.begin_episodes``):
    each row's forecast drawn with its generator (``gens``: ``Generators``; ``forecast``: ``forecast_tables``'
    ``(offset, src_ok, noise, std)``; ``sim.forecast.draw_forecast``) from the carbon table ``ci_all`` into its
    observation template, its start time (UTC hour of day and day of week; ``start_h`` = the table's first hour
    since the epoch), no invalid actions, no reward terms."""
    g, buf = Generators(*gens), RowBuffers(*buffers)
    offset, src_ok, noise, std = forecast
    for e in range(rows.shape[0]):
        i, s = rows[e], starts[e]
        fc = draw_forecast(g.fns, g.states[i], ci_all, s, offset, src_ok, noise, std)  # (R, hours, F)
        fill_ci_template(buf.templates[i], ci_all, s, fc, buf.layout[1])
        hours = start_h + s  # hours since 1970-01-01T00 (a Thursday: day of week 3)
        buf.hour0[i], buf.dow0[i] = hours % 24, (hours // 24 + 3) % 7
        buf.start_hour[i] = s
        buf.invalid[i] = 0
        buf.terms[i] = 0.0


@njit(cache=True, _nrt=False)
def step_rows(envs, actions, engine, rows, info):
    """One step of the rows ``envs`` in one compiled call: ``split_actions`` (unless ``actions``, an
    :class:`ActionInput`, holds no rows), ``_prepare`` (masked targets), ``sim.core.advance`` and, unless a row
    parked on a draw, ``observe_rows`` (rewards, flags, observations, masks) and, when ``info.cols`` has a column
    per row, ``info_columns`` of every row (saves the vector env a second call). Returns ``advance``'s
    ``(parked, errors)`` and the first row whose action is out of range (then nothing else was done), or -1;
    when ``parked``, the caller resumes the parked rows, observes, and fills the infos."""
    buf = RowBuffers(*rows)
    if actions[0].shape[0] > 0:
        bad = split_actions(actions[0], buf.xfer_h.shape[0], actions[1], actions[2], rows)
        if bad >= 0:
            return 0, 0, bad
    _prepare(envs, StateRows(*engine[0]), JobTables(*engine[1]).params, buf, buf.xfer_h.shape[0])
    parked, errors = advance(envs, buf.targets, buf.levels, engine)
    if parked == 0 and errors == 0:
        observe_rows(envs, True, engine, rows)
        st = StateRows(*engine[0])
        if info[3].shape[1] == st.f.shape[0]:
            info_columns(engine[0], buf.terms, buf.invalid, info)
    return parked, errors, -1


@njit(cache=True)
def restart_and_step(restart, actions, n_start, draw, fresh, engine, forecast, start_h, buffers, info):
    """The vector environment's next-step autoreset in one compiled call: ``actions`` checked and split (as in
    ``step_rows``; out of range: nothing else is done), the rows with ``restart[i]`` begin new episodes at drawn
    start hours (``begin_rows``, same arguments; their reward 0, neither terminated nor truncated), then the others
    step (``step_rows``). Returns ``begin_rows``' outage arrays, the restarted rows, their start hours, the
    stepped rows and ``step_rows``' ``(parked, errors, bad action row)``; ``parked`` is -1 when nothing was
    stepped because the outage arrays grew (rare; the caller adopts them, observes the restarted rows and steps
    the others)."""
    buf = RowBuffers(*buffers)
    none = np.empty(0, dtype=np.int64)
    if actions[0].shape[0] > 0:
        bad = split_actions(actions[0], buf.xfer_h.shape[0], actions[1], actions[2], buffers)
        if bad >= 0:  # before any draw
            ep = EpisodeRows(*engine[2])
            return ep.outage_start_s, ep.outage_end_s, none, none, none, 0, 0, bad
    n_restart = 0
    for i in range(restart.shape[0]):
        n_restart += restart[i]
    rows = np.empty(n_restart, dtype=np.int64)
    others = np.empty(restart.shape[0] - n_restart, dtype=np.int64)
    a = b = 0
    for i in range(restart.shape[0]):
        if restart[i]:
            rows[a] = i
            a += 1
        else:
            others[b] = i
            b += 1
    starts = np.full(n_restart, -1, dtype=np.int64)
    o_start, o_end, observed = begin_rows(rows, starts, n_start, draw, fresh, engine, forecast, start_h, buffers)
    if not observed:
        return o_start, o_end, rows, starts, others, -1, 0, -1
    for e in range(n_restart):
        i = rows[e]
        buf.rewards[i] = 0.0
        buf.term[i] = False
        buf.trunc[i] = False
    split = (np.empty((0, 2), dtype=np.int64), actions[1], actions[2])  # the actions are in the buffers now
    parked, errors, _ = step_rows(others, split, engine, buffers, info)
    return o_start, o_end, rows, starts, others, parked, errors, -1
