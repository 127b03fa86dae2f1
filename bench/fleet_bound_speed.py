"""Fleet LP bound solve time: 7 days x 6 regions x 160 Philly jobs at hourly resolution (SPEC E4 target < 10 s).

    python bench/fleet_bound_speed.py [--scenario fleet] [--episodes 5] [--split test]

Per episode (seed 0, 1, ...): the jobs drawn from the trace, a 168-hour window of the split's carbon traces
(start hour drawn by the seed) and the pools' hourly free GPUs (the scenario's shortage process, hourly
maximum for the LP; per 15-minute step for the rounded schedule). Times ``fleet_lower_bound`` (matrix build +
HiGHS) and ``lp_schedule`` (rounding), wall clock, and
prints the median and worst, the LP size, the bound and the rounded schedule's carbon and completed jobs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from baselines.fleet_bound import fleet_lower_bound, hourly_capacity, lp_schedule, n_hours  # noqa: E402
from loaders.carbon import carbon_table  # noqa: E402
from loaders.philly import fleet_jobs, load_philly  # noqa: E402
from sim.availability import free_gpus_table  # noqa: E402
from sim.scenario import load_fleet_scenario  # noqa: E402


def run(scenario: str = "fleet", episodes: int = 5, split: str = "test") -> list[dict]:
    sc = load_fleet_scenario(scenario)
    start, end = sc.splits[split]
    carbon = carbon_table(sc.zones, str(start), str(end), sc.signal, data_dir=sc.data_dir)
    trace = load_philly()
    rows = []
    for seed in range(episodes):
        rng = np.random.default_rng(seed)
        jobs = fleet_jobs(sc, seed, trace)
        hours = n_hours(jobs)
        h0 = int(rng.integers(0, carbon.n_hours - hours + 1))
        ci = carbon.intensity_g_per_kwh[:, h0 : h0 + hours]
        free = free_gpus_table(
            rng, [r.gpus for r in sc.regions], int(hours * 3600 / sc.step_s), sc.step_s, sc.faults.shortage_scale
        )
        cap = hourly_capacity(np.array(free), sc.step_s, hours)
        t0 = time.perf_counter()
        bound = fleet_lower_bound(jobs, ci, cap)
        t1 = time.perf_counter()
        per_h = int(3600 / sc.step_s)  # the rounded schedule decides every step, as the environment will
        sched = lp_schedule(jobs, bound, np.repeat(ci, per_h, axis=1), np.array(free), sc.step_s)
        t2 = time.perf_counter()
        rows.append(
            dict(
                seed=seed,
                jobs=jobs.n_jobs,
                regions=jobs.n_regions,
                hours=hours,
                variables=bound.n_variables,
                bound_s=t1 - t0,
                highs_s=bound.solve_s,
                round_s=t2 - t1,
                bound_kg=bound.carbon_kg,
                oracle_kg=sched.carbon_kg,
                completed=int(sched.completed.sum()),
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="fleet", help="fleet scenario name or YAML path (default: fleet)")
    ap.add_argument("--episodes", type=int, default=5, help="episodes to time (default 5)")
    ap.add_argument("--split", default="test", help="carbon split (default test = 2023)")
    a = ap.parse_args()
    rows = run(a.scenario, a.episodes, a.split)
    for r in rows:
        print(
            f"seed {r['seed']}: {r['jobs']} jobs x {r['regions']} regions x {r['hours']} h, "
            f"{r['variables']} variables; "
            f"bound {r['bound_kg']:.2f} kg in {r['bound_s']:.2f} s (HiGHS {r['highs_s']:.2f} s); "
            f"rounded schedule {r['oracle_kg']:.2f} kg, {r['completed']}/{r['jobs']} jobs complete, "
            f"{r['round_s']:.2f} s"
        )
    times = [r["bound_s"] for r in rows]
    print(f"fleet_bound_solve_median_s: {statistics.median(times):.3f}")
    print(f"fleet_bound_solve_max_s: {max(times):.3f}")


if __name__ == "__main__":
    main()
