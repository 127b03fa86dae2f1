"""The compiled code's cache directories follow the sources it may inline (sim/cache.py): sim's own under a key of
sim's sources, envs' under a key of sim's and envs' sources, so an edit of the engine alone recompiles the
environment's kernels that inline it, and sim never reads a file of a higher layer."""

import shutil
from pathlib import Path

import envs
import envs.kernels
import sim
import sim.core
from sim.cache import numba_cache_dir

REPO = Path(__file__).resolve().parents[1]


def test_each_layer_keys_its_cache_on_the_sources_it_inlines(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for package in ("sim", "envs"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    sim_dir, envs_dirs = [tmp_path / "sim"], [tmp_path / "sim", tmp_path / "envs"]
    sim_before, envs_before = numba_cache_dir(sim_dir), numba_cache_dir(envs_dirs)
    assert sim_before.startswith(str(tmp_path / "cache" / "carbon-migration-gym" / "numba-"))
    assert sim_before != envs_before
    vector = tmp_path / "envs" / "vector.py"
    vector.write_text(vector.read_text() + "\n# a comment\n")
    assert numba_cache_dir(envs_dirs) == envs_before  # a file without compiled code does not matter
    kernels = tmp_path / "envs" / "kernels.py"
    kernels.write_text(kernels.read_text() + "\n# an edit\n")
    assert numba_cache_dir(sim_dir) == sim_before  # sim does not look at envs
    envs_after_kernels = numba_cache_dir(envs_dirs)
    assert envs_after_kernels != envs_before
    physics = tmp_path / "sim" / "physics.py"
    physics.write_text(physics.read_text() + "\n# an edit\n")
    assert numba_cache_dir(sim_dir) != sim_before
    assert numba_cache_dir(envs_dirs) != envs_after_kernels  # the engine alone: envs' kernels recompile too


def test_numba_uses_them():
    assert sim.CACHE_DIR == numba_cache_dir([REPO / "sim"])
    assert envs.CACHE_DIR == numba_cache_dir([REPO / "sim", REPO / "envs"])
    assert sim.core.advance._cache._cache_path.startswith(sim.CACHE_DIR)
    assert envs.kernels.step_rows._cache._cache_path.startswith(envs.CACHE_DIR)
