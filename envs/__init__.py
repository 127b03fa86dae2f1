"""Gymnasium environments. ``import envs`` registers ``CarbonMigration-v0`` and ``CarbonFleet-v0``.

>>> import gymnasium, envs
>>> env = gymnasium.make("CarbonMigration-v0", scenario="paper", split="train")
>>> venv = gymnasium.make_vec("CarbonMigration-v0", num_envs=8, vectorization_mode="vector_entry_point")
"""

from pathlib import Path

from gymnasium.envs.registration import register, registry

import sim.core  # noqa: F401  (the engine's compiled code, cached under sim's own key first)
import sim.fleet_core  # noqa: F401
from sim import SIM_DIR
from sim.cache import use_cache_dir

# envs' compiled code inlines sim's: its cache key covers both (sim.cache); set before envs' kernels are defined
CACHE_DIR = use_cache_dir([SIM_DIR, Path(__file__).resolve().parent])

from envs.carbon_migration import CarbonMigrationEnv  # noqa: E402

ENV_ID = "CarbonMigration-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="envs.carbon_migration:CarbonMigrationEnv",
        vector_entry_point="envs.vector:CarbonMigrationVectorEnv",
    )

FLEET_ENV_ID = "CarbonFleet-v0"  # issue 10: many jobs sharing regional GPU pools (envs/fleet.py)
if FLEET_ENV_ID not in registry:
    register(id=FLEET_ENV_ID, entry_point="envs.fleet:CarbonFleetEnv")

__all__ = ["CACHE_DIR", "CarbonMigrationEnv", "ENV_ID", "FLEET_ENV_ID"]
