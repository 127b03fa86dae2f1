"""agents/imitation.py and the deadline shield: oracle demonstrations, behaviour cloning, DAgger, train.py's use."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sb3_contrib import MaskablePPO

import train
from agents import AgentConfigError, load_agent, load_hyperparams
from agents.imitation import Demonstrations, ImitationConfig, agreement, bc_fit, collect, episode_seed, imitation_loss
from agents.policy import deadline_shield
from baselines.base import Policy
from baselines.oracle import OraclePolicy
from baselines.runner import run_episode
from envs.carbon_migration import CarbonMigrationEnv
from sim.states import State

TINY_IMITATION = {"demo_episodes": 1, "dagger_rounds": 1, "dagger_episodes": 1, "epochs": 2, "batch_size": 64}


@pytest.fixture(scope="module")
def env():
    return CarbonMigrationEnv("paper", "train")


def tiny_model(env, seed=0):
    torch.manual_seed(seed)
    return MaskablePPO(
        "MlpPolicy", env, n_steps=64, batch_size=64, seed=seed, device="cpu", policy_kwargs={"net_arch": [32]}
    )


class Recording(Policy):
    """The oracle, recording the action it takes at each step (labels computed without agents/imitation.py)."""

    name = "oracle"
    clairvoyant = True

    def __init__(self):
        self.oracle, self.actions, self.masks, self.obs = OraclePolicy(), [], [], []

    def reset(self, env, seed):
        self.oracle.reset(env, seed)

    def act(self, obs, view):
        a = self.oracle.act(obs, view)
        self.actions.append(np.asarray(a))
        self.masks.append(view.mask.copy())
        self.obs.append(obs.copy())
        return a


@pytest.fixture(scope="module")
def demos(env):
    """Two oracle-executed training episodes collected by agents/imitation.py, and the same two run directly."""
    data = Demonstrations()
    share = collect(env, tiny_model(env), 2, seed=3, round_=0, beta=1.0, data=data)
    rec = Recording()
    for i in range(2):
        run_episode(env, rec, seed=episode_seed(3, 0, i), keep_history=False)
    return data, share, rec


def test_demonstrations_are_the_oracles_own_run_and_every_action_is_allowed(env, demos):
    data, share, rec = demos
    obs, actions, masks = data.arrays()
    assert share == 1.0 and len(data) == len(rec.actions) > 200  # two 48 h episodes of 15-min steps, ended early
    np.testing.assert_array_equal(actions, np.stack(rec.actions))
    np.testing.assert_array_equal(obs, np.stack(rec.obs))
    n_targets = env.R + 1
    rows = np.arange(len(actions))
    assert masks[rows, actions[:, 0]].all() and masks[rows, n_targets + actions[:, 1]].all()


def test_behaviour_cloning_fits_the_independently_computed_oracle_labels(env, demos):
    _, _, rec = demos
    obs, actions, masks = np.stack(rec.obs), np.stack(rec.actions).astype(np.int64), np.stack(rec.masks)
    model = tiny_model(env)
    before_loss, before_agree = (
        imitation_loss(model.policy, obs, actions, masks),
        agreement(model.policy, obs, actions, masks),
    )
    losses = bc_fit(model.policy, obs, actions, masks, epochs=30, batch_size=64, lr=3e-3, seed=0)
    after_loss, after_agree = (
        imitation_loss(model.policy, obs, actions, masks),
        agreement(model.policy, obs, actions, masks),
    )
    # an untrained net is ~uniform: about ln(valid targets) + ln(5 levels) nats; the oracle's labels are learnable
    assert before_loss > 1.5 and after_loss < 0.5 * before_loss and losses[-1] < losses[0]
    assert after_agree > max(0.6, before_agree + 0.3)


def test_dagger_labels_the_agents_own_states_with_the_oracles_action(env):
    data = Demonstrations()
    model = tiny_model(env)  # untrained: it leaves the oracle's plan at once, so the oracle must re-plan
    share = collect(env, model, 1, seed=5, round_=1, beta=0.0, data=data)
    obs, actions, masks = data.arrays()
    assert share == 0.0 and len(data) > 50
    rows = np.arange(len(actions))
    assert masks[rows, actions[:, 0]].all() and masks[rows, env.R + 1 + actions[:, 1]].all()
    # the same episode under the untrained agent gives the same states: labels do not steer the execution
    agent_obs = []
    o, _ = env.reset(seed=episode_seed(5, 1, 0))
    done = False
    while not done:
        agent_obs.append(o)
        a, _ = model.predict(o, deterministic=True, action_masks=env.action_masks())
        o, _, term, trunc, _ = env.step(a)
        done = term or trunc
    np.testing.assert_array_equal(obs, np.stack(agent_obs))


def test_deadline_shield_runs_at_the_top_clock_under_the_cap_when_time_is_short(env):
    for seed in range(50):  # an episode that starts with all the job's GPUs free at home: there the cap binds
        env.reset(seed=seed)
        view = env.view()
        if view.usable_gpus[view.region] >= view.requested_gpus:
            break
    r, n = view.region, view.requested_gpus
    # hours the whole job needs at level 0 on all usable GPUs, by hand from the view's tables
    usable = max(int(view.usable_gpus[r]), 1)
    need0_h = view.total_mb * view.t_mb_s[r, 0] * view.work * n / usable / 3600.0
    top_under_cap = max(
        lv for lv in range(view.n_levels) if max(view.n_gpus, usable) * view.p_gpu_w[r, lv] <= view.cap_w
    )
    running = dataclasses.replace(view, state=State.TOLERANCE)
    plenty = dataclasses.replace(running, t_s=0.0, deadline_s=need0_h * 3600.0 / 0.5)  # needs 50 % of the time left
    short = dataclasses.replace(running, t_s=0.0, deadline_s=need0_h * 3600.0 / 0.95)  # needs 95 %
    slow, pause = np.array([r, 0]), np.array([view.wait, 0])
    np.testing.assert_array_equal(deadline_shield(plenty, slow, 0.9), slow)
    assert top_under_cap < view.n_levels - 1  # paper's cap: 8 V100s at the top clock draw more than 1700 W
    np.testing.assert_array_equal(deadline_shield(plenty, np.array([r, view.n_levels - 1]), 0.9), [r, top_under_cap])
    np.testing.assert_array_equal(deadline_shield(short, slow, 0.9), [r, top_under_cap])
    np.testing.assert_array_equal(deadline_shield(short, slow, 1.0), slow)  # 95 % < 100 %: allowed
    # a pause is overridden only if the top clock itself would need more than the fraction
    need_top_h = need0_h * view.t_mb_s[r, top_under_cap] / view.t_mb_s[r, 0]
    tight = dataclasses.replace(running, t_s=0.0, deadline_s=need_top_h * 3600.0 / 0.95)
    np.testing.assert_array_equal(deadline_shield(short, pause, 0.9), pause)
    np.testing.assert_array_equal(deadline_shield(tight, pause, 0.9), [r, top_under_cap])
    # the reserve: 0.5 h in hand at the top clock is less than the 1 h kept, whatever the fraction
    near = dataclasses.replace(running, t_s=0.0, deadline_s=(need_top_h + 0.5) * 3600.0)
    np.testing.assert_array_equal(deadline_shield(near, pause, 1.0), [r, top_under_cap])
    timed = dataclasses.replace(tight, state=State.MIGRATION)
    np.testing.assert_array_equal(deadline_shield(timed, pause, 0.9), pause)  # a timed phase is never shielded


@pytest.mark.parametrize(
    "text, needle",
    [
        ("imitation: {demo_episode: 3}", "imitation.demo_episode: unknown imitation setting"),
        ("imitation: {epochs: -1}", "imitation.epochs: must be an integer >= 0"),
        ("imitation: {beta: 1.5}", "imitation.beta: must be a number in (0, 1]"),
        ("imitation: [1, 2]", "imitation: must be a mapping"),
        ("deadline_shield: 2", "deadline_shield: must be a number in (0, 1] or null"),
    ],
)
def test_bad_imitation_settings_fail_in_one_line(tmp_path, text, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(AgentConfigError) as e:
        load_hyperparams("maskable_ppo", bad)
    assert needle in str(e.value) and str(bad) in str(e.value) and len(str(e.value).splitlines()) == 1


def test_no_imitation_and_no_timesteps_fails_in_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("imitation: null")
    assert train.main(["--out", str(tmp_path / "runs"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "timesteps: 0 trains nothing without an imitation section" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_imitation_keys_are_only_for_maskable_ppo(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("imitation: null")
    with pytest.raises(AgentConfigError, match="imitation: unknown hyper-parameter for ppo"):
        load_hyperparams("ppo", cfg)


def test_shipped_default_imitates_the_oracle_without_ppo_steps():
    hp = load_hyperparams("maskable_ppo")
    assert hp["timesteps"] == 0 and hp["deadline_shield"] == 0.9
    assert ImitationConfig.from_dict(hp["imitation"]).demo_episodes == 200


def _train(tmp_path, name, *extra):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"imitation": TINY_IMITATION, "n_envs": 1, "eval_episodes": 1, "policy_kwargs": {"net_arch": [16]}}
        )
    )
    argv = ["--out", str(tmp_path / "runs"), "--no-progress-bar", "--config", str(cfg), "--name", name, *extra]
    return train.main(argv), tmp_path / "runs" / name


def _params(run_dir):
    return {k: v.clone() for k, v in load_agent(run_dir / "model.zip").model.policy.state_dict().items()}


def test_train_imitates_deterministically_and_a_kill_during_imitation_resumes(tmp_path):
    rc, a = _train(tmp_path, "a", "--seed", "4")
    assert rc == 0
    rc, b = _train(tmp_path, "b", "--seed", "4")
    assert rc == 0
    pa, pb = _params(a), _params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    logs = [pd.read_csv(d / "imitation.csv").drop(columns="wall_s") for d in (a, b)]
    pd.testing.assert_frame_equal(*logs)
    assert len((a / "imitation.csv").read_text().strip().splitlines()) == 3  # header, cloning, one DAgger round
    cfg = yaml.safe_load((a / "config.yaml").read_text())
    assert cfg["timesteps_total"] == 0 and cfg["hyperparams"]["imitation"] == TINY_IMITATION
    assert (a / "best_model.zip").is_file() and (a / "eval.csv").read_text().splitlines()[1].startswith("0,")
    agent = load_agent(a)
    assert agent.shield_fraction == 0.9  # the shipped deadline_shield, applied by evaluate.py too
    # a kill during imitation leaves config.yaml and no save: --resume starts the imitation over, same result
    for p in [a / "model.zip", a / "best_model.zip", *sorted((a / "checkpoints").iterdir())]:
        if p.is_dir():
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
        else:
            p.unlink()
    assert train.main(["--resume", str(a), "--no-progress-bar"]) == 0
    pa2 = _params(a)
    assert all(torch.equal(pa2[k], pb[k]) for k in pb)
    assert len((a / "eval.csv").read_text().strip().splitlines()) == 2  # one evaluation, not two
