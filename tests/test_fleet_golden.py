"""CarbonFleet-v0 computes exactly what it computed before its step was compiled (issue 9).

``tests/golden/fleet_trajectories.json`` was written by ``tests/golden/fleet_generate.py`` on main at 42da8ad, before
the fleet step's observation, mask, cap accounting, reward and info moved into compiled code: hashes of every
step's observation, reward, flags, action mask and info values (types, dtypes and shapes included), for whole
episodes of ``fleet_small`` (with and without faults and power caps) and the first steps of ``fleet``.
"""

from __future__ import annotations

import json

import pytest

from loaders.philly import PHILLY_RELPATH
from sim.paths import raw_data_dir
from tests.golden.fleet_generate import CASES, PATH, compare, generate

_ROOT = raw_data_dir()
_HAS_TRACE = _ROOT is not None and (_ROOT / PHILLY_RELPATH).is_file()


@pytest.mark.parametrize(
    "case",
    [
        c if c != "fleet" else pytest.param(c, marks=pytest.mark.skipif(not _HAS_TRACE, reason="Philly trace absent"))
        for c in CASES
    ],
)
def test_fleet_trajectories_match_the_golden_hashes_bit_for_bit(case):
    stored = json.loads(PATH.read_text())
    assert len(stored[case]) == len(CASES[case])
    assert compare({case: stored[case]}, generate((case,))) == []
