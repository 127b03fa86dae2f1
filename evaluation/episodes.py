"""Which episodes every policy runs, and one episode turned into a row of metrics.

Every policy sees exactly the same episodes: episode ``i`` starts at hour
``loaders.world.episode_starts(world, n, seed)[i]`` and the environment is reset with
:func:`reset_seed` ``(seed, i)``, so faults, availability, work noise and forecast errors are identical
across policies. Each (policy, episode) pair is an independent :class:`EpisodeTask` that a worker
process can run on its own; results do not depend on how many workers run them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from loaders.world import World, episode_starts

AGENT_PREFIX = "agent:"  # PolicySpec.source of a learned agent: "agent:<run dir or model zip>"
S_PER_H = 3600.0
G_PER_KG = 1000.0

# episodes.csv columns, in order (oracle_gap_pct and bound_gap_pct are filled in once every policy has run)
COLUMNS = (
    "policy",
    "episode",
    "seed",
    "start_utc",
    "carbon_kg",
    "energy_kwh",
    "it_energy_kwh",
    "avg_power_w",
    "jct_h",
    "deadline_met",
    "completed",
    "late_h",
    "work_charged",
    "migrations",
    "transfers",
    "transfer_h",
    "transfer_gb",
    "egress_usd",
    "cap_violations",
    "cap_violation_s",
    "lost_minibatches",
    "gpu_hours",
    "gpus_mean",
    "host_kwh",
    "checkpoint_stall_s",
    "embodied_kg",
    "invalid_actions",
    "oracle_bound_kg",
    "oracle_gap_pct",
    "bound_gap_pct",
)
# scheduler states in which the job holds GPUs (their time is the denominator of avg_power_w)
HOLDING_GPUS = ("time_tolerance_s", "time_suspend_s", "time_scaling_s", "time_recovering_s")


@dataclass(frozen=True)
class PolicySpec:
    """A policy to evaluate, picklable so a worker process can rebuild it.

    :param name: the label in tables and plots.
    :param source: a ``baselines.POLICIES`` name, or ``"agent:<path>"`` for a saved agent.
    """

    name: str
    source: str

    @property
    def is_agent(self) -> bool:
        return self.source.startswith(AGENT_PREFIX)

    @property
    def path(self) -> str:
        return self.source[len(AGENT_PREFIX) :]


@dataclass(frozen=True)
class EnvSpec:
    """How to build the evaluation environment (``CarbonMigrationEnv`` arguments)."""

    scenario: str
    split: str = "test"
    data_dir: str | None = None
    period: tuple[str, str] | None = None


@dataclass(frozen=True)
class EpisodeTask:
    """One policy on one episode.

    :param keep_history: return the per-step history (for the timeline plot), not only the metrics.
    """

    policy: PolicySpec
    env: EnvSpec
    episode: int
    start_hour: int
    seed: int
    start_utc: str
    keep_history: bool = False


def reset_seed(seed: int, episode: int) -> int:
    """The ``env.reset`` seed of episode ``episode`` under evaluation seed ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def plan_episodes(
    world: World, env: EnvSpec, policies: list[PolicySpec], n: int, seed: int, history_episode: int = 0
) -> list[EpisodeTask]:
    """Every policy on the same ``n`` episodes, policy-major order."""
    starts = episode_starts(world, n, seed)
    start_utc = [str(world.carbon.start_h + np.timedelta64(int(h), "h")) for h in starts]
    return [
        EpisodeTask(p, env, i, int(starts[i]), reset_seed(seed, i), start_utc[i], i == history_episode)
        for p in policies
        for i in range(n)
    ]


def build_policy(spec: PolicySpec):
    """The :class:`baselines.base.Policy` behind ``spec`` (agents are loaded with ``agents.policy.load_agent``)."""
    if spec.is_agent:
        from agents.policy import load_agent

        policy = load_agent(spec.path, name=spec.name)
    else:
        from baselines import make_policy

        policy = make_policy(spec.source)
    return policy


# ---------------------------------------------------------------------------------------------- workers

_ENVS: dict = {}  # one environment per process and EnvSpec (traces are loaded once per process)
_AGENTS: dict = {}  # loaded agents per process (torch models are slow to load)


def _env(spec: EnvSpec):
    if spec not in _ENVS:
        from envs.carbon_migration import CarbonMigrationEnv

        with warnings.catch_warnings():  # the synthetic-data warning is shown once, by the main process
            warnings.simplefilter("ignore")
            _ENVS[spec] = CarbonMigrationEnv(
                scenario=spec.scenario, split=spec.split, data_dir=spec.data_dir, period=spec.period
            )
    return _ENVS[spec]


def _policy(spec: PolicySpec):
    if spec.is_agent:
        if spec not in _AGENTS:
            _AGENTS[spec] = build_policy(spec)
        return _AGENTS[spec]
    return build_policy(spec)  # fresh each episode: no state leaks between episodes


def run_task(task: EpisodeTask) -> dict:
    """Run one episode through the single evaluation loop and return ``{"row": ..., "history": ...}``."""
    from baselines.runner import run_episode

    result = run_episode(
        _env(task.env), _policy(task.policy), task.seed, task.start_hour, keep_history=task.keep_history
    )
    history = result.get("history")
    return {
        "row": episode_row(task, result),
        "history": None if history is None else {k: np.asarray(v) for k, v in history.items()},
    }


def episode_row(task: EpisodeTask, result: dict) -> dict:
    """Flatten a ``run_episode`` result (W8 metrics and outcome) into one ``episodes.csv`` row."""
    m = result
    completed = bool(m["completed"])
    bound_g = m.get("oracle_bound_carbon_g")
    return {
        "policy": task.policy.name,
        "episode": task.episode,
        "seed": task.seed,
        "start_utc": task.start_utc,
        "carbon_kg": m["carbon_g"] / G_PER_KG,
        "energy_kwh": m["facility_energy_kwh"] + m["transfer_energy_kwh"],
        "it_energy_kwh": m["it_energy_kwh"],
        "avg_power_w": _avg_power_w(m),
        "jct_h": float(m["jct_h"]) if completed else math.nan,
        "deadline_met": bool(m["deadline_met"]),
        "completed": completed,
        "late_h": float(m.get("late_h", math.nan)),
        "work_charged": bool(m.get("work_charged", False)),
        "migrations": int(m["migrations"]),
        "transfers": int(m["transfers"]),
        "transfer_h": m["transfer_s"] / S_PER_H,
        "transfer_gb": m["transfer_gb"],
        "egress_usd": m["egress_usd"],
        "cap_violations": int(m["cap_violations"]),
        "cap_violation_s": m["cap_violation_s"],
        "lost_minibatches": m["lost_minibatches"],
        "gpu_hours": m["gpu_hours"],
        "gpus_mean": _gpus_mean(m),
        "host_kwh": m["host_energy_kwh"],  # IT energy of the servers' CPUs and memory (in it_energy_kwh)
        "checkpoint_stall_s": m["checkpoint_stall_s"],
        "embodied_kg": m["embodied_carbon_g"] / G_PER_KG,  # beside carbon_kg, not in it
        "invalid_actions": int(m["invalid_actions"]),
        "oracle_bound_kg": float(bound_g) / G_PER_KG if bound_g is not None else math.nan,
        "oracle_gap_pct": math.nan,
        "bound_gap_pct": math.nan,
    }


def _gpus_mean(m: dict) -> float:
    """Mean GPUs the job held while it held any: GPU-hours / hours holding GPUs (the GPU-count lever's effect)."""
    held_s = sum(m[k] for k in HOLDING_GPUS)
    return m["gpu_hours"] * 3600.0 / held_s if held_s > 0 else math.nan


def _avg_power_w(m: dict) -> float:
    """Mean IT power of the job while it holds GPUs (W): IT energy / time holding GPUs (CAFTM's "power")."""
    held_s = sum(m[k] for k in HOLDING_GPUS)
    return m["it_energy_kwh"] * 3.6e6 / held_s if held_s > 0 else math.nan
