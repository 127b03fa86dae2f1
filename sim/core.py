"""The engine: N environments x J jobs of one scenario stepped by one compiled loop (``advance``).

Layers: ``sim.layout`` (columns, indices and the bundles of arrays), ``sim.physics`` (one job's piece of time),
this module (the event loop over environments and jobs, episode starts, and :class:`Batch` that owns the arrays).
``CarbonMigration-v0`` is a batch of one (``sim.simulator.Simulator`` reads and writes its row by name), the
vector environment a batch of N.

``advance`` runs, for every listed environment, the event loop of the model (the physics is described in
``sim/simulator.py``). It reproduces, bit for bit, the scalar simulator it replaced (``tests/test_golden.py``:
whole episodes recorded before the redesign; ``tests/test_vector_env.py``: env ``i`` of a batch equals a batch
of one seeded ``s + i``). It is compiled with numba (``cache=True``: the first use on a machine compiles for
about 30 s of CPU, later processes load the cached machine code in well under a second).
Random draws come from each environment's own ``numpy.random.Generator``, in the model's order:
``rng.random()`` (a transfer-failure coin and time) is called inside the compiled loop through the bit
generator's C ``next_double`` (``sim.rng``: the generator passed as addresses), which is what
``Generator.random()`` calls; for the rare draw with another distribution (the next GPU-failure time,
``rng.exponential``) the kernel parks the environment (``I_PEND``) and the caller draws it in Python and calls
``advance`` again on the parked ones.

Jobs are independent here (each job of an environment sees the whole free pool); sharing GPUs between jobs
is the fleet's business (``sim.fleet_core``). The gym environments use ``n_jobs = 1``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.episode import EpisodeDraw, draw_rows
from sim.errors import ConfigError
from sim.layout import (  # noqa: F401  (re-exported: the engine's public names)
    COMPLETED,
    EPS_S,
    EV_NONE,
    F_DRAW,
    F_FAIL_LEFT_GPU_H,
    F_T_END_S,
    F_T_S,
    FLOAT_FIELDS,
    I_DEST,
    I_ERROR,
    I_K,
    I_N_GPUS,
    I_N_TRANS,
    I_PEND,
    I_REGION,
    I_STAGE,
    I_STATE,
    I_TRANS_0,
    INT_FIELDS,
    M_GPUF,
    METRICS,
    N_FLOAT,
    N_INT,
    N_METRICS,
    P_HORIZON,
    P_NSTEPS,
    P_STEP,
    PEND_GPU_FAILURE,
    PEND_LOG,
    PEND_NONE,
    S_PER_H,
    SEGMENT_FIELDS,
    TRANS_SLOTS,
    CoreState,
    EpisodeRows,
    Generators,
    JobTables,
    Logs,
    M,
    Metrics,
    Pool,
    StateRows,
    fresh_state,
)
from sim.physics import (
    book_piece,
    decide,
    end_step,
    fault,
    floor_div,
    free_gpus,
    handle,
    piece,
    prefetch,
    region_down,
    usable,
)
from sim.rng import integers, rng_handles
from sim.states import check_transition
from sim.tables import PARAMS, EpisodeArrays, EpisodeTables, StaticTables  # noqa: F401  (the tables the core reads)

AHEAD = 4  # environments ahead whose table entries are prefetched (a step of one takes ~100 ns)


@njit(cache=True, inline="always")
def _log_transitions(iv, t, log, n_log, i):
    """Append the transitions kept in ``iv`` since ``I_N_TRANS`` was cleared as ``(t_s, src, dst)`` rows."""
    m = iv[I_N_TRANS]
    for q in range(m if m < TRANS_SLOTS else TRANS_SLOTS):
        code = iv[I_TRANS_0 + q]
        row = log[n_log[i]]
        row[0], row[1], row[2] = t, code // 8, code % 8
        n_log[i] += 1
    iv[I_N_TRANS] = 0


@njit(cache=True, inline="always")
def _prefetch_env(st, ep, i2, target):
    """Start loading the episode-table entries env ``i2``'s step reads first (``target``: a migration decided now
    books both regions' intensities)."""
    f, iv_all = st.f, st.i
    n_steps = ep.free.shape[2] - 1
    k2, h2 = iv_all[i2, 0, I_K], floor_div(f[i2, 0, F_T_S], S_PER_H)
    prefetch(ep.ci, (i2, iv_all[i2, 0, I_REGION], h2))
    prefetch(ep.ci, (i2, iv_all[i2, 0, I_DEST], h2))
    if target >= 0:
        prefetch(ep.ci, (i2, target, h2))
    prefetch(ep.cap_w, (i2, h2))
    prefetch(ep.work, (i2, k2))
    prefetch(ep.free, (i2, iv_all[i2, 0, I_REGION], k2 if k2 < n_steps else n_steps))


@njit(cache=True, inline="always")
def _begin_step(fv, iv, acc, target, level, pool, tab, rng_fns, rng_state):
    """A new decision step of one job: fresh accounting, the step's end, then the decision."""
    P = tab.params
    acc[:] = 0.0
    t_end = fv[F_T_S] + P[P_STEP]
    if P[P_HORIZON] < t_end:
        t_end = P[P_HORIZON]
    fv[F_T_END_S] = t_end
    iv[I_STAGE] = 1
    iv[I_N_TRANS] = 0
    decide(fv, iv, acc, target, level, pool, tab, rng_fns, rng_state)


@njit(cache=True, inline="always")
def _run_job(i, fv, iv, acc, ep, pool, tab, gens, logs):
    """The event loop of one job from its current time to its step's end: pieces cut by ``piece``, booked by
    ``book_piece``, events applied by ``handle``. Returns whether it parked (a draw, or a full log)."""
    logging = logs.seg.shape[1] > 0
    seg, n_seg, trans, n_trans = logs
    t_end = fv[F_T_END_S]
    t_stop = t_end - EPS_S
    t = fv[F_T_S]
    s = iv[I_STATE]
    while t < t_stop and s != COMPLETED:
        if logging and (n_seg[i] >= seg.shape[1] or n_trans[i] + TRANS_SLOTS > trans.shape[1]):
            iv[I_PEND] = PEND_LOG  # room for this piece and its event's transitions first
            return True
        h = floor_div(t, S_PER_H)
        cap_now = ep.cap_w[i, h]
        dt, event, rates = piece(fv, iv, t, t_end, h, ep.work[i, iv[I_K]], cap_now, tab, pool)
        if logging:
            row = seg[i, n_seg[i]]
            row[0], row[1], row[2], row[3] = t, dt, iv[I_REGION], s
            row[4], row[5], row[6] = rates[1], iv[I_N_GPUS], iv[I_DEST]
            n_seg[i] += 1
        t = book_piece(fv, iv, acc, t, dt, h, rates, ep.ci[i], cap_now, tab)
        if event != EV_NONE:
            iv[I_N_TRANS] = 0
            handle(fv, iv, acc, event, pool, tab, gens.fns, gens.states[i])
            if logging:
                _log_transitions(iv, t, trans[i], n_trans, i)
            if iv[I_PEND] != PEND_NONE:
                return True
            s = iv[I_STATE]
    return False


# _nrt=False: compiled without numba's reference counting (nothing here allocates). With it, every view taken per
# environment (f[i, j], free[i], t_mb_s[r], ...) costs an atomic incref/decref pair that numba's refcount pruning
# does not remove once the helpers are inlined: ~150 of ~230 ns per env and step (N = 1024). numba's own string
# helpers use the same flag.
@njit(cache=True, _nrt=False)
def advance(envs, targets, levels, engine):
    """Advance each environment in ``envs`` (job 0..J-1) by one decision step with ``targets[i]`` (region or
    ``WAIT``) and clock ``levels[i]`` or, if it is parked, from the parked point (on a GPU-failure draw: with
    ``f[..., F_DRAW]``). ``engine``: the plain tuples ``(StateRows, JobTables, EpisodeRows, Generators, Logs)``
    (``Batch.engine()``). Returns how many are parked now and how many hit an illegal transition (``I_ERROR``).

    Logging is on when ``Logs.seg`` has room: every piece is appended at ``seg[i, n_seg[i]]`` and every transition
    as ``(t_s, src, dst)`` at ``trans[i, n_trans[i]]``; an environment whose log is full parks (``PEND_LOG``) for
    the caller to grow it. Logging assumes one job. When some of an environment's jobs park, the others finish
    their step; the resuming call steps only the parked ones. Off (capacity 0), it costs one test per piece."""
    st, tab, ep = StateRows(*engine[0]), JobTables(*engine[1]), EpisodeRows(*engine[2])
    gens, logs = Generators(*engine[3]), Logs(*engine[4])
    f, iv_all = st.f, st.i
    logging = logs.seg.shape[1] > 0
    parked = 0
    errors = 0
    for e in range(envs.shape[0]):
        i = envs[e]
        if e + AHEAD < envs.shape[0]:  # the episode-table entries a later env's step will read first
            i2 = envs[e + AHEAD]
            _prefetch_env(st, ep, i2, targets[i2])
        # a call that resumes an env's parked jobs must not start another step for its jobs that finished theirs
        resuming = False
        for j in range(f.shape[1]):
            if iv_all[i, j, I_PEND] != PEND_NONE:
                resuming = True
        pool = Pool(ep.free[i], ep.outage_start_s[i], ep.outage_end_s[i], ep.n_outages[i])
        for j in range(f.shape[1]):
            fv, iv, acc = f[i, j], iv_all[i, j], st.step_acc[i, j]
            if iv[I_STAGE] == 0 and resuming:
                continue
            if iv[I_STAGE] == 0:  # a new step: fresh accounting, then the decision
                _begin_step(fv, iv, acc, targets[i], levels[i], pool, tab, gens.fns, gens.states[i])
                if logging:
                    _log_transitions(iv, fv[F_T_S], logs.trans[i], logs.n_trans, i)
            elif iv[I_PEND] == PEND_GPU_FAILURE:  # resume: the next failure time was drawn, now the fault
                iv[I_PEND] = PEND_NONE
                fv[F_FAIL_LEFT_GPU_H] = fv[F_DRAW]
                iv[I_N_TRANS] = 0
                fault(fv, iv, acc, M_GPUF, pool, tab)
                if logging:
                    _log_transitions(iv, fv[F_T_S], logs.trans[i], logs.n_trans, i)
            else:  # resume after the log was grown
                iv[I_PEND] = PEND_NONE
            if _run_job(i, fv, iv, acc, ep, pool, tab, gens, logs):
                parked += 1
                continue
            errors += end_step(fv, iv, acc, st.episode_acc[i, j])  # the step is over: book it
    return parked, errors


@njit(cache=True)
def begin_episodes(rows, starts, n_start, draw, engine, fresh):
    """``sim.episode.draw_rows`` for ``rows`` (``draw``: ``EpisodeDraw.tables``), a negative start hour first drawn
    as ``rng.integers(0, n_start)`` (written back into ``starts``); then their state rows reset (every job Queued at
    home with ``fresh = (f0, i0)``, the drawn GPU-hours to the first failure, no accounting, empty logs). Returns
    the outage arrays (new ones when an episode drew more outages than they hold)."""
    st, ep = StateRows(*engine[0]), EpisodeRows(*engine[2])
    gens, logs = Generators(*engine[3]), Logs(*engine[4])
    f0, i0 = fresh
    for e in range(rows.shape[0]):
        if starts[e] < 0:  # rows draw their own start hours: one row's draws never touch another's generator
            starts[e] = integers(gens.fns, gens.states[rows[e]], n_start)
    fail = np.empty(st.f.shape[0])
    o_start, o_end = draw_rows(rows, starts, gens, draw, ep, fail)
    for e in range(rows.shape[0]):
        i = rows[e]
        for j in range(st.f.shape[1]):
            st.f[i, j] = f0
            st.f[i, j, F_FAIL_LEFT_GPU_H] = fail[i]
            st.i[i, j] = i0
            st.step_acc[i, j] = 0.0
            st.episode_acc[i, j] = 0.0
        logs.n_seg[i] = 0
        logs.n_trans[i] = 0
    return o_start, o_end


# ---------------------------------------------------------------- the arrays of N environments of one scenario


class Batch:
    """``n_envs`` environments x ``n_jobs`` jobs of one scenario on the compiled core: the scenario's
    :class:`StaticTables`, each environment's episode tables (:class:`EpisodeArrays`), the state
    (:class:`CoreState`) and each environment's ``numpy.random.Generator``. The single environment is
    ``n_envs = 1`` (``sim.simulator.Simulator`` is a view of one row), the vector environment ``n_envs = N``.

    ``engine()``: these arrays as the bundles ``advance`` takes. Optional log (``set_logging(True)``): every piece
    of simulated time of every environment as a row of ``SEGMENT_FIELDS`` and every scheduler transition as
    ``(t_s, src, dst)``, for tests that recompute the accounting from the pieces; off by default (one test per
    piece in the compiled loop).
    """

    _LOG_ROOM = 64  # free log rows ensured before each step (a step adds a few; a full log parks and grows)

    def __init__(self, tables: StaticTables, n_envs: int, n_jobs: int = 1):
        self.tables = tables
        self.n_envs = n_envs
        self.core = CoreState(n_envs, n_jobs)
        self.episodes = EpisodeArrays(n_envs, tables)
        self.job_tables = tables.job_tables()
        self.rngs: list[np.random.Generator | None] = [None] * n_envs
        self.rng_states = np.zeros(n_envs, dtype=np.uint64)
        self.rng_fns: np.ndarray | None = None
        lam = tables.gpu_failure_per_gpu_hour
        self.gpu_failure_scale = 1.0 / lam if lam > 0 else math.inf
        self.f0, self.i0 = fresh_state(tables.home, tables.n_levels - 1)
        self.seg = np.zeros((n_envs, 0, len(SEGMENT_FIELDS)))
        self.trans = np.zeros((n_envs, 0, 3))
        self.n_seg = np.zeros(n_envs, dtype=np.int64)
        self.n_trans = np.zeros(n_envs, dtype=np.int64)
        self.stamp = 0  # counts steps and starts (lets readers cache what they derived from the state)
        self._engine: tuple | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["rng_fns"] = None  # C function addresses: taken again from the generators after a copy
        state["_engine"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for i, rng in enumerate(self.rngs):
            if rng is not None:  # the copied generators live elsewhere: their state addresses are new
                self.rng_fns, self.rng_states[i] = rng_handles(rng)

    def engine(self) -> tuple:
        """``advance``'s bundles as plain tuples: (:class:`StateRows`, :class:`JobTables`, :class:`EpisodeRows`,
        :class:`Generators`, :class:`Logs`). Cached; rebuilt after an array is replaced (outages, logs, generators)."""
        if self._engine is None:
            ep = self.episodes
            episodes = EpisodeRows(ep.ci, ep.cap_w, ep.work, ep.free, ep.outage_start_s, ep.outage_end_s, ep.n_outages)
            fns = self.rng_fns if self.rng_fns is not None else np.zeros(3, dtype=np.uint64)
            self._engine = (
                tuple(self.core.rows()),
                tuple(self.job_tables),
                tuple(episodes),
                tuple(Generators(fns, self.rng_states)),
                tuple(Logs(self.seg, self.n_seg, self.trans, self.n_trans)),
            )
        return self._engine

    @property
    def logging(self) -> bool:
        return self.seg.shape[1] > 0

    def set_logging(self, on: bool) -> None:
        """Log pieces and transitions from now on (``on``), or stop; the logs restart at the next ``start``."""
        cap = self._LOG_ROOM * 4 if on else 0
        self.seg = np.zeros((self.n_envs, cap, len(SEGMENT_FIELDS)))
        self.trans = np.zeros((self.n_envs, cap, 3))
        self.n_seg[:] = 0
        self.n_trans[:] = 0
        self._engine = None

    def grow_logs(self) -> None:
        """Double the logs when fewer than ``_LOG_ROOM`` rows are free."""
        cap = self.seg.shape[1]
        if (self.n_seg.max() + self._LOG_ROOM > cap) or (self.n_trans.max() + self._LOG_ROOM > self.trans.shape[1]):
            self.seg = np.concatenate([self.seg, np.zeros_like(self.seg)], axis=1)
            self.trans = np.concatenate([self.trans, np.zeros_like(self.trans)], axis=1)
            self._engine = None

    def set_rng(self, i: int, rng: np.random.Generator) -> None:
        """Row ``i`` draws its randomness from ``rng`` from now on (its episodes, transfer failures, GPU failures)."""
        if rng is self.rngs[i]:  # the same generator as last episode: its addresses are known
            return
        self.rngs[i] = rng
        fns, self.rng_states[i] = rng_handles(rng)  # a few us, once per generator
        if self.rng_fns is None:
            self.rng_fns = fns
            self._engine = None
        elif fns is not self.rng_fns:
            raise ConfigError(
                f"env {i}: its generator's bit generator is {type(rng.bit_generator).__name__}; "
                "all environments of a batch need the same kind (Gymnasium's is PCG64)"
            )

    def begin(self, rows: np.ndarray, starts: np.ndarray, draw: EpisodeDraw, n_start_hours: int = 0) -> None:
        """Rows ``rows`` begin episodes at hour indices ``starts`` of the carbon table (every job Queued at home),
        drawn by ``draw`` (``sim.episode``) with each row's generator (``set_rng``), in one compiled call. A start
        of -1 is drawn first, uniform over ``n_start_hours`` (``rng.integers``), and written into ``starts``."""
        self.began(*begin_episodes(rows, starts, n_start_hours, draw.tables, self.engine(), self.fresh))

    @property
    def fresh(self) -> tuple[np.ndarray, np.ndarray]:
        """A fresh episode's state row ``(f0, i0)`` (``begin_episodes``' ``fresh``)."""
        return self.f0, self.i0

    def began(self, o_start: np.ndarray, o_end: np.ndarray) -> None:
        """Episodes began in compiled code (``begin_episodes``, alone or inside a caller's kernel) that returned the
        outage arrays: new, larger ones when an episode drew more outages than they held."""
        ep = self.episodes
        if o_start is not ep.outage_start_s:
            ep.outage_start_s, ep.outage_end_s = o_start, o_end
            self._engine = None
        self.stamp += 1

    def step(self, envs: np.ndarray, targets: np.ndarray, levels: np.ndarray) -> None:
        """Advance the rows ``envs`` one decision step with ``targets[i]`` (region index or ``WAIT``) and clock level
        ``levels[i]`` (arrays over all rows); raises ``IllegalTransition`` if the state machine was broken."""
        if self.logging:
            self.grow_logs()
        parked, errors = advance(envs, targets, levels, self.engine())
        if parked:
            errors += self.finish(targets, levels)
        self.stamp += 1
        if errors:
            self.raise_illegal()

    def finish(self, targets: np.ndarray, levels: np.ndarray) -> int:
        """Resume the parked rows until none is: draw each GPU-failure time from the row's own generator (the
        model's order: ``rng.exponential``), grow full logs. Returns the illegal transitions met."""
        errors = 0
        core = self.core
        while True:
            waiting = np.flatnonzero((core.i[:, :, I_PEND] != PEND_NONE).any(axis=1))
            if waiting.size == 0:
                return errors
            for i in waiting.tolist():
                for j in np.flatnonzero(core.i[i, :, I_PEND] == PEND_GPU_FAILURE).tolist():  # in job order
                    core.f[i, j, F_DRAW] = self.rngs[i].exponential(self.gpu_failure_scale)
            if self.logging:
                self.grow_logs()
            errors += advance(waiting, targets, levels, self.engine())[1]

    def raise_illegal(self) -> None:
        code = int(self.core.i[:, :, I_ERROR].max()) - 1
        check_transition(code // 8, code % 8)


# ---------------------------------------------------------------- the compiled rules, for Python callers


@njit(cache=True)
def pool_region_down(free, outage_start_s, outage_end_s, n_outages, r, t):
    """``sim.physics.region_down`` for one environment's arrays (``Pool``'s fields) from Python."""
    return region_down(Pool(free, outage_start_s, outage_end_s, n_outages), r, t)


@njit(cache=True)
def pool_free_gpus(free, outage_start_s, outage_end_s, n_outages, r, t, k, params):
    """``sim.physics.free_gpus`` for one environment's arrays from Python."""
    return free_gpus(Pool(free, outage_start_s, outage_end_s, n_outages), r, t, k, params)


@njit(cache=True)
def job_usable_gpus(free, params):
    """``sim.physics.usable``: GPUs of ``free`` a job with ``params`` can use, from Python."""
    return usable(free, params)
