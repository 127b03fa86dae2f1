"""``evaluate.py`` as a function, for notebooks and scripts: the same episodes for every policy, two tables.

>>> from evaluation.compare import compare
>>> episodes, summary = compare(["stay", "caftm", "oracle"], episodes=5)
>>> summary[["policy", "carbon_kg_mean", "carbon_kg_ci95", "deadline_met_rate"]]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from evaluation.episodes import AGENT_PREFIX, COLUMNS, EnvSpec, PolicySpec, plan_episodes, run_task
from evaluation.report import add_oracle_gap, summarize


def compare(
    policies: Sequence[str] = ("stay", "caftm", "greedy", "oracle"),
    agents: Sequence[str | Path] = (),
    scenario: str = "paper",
    split: str = "test",
    episodes: int = 20,
    seed: int = 0,
    data_dir: str | None = None,
    period: tuple[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every policy and agent on the same ``episodes`` held-out episodes, in this process.

    :param policies: baseline names (``baselines.POLICIES``)
    :param agents: trained runs (run directories or model ``.zip``), named after their run directory
    :param scenario: shipped scenario name or YAML path
    :param split: ``train`` / ``validation`` / ``test`` (ignored with ``period``)
    :param episodes: episodes per policy; episode ``i`` has the same start hour and reset seed for every policy
    :param seed: evaluation seed (start hours, reset seeds)
    :param period: explicit UTC dates ``(start, end)`` instead of the split
    :return: ``(episodes, summary)``: the rows of ``episodes.csv`` (carbon_kg, energy_kwh, jct_h, ...,
        oracle_gap_pct) and of ``summary.csv`` (per policy: ``<metric>_mean``, ``<metric>_ci95``, rates)
    """
    from agents.policy import run_label
    from loaders.world import build_world
    from sim.scenario import load_scenario

    sc = load_scenario(scenario)
    with warnings.catch_warnings():  # the environment warns about synthetic data on its own, once
        warnings.simplefilter("ignore")
        world = build_world(sc, split, data_dir=data_dir, period=period)
    env_spec = EnvSpec(str(sc.source), split, data_dir, period)
    specs = [PolicySpec(p, p) for p in policies]
    for a in agents:  # named like evaluate.py names them: the run's label (train.py's --name), made unique
        name, k = run_label(a), 2
        while name in {spec.name for spec in specs}:
            name, k = f"{run_label(a)}-{k}", k + 1
        specs.append(PolicySpec(name, AGENT_PREFIX + str(a)))
    tasks = plan_episodes(world, env_spec, specs, episodes, seed, history_episode=-1)
    rows = [run_task(t)["row"] for t in tasks]
    table = add_oracle_gap(pd.DataFrame(rows, columns=list(COLUMNS)))
    return table, summarize(table)
