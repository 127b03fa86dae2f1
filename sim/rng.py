"""NumPy random generators inside compiled code, by address: the same draws as ``numpy.random.Generator``.

Numba can take a ``Generator`` argument, but unboxing one costs ~8 us a call (three ``ctypes.cast``); and a
ctypes function argument costs ~1.3 us. Here a generator travels as two plain integers instead: its bit
generator's state address and its C functions' addresses (``rng_handles``, computed once per generator), and
``bitgen`` rebuilds Numba's bit-generator struct from them inside compiled code, so Numba's ports of NumPy's
distributions (``random_standard_normal``, ... below: NumPy's algorithms, same bits, tested against NumPy in
``tests/test_rng.py``) draw from the generator's own stream.
"""

from __future__ import annotations

import ctypes

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.random.distributions import (  # noqa: F401  (re-exported for the compiled draws)
    random_lognormal,
    random_poisson,
    random_standard_exponential,
    random_standard_normal,
    random_uniform,
)
from numba.np.random.generator_core import next_double
from numba.np.random.random_methods import buffered_bounded_lemire_uint32

_BIT_GENERATOR = types.NumPyRandomBitGeneratorType("bit_generator")
_FN_NAMES = ("next_uint64", "next_uint32", "next_double")  # the order of the addresses in rng_handles' array
_FNS: dict[type, np.ndarray] = {}


def rng_handles(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``(fns, state)``: the addresses of ``rng``'s bit generator's ``next_uint64``, ``next_uint32`` and
    ``next_double`` C functions (uint64 ``(3,)``, shared by every generator of a kind) and of its state.

    The caller must keep ``rng`` alive while the state address is used.
    """
    bg = rng.bit_generator
    kind = type(bg)
    if kind not in _FNS:
        c = bg.ctypes
        fns = np.array([ctypes.cast(getattr(c, n), ctypes.c_void_p).value for n in _FN_NAMES], dtype=np.uint64)
        fns.setflags(write=False)
        _FNS[kind] = fns
    return _FNS[kind], int(bg.ctypes.state_address)


@intrinsic
def bitgen(typingctx, state, fns):
    """Numba's bit generator (what ``Generator.bit_generator`` unboxes to) at ``state`` with the C functions
    ``fns`` (from ``rng_handles``); only the fields Numba's draws read are set."""
    sig = _BIT_GENERATOR(types.uint64, fns)

    def codegen(context, builder, sig, args):
        state_v, fns_v = args
        arr = context.make_array(sig.args[1])(context, builder, fns_v)
        out = cgutils.create_struct_proxy(_BIT_GENERATOR)(context, builder)
        out.state = state_v
        out.state_address = state_v
        for j, name in enumerate(_FN_NAMES):
            setattr(out, "fnptr_" + name, builder.load(cgutils.gep_inbounds(builder, arr.data, j)))
        return out._getvalue()

    return sig, codegen


@njit(cache=True, inline="always")
def random(fns, state):
    """``rng.random()`` of the generator at ``state`` (one ``next_double``)."""
    return next_double(bitgen(state, fns))


@njit(cache=True, inline="always")
def integers(fns, state, n):
    """``rng.integers(0, n)`` of the generator at ``state``, for 1 <= n <= 2**32 - 1 (NumPy's bounded draw:
    Lemire's method on one ``next_uint32``; none when n == 1)."""
    if n == 1:
        return 0
    return int(buffered_bounded_lemire_uint32(bitgen(state, fns), n - 1))
