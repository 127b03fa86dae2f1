"""Where data lives: the shipped scenarios and derived tables, and the raw traces.

Scenarios (``scenarios/*.yaml``) and derived tables (``data/derived/``) ship in the wheel as package data of
``sim`` (``sim/_shipped/scenarios``, ``sim/_shipped/derived``, see ``pyproject.toml``) and are found through
:mod:`importlib.resources`; from a source checkout (or an editable install) they are read where they live in the
repository.

The real traces the shipped scenarios read (Electricity Maps carbon intensity 2021-2023 of 16 zones, the Philly job
trace) ship the same way, from ``data/traces/`` (``sim/_shipped/traces``; licences in ``data/traces/README.md``), so a
clone or a wheel anywhere runs on real data. A raw-data folder adds or overrides zones and years: it is looked up,
in order, as an explicit ``data_dir`` argument, the ``CARBON_DATA_DIR`` environment variable, and ``../shared/data``
beside the repository (:func:`raw_data_dir`); :func:`trace_roots` lists it before the shipped traces, and the first
folder holding a zone over the requested period wins. A ``CARBON_DATA_DIR`` that is set but not a folder is an
error, not a silent switch to other data. ``data_dir`` or ``CARBON_DATA_DIR`` equal to :data:`SYNTHETIC`
(``"synthetic"``) asks for the synthetic carbon profiles instead (``sim/carbon_synth.py``).
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
TRACES_DIR = shipped_dir("traces", "data/traces")
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SYNTHETIC = "synthetic"  # data_dir / CARBON_DATA_DIR value that asks for the synthetic carbon profiles


def synthetic_requested(data_dir: str | os.PathLike | None = None) -> bool:
    """True when ``data_dir`` (or, when it is None, ``$CARBON_DATA_DIR``) is :data:`SYNTHETIC`."""
    if data_dir is not None:
        return str(data_dir) == SYNTHETIC
    return os.environ.get("CARBON_DATA_DIR", "") == SYNTHETIC


def raw_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The raw-data folder to use beside the shipped traces, or None (none found, or synthetic data asked for)."""
    if synthetic_requested(data_dir):
        return None
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("CARBON_DATA_DIR")
    if env:
        if not Path(env).expanduser().is_dir():  # a typo must not silently select other (or synthetic) data
            raise DataError(
                f"CARBON_DATA_DIR={env} is not a folder; fix it, unset it to use {DEFAULT_SHARED_DATA} "
                f"(else the shipped traces), or set it to {SYNTHETIC!r} for synthetic profiles"
            )
        return Path(env).expanduser()
    if DEFAULT_SHARED_DATA.is_dir():
        return DEFAULT_SHARED_DATA
    return None


def trace_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for a trace, first match first: the raw-data folder (:func:`raw_data_dir`), then the
    shipped traces (``data/traces``). Empty when synthetic data is asked for."""
    if synthetic_requested(data_dir):
        return []
    raw = raw_data_dir(data_dir)
    return [p for p in (raw, TRACES_DIR) if p is not None]
