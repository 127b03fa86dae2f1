"""sim.episode: the compiled episode draw equals the model's definition written with NumPy's generator calls.

The reference below is the NumPy code the compiled draw replaced (work noise, free GPUs, outages, first GPU
failure, in that order), kept here as the independent statement of what an episode is; the goldens
(tests/test_golden.py) also pin the shipped scenarios' trajectories.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.availability import free_gpus_table
from sim.core import Batch
from tests.test_simulator import make_sim


def reference_episode(sim, start: int, rng: np.random.Generator):
    """The episode starting at hour ``start``: (ci, cap, work, free, outages, GPU-hours to the first failure)."""
    job, f = sim.scenario.job, sim.faults
    H, K1 = sim.n_hours, sim.n_steps + 1
    hod0 = (int(sim.carbon.start_h.astype("datetime64[h]").astype(np.int64)) + start) % 24
    hod = (hod0 + np.arange(H)) % 24
    cap = np.full(H, float(job.power_cap_w))
    for win in job.cap_windows:
        inside = (win.start_hour_utc <= hod) & (hod < win.end_hour_utc)
        cap[inside] = np.minimum(cap[inside], win.cap_w)
    work = np.ones(K1)
    if job.phase_hours > 0:
        phase = (np.arange(K1) * sim.step_s / (job.phase_hours * 3600.0)).astype(int)
        work *= np.asarray(job.phase_multipliers)[phase % len(job.phase_multipliers)]
    if job.noise_std > 0:
        work = work * rng.lognormal(-0.5 * job.noise_std**2, job.noise_std, K1)
    if f.shortage_scale > 0:
        free = free_gpus_table(
            rng,
            sim.pool,
            K1,
            sim.step_s,
            f.shortage_scale,
            f.shortage_region_correlation,
            f.shortage_daily_amplitude,
            hod0,
            f.shortage_peak_hour_utc,
        )
    else:
        free = np.repeat(np.array(sim.pool)[:, None], K1, axis=1)
    outages = []
    for _ in range(sim.n_regions):
        spans = []
        if f.outage_per_region_day > 0:
            n = rng.poisson(f.outage_per_region_day * sim.horizon_s / 86400.0)
            for s in np.sort(rng.uniform(0, sim.horizon_s, n)):
                spans.append((float(s), float(s + rng.exponential(f.outage_mean_hours * 3600.0))))
        outages.append(tuple(spans))
    lam = f.gpu_failure_per_gpu_hour
    fail = rng.exponential(1.0 / lam) if lam > 0 else math.inf
    ci = sim.carbon.intensity_g_per_kwh[:, start : start + H]
    return ci, cap, work, free, tuple(outages), fail


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    start=st.integers(0, 30),
    noise_std=st.sampled_from([0.0, 0.05, 0.3]),
    shortage=st.sampled_from([0.0, 0.5, 1.0]),
    correlation=st.sampled_from([0.0, 0.6]),
    amplitude=st.sampled_from([0.0, 0.8]),
    outages_per_day=st.sampled_from([0.0, 0.5, 6.0]),  # 6 a day draws more than the arrays first hold
    failures=st.sampled_from([0.0, 0.01]),
    phases=st.booleans(),
)
def test_compiled_draw_equals_numpy_reference(
    seed, start, noise_std, shortage, correlation, amplitude, outages_per_day, failures, phases
):
    job = dict(
        noise_std=noise_std, power_cap_w=700.0, cap_windows=[dict(start_hour_utc=20, end_hour_utc=5, cap_w=500.0)]
    )
    if phases:
        job.update(phase_hours=5.0, phase_multipliers=[1.0, 1.3, 0.8])
    faults = dict(
        shortage_scale=shortage,
        shortage_region_correlation=correlation,
        shortage_daily_amplitude=amplitude,
        outage_per_region_day=outages_per_day,
        gpu_failure_per_gpu_hour=failures,
    )
    sim = make_sim(seed, job=job, faults=faults)
    sim.reset(start, np.random.default_rng(seed))
    ci, cap, work, free, outages, fail = reference_episode(sim, start, np.random.default_rng(seed))
    ep = sim.episode
    np.testing.assert_array_equal(ep.ci_g_per_kwh, ci)
    np.testing.assert_array_equal(ep.cap_w, cap)
    np.testing.assert_array_equal(ep.work, work)
    np.testing.assert_array_equal(ep.free_gpus, free)
    assert ep.outages == outages
    assert sim.fail_left_gpu_h == fail
    # the generator went on from where the reference's did: later draws (transfer failures, ...) agree too
    ref = np.random.default_rng(seed)
    reference_episode(sim, start, ref)
    assert sim.rng.random() == ref.random()


def test_many_outages_grow_the_arrays_of_every_row():
    """An episode with more outages than the arrays hold grows them for every row; other rows keep theirs."""
    sim = make_sim(0, faults=dict(outage_per_region_day=20.0, outage_mean_hours=0.1))
    other = sim.episode.outages
    batch = sim.batch
    sim.bind(Batch(sim.tables, 2), 1)
    held = sim.batch.episodes.outage_start_s.shape[2]
    sim.reset(3, np.random.default_rng(1))
    counts = [len(s) for s in sim.episode.outages]
    assert max(counts) > held  # 20 a day for 2 days: ~40 per region
    assert sim.batch.episodes.outage_start_s.shape[2] >= max(counts)
    *_, outages, _ = reference_episode(sim, 3, np.random.default_rng(1))
    assert sim.episode.outages == outages
    assert sim.batch.episodes.n_outages[0].tolist() == [0, 0, 0]  # row 0 has not begun an episode
    assert batch.episodes.n_outages[0].tolist() == [len(s) for s in other]
