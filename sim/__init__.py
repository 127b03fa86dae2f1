"""Simulation core: grid, regions, network, GPU DVFS, jobs, faults, scheduler states.

Knows nothing about Gymnasium; ``envs/`` adapts it. Units are in the names
(``_s``, ``_w``, ``_kwh``, ``_g``, ``_gbps``, ``_mhz``).
"""

import hashlib
import os
from pathlib import Path

import numba

_ROOT = Path(__file__).resolve().parents[1]


def _numba_cache_dir(root: Path = _ROOT) -> str:
    """Where numba caches this project's compiled code: a directory named after a hash of every source file here
    and in ``envs/`` that has compiled functions. Numba keys a cache entry on its function's own file only, yet
    ``envs.kernels.step_rows`` inlines ``sim.core.advance``: after an edit of ``sim/core.py`` alone it would load
    the old machine code. Under ``$NUMBA_CACHE_DIR`` when set, else the user's cache directory."""
    digest = hashlib.sha256()
    for package in ("sim", "envs"):
        for path in sorted((root / package).glob("*.py")):
            source = path.read_bytes()
            if b"njit" in source:
                digest.update(path.name.encode() + b"\0" + source)
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "carbon-migration-gym"
    )
    return os.path.join(base, "numba-" + digest.hexdigest()[:16])


numba.config.CACHE_DIR = _numba_cache_dir()  # read by numba when each cache=True function is defined
