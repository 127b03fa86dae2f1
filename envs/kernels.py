"""Compiled halves of ``CarbonMigration-v0``'s step around ``sim.core.advance``: action -> decision, and
state -> observation, action mask and reward, for rows of ``envs.batch.EnvRows`` (the single environment is one
row, the vector environment N). The observation layout is documented in ``envs.carbon_migration``; these are
the same operations in the same order as the NumPy code they replaced (``tests/test_golden.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.core import (
    _AHEAD,
    _CAPJ,
    _COMPLETED,
    _DONE,
    _EMB,
    _EPS_S,
    _FAC,
    _LATE,
    _LOST,
    _MIG,
    _MIGRATION,
    _OPC,
    _P_DEADLINE,
    _P_HORIZON,
    _P_NHOURS,
    _P_NSTEPS,
    _P_REQ,
    _P_TOTAL,
    _RECOVERING,
    _SCALING,
    _SUSPEND,
    _TOLERANCE,
    _TXC,
    _TXE,
    _WAIT,
    F_COMPLETED_AT_S,
    F_POWER_W,
    F_PROGRESS_MB,
    F_T_S,
    I_AFTER_SUSPEND,
    I_DEST,
    I_K,
    I_LEVEL,
    I_N_GPUS,
    I_REGION,
    I_STATE,
    _down,
    _floor_div,
    _mod,
    _prefetch,
    _usable,
    advance,
    continue_target,
)
from sim.forecast import draw_forecast

_TWO_PI = 2 * math.pi
N_TIME_FEATURES = 4
N_JOB_FEATURES = 8


@njit(cache=True)
def split_actions(actions, n_regions, n_levels, targets, levels):
    """``targets[i], levels[i] := actions[i]`` for the (N, 2) integer ``actions``; returns the first row outside
    ``[0, n_regions] x [0, n_levels)`` (nothing is trusted from it), or -1."""
    for i in range(actions.shape[0]):
        t, lv = actions[i, 0], actions[i, 1]
        if t < 0 or t > n_regions or lv < 0 or lv >= n_levels:
            return i
        targets[i] = t
        levels[i] = lv
    return -1


# The per-step kernels are compiled without reference counting (``_nrt=False``, as ``sim.core.advance``): they
# allocate nothing, and each per-row view (obs[i], free[i], ...) would otherwise cost atomic increfs and decrefs.
@njit(cache=True, _nrt=False)
def _prepare(envs, targets, masks, iv_all, invalid, n_regions):
    """Masked targets become the continue target (counted in ``invalid``); the wait index becomes ``WAIT``."""
    for e in range(envs.shape[0]):
        i = envs[e]
        t = targets[i]
        if not masks[i, t]:
            iv = iv_all[i, 0]
            invalid[i] += 1
            t = continue_target(iv[I_STATE], iv[I_REGION], iv[I_DEST], iv[I_AFTER_SUSPEND], n_regions)
        targets[i] = _WAIT if t == n_regions else t


@njit(cache=True, _nrt=False)
def _observe(
    envs,
    stepped,
    f,
    iv_all,
    step_acc,
    ep_acc,
    free,
    o_start,
    o_end,
    n_out,
    cap_all,
    work_all,
    templates,
    hour0,
    dow0,
    xfer_h,
    w,
    P,
    layout,
    t_mb_home_s,
    obs,
    masks,
    rew,
    term,
    trunc,
    terms,
):
    """Rewards and flags (when ``stepped``), observation rows and action masks of ``envs``."""
    F, block, job_at, level_div = layout[0], layout[1], layout[2], layout[3]
    R = xfer_h.shape[0]
    n_hours = int(P[_P_NHOURS])
    n_steps = int(P[_P_NSTEPS])
    total = P[_P_TOTAL]
    horizon = P[_P_HORIZON]
    req = int(P[_P_REQ])
    for e in range(envs.shape[0]):
        i = envs[e]
        if e + _AHEAD < envs.shape[0]:  # a later env's template row and free GPUs (as in sim.core.advance)
            i2 = envs[e + _AHEAD]
            h2 = _floor_div(f[i2, 0, F_T_S], 3600.0)
            h2 = h2 if h2 < n_hours else n_hours - 1
            for c in range(0, templates.shape[2], 16):  # 16 float32 a cache line
                _prefetch(templates, (i2, h2, c))
            k2 = iv_all[i2, 0, I_K]
            for r in range(R):
                _prefetch(free, (i2, r, k2 if k2 < n_steps else n_steps))
        fv, iv = f[i, 0], iv_all[i, 0]
        s = iv[I_STATE]
        here = iv[I_REGION]
        t = fv[F_T_S]
        progress_mb = fv[F_PROGRESS_MB]
        if stepped:
            acc = step_acc[i, 0]
            done = s == _COMPLETED
            truncated = t >= horizon - _EPS_S and not done
            late_h = acc[_LATE]
            if truncated:
                late_h += (total - progress_mb) * t_mb_home_s / 3600.0
            carbon_kg = (acc[_OPC] + acc[_TXC]) / 1000.0
            progress = w[0] * (acc[_DONE] - acc[_LOST]) / total
            carbon = w[1] * carbon_kg
            energy = w[2] * (acc[_FAC] + acc[_TXE])
            late = w[3] * late_h
            cap = w[4] * acc[_CAPJ] / 1000.0
            mig = w[5] * acc[_MIG]
            emb = w[6] * acc[_EMB] / 1000.0
            tr = terms[i]
            tr[0], tr[1], tr[2], tr[3], tr[4], tr[5], tr[6] = progress, -carbon, -energy, -late, -cap, -mig, -emb
            rew[i] = progress - carbon - energy - late - cap - mig - emb
            term[i] = done
            trunc[i] = truncated
        h = _floor_div(t, 3600.0)
        if h >= n_hours:
            h = n_hours - 1
        k = iv[I_K]
        kk = k if k < n_steps else n_steps
        o = obs[i]
        tpl = templates[i, h]
        for c in range(o.shape[0]):  # a loop: slice assignment needs the refcounting that is off
            o[c] = tpl[c]
        m = masks[i]
        fr, os_, oe, no = free[i], o_start[i], o_end[i], n_out[i]
        timed = s == _SUSPEND or s == _MIGRATION or s == _SCALING or s == _RECOVERING
        if timed:
            for r in range(R + 1):
                m[r] = False
            m[continue_target(s, here, iv[I_DEST], iv[I_AFTER_SUSPEND], R)] = True
        for r in range(R):
            b = N_TIME_FEATURES + r * block + F
            if _down(os_, oe, no, r, t):
                u = 0
                o[b + 2] = 0.0
            else:
                u = _usable(fr[r, kk], P)
                o[b + 2] = 1.0
            if not timed:
                m[r] = u != 0
            o[b + 1] = u / req
            o[b + 3] = xfer_h[here, r]
        if not timed:
            if s == _TOLERANCE:
                m[here] = True
            m[R] = True
        x = hour0[i] + t / 3600.0
        a_hod = _TWO_PI * _mod(x, 24.0) / 24.0
        a_dow = _TWO_PI * _mod(dow0[i] + x / 24.0, 7.0) / 7.0
        o[0] = math.sin(a_hod)
        o[1] = math.cos(a_hod)
        o[2] = math.sin(a_dow)
        o[3] = math.cos(a_dow)
        deadline = P[_P_DEADLINE]
        dl = deadline if deadline < math.inf else horizon
        to_deadline = (dl - t) / horizon
        cap_w = cap_all[i, h]
        power = fv[F_POWER_W] / cap_w if cap_w < math.inf else 0.0
        work = work_all[i, kk]
        lost = ep_acc[i, 0, _LOST] / total
        o[job_at] = progress_mb / total
        o[job_at + 1] = to_deadline if to_deadline > -1.0 else -1.0
        o[job_at + 2] = t / horizon
        o[job_at + 3] = iv[I_LEVEL] / level_div
        o[job_at + 4] = power if power < 4.0 else 4.0
        o[job_at + 5] = iv[I_N_GPUS] / req
        o[job_at + 6] = work if work < 4.0 else 4.0
        o[job_at + 7] = lost if lost < 1.0 else 1.0
        o[N_TIME_FEATURES + here * block + F + 4] = 1.0
        o[job_at + N_JOB_FEATURES + s] = 1.0


@njit(cache=True, _nrt=False)
def info_columns(f, iv_all, step_acc, ep_acc, terms, invalid, total_mb, clocks_mhz, deadline_s, cols, ints, flags):
    """Job 0's state, accounting and reward terms of every env as rows of fresh ``cols`` (floats), ``ints`` and
    ``flags`` (booleans), one row per info value (the layout ``envs.vector.CarbonMigrationVectorEnv._infos`` reads):
    float fields, step metrics + ``carbon_g``, episode metrics + ``carbon_g``, reward terms, remaining mini-batches,
    JCT, clock MHz; int fields then invalid actions; completed, deadline met."""
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
            cols[r + n_m, e] = acc[e, 0, _OPC] + acc[e, 0, _TXC]
        r += n_m + 1
    for m in range(n_t):
        for e in range(N):
            cols[r + m, e] = terms[e, m]
    r += n_t
    for e in range(N):
        done = iv_all[e, 0, I_STATE] == _COMPLETED
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
def fill_ci_template(template, ci, start, fc, region_block, scale):
    """``template[h, time features + r * region_block + j]`` := region r's [intensity at hour ``start + h``,
    its forecasts ``fc[r, h]``...] / ``scale``, at most 5, as float32 (divide, clip, round: the order the recorded
    golden observations were computed in)."""
    R, H, F = fc.shape
    for r in range(R):
        b = N_TIME_FEATURES + r * region_block
        for h in range(H):
            x = ci[r, start + h] / scale
            template[h, b] = np.float32(x if x < 5.0 else 5.0)
            for j in range(F):
                x = fc[r, h, j] / scale
                template[h, b + 1 + j] = np.float32(x if x < 5.0 else 5.0)


@njit(cache=True)
def begin_rows(rows, starts, fns, states, ci_all, offset, src_ok, noise, std, templates, region_block, scale, start_h,
               hour0, dow0, start_hour, invalid, terms):  # fmt: skip
    """The environment's part of starting episodes at hour indices ``starts`` (after ``sim.core.begin_rows``): each
    row's forecast drawn with its generator (``sim.forecast.draw_forecast``) into its observation template, its
    start time (UTC hour of day and day of week; ``start_h`` = the table's first hour since the epoch), no invalid
    actions, no reward terms."""
    for e in range(rows.shape[0]):
        i, s = rows[e], starts[e]
        fc = draw_forecast(fns, states[i], ci_all, s, offset, src_ok, noise, std)  # (R, hours, F)
        fill_ci_template(templates[i], ci_all, s, fc, region_block, scale)
        hours = start_h + s  # hours since 1970-01-01T00 (a Thursday: day of week 3)
        hour0[i], dow0[i] = hours % 24, (hours // 24 + 3) % 7
        start_hour[i] = s
        invalid[i] = 0
        terms[i] = 0.0


@njit(cache=True, _nrt=False)
def step_rows(
    envs,
    targets,
    levels,
    masks,
    invalid,
    f,
    iv_all,
    step_acc,
    ep_acc,
    ci,
    cap_w,
    work,
    free,
    o_start,
    o_end,
    n_out,
    T,
    P,
    allowed,
    rng_fns,
    rng_states,
    seg,
    n_seg,
    trans,
    n_trans,
    templates,
    hour0,
    dow0,
    xfer_h,
    w,
    layout,
    t_mb_home_s,
    obs,
    rew,
    term,
    trunc,
    terms,
    total_mb,
    clocks_mhz,
    deadline_s,
    cols,
    ints,
    flags,
):
    """One step of the rows ``envs`` in one compiled call: ``_prepare`` (masked targets), ``sim.core.advance`` and,
    unless a row parked on a draw, ``_observe`` (rewards, flags, observations, masks) and, when ``cols`` has a
    column per row, ``info_columns`` of every row (saves the vector env a second call). Returns ``advance``'s
    ``(parked, errors)``; when ``parked``, the caller resumes the parked rows, observes, and fills the infos."""
    _prepare(envs, targets, masks, iv_all, invalid, xfer_h.shape[0])
    parked, errors = advance(
        envs,
        targets,
        levels,
        f,
        iv_all,
        step_acc,
        ep_acc,
        ci,
        cap_w,
        work,
        free,
        o_start,
        o_end,
        n_out,
        T,
        P,
        allowed,
        rng_fns,
        rng_states,
        seg,
        n_seg,
        trans,
        n_trans,
    )
    if parked == 0 and errors == 0:
        _observe(
            envs,
            True,
            f,
            iv_all,
            step_acc,
            ep_acc,
            free,
            o_start,
            o_end,
            n_out,
            cap_w,
            work,
            templates,
            hour0,
            dow0,
            xfer_h,
            w,
            P,
            layout,
            t_mb_home_s,
            obs,
            masks,
            rew,
            term,
            trunc,
            terms,
        )
        if cols.shape[1] == f.shape[0]:
            info_columns(
                f, iv_all, step_acc, ep_acc, terms, invalid, total_mb, clocks_mhz, deadline_s, cols, ints, flags
            )
    return parked, errors
