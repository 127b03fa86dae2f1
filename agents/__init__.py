"""Learned agents: Stable-Baselines3 / sb3-contrib models behind the :class:`baselines.base.Policy` interface.

``agents.build`` makes the training environments and models from a config; ``agents.policy`` loads a
trained run (``load_agent("runs/<name>")``) as a policy that ``evaluate.py`` treats like any baseline.
Shipped hyper-parameters per algorithm live in ``agents/configs/<algo>.yaml``.
"""

from agents.build import ALGOS, AgentConfigError, load_hyperparams, make_env, make_model, make_vec_env
from agents.policy import AgentPolicy, load_agent

__all__ = [
    "ALGOS",
    "AgentConfigError",
    "AgentPolicy",
    "load_agent",
    "load_hyperparams",
    "make_env",
    "make_model",
    "make_vec_env",
]
