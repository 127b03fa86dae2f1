"""Where data lives: the shipped scenarios and derived tables, and the raw traces.

Scenarios (``scenarios/*.yaml``) and derived tables (``data/derived/``) ship in the wheel as package data of
``sim`` (``sim/_shipped/scenarios``, ``sim/_shipped/derived``, see ``pyproject.toml``) and are found through
:mod:`importlib.resources`; from a source checkout (or an editable install) they are read where they live in the
repository.

Raw traces are looked up, in order, in an explicit ``data_dir`` argument, the
``CARBON_DATA_DIR`` environment variable, and ``../shared/data`` beside the
repository. When none exists the derived tables in ``data/derived`` are used.
A ``CARBON_DATA_DIR`` that is set but not a folder is an error, not a silent switch to other data.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from sim.errors import DataError

REPO_ROOT = Path(__file__).resolve().parent.parent


def shipped_dir(name: str, checkout_path: str) -> Path:
    """The folder of shipped data ``name``: ``sim/_shipped/<name>`` in an installed wheel, else
    ``<repository>/<checkout_path>`` (source checkout, editable install)."""
    installed = resources.files("sim").joinpath("_shipped", name)
    if installed.is_dir():
        return Path(str(installed))  # a wheel is installed unpacked: a real folder
    return REPO_ROOT / checkout_path


SCENARIO_DIR = shipped_dir("scenarios", "scenarios")
DERIVED_DIR = shipped_dir("derived", "data/derived")
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def raw_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The raw-data root to use, or None when no raw data is available."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("CARBON_DATA_DIR")
    if env:
        if not Path(env).expanduser().is_dir():  # a typo must not silently select other (or synthetic) data
            raise DataError(
                f"CARBON_DATA_DIR={env} is not a folder; fix it, or unset it to use {DEFAULT_SHARED_DATA} "
                "(else synthetic profiles)"
            )
        return Path(env).expanduser()
    if DEFAULT_SHARED_DATA.is_dir():
        return DEFAULT_SHARED_DATA
    return None
