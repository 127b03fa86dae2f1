"""Where numba caches compiled code: a directory keyed by the sources a package's compiled functions may inline.

Numba keys a cache entry on its function's own file only, yet ``envs.kernels.step_rows`` inlines
``sim.core.advance`` and ``sim.physics``: after an edit of ``sim/physics.py`` alone it would load the old machine
code. So each layer names the packages its compiled code reads and caches under a hash of their sources with
compiled functions: ``sim`` under ``sim/`` (its own), ``envs`` under ``sim/`` + ``envs/`` (``envs/__init__.py``).
A lower layer never looks at a higher one's files. Under ``$NUMBA_CACHE_DIR`` when set, else the user's cache
directory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numba


def numba_cache_dir(packages: Sequence[Path]) -> str:
    """The cache directory for compiled code that may inline the sources of ``packages`` (folders): named after a
    hash of every ``*.py`` file there that has compiled functions."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted(Path(package).glob("*.py")):
            source = path.read_bytes()
            if b"njit" in source:
                digest.update(Path(package).name.encode() + b"/" + path.name.encode() + b"\0" + source)
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "carbon-migration-gym"
    )
    return os.path.join(base, "numba-" + digest.hexdigest()[:16])


def use_cache_dir(packages: Sequence[Path]) -> str:
    """Cache the compiled functions defined from now on under ``numba_cache_dir(packages)`` (numba reads the
    setting when a ``cache=True`` function is defined); returns the directory."""
    path = numba_cache_dir(packages)
    numba.config.CACHE_DIR = path
    return path
