"""The compiled code's cache directory follows the sources of every file with compiled functions (sim/__init__.py)."""

import shutil
from pathlib import Path

import numba

import sim

REPO = Path(__file__).resolve().parents[1]


def test_the_cache_directory_changes_with_any_compiled_source(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for package in ("sim", "envs"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = sim._numba_cache_dir(tmp_path)
    assert before.startswith(str(tmp_path / "cache" / "carbon-migration-gym" / "numba-"))
    (tmp_path / "envs" / "vector.py").write_text((tmp_path / "envs" / "vector.py").read_text() + "\n# a comment\n")
    assert sim._numba_cache_dir(tmp_path) == before  # a file without compiled code does not matter
    core = tmp_path / "sim" / "core.py"
    core.write_text(core.read_text() + "\n# an edit\n")
    assert sim._numba_cache_dir(tmp_path) != before  # an edit of sim/core.py alone: envs.kernels recompiles too


def test_numba_uses_it():
    assert numba.config.CACHE_DIR == sim._numba_cache_dir()
