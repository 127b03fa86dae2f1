"""sim.rng: a generator passed to compiled code by address draws NumPy's own stream (same numbers, same order)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from sim.rng import (
    bitgen,
    integers,
    random,
    random_lognormal,
    random_poisson,
    random_standard_exponential,
    random_standard_normal,
    random_uniform,
    rng_handles,
)


@njit(cache=True)
def _draws(fns, state, n, mu, sigma, lam, high, scale, out):
    """n lognormals, n standard normals, a Poisson count, a uniform, an exponential, a double: into ``out``."""
    bg = bitgen(state, fns)
    for k in range(n):
        out[k] = random_lognormal(bg, mu, sigma)
    for k in range(n):
        out[n + k] = random_standard_normal(bg)
    out[2 * n] = random_poisson(bg, lam)
    out[2 * n + 1] = random_uniform(bg, 0.0, high)
    out[2 * n + 2] = scale * random_standard_exponential(bg)
    out[2 * n + 3] = random(fns, state)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**63),
    n=st.integers(0, 300),
    sigma=st.floats(0.01, 2.0),
    lam=st.floats(0.0, 40.0),  # both of NumPy's Poisson algorithms (multiplication below 10, PTRS above)
    scale=st.floats(1.0, 1e5),
)
def test_compiled_draws_equal_numpy_generator_calls(seed, n, sigma, lam, scale):
    ours, ref = np.random.default_rng(seed), np.random.default_rng(seed)
    fns, state = rng_handles(ours)
    out = np.empty(2 * n + 4)
    _draws(fns, np.uint64(state), n, -0.5 * sigma**2, sigma, lam, 172800.0, scale, out)
    expected = np.concatenate(
        [
            ref.lognormal(-0.5 * sigma**2, sigma, n),
            ref.standard_normal(n),
            [ref.poisson(lam), ref.uniform(0, 172800.0), ref.exponential(scale), ref.random()],
        ]
    )
    np.testing.assert_array_equal(out, expected)
    assert ours.random() == ref.random()  # the generator object saw the compiled draws: the streams go on together


def test_handles_are_per_kind_and_per_generator():
    a, b = np.random.default_rng(1), np.random.default_rng(2)
    (fa, sa), (fb, sb) = rng_handles(a), rng_handles(b)
    assert fa is fb and sa != sb
    fm, _ = rng_handles(np.random.Generator(np.random.MT19937(3)))
    assert not np.array_equal(fm, fa)


@njit(cache=True)
def _integers(fns, state, n, out):
    for k in range(out.shape[0]):
        out[k] = integers(fns, state, n)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**63), n=st.one_of(st.integers(1, 100), st.integers(1, 2**32 - 1)))
def test_compiled_integers_equal_numpy_generator_integers(seed, n):
    ours, ref = np.random.default_rng(seed), np.random.default_rng(seed)
    fns, state = rng_handles(ours)
    out = np.empty(7, dtype=np.int64)
    _integers(fns, np.uint64(state), n, out)
    assert out.tolist() == [int(ref.integers(0, n)) for _ in range(7)]
    assert ours.random() == ref.random()  # next_uint32's buffered half-word is the generator's own state
