"""Oracle solve time on a 7-day, 6-region, 15-minute episode (the ``llm`` scenario), SPEC N1 target < 2 s.

    python bench/oracle_speed.py [--scenario llm] [--episodes 5]

Times ``oracle_bound`` + the executable plan (``make_plan``) after ``env.reset`` (the episode facts are read
from the simulator inside the timing), wall clock, and prints the median and the worst.
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

import gymnasium as gym  # noqa: E402

import envs  # noqa: E402,F401
from baselines.oracle import EpisodeFacts, make_plan, oracle_bound  # noqa: E402


def oracle_times_s(scenario: str = "llm", episodes: int = 5) -> list[float]:
    env = gym.make("CarbonMigration-v0", scenario=scenario, split="test").unwrapped
    out = []
    for seed in range(episodes):
        env.reset(seed=seed)
        t0 = time.perf_counter()
        facts = EpisodeFacts.from_env(env)
        oracle_bound(facts)
        make_plan(facts, 0, facts.home, facts.total_mb)
        out.append(time.perf_counter() - t0)
    return out


def oracle_7d_6r_s(scenario: str = "llm") -> float:
    """Median oracle solve time (bound + plan) in seconds over 5 episodes."""
    return statistics.median(oracle_times_s(scenario, 5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="llm", help="scenario name or YAML path (default: llm, 7 d x 6 regions)")
    ap.add_argument("--episodes", type=int, default=5, help="episodes to time (default 5)")
    a = ap.parse_args()
    ts = oracle_times_s(a.scenario, a.episodes)
    print(f"oracle_solve_median_s: {statistics.median(ts):.3f}")
    print(f"oracle_solve_max_s: {max(ts):.3f}")


if __name__ == "__main__":
    main()
