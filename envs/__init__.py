"""Gymnasium environments. ``import envs`` registers ``CarbonMigration-v0``.

>>> import gymnasium, envs
>>> env = gymnasium.make("CarbonMigration-v0", scenario="paper", split="train")
"""
from gymnasium.envs.registration import register, registry

from envs.carbon_migration import CarbonMigrationEnv

ENV_ID = "CarbonMigration-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.carbon_migration:CarbonMigrationEnv")

__all__ = ["CarbonMigrationEnv", "ENV_ID"]
