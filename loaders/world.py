"""Build a scenario's world from files (carbon traces of one split, network, GPU models) and draw its episodes.

This is the layer above the simulation core: ``sim/`` holds what a world *is* (:class:`sim.world.World`), this
module reads the files that make one.
"""

from __future__ import annotations

import numpy as np

from loaders.carbon import carbon_table
from sim.errors import ConfigError
from sim.gpu_models import gpu_model
from sim.network_data import load_network
from sim.scenario import Scenario
from sim.world import World

SPLITS = ("train", "validation", "test")

__all__ = ["SPLITS", "World", "build_world", "episode_starts"]


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
    _check_caps(scenario, models)
    world = World(scenario, split, carbon, load_network(scenario.zones), tuple(models))
    if world.n_start_hours < 1:
        raise ConfigError(
            f"{scenario.source}: split {split!r} [{start}, {end}) is shorter than one episode "
            f"({scenario.episode_hours} h)"
        )
    return world


def _check_caps(scenario: Scenario, models: list) -> None:
    """A power cap that the job's GPUs exceed even idle, in every region, can never be met: it is a typo or a unit
    mistake (kW for W), not a scenario."""
    job = scenario.job

    def gpus_in(r) -> int:  # an elastic job runs on what the pool has
        return min(job.gpus, r.gpus) if job.elastic else job.gpus

    idle_w, r, m = min(((gpus_in(r) * m.idle_w, r, m) for r, m in zip(scenario.regions, models)), key=lambda x: x[0])
    caps = [("job.power_cap_w", job.power_cap_w)] + [("job.cap_windows: cap_w", w.cap_w) for w in job.cap_windows]
    for key, cap_w in caps:
        if cap_w <= idle_w:
            raise ConfigError(
                f"{scenario.source}: {key}: {cap_w:g} W is at or below the idle draw of the job's GPUs in every "
                f"region (least: {r.name}, {gpus_in(r)} x {m.idle_w:.1f} W {r.gpu} = {idle_w:.0f} W); the cap is on "
                f"the job's GPUs, in W: give more than {idle_w:.0f}"
            )


def episode_starts(world: World, n: int, seed: int) -> np.ndarray:
    """``n`` episode start hours (indices into ``world.carbon``), the same for every policy given the seed."""
    return np.random.default_rng(seed).integers(0, world.n_start_hours, size=n)
