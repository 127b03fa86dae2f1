"""The simulation core on a small hand-made world whose every number can be computed by hand."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.carbon import CarbonTable
from sim.errors import IllegalTransition
from sim.gpu import GpuModel
from sim.network import Network
from sim.scenario import parse_scenario
from sim.simulator import WAIT, Simulator
from sim.states import State, check_transition

HOURS = 80
# region 0 "dirty" 400 + 10*h g/kWh, region 1 "clean" 50 g/kWh constant, region 2 100 g/kWh
CI = np.stack([400.0 + 10.0 * np.arange(HOURS), np.full(HOURS, 50.0), np.full(HOURS, 100.0)])
CLOCKS = np.array([1000.0, 1500.0, 2000.0])
MODEL = GpuModel(
    "TESTGPU",
    "toy",
    CLOCKS,
    t0_s=0.0,
    t1_s_mhz=2000.0,
    p0_w=50.0,
    p1_w_per_mhz=0.0,
    p3_w_per_mhz3=150.0 / 2000.0**3,
    idle_w=40.0,
)  # 1 s/mini-batch and 200 W at 2000 MHz
NET = Network(("A", "B", "C"), ("x", "y", "z"), np.full((3, 3), 8.0), np.full((3, 3), 100.0), np.full((3, 3), 0.02))


# the issue-14 terms, all off: the hand-computed cases below check the core physics; each term has its own test
OFF = dict(host_power=False, embodied_carbon=False, checkpoint_stall=False, scaling_efficiency=False, restart_s=0.0)


def scenario(**over):
    job = dict(
        workload="toy",
        params=1e9,
        bytes_per_param=16,
        gpus=4,
        minibatches=20_000,
        checkpoint_interval_minibatches=1000,
        home="A",
        storage_gbps=16.0,
    )
    job.update(over.pop("job", {}))
    data = dict(
        name="t",
        step_minutes=15,
        episode_hours=48,
        clock_levels=3,
        regions=[
            dict(name="A", zone="A", gpu="TESTGPU", gpus=4, pue=1.5),
            dict(name="B", zone="B", gpu="TESTGPU", gpus=4, pue=1.2),
            dict(name="C", zone="C", gpu="TESTGPU", gpus=2, pue=1.0),
        ],
        job=job,
        faults=over.pop("faults", {}),
        model=OFF,
        transfer_kwh_per_gb=0.06,
        splits=dict(
            train=["2030-01-01", "2030-02-01"],
            validation=["2030-02-01", "2030-03-01"],
            test=["2030-03-01", "2030-04-01"],
        ),
    )
    data.update(over)
    return parse_scenario(data, "test")


def make_sim(seed=0, **over) -> Simulator:
    sc = scenario(**over)
    carbon = CarbonTable(("A", "B", "C"), np.datetime64("2030-01-01T00", "h"), CI, "direct", "hand-made")
    sim = Simulator(sc, carbon, NET, [MODEL] * 3)
    sim.record = True
    sim.reset(0, np.random.default_rng(seed))
    return sim


def test_illegal_transitions_raise():
    with pytest.raises(IllegalTransition, match="TOLERANCE -> MIGRATION"):
        check_transition(State.TOLERANCE, State.MIGRATION)
    with pytest.raises(IllegalTransition, match="terminal"):
        check_transition(State.COMPLETED, State.TOLERANCE)
    check_transition(State.TOLERANCE, State.SUSPEND)  # the paper's edge is legal


def test_stay_home_completes_at_hand_computed_time_energy_and_carbon():
    sim = make_sim()
    while not sim.done:
        sim.step(0, 2)
    # restore 16 GB at 16 Gbit/s = 8 s at 4 x 40 W idle, then 20,000 mini-batches of 1 s at 4 x 200 W
    assert sim.completed_at_s == pytest.approx(8.0 + 20_000.0)
    ep = sim.metrics(sim.episode_acc)
    it_kwh = (4 * 40 * 8 + 4 * 200 * 20_000) / 3.6e6
    assert ep["it_energy_kwh"] == pytest.approx(it_kwh)
    assert ep["facility_energy_kwh"] == pytest.approx(1.5 * it_kwh)
    # carbon by hand: the idle 8 s and first 3592 s run in hour 0, then whole hours at 400 + 10 h
    run_s = np.zeros(HOURS)
    t = 8.0
    end = 8.0 + 20_000.0
    while t < end:
        h = int(t // 3600)
        nxt = min(end, (h + 1) * 3600.0)
        run_s[h] += nxt - t
        t = nxt
    expected_g = (4 * 40 * 8 / 3.6e6 * 1.5 * 400.0) + float(np.sum(run_s * 4 * 200 / 3.6e6 * 1.5 * CI[0]))
    assert ep["carbon_g"] == pytest.approx(expected_g, rel=1e-9)
    assert ep["minibatches_done"] == pytest.approx(20_000)
    assert ep["cap_violations"] == 0


def test_migration_resumes_at_the_checkpointed_minibatch():
    sim = make_sim()
    sim.step(0, 2)  # 900 s: 8 s restore + 892 mini-batches
    assert sim.progress_mb == pytest.approx(892.0)
    sim.step(1, 2)  # move to B: suspend (write 8 s), transfer, restore
    states = [State(b).name for _, _, b in sim.transitions]
    assert states[-4:] == ["SUSPEND", "MIGRATION", "SCALING", "TOLERANCE"]
    assert sim.ckpt_mb == 892.0 and sim.region == 1
    # transfer 16 GB at 8 Gbit/s = 16 s + 0.1 s RTT; 8 s write, 8 s restore: run resumes at 1800 + 32.1 s
    resume_t = 900.0 + 8.0 + 16.1 + 8.0
    assert sim.progress_mb == pytest.approx(892.0 + (1800.0 - resume_t))
    ep = sim.metrics(sim.episode_acc)
    assert ep["lost_minibatches"] == 0 and ep["transfers"] == 1
    assert ep["transfer_gb"] == pytest.approx(16.0) and ep["egress_usd"] == pytest.approx(16 * 0.02)
    # transfer carbon: 16 GB x 0.06 kWh/GB, half at each end's grid (hour 0: A = 400, B = 50)
    assert ep["transfer_carbon_g"] == pytest.approx(16 * 0.06 * 0.5 * (400 + 50))


def test_mid_minibatch_decision_finishes_the_minibatch_first():
    sim = make_sim(job=dict(workload="toy", params=1e9, gpus=4, minibatches=20_000, home="A", storage_gbps=15.0))
    sim.step(0, 1)  # restore 128/15 s, so 891.47 s of 4/3-s mini-batches: not integral
    p = sim.progress_mb
    assert p != math.floor(p)
    sim.step(WAIT, 1)
    assert sim.state == State.WAITING and sim.ckpt_mb == math.ceil(p)


def test_gpu_failure_rolls_back_to_last_checkpoint_and_reports_loss():
    sim = make_sim()
    sim.step(0, 2)
    sim.step(0, 2)  # progress 892 + 900 = 1792
    sim.fail_left_gpu_h = 4 * 100 / 3600.0  # fail after 100 s more on 4 GPUs
    sim.step(0, 2)
    ep = sim.metrics(sim.episode_acc)
    assert ep["gpu_failures"] == 1 and ep["rollbacks"] == 1
    assert ep["lost_minibatches"] == pytest.approx(1892.0 - 1000.0)
    # no spare GPU in the pool of 4: recovers on 3 GPUs, restore 8 s, then 3/4 speed
    assert sim.n_gpus == 3
    remaining_s = 900.0 - 100.0 - 8.0
    assert sim.progress_mb == pytest.approx(1000.0 + remaining_s * 0.75)
    assert sim.progress_mb == pytest.approx(ep["minibatches_done"] - ep["lost_minibatches"])


def test_failed_transfer_leaves_job_recoverable_at_source():
    sim = make_sim(faults=dict(transfer_failure_prob=1.0))
    sim.step(0, 2)
    sim.step(1, 2)
    ep = sim.metrics(sim.episode_acc)
    assert ep["transfer_failures"] == 1 and ep["transfers"] == 0 and ep["lost_minibatches"] == 0
    assert sim.region == 0 and sim.state == State.TOLERANCE
    assert sim.progress_mb >= 892.0


def test_elastic_destination_runs_on_fewer_gpus_at_proportional_speed():
    sim = make_sim()
    sim.step(2, 2)  # start directly in C, which has 2 GPUs of the 4 requested
    assert sim.n_gpus == 2
    p0 = sim.progress_mb
    sim.step(2, 2)
    assert sim.progress_mb - p0 == pytest.approx(900.0 * 2 / 4)
    assert sim.power_w == pytest.approx(2 * 200.0)


def test_power_cap_violations_are_measured_and_throttle_enforces():
    sim = make_sim(
        job=dict(workload="toy", params=1e9, gpus=4, minibatches=20_000, home="A", storage_gbps=16.0, power_cap_w=700.0)
    )
    sim.step(0, 2)
    ep = sim.metrics(sim.episode_acc)
    assert ep["cap_violations"] == 1 and ep["cap_violation_s"] == pytest.approx(892.0)
    assert ep["cap_excess_j"] == pytest.approx(892.0 * 100.0)
    sim = make_sim(
        cap_enforcement="throttle",
        job=dict(
            workload="toy", params=1e9, gpus=4, minibatches=20_000, home="A", storage_gbps=16.0, power_cap_w=700.0
        ),
    )
    sim.step(0, 2)
    assert sim.metrics(sim.episode_acc)["cap_violation_s"] == 0
    assert sim.power_w <= 700.0


actions = st.lists(st.tuples(st.sampled_from([0, 1, 2, WAIT]), st.integers(0, 2)), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(
    actions=actions,
    seed=st.integers(0, 10_000),
    fail=st.sampled_from([0.0, 0.05]),
    xfail=st.sampled_from([0.0, 0.5]),
    outage=st.sampled_from([0.0, 2.0]),
    shortage=st.sampled_from([0.0, 0.5, 1.0]),
    elastic=st.booleans(),
)
def test_invariants_under_random_actions_and_faults(actions, seed, fail, xfail, outage, shortage, elastic):
    sim = make_sim(
        seed=seed,
        faults=dict(
            gpu_failure_per_gpu_hour=fail,
            transfer_failure_prob=xfail,
            outage_per_region_day=outage,
            outage_mean_hours=1.0,
            shortage_scale=shortage,
        ),
        job=dict(elastic=elastic),
    )
    prev_ep = sim.metrics(sim.episode_acc)
    # the action list repeated until the job completes or the 48 h horizon truncates the episode
    for target, level in itertools.islice(itertools.cycle(actions), sim.n_steps):
        before = sim.progress_mb
        sim.step(target, level)
        ep = sim.metrics(sim.episode_acc)
        st_ = sim.metrics(sim.step_acc)
        for key in ("it_energy_kwh", "facility_energy_kwh", "carbon_g", "transfer_carbon_g"):
            assert st_[key] >= 0
            assert ep[key] == pytest.approx(prev_ep[key] + st_[key], rel=1e-9, abs=1e-9)
        # progress moves only forward, except a reported rollback
        if st_["lost_minibatches"] == 0:
            assert sim.progress_mb >= before - 1e-9
        assert sim.progress_mb == pytest.approx(ep["minibatches_done"] - ep["lost_minibatches"], abs=1e-6)
        assert 0 <= sim.progress_mb <= 20_000
        prev_ep = ep
        if sim.done or sim.truncated:
            break
    assert sim.done or sim.truncated  # ran to the end of the episode
    # carbon and energy recomputed independently from the logged pieces and the raw intensity array
    it_kwh = fac_kwh = carbon_g = 0.0
    pue = [1.5, 1.2, 1.0]
    for t, dt, r, s, power_w, n, dest in sim.segments:
        h = int(t // 3600)
        assert t + dt <= (h + 1) * 3600 + 1e-7  # pieces never straddle an hour (a 1e-12 s piece may start on one)
        if s == State.TOLERANCE:  # n GPUs at one of the supported clocks
            assert min(abs(power_w - n * (50.0 + 150.0 * (c / 2000.0) ** 3)) for c in CLOCKS) < 1e-9
        elif s in (State.SUSPEND, State.SCALING, State.RECOVERING):
            assert power_w == pytest.approx(n * 40.0)
        else:
            assert power_w == 0.0
        e = power_w * dt / 3.6e6
        it_kwh += e
        fac_kwh += e * pue[r]
        carbon_g += e * pue[r] * CI[r, h]
        if s == State.MIGRATION:
            carbon_g += 16 * 0.06 * dt / sim.xfer_s[r][dest] * 0.5 * (CI[r, h] + CI[dest, h])
    ep = sim.metrics(sim.episode_acc)
    assert ep["it_energy_kwh"] == pytest.approx(it_kwh, rel=1e-9, abs=1e-12)
    assert ep["facility_energy_kwh"] == pytest.approx(fac_kwh, rel=1e-9, abs=1e-12)
    assert ep["carbon_g"] == pytest.approx(carbon_g, rel=1e-9, abs=1e-9)
    # time is fully accounted for: the states' times add up to the elapsed time
    assert sum(v for k, v in ep.items() if k.startswith("time_")) == pytest.approx(
        min(sim.t_s, sim.completed_at_s), rel=1e-9
    )


def test_same_seed_same_trajectory():
    runs = []
    for _ in range(2):
        sim = make_sim(
            seed=7, faults=dict(gpu_failure_per_gpu_hour=0.05, transfer_failure_prob=0.5, outage_per_region_day=2.0)
        )
        for i in range(100):
            sim.step([0, 1, 2, WAIT][i % 7 % 4], i % 3)
        runs.append((sim.segments, sim.episode_acc))
    assert runs[0] == runs[1]


def test_staying_cancels_a_move_still_waiting_for_its_minibatch_boundary():
    sim = make_sim(job=dict(workload="toy", params=1e9, gpus=4, minibatches=20_000, home="A", storage_gbps=15.0))
    sim.step(0, 2)
    sim.draining, sim.after_suspend = True, 1  # as if a move was decided but the mini-batch had not finished
    sim.step(0, 2)
    assert sim.state == State.TOLERANCE and sim.region == 0 and not sim.draining
