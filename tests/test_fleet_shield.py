"""The fleet's deadline shield (``baselines.fleet_policies.fleet_deadline_shield``, issue 25) counts the GPUs a job
can actually get this step: the pools serve more urgent jobs first, and a region's power cap can leave free GPUs
dark. Tiny fleets, expectations worked out from the jobs' tables."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from baselines.fleet_policies import fleet_deadline_shield, shield_reserve_s
from envs.fleet import CarbonFleetEnv
from sim.fleet_jobs import with_deadlines
from sim.paths import SCENARIO_DIR
from sim.rules import WAIT
from sim.scenario import parse_fleet_scenario
from sim.tables import PARAMS

SMALL = yaml.safe_load((SCENARIO_DIR / "fleet_small.yaml").read_text())
KR, DE, CA = 0, 1, 2  # fleet_small's regions: 4 V100s, 4 A40s, 2 A40s


def _fleet(jobs: list[dict], cap_w: dict[int, float] | None = None) -> CarbonFleetEnv:
    d = copy.deepcopy(SMALL)
    d["jobs"]["list"] = jobs
    for r, w in (cap_w or {}).items():
        d["regions"][r]["power_cap_w"] = w
    d["cap_enforcement"] = "throttle"
    env = CarbonFleetEnv(parse_fleet_scenario(d, "t.yaml"), "test", n_slots=2)
    env.reset(seed=0, options={"start_hour": 0})
    return env


def _set_deadlines(env: CarbonFleetEnv, d: np.ndarray) -> None:
    env.jobs = with_deadlines(env.jobs, d)
    env._P[:, PARAMS.index("deadline_s")] = d


def _run_s(env: CarbonFleetEnv, j: int, r: int) -> float:
    """s job ``j`` (holding no GPUs, checkpoint at home) takes in region ``r`` on its whole request at the top clock:
    checkpoint read and restart, the transfer from home, its mini-batches with their checkpoint stalls."""
    P = env._P[j]
    restart = P[PARAMS.index("io_s")] + P[PARAMS.index("restore_s")]
    per_mb = env.jobs.minibatch_s[j, r, env.L - 1] + P[PARAMS.index("stall_per_mb_s")]
    return restart + env._xfer_s[j, env.jobs.home[j], r] + env.jobs.minibatches[j] * per_mb


def test_a_job_is_not_left_waiting_for_gpus_a_more_urgent_job_takes():
    # two 2-GPU jobs queued at home in CA-ON (2 A40s), both told to start there at the top clock. Equal slack: the
    # pool serves job 0 first (arrival order) and it takes both GPUs. Job 1's deadline leaves it half a step more
    # than its run in its fastest other region plus the reserve: it cannot wait a step, and CA-ON gives it nothing,
    # so it must start now in KR or DE (the cleanest of those that finish it in time), and gets its GPUs there.
    job = {"arrival_hours": 0.0, "gpus": 2, "duration_hours": 1.0, "workload": "resnet50", "home": "CA-ON"}
    env = _fleet([job, job])
    reserve = shield_reserve_s(env)[1]
    d1 = min(_run_s(env, 1, KR), _run_s(env, 1, DE)) + reserve + 0.5 * env.step_s
    _set_deadlines(env, np.array([d1, d1]))  # equal slack: served in job order (arrival)
    assert _run_s(env, 0, CA) + reserve <= d1  # job 0 finishes in time at home (precondition)
    fits = [r for r in (KR, DE) if _run_s(env, 1, r) + reserve <= d1]
    expected = min(fits, key=lambda r: env.intensity_now()[r])
    targets, levels = fleet_deadline_shield(env, np.full(2, CA), np.full(2, env.L - 1))
    assert targets.tolist() == [CA, expected] and levels.tolist() == [env.L - 1] * 2  # job 0's decision stands
    info = env.step_jobs(targets, levels)[4]
    assert info["job_region"].tolist() == [CA, expected] and info["job_gpus"].tolist() == [2, 2]


def test_a_region_whose_power_cap_is_spent_is_not_where_the_shield_sends_a_job():
    # job 0 (2 GPUs) runs in KR at the top clock; KR's cap leaves less than one GPU at the lowest clock for anyone
    # else, so its two free GPUs stay dark. Job 1 (home KR, 1 GPU, due in its run in KR plus the reserve and half a
    # step) cannot wait, and cannot start in KR: the shield sends it to an A40 region, where it gets its GPU.
    a = {"arrival_hours": 0.0, "gpus": 2, "duration_hours": 6.0, "workload": "resnet50", "home": "KR"}
    b = {"arrival_hours": 0.25, "gpus": 1, "duration_hours": 1.0, "workload": "resnet50", "home": "KR"}
    probe = _fleet([a, b])
    p, host = probe.jobs.gpu_power_w, probe.jobs.host_power_w[KR]
    cap = 2 * (p[0, KR, -1] + host) + 0.5 * (p[1, KR, 0] + host)  # job 0 at the top clock + half a GPU at the lowest
    env = _fleet([a, b], cap_w={KR: cap})
    home, top = np.zeros(2, dtype=np.int64), np.full(2, env.L - 1)
    env.step_jobs(home, top)  # step 0: job 0 starts in KR, job 1 has not arrived
    assert env.job_gpus().tolist() == [2, 0] and env.free_now()[KR] - env.gpus_in_use()[KR] == 2
    reserve = shield_reserve_s(env)
    d = env.jobs.deadline_s.copy()
    d[1] = env.t_s + _run_s(env, 1, KR) + reserve[1] + 0.5 * env.step_s
    _set_deadlines(env, d)
    targets, levels = fleet_deadline_shield(env, np.array([KR, KR]), top)
    assert targets[0] == KR and targets[1] in (DE, CA) and levels[1] == env.L - 1
    info = env.step_jobs(targets, levels)[4]
    assert info["job_region"][1] == targets[1] and info["job_gpus"].tolist() == [2, 1]


def test_the_shield_leaves_a_job_alone_that_can_afford_to_wait():
    job = {"arrival_hours": 0.0, "gpus": 2, "duration_hours": 1.0, "workload": "resnet50", "home": "CA-ON"}
    env = _fleet([job, job])
    reserve = shield_reserve_s(env)
    # waiting a step still leaves a step and a half in hand (a job holding no GPUs keeps one more step: the pools can
    # fill within a step)
    d = min(_run_s(env, 1, KR), _run_s(env, 1, DE)) + reserve[1] + 2.5 * env.step_s
    _set_deadlines(env, np.array([d, d]))
    targets, _ = fleet_deadline_shield(env, np.full(2, WAIT), np.zeros(2, dtype=np.int64))
    assert targets.tolist() == [WAIT, WAIT]


@pytest.mark.parametrize("policy", ["packing", "oracle"])
def test_every_job_the_shield_overrides_gets_gpus_where_it_sends_it(policy):
    # on the small fleet with tight deadlines: a job the shield sends somewhere holds GPUs there after the step
    from baselines import fleet_policies as fp

    env = CarbonFleetEnv("fleet_small", "test")
    pol = fp.make_fleet_policy(policy)
    env.reset(seed=3)
    _set_deadlines(env, env.jobs.arrival_s + 0.6 * (env.jobs.deadline_s - env.jobs.arrival_s))
    pol.reset(env, 3)
    orig, checked, n_sent = fp.fleet_deadline_shield, [], 0

    def spy(e, t, lv, *args, **kw):
        t0 = np.array(t)
        t1, l1 = orig(e, t, lv, *args, **kw)
        checked.append((t0, t1))
        return t1, l1

    fp.fleet_deadline_shield = spy
    try:
        done = truncated = False
        while not (done or truncated):
            t, lv = pol.act(env)
            _, _, done, truncated, info = env.step_jobs(t, lv, pol.fifo, pol.gpus)
            t0, t1 = checked[-1]
            sent = np.flatnonzero((t1 != t0) & (t1 >= 0))
            got = (info["job_gpus"][sent] > 0) | (info["job_state"][sent] == 7)  # (7: completed in the step)
            ok = (info["job_region"][sent] == t1[sent]) & got
            assert ok.all(), f"step {env.k}: jobs {sent[~ok].tolist()} sent by the shield got no GPU"
            n_sent += sent.size
        # the deadlines are tight enough for the shield to act on packing; the oracle shields only jobs off their
        # plans, and its plans meet these deadlines
        assert n_sent > 0 or policy == "oracle"
    finally:
        fp.fleet_deadline_shield = orig


@pytest.mark.parametrize(("failure_prob", "moves_now"), [(0.0, False), (0.02, True)])
def test_a_job_that_must_move_keeps_a_step_in_hand_for_a_failed_transfer(failure_prob, moves_now):
    # job 0 fills KR (4 GPUs); job 1 (2 GPUs, home KR) arrives after and must move to an A40 region to run. Its
    # deadline leaves 2.5 steps beyond its run there plus the reserve. Without transfer failures it can wait a step
    # (keeping two in hand, as a job holding no GPUs does); with them, a failed transfer leaves it waiting out a step
    # at KR (sim.physics.handle), so a move counts one more step: it cannot wait, and is sent now.
    a = {"arrival_hours": 0.0, "gpus": 4, "duration_hours": 6.0, "workload": "resnet50", "home": "KR"}
    b = {"arrival_hours": 0.25, "gpus": 2, "duration_hours": 1.0, "workload": "resnet50", "home": "KR"}
    d = copy.deepcopy(SMALL)
    d["jobs"]["list"] = [a, b]
    d["faults"] = {"transfer_failure_prob": failure_prob}
    env = CarbonFleetEnv(parse_fleet_scenario(d, "t.yaml"), "test", n_slots=2)
    env.reset(seed=0, options={"start_hour": 0})
    env.step_jobs(np.zeros(2, dtype=np.int64), np.full(2, env.L - 1))
    assert env.job_gpus().tolist() == [4, 0]  # KR is full
    reserve = shield_reserve_s(env)[1]
    deadlines = env.jobs.deadline_s.copy()
    deadlines[1] = env.t_s + min(_run_s(env, 1, DE), _run_s(env, 1, CA)) + reserve + 2.5 * env.step_s
    _set_deadlines(env, deadlines)
    targets, _ = fleet_deadline_shield(env, np.array([KR, WAIT]), np.full(2, env.L - 1))
    assert (targets[1] in (DE, CA)) == moves_now and (targets[1] == WAIT) != moves_now


class _AlwaysWait:
    """A single-job rule that never runs its job (``act`` -> [wait, lowest clock])."""

    def reset(self, env, seed):
        pass

    def act(self, obs, view):
        return np.array([view.n_regions, 0])


def test_the_per_job_rules_run_behind_the_shield():
    # a per-job rule that never runs anything still finishes every job of the small fleet by its deadline: the
    # shield starts each one when it can wait no longer
    from baselines.fleet_policies import PerJobPolicy, run_fleet_episode

    env = CarbonFleetEnv("fleet_small", "test")
    m = run_fleet_episode(env, PerJobPolicy("waiter", _AlwaysWait), seed=1)
    assert m["jobs_completed"] == env.J and m["deadline_met_rate"] == 1.0


def test_a_job_told_to_pause_does_not_count_on_getting_its_gpu_back():
    # jobs 0 and 1 (1 GPU each, home CA-ON) fill CA-ON's 2 A40s, job 2 fills DE's 4. Job 0 is told to pause. Its
    # deadline leaves it, after this step, its run restarted in CA-ON plus the reserve and a minute: if it got its
    # GPU back next step, waiting would be safe; but once it pauses CA-ON's GPU is free for the jobs served after it,
    # DE is full and KR's V100s are too slow: it must keep running.
    job = {"arrival_hours": 0.0, "gpus": 1, "duration_hours": 4.0, "workload": "bert_squad", "home": "CA-ON"}
    big = {"arrival_hours": 0.0, "gpus": 4, "duration_hours": 8.0, "workload": "resnet50", "home": "DE"}
    env = _fleet([job, job, big])
    home, top = np.array([CA, CA, DE]), np.full(3, env.L - 1)
    env.step_jobs(home, top)
    env.step_jobs(home, top)
    assert env.job_gpus().tolist() == [1, 1, 4] and env.free_now()[[CA, DE]].tolist() == [2, 4]
    reserve = shield_reserve_s(env)[0]
    P = env._P[0]
    restart = P[PARAMS.index("io_s")] + P[PARAMS.index("restore_s")]
    left = env.remaining_minibatches()[0] * (env.jobs.minibatch_s[0, :, -1] + P[PARAMS.index("stall_per_mb_s")])
    run_next = restart + env._xfer_s[0, CA] + left  # (R,) s from a restart next step, checkpoint in CA-ON
    assert run_next[KR] > run_next[CA] + 60.0  # (precondition: KR is too slow)
    deadlines = env.jobs.deadline_s.copy()
    deadlines[0] = env.t_s + env.step_s + run_next[CA] + reserve + 60.0
    deadlines[1:] = deadlines[0] + 3600.0, env.horizon_s  # more slack: served after job 0
    _set_deadlines(env, deadlines)
    targets, levels = fleet_deadline_shield(env, np.array([WAIT, CA, DE]), top)
    assert targets.tolist() == [CA, CA, DE] and levels.tolist() == [env.L - 1] * 3
