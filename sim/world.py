"""Assemble a scenario's world (carbon traces of one split, network, GPU models) and its episodes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loaders.carbon import carbon_table
from sim.carbon import CarbonTable
from sim.errors import ConfigError
from sim.gpu import GpuModel
from sim.gpu_models import gpu_model
from sim.network import Network
from sim.network_data import load_network
from sim.scenario import Scenario
from sim.simulator import Simulator

SPLITS = ("train", "validation", "test")


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


def build_world(
    scenario: Scenario,
    split: str = "train",
    data_dir: str | None = None,
    period: tuple[str, str] | None = None,
    seed: int = 0,
) -> World:
    """Load the traces of ``split`` (or an explicit UTC ``period``) for the scenario's regions.

    Traces come from ``data_dir``, the scenario's ``data_dir``, ``$CARBON_DATA_DIR`` or ``../shared/data``,
    else a synthetic series from the derived month×hour profiles (with a warning).
    """
    if period is None:
        if split not in scenario.splits:
            raise ConfigError(f"{scenario.source}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        start, end = scenario.splits[split]
    else:
        start, end = np.datetime64(period[0], "h"), np.datetime64(period[1], "h")
    key = (repr(scenario), split, data_dir or scenario.data_dir, str(start), str(end), seed)
    if key not in _WORLDS:  # traces are loaded once per process
        _WORLDS[key] = _build(scenario, split, data_dir or scenario.data_dir, str(start), str(end), seed)
    return _WORLDS[key]


_WORLDS: dict[tuple, World] = {}


def _build(scenario, split, data_dir, start, end, seed) -> World:
    carbon = carbon_table(scenario.zones, start, end, scenario.signal, data_dir=data_dir, seed=seed)
    models = []
    for i, r in enumerate(scenario.regions):
        try:
            models.append(gpu_model(r.gpu, scenario.job.workload))
        except ConfigError as e:
            raise ConfigError(f"{scenario.source}: regions[{i}].gpu / job.workload: {e}") from None
    world = World(scenario, split, carbon, load_network(scenario.zones), tuple(models))
    if world.n_start_hours < 1:
        raise ConfigError(
            f"{scenario.source}: split {split!r} [{start}, {end}) is shorter than one episode "
            f"({scenario.episode_hours} h)"
        )
    return world


def episode_starts(world: World, n: int, seed: int) -> np.ndarray:
    """``n`` episode start hours (indices into ``world.carbon``), the same for every policy given the seed."""
    return np.random.default_rng(seed).integers(0, world.n_start_hours, size=n)
