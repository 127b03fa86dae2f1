"""What is static about a scenario on one time range: carbon table, network, GPU models (built from files by
``loaders.world.build_world``; this module imports nothing above the core)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.carbon import CarbonTable
from sim.gpu import GpuModel
from sim.network import Network
from sim.scenario import Scenario
from sim.simulator import Simulator


@dataclass(frozen=True)
class World:
    """Everything static about a scenario on one time range."""

    scenario: Scenario
    split: str
    carbon: CarbonTable
    network: Network
    gpu_models: tuple[GpuModel, ...]

    @property
    def episode_hours(self) -> int:
        return int(np.ceil(self.scenario.episode_hours)) + 1

    @property
    def n_start_hours(self) -> int:
        """How many distinct hourly episode starts fit inside the carbon range."""
        return self.carbon.n_hours - self.episode_hours + 1

    def simulator(self) -> Simulator:
        return Simulator(self.scenario, self.carbon, self.network, list(self.gpu_models))
