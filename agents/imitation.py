"""Learning from the oracle's decisions: behaviour cloning, then DAgger, into a MaskablePPO policy network.

Source: behaviour cloning (Pomerleau 1991) and DAgger (Ross, Gordon & Bagnell, *A Reduction of Imitation
Learning and Structured Prediction to No-Regret Online Learning*, AISTATS 2011). The expert is this project's
clairvoyant oracle (``baselines.oracle.OraclePolicy``): on each training-split episode it reads the future
(intensity, free GPUs, work multipliers) and plans the cheapest deadline-meeting schedule. The agent only
sees its observation (now, a 6 h forecast, the job's state), so it learns the oracle's expected action given
what it can see.

1. **Demonstrations**: the oracle runs ``demo_episodes`` training-split episodes; every step gives
   (observation, oracle action, action mask).
2. **Behaviour cloning**: the policy network is fitted by maximising the masked log-likelihood of the oracle's
   actions (:func:`bc_fit`), the same distribution MaskablePPO samples from.
3. **DAgger rounds**: the cloned agent runs ``dagger_episodes`` new episodes (each step the oracle's action is
   executed with probability ``beta``, else the agent's); the states the agent itself reaches are labelled with
   the oracle's action from that state (the oracle re-plans from the state whenever the executed action left
   its plan), added to the data set, and the network is refitted. Cloning alone only sees the oracle's own
   states; an agent that drifts off them (a little late, in another region) has never seen what to do there.

The value network is not fitted here; PPO fine-tuning after this (``timesteps`` of the config) starts from
the cloned policy. Everything is drawn from ``seed``: episode seeds, the execution coin, minibatch order.
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from agents.config import ImitationConfig
from agents.policy import AgentPolicy, model_label, model_mask
from baselines.oracle import OraclePolicy
from baselines.rules import TIMED
from envs.carbon_migration import CarbonMigrationEnv

IMITATION_COLUMNS = ["round", "episodes", "samples", "expert_share", "loss_before", "loss_after", "agreement", "wall_s"]


@dataclass
class Demonstrations:
    """(observation, expert action, action mask) per decision step, growing by :meth:`add`."""

    obs: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)

    def add(self, obs: np.ndarray, action: np.ndarray, mask: np.ndarray) -> None:
        self.obs.append(np.asarray(obs, dtype=np.float32).copy())
        self.actions.append(np.asarray(action, dtype=np.int64).reshape(-1).copy())
        self.masks.append(np.asarray(mask, dtype=bool).copy())

    def __len__(self) -> int:
        return len(self.obs)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.stack(self.obs), np.stack(self.actions), np.stack(self.masks)


class OracleLabeler:
    """The oracle's action from any state an executing policy reaches.

    Wraps :class:`baselines.oracle.OraclePolicy`: its plan is followed while the executed actions agree with
    it; once an executed action differs from the oracle's (outside a timed phase, where only one target is
    valid), the oracle re-plans from the state the job is then in at its next decision.
    """

    def __init__(self, reserve_h: float = 1.0) -> None:
        self.oracle = OraclePolicy(reserve_h=reserve_h)
        self._last: np.ndarray | None = None

    def reset(self, env: CarbonMigrationEnv, seed: int) -> None:
        self.oracle.reset(env, seed)
        self._last = None

    def label(self, obs: np.ndarray, view) -> np.ndarray:
        return np.asarray(self.oracle.act(obs, view), dtype=np.int64)

    def executed(self, label: np.ndarray, action: np.ndarray, view) -> None:
        """Tell the oracle which action ran; a departure from its plan makes it re-plan at the next step."""
        if view.state not in TIMED and not np.array_equal(label, action):
            self.oracle.replan_pending = True


def episode_seed(seed: int, round_: int, episode: int) -> int:
    """The reset seed of training episode ``episode`` of imitation round ``round_`` (independent streams)."""
    return int(np.random.SeedSequence([seed, 7919, round_, episode]).generate_state(1)[0])


def collect(
    env: CarbonMigrationEnv,
    model,
    episodes: int,
    seed: int,
    round_: int,
    beta: float,
    data: Demonstrations,
    reserve_h: float = 1.0,
    shield_fraction: float | None = None,
    on_episode=None,
) -> float:
    """Run ``episodes`` training episodes, executing the oracle's action with probability ``beta`` (1: the
    oracle alone; the agent's deterministic action otherwise), and add every step's (obs, oracle action, mask)
    to ``data``. Returns the share of steps where the executed action was the oracle's. ``on_episode()`` is
    called after each episode (the progress bar)."""
    rng = np.random.default_rng([seed, 104729, round_])
    labeler = OracleLabeler(reserve_h)
    agent = AgentPolicy(model, "maskable_ppo", shield_fraction=shield_fraction)
    expert_steps = steps = 0
    for i in range(episodes):
        obs, _ = env.reset(seed=episode_seed(seed, round_, i))
        labeler.reset(env, episode_seed(seed, round_, i))
        done = False
        while not done:
            view = env.view()
            label = model_label(model, labeler.label(obs, view))  # the oracle keeps all GPUs
            data.add(obs, label, model_mask(model, view.mask))
            if beta >= 1.0 or rng.random() < beta:
                action = label
                expert_steps += 1
            else:
                action = agent.act(obs, view)
            labeler.executed(label, action, view)
            obs, _, terminated, truncated, _ = env.step(action)
            steps += 1
            done = terminated or truncated
        if on_episode is not None:
            on_episode()
    return expert_steps / max(steps, 1)


def imitation_loss(policy, obs: np.ndarray, actions: np.ndarray, masks: np.ndarray) -> float:
    """Mean negative log-likelihood (nats per step) of ``actions`` under the masked policy distribution."""
    with torch.no_grad():
        _, log_prob, _ = policy.evaluate_actions(torch.as_tensor(obs), torch.as_tensor(actions), action_masks=masks)
    return float(-log_prob.mean())


def agreement(policy, obs: np.ndarray, actions: np.ndarray, masks: np.ndarray) -> float:
    """Share of samples whose deterministic (masked arg-max) action equals the label, target and clock both."""
    with torch.no_grad():
        pred, _ = policy.predict(obs, deterministic=True, action_masks=masks)
    return float(np.mean(np.all(np.asarray(pred).reshape(actions.shape) == actions, axis=1)))


def bc_fit(
    policy,
    obs: np.ndarray,
    actions: np.ndarray,
    masks: np.ndarray,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    weights: np.ndarray | None = None,
) -> list[float]:
    """Fit ``policy`` (a MaskableActorCriticPolicy) to the labels by Adam on the masked negative log-likelihood,
    each sample's term times ``weights`` (mean 1; None: all 1).

    :returns: mean training loss per epoch (nats per step)
    """
    params = list(policy.mlp_extractor.policy_net.parameters()) + list(policy.action_net.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    o, a = torch.as_tensor(obs), torch.as_tensor(actions)
    n = len(o)
    w = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32) / np.mean(weights))
    policy.set_training_mode(True)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            _, log_prob, _ = policy.evaluate_actions(o[idx], a[idx], action_masks=masks[idx.numpy()])
            loss = -log_prob.mean() if w is None else -(log_prob * w[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
    policy.set_training_mode(False)
    return losses


def fit_round(policy, data: tuple, cfg, seed: int, round_: int, n_eps: int, share: float, t0: float):
    """Fit ``policy`` on one imitation round's aggregated ``(obs, actions, masks[, weights])``; returns the round's
    ``imitation.csv`` row (loss before / after, agreement with the labels, wall time) and the fit's losses."""
    obs, actions, masks = data[:3]
    weights = data[3] if len(data) > 3 else None  # per-sample loss weights (the fleet's: GPUs ** gpu_weight)
    before = imitation_loss(policy, obs, actions, masks)
    lr, seed_ = cfg.learning_rate, seed * 1000 + round_
    losses = bc_fit(policy, obs, actions, masks, cfg.epochs, cfg.batch_size, lr, seed_, weights)
    row = {
        "round": round_,
        "episodes": n_eps,
        "samples": len(obs),
        "expert_share": round(share, 4),
        "loss_before": round(before, 5),
        "loss_after": round(imitation_loss(policy, obs, actions, masks), 5),
        "agreement": round(agreement(policy, obs, actions, masks), 4),
        "wall_s": round(time.time() - t0, 1),
    }
    return row, losses


def pretrain(
    model,
    env: CarbonMigrationEnv,
    cfg: ImitationConfig,
    seed: int,
    log_path: Path | None = None,
    shield_fraction: float | None = None,
    verbose: int = 1,
    progress: bool = True,
) -> Demonstrations:
    """Behaviour cloning on oracle demonstrations, then ``cfg.dagger_rounds`` DAgger rounds, on ``model.policy``.

    :param env: a ``CarbonMigrationEnv`` on the training split
    :param log_path: ``imitation.csv`` (one row per fit: data size, loss before/after, agreement with the labels)
    :param progress: a progress bar (stderr) over the episodes of every round, and over each fit
    :returns: the aggregated data set
    """
    t0 = time.time()
    data = Demonstrations()
    rows = []
    n_rounds = cfg.dagger_rounds + 1
    total = cfg.demo_episodes + cfg.dagger_rounds * cfg.dagger_episodes
    bar = tqdm(total=total, unit="episode", desc="imitation", disable=not progress, file=sys.stderr, leave=False)
    for round_ in range(n_rounds):
        beta = 1.0 if round_ == 0 else cfg.beta * 0.5 ** (round_ - 1)
        n_eps = cfg.demo_episodes if round_ == 0 else cfg.dagger_episodes
        what = "oracle demonstrations" if round_ == 0 else f"DAgger, beta {beta:.2f}"
        bar.set_description(f"imitation round {round_ + 1}/{n_rounds} ({what})")
        share = collect(env, model, n_eps, seed, round_, beta, data, cfg.reserve_h, shield_fraction, bar.update)
        bar.set_description(f"imitation round {round_ + 1}/{n_rounds} (fitting {len(data)} samples)")
        bar.refresh()
        obs, actions, masks = data.arrays()
        row, losses = fit_round(model.policy, (obs, actions, masks), cfg, seed, round_, n_eps, share, t0)
        rows.append(row)
        if verbose:
            bar.write(
                f"[imitation] round {round_} ({what}): "
                f"{len(data)} samples, loss {row['loss_before']:.3f} -> {row['loss_after']:.3f} "
                f"(last epoch {losses[-1]:.3f}), agreement {100 * row['agreement']:.0f}%, {row['wall_s']:.0f} s",
                file=sys.stdout,
            )
    bar.close()
    if log_path is not None:
        with Path(log_path).open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=IMITATION_COLUMNS)
            w.writeheader()
            w.writerows(rows)
    return data
