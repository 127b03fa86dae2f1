"""The compiled core's floor division and modulo without ``fmod`` (``sim.core._floor_div`` / ``_mod``, used for the
hour of a time and the time-of-day features) give exactly what Python's ``//`` and ``%`` give (the goldens hash
whole trajectories), also at the multiples of ``m`` and one or two floats either side of them."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from sim.physics import floor_div as _floor_div
from sim.physics import mod as _mod


@njit(cache=True)
def _both(x, m):
    return _floor_div(x, m), _mod(x, m)


def _near_multiples(m: float):
    # k * m and its neighbours one and two floats away, where a rounded x / m would first land on the wrong integer
    return st.tuples(st.integers(0, 2**40), st.integers(-2, 2)).map(lambda kd: _step(kd[0] * m, kd[1]))


def _step(x: float, d: int) -> float:
    for _ in range(abs(d)):
        x = math.nextafter(x, -math.inf if d < 0 else math.inf)
    return max(x, 0.0)


@settings(max_examples=400, deadline=None)
@given(
    m=st.sampled_from([3600.0, 24.0, 7.0]),
    data=st.data(),
)
def test_floor_div_and_mod_equal_pythons_for_non_negative_times(m, data):
    x = data.draw(st.one_of(st.floats(0.0, 2.0**52), _near_multiples(m)))
    n, r = _both(x, m)
    assert n == int(x // m)
    assert r == x % m and math.copysign(1.0, r) == math.copysign(1.0, x % m)
