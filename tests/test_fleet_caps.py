"""Regional power caps of CarbonFleet-v0 (issue 25): provisioned from the pools, enforced by throttling clocks."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import yaml

from envs.fleet import CarbonFleetEnv
from sim.errors import ConfigError
from sim.paths import SCENARIO_DIR
from sim.scenario import load_fleet_scenario, parse_fleet_scenario

SMALL = yaml.safe_load((SCENARIO_DIR / "fleet_small.yaml").read_text())
STEP_S = 900.0


def test_the_fleet_caps_are_the_pools_theoretical_peak_times_fans_provisioning_factor():
    # host busy W per GPU by hand (CCF coefficients, sim/hardware.py): p3.16xlarge 64 Broadwell vCPUs x 3.69 W +
    # (488 - 69.65) GB x 0.392 W, over 8 GPUs; g5.48xlarge 192 EPYC vCPUs x 1.69 W + (768 - 2 x 129.78) GB x 0.392 W
    v100 = 300.0 + (64 * 3.69 + (488 - 69.65) * 0.392) / 8  # 350.02 W
    a40 = 300.0 + (192 * 1.69 + (768 - 2 * 129.78) * 0.392) / 8  # 365.47 W
    sc = load_fleet_scenario("fleet")
    assert sc.power_provisioning_factor == 0.72 and sc.cap_enforcement == "throttle"
    expected = [16 * v100 * 0.72, 8 * v100 * 0.72, 16 * v100 * 0.72, 8 * a40 * 0.72, 8 * a40 * 0.72, 8 * a40 * 0.72]
    assert [r.power_cap_w for r in sc.regions] == pytest.approx(expected, rel=1e-9)
    assert round(sc.regions[0].power_cap_w) == 4032 and round(sc.regions[3].power_cap_w) == 2105


def test_an_explicit_cap_wins_and_an_unknown_gpu_is_named():
    d = copy.deepcopy(SMALL)
    d["power_provisioning_factor"] = 0.5
    d["regions"][1]["power_cap_w"] = 123.0
    sc = parse_fleet_scenario(d, "t.yaml")
    assert sc.regions[1].power_cap_w == 123.0 and sc.regions[2].power_cap_w == pytest.approx(2 * 365.473560 * 0.5)
    assert math.isinf(parse_fleet_scenario(copy.deepcopy(SMALL), "t.yaml").regions[0].power_cap_w)
    d = copy.deepcopy(SMALL)
    d["power_provisioning_factor"] = 0.72
    d["regions"][0]["gpu"] = "P100"
    with pytest.raises(ConfigError, match=r"t\.yaml: regions\[0\]\.gpu.*no TDP for GPU 'P100'"):
        parse_fleet_scenario(d, "t.yaml")


def _two_jobs_in_kr(cap_w: float) -> CarbonFleetEnv:
    d = copy.deepcopy(SMALL)
    d["cap_enforcement"] = "throttle"
    d["regions"][0]["power_cap_w"] = cap_w
    job = {"arrival_hours": 0.0, "gpus": 2, "duration_hours": 3.0, "workload": "resnet50", "home": "KR"}
    # job 0 is shorter: its deadline (2 x its time alone) leaves it the least slack, so the pools serve it first
    d["jobs"]["list"] = [dict(job, duration_hours=1.5), dict(job)]
    env = CarbonFleetEnv(parse_fleet_scenario(d, "t.yaml"), "test", n_slots=2)
    env.reset(seed=0)
    return env


def _highest_fitting(p, host, n, budget_w):
    """The highest clock level at which ``n`` GPUs (board ``p[level]`` + ``host`` W each) fit ``budget_w``, else 0."""
    fits = [lv for lv in range(len(p)) if n * (p[lv] + host) <= budget_w]
    return fits[-1] if fits else 0


# (job 1's GPUs, job 0's level, job 1's level): 1000 W: 540.6 + 384.6 W; 780 W: 540.6 + 192.3 W (one GPU: a second
# at the lowest clock would need 259.3 W of the 239.4 left); 500 W: 384.6 W, job 1 waits (115.4 W left < 129.6)
@pytest.mark.parametrize(("cap_w", "expected"), [(1000.0, (2, 2, 1)), (780.0, (1, 2, 1)), (500.0, (0, 1, None))])
def test_jobs_run_at_the_highest_clock_and_on_the_gpus_their_share_of_the_cap_powers(cap_w, expected):
    # two 2-GPU resnet50 jobs at home in KR (4 V100s), both asking for the top clock (level 2). Step 0: neither
    # holds GPUs; job 0 is served first (least slack): it takes its 2 GPUs and the highest level its
    # budget (the cap) fits; job 1 starts on the GPUs the power left runs at the lowest clock (0 GPUs: it waits),
    # at the level that power fits. From then on job 0's budget is the cap minus job 1's lowest-clock power (job 1
    # keeps its GPUs powered), job 1's the cap minus job 0's power.
    env = _two_jobs_in_kr(cap_w)
    jobs = env.jobs
    p = jobs.gpu_power_w[0, 0]  # W per GPU at levels 0, 1, 2 on KR's V100: 79.6, 142.3, 220.3
    host = jobs.host_power_w[0]  # host W per busy GPU: 50.0
    low = p[0] + host  # 129.6 W: a GPU at the lowest clock with its host
    stall = jobs.checkpoint_gb[0] / jobs.snapshot_gb_per_s[0] / jobs.checkpoint_interval_minibatches[0]
    lv0_first = _highest_fitting(p, host, 2, cap_w)
    g1 = min(2, int((cap_w - 2 * (p[lv0_first] + host)) // low))  # job 1's GPUs
    lv0 = _highest_fitting(p, host, 2, cap_w - g1 * low)
    lv1 = _highest_fitting(p, host, g1, cap_w - 2 * (p[lv0] + host))
    assert (g1, lv0, lv1 if g1 else None) == expected
    assert lv0_first == (2 if cap_w > 2 * (p[2] + host) else 1)
    home, top = np.zeros(2, dtype=np.int64), np.full(2, 2)
    env.step_jobs(home, top)  # both start (restore) or job 1 waits
    info = env.step_jobs(home, top)[4]
    before = np.array(info["job_progress_mb"])
    info = env.step_jobs(home, top)[4]
    done = np.asarray(info["job_progress_mb"]) - before
    t_mb = jobs.minibatch_s[0, 0]
    assert list(info["job_gpus"]) == [2, g1]
    assert done[0] == pytest.approx(STEP_S / (t_mb[lv0] + stall), rel=1e-12)
    if g1:  # on g1 of its 2 GPUs at the scaling curve's S(g1) / S(2) of its speed (S(1) = 1, S(2) = 1.94)
        speed = {1: 1 / 1.94, 2: 1.0}[g1]
        assert done[1] == pytest.approx(STEP_S / (t_mb[lv1] / speed + stall), rel=1e-12)
    else:
        assert done[1] == 0.0
    power = 2 * (p[lv0] + host) + g1 * (p[lv1] + host)
    assert power <= cap_w
    assert env._obs[5] == pytest.approx(np.float32(power / cap_w), rel=1e-6)  # KR's "fleet power / cap"
    assert info["cap_violation_s"] == 0.0  # nothing over the cap: throttled clocks and dark GPUs instead


def test_with_measure_the_cap_only_books_the_excess():
    d = copy.deepcopy(SMALL)
    d["regions"][0]["power_cap_w"] = 780.0
    job = {"arrival_hours": 0.0, "gpus": 2, "duration_hours": 3.0, "workload": "resnet50", "home": "KR"}
    d["jobs"]["list"] = [dict(job), dict(job)]
    env = CarbonFleetEnv(parse_fleet_scenario(d, "t.yaml"), "test", n_slots=2)
    env.reset(seed=0)
    home, top = np.zeros(2, dtype=np.int64), np.full(2, 2)
    for _ in range(3):
        info = env.step_jobs(home, top)[4]
    p, host = env.jobs.gpu_power_w[0, 0, 2], env.jobs.host_power_w[0]
    assert env._out.power[0] == pytest.approx(4 * (p + host))  # both at the top clock, 1081.25 W
    assert info["cap_violation_s"] == 3 * STEP_S
