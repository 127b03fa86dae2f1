"""Simulation core: grid, regions, network, GPU DVFS, jobs, faults, scheduler states.

Knows nothing about Gymnasium; ``envs/`` adapts it. Units are in the names
(``_s``, ``_w``, ``_kwh``, ``_g``, ``_gbps``, ``_mhz``). Layers of the compiled engine: ``sim.layout`` (columns and
bundles), ``sim.physics`` (one job's piece of time), ``sim.core`` / ``sim.fleet_core`` (the engine loops),
``sim.reward`` (the reward table); see ``docs/architecture.md``.
"""

from pathlib import Path

from sim.cache import numba_cache_dir, use_cache_dir

SIM_DIR = Path(__file__).resolve().parent
CACHE_DIR = use_cache_dir([SIM_DIR])  # sim's compiled code inlines only sim's sources

__all__ = ["CACHE_DIR", "SIM_DIR", "numba_cache_dir"]
