"""The simulator computes exactly what it computed before the array-core redesign (issue 9).

``tests/golden/trajectories.json`` was written by ``tests/golden/generate.py`` in a clean export of main at
8927d2f (issue 14's physics with its citation fixes; issues 11 and 12 merged), with none of this issue's changes:
4 scenarios x 20 seeds, whole episodes, hashes of every step's observation, mask, reward, episode metrics and
info scalars. A mismatch lists the differing final values. The vector env is held to the same values through
``tests/test_vector_env.py`` (env i == single env with seed s + i).
"""

from __future__ import annotations

import json

import pytest

from tests.golden.generate import PATH, SCENARIOS, compare, generate


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_whole_episodes_match_the_golden_trajectories_bit_for_bit(scenario):
    stored = json.loads(PATH.read_text())
    assert len(stored[scenario]) >= 20
    fresh = generate([scenario])
    assert compare({scenario: stored[scenario]}, fresh) == []


def test_the_comparison_reports_any_difference():
    """compare would let nothing through: a changed hash, step count, ending or final value is each reported."""
    ep = {"seed": 3, "hash_obs": "ab", "steps": 10, "terminated": True, "final_metrics": {"x": 1.0}, "final_info": {}}
    assert compare({"s": [ep]}, {"s": [dict(ep)]}) == []
    for key, value in (("hash_obs", "ac"), ("steps", 11), ("terminated", False), ("final_metrics", {"x": 1.5})):
        (problem,) = compare({"s": [ep]}, {"s": [{**ep, key: value}]})
        assert problem.startswith("s seed 3: ")
