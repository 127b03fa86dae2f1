"""CarbonFleet-v0 computes exactly what it computed before its step was compiled (issue 9).

``tests/golden/fleet_trajectories.json`` was written by ``tests/golden/fleet_generate.py`` on main at 42da8ad, before
the fleet step's observation, mask, cap accounting, reward and info moved into compiled code: hashes of every
step's observation, reward, flags, action mask and info values (types, dtypes and shapes included), for whole
episodes of ``fleet_small`` (with and without faults and power caps) and the first steps of ``fleet``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs import fleet_kernels as fk
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


def test_the_compiled_sums_have_the_bits_of_numpy_sum():
    # the fleet step's reward and info totals are sums over jobs: the compiled pairwise sum must equal
    # ndarray.sum bit for bit, over a column of a (J, metrics) table (strided) and over a contiguous row, for sizes
    # around NumPy's block (128) and split points, up to the environment's limit on J
    rng = np.random.default_rng(7)
    for n in [0, 1, 7, 8, 9, 127, 128, 129, 136, 255, 256, 257, 1000, 4099, fk.PAIRWISE_MAX_N]:
        table = rng.standard_normal((n, 5)) * 10.0 ** rng.integers(-9, 10, size=(n, 5))
        col = table[:, 3]
        assert fk.array_sum(col).hex() == float(col.sum()).hex()
        row = np.ascontiguousarray(col)
        assert fk.array_sum(row).hex() == float(row.sum()).hex()
    assert fk.array_sum(np.array([-0.0])).hex() == float(np.array([-0.0]).sum()).hex()


def test_the_compiled_sums_reach_the_job_limit():
    # 7 levels of halving are spelled out: every size up to PAIRWISE_MAX_N needs at most 7, the next one 8
    assert max(fk.pairwise_depth(n) for n in range(1, fk.PAIRWISE_MAX_N + 1)) == 7
    assert fk.pairwise_depth(fk.PAIRWISE_MAX_N + 1) == 8
