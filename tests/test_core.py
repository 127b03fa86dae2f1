"""Invariants of the batched array core (sim/core.py via the vector env), per environment and job, N = 1, 7, 64.

Each expectation is physics, not a re-run of the code: accounting quantities are non-negative, operational
carbon is facility energy times the hour's intensity of the region that drew it, progress is work done minus
work lost, and the time spent in the scheduler states adds up to the simulated time.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.vector import CarbonMigrationVectorEnv
from sim.layout import F_PROGRESS_MB, F_T_S, I_REGION, CoreState
from sim.simulator import METRICS
from sim.states import State

COL = {name: j for j, name in enumerate(METRICS)}
TIME_COLS = [COL[f"time_{s.name.lower()}_s"] for s in State]
_VENVS: dict[tuple[str, int], CarbonMigrationVectorEnv] = {}


def venv_for(scenario: str, n: int) -> CarbonMigrationVectorEnv:
    if (scenario, n) not in _VENVS:  # building one per example would dominate the test's time
        _VENVS[(scenario, n)] = CarbonMigrationVectorEnv(n, scenario)
    return _VENVS[(scenario, n)]


@settings(max_examples=12, deadline=None)
@given(
    scenario=st.sampled_from(["paper", "faults", "global", "llm"]),
    n=st.sampled_from([1, 7, 64]),
    seed=st.integers(0, 10_000),
    stay=st.floats(0.0, 0.95),
)
def test_batched_core_invariants_hold_for_every_env_and_step(scenario, n, seed, stay):
    venv = venv_for(scenario, n)
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    R = venv.R
    core, ep = venv.core, venv.episodes
    targets = np.full(n, R)
    for _ in range(120):
        masks = venv.action_masks()
        region_before = core.i[:, 0, I_REGION].copy()
        t_before = core.f[:, 0, F_T_S].copy()
        scores = rng.random((n, R + 1)) * masks[:, : R + 1]
        fresh = scores.argmax(axis=1)
        keep = (rng.random(n) < stay) & masks[np.arange(n), targets]  # some envs hold their course for long runs
        targets = np.where(keep, targets, fresh)
        venv.step(np.stack([targets, rng.integers(0, venv.L, n)], axis=1))
        step, episode = core.step_acc[:, 0], core.episode_acc[:, 0]
        assert (step >= 0).all() and (episode >= 0).all(), "energy, carbon, counts and times are never negative"
        # a 15-minute step starting on the hour never crosses an hour boundary: one intensity per region
        h = (t_before // 3600).astype(int)
        ci = ep.ci[np.arange(n), :, np.minimum(h, ep.ci.shape[2] - 1)]  # (n, R) g/kWh
        stayed = (step[:, COL["transfers"]] == 0) & (region_before == core.i[:, 0, I_REGION])
        fac = step[:, COL["facility_energy_kwh"]]
        expect = fac * ci[np.arange(n), region_before]
        np.testing.assert_allclose(step[stayed, COL["operational_carbon_g"]], expect[stayed], rtol=1e-9, atol=1e-9)
        # with a move inside the step, the intensity is one of the regions' (between the lowest and the highest)
        moved = ~stayed
        opc = step[moved, COL["operational_carbon_g"]]
        assert (opc <= fac[moved] * ci[moved].max(axis=1) * (1 + 1e-9) + 1e-9).all()
        assert (opc >= fac[moved] * ci[moved].min(axis=1) * (1 - 1e-9) - 1e-9).all()
        txe = step[:, COL["transfer_energy_kwh"]]
        assert (step[:, COL["transfer_carbon_g"]] <= txe * ci.max(axis=1) * (1 + 1e-9) + 1e-9).all()
        # progress = done - lost; state times add up to the simulated time (per episode)
        progress = core.f[:, 0, F_PROGRESS_MB]
        np.testing.assert_allclose(
            progress, episode[:, COL["minibatches_done"]] - episode[:, COL["lost_minibatches"]], rtol=1e-9, atol=1e-6
        )
        np.testing.assert_allclose(episode[:, TIME_COLS].sum(axis=1), core.f[:, 0, F_T_S], rtol=1e-12, atol=1e-6)
        assert (episode[:, COL["it_energy_kwh"]] >= episode[:, COL["host_energy_kwh"]] * (1 - 1e-12)).all()


@settings(max_examples=8, deadline=None)
@given(
    scenario=st.sampled_from(["paper", "faults", "global", "llm"]),
    n=st.sampled_from([1, 7, 64]),
    seed=st.integers(0, 10_000),
)
def test_batched_core_energy_and_carbon_are_the_sums_over_its_logged_pieces(scenario, n, seed):
    """Per env and step: IT energy = sum of (GPU + host) power x duration over the pieces the core logged, facility
    energy that times the PUE, operational carbon that times the hour's intensity of the piece's region, transfer
    carbon the network energy of each migration piece at the mean intensity of both ends."""
    venv = venv_for(scenario, n)
    b, tab = venv.rows.batch, venv.tables
    b.set_logging(True)
    try:
        venv.reset(seed=seed)
        rng = np.random.default_rng(seed)
        R, J_PER_KWH = venv.R, 3.6e6
        checked_g = 0.0
        for _ in range(60):
            fresh = venv._autoreset.copy()  # next-step autoreset: these restart (and are not stepped) now
            seen = b.n_seg.copy()
            m = venv.action_masks()[:, : R + 1]
            venv.step(np.stack([(rng.random(m.shape) * m).argmax(axis=1), rng.integers(0, venv.L, n)], axis=1))
            ci = venv.episodes.ci
            for i in np.flatnonzero(~fresh):
                it_kwh = fac_kwh = op_g = tx_g = 0.0
                for t, dt, r, s, gpu_w, k, dest in b.seg[i, seen[i] : b.n_seg[i]]:
                    r, h, k, dest = int(r), int(t // 3600), int(k), int(dest)
                    host_w = k * (tab.host_busy_w[r] if s == State.TOLERANCE else tab.host_idle_w[r])
                    e_kwh = (gpu_w + host_w) * dt / J_PER_KWH
                    it_kwh += e_kwh
                    fac_kwh += e_kwh * tab.pue[r]
                    op_g += e_kwh * tab.pue[r] * ci[i, r, h]
                    assert e_kwh >= 0.0 and dt >= 0.0
                    if s == State.MIGRATION:
                        net_kwh = tab.xfer_kwh * dt / tab.xfer_s[r, dest]
                        tx_g += net_kwh * 0.5 * (ci[i, r, h] + ci[i, dest, h])
                step = venv.core.step_acc[i, 0]
                np.testing.assert_allclose(
                    [step[COL["it_energy_kwh"]], step[COL["facility_energy_kwh"]]],
                    [it_kwh, fac_kwh],
                    rtol=1e-9,
                    atol=1e-12,
                )
                np.testing.assert_allclose(
                    [step[COL["operational_carbon_g"]], step[COL["transfer_carbon_g"]]],
                    [op_g, tx_g],
                    rtol=1e-9,
                    atol=1e-9,
                )
                checked_g += op_g
        assert checked_g > 0  # the pieces carried real energy, not only empty steps
    finally:
        b.set_logging(False)


def test_core_state_fields_are_named_views_with_an_env_and_a_job_axis():
    core = CoreState(n_envs=3, n_jobs=2)
    core.t_s[1, 0] = 900.0
    core.region[2, 1] = 4
    assert core.f[1, 0, F_T_S] == 900.0 and core.i[2, 1, I_REGION] == 4
    assert core.step_acc.shape == (3, 2, len(METRICS)) and core.progress_mb.shape == (3, 2)
    assert "t_s" in CoreState.__doc__ and "[s]" in CoreState.t_s.__doc__


@pytest.mark.parametrize("scenario", ["paper"])
def test_reward_is_the_sum_of_its_reported_terms(scenario):
    venv = venv_for(scenario, 7)
    venv.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(50):
        m = venv.action_masks()[:, : venv.R + 1]
        target = (rng.random(m.shape) * m).argmax(axis=1)
        _, rew, _, _, infos = venv.step(np.stack([target, rng.integers(0, venv.L, 7)], axis=1))
        terms = infos["reward_terms"]
        total = sum(v for k, v in terms.items() if not k.startswith("_"))
        np.testing.assert_allclose(rew, total, rtol=1e-12, atol=1e-12)
