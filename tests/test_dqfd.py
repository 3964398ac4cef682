"""DQN from demonstrations (DQfD): the large-margin loss, mixed batches, collecting and imitating a script."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.demonstrations import DemonstrationPlan, collect_demonstrations
from agents.dqn import DQNAgent, DQNConfig, ReplayBuffer

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class BalancePolicy:
    """A CartPole script that keeps the pole up for hundreds of steps: push towards where the pole falls."""

    def reset(self, env_mask: np.ndarray) -> None:
        pass

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


def cartpole(num_envs: int, mode: str) -> gym.vector.VectorEnv:
    autoreset = {"same": gym.vector.AutoresetMode.SAME_STEP, "next": gym.vector.AutoresetMode.NEXT_STEP}[mode]
    return gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * num_envs, autoreset_mode=autoreset)


def identity_agent(**config: object) -> DQNAgent:
    """A DQN whose online network is Q(s) = s (one linear layer set by hand)."""
    agent = DQNAgent(obs_dim=2, n_actions=2, config=DQNConfig(hidden_sizes=(), **config))
    with torch.no_grad():
        layer = agent.q_network.layers[0]
        layer.weight.copy_(torch.eye(2))
        layer.bias.zero_()
    return agent


def demo(obs, action, reward=1.0) -> tuple[np.ndarray, ...]:
    """One terminal demonstrated transition."""
    return (np.array([obs], dtype=np.float32), np.array([action]), np.array([reward], dtype=np.float32),
            np.zeros((1, 2), dtype=np.float32), np.array([True]), np.array([0.99], dtype=np.float32))


@pytest.mark.parametrize(("obs", "margin", "weight", "expected"), [
    # Q(s) = (1, 2), a_E = 0: TD loss 0 (terminal, target r = 1 = Q(s, 0)); margin term max(1, 2 + m) - 1 = 1 + m.
    ((1.0, 2.0), 0.05, 1.0, 1.05),
    ((1.0, 2.0), 0.05, 0.5, 0.525),
    # a_E = 0 already leads by more than the margin: only the TD loss, which is 0.
    ((1.0, 0.5), 0.05, 1.0, 0.0),
    # ... but by less than the margin: the margin term is (0.9 + 0.2) - 1 = 0.1.
    ((1.0, 0.9), 0.2, 1.0, 0.1),
])
def test_margin_loss_matches_hand_computed_values(obs, margin, weight, expected) -> None:
    agent = identity_agent(demo_margin=margin, demo_weight=weight, batch_size=1)
    agent.add_demonstrations(demo(obs, 0))
    assert agent.train_step(demo_only=True).item() == pytest.approx(expected, abs=1e-6)


def test_batches_mix_demonstrations_and_own_experience_by_demo_fraction() -> None:
    agent = identity_agent(batch_size=16, demo_fraction=0.25)
    agent.add_demonstrations(demo((1.0, 0.0), 0))
    agent.replay_buffer = ReplayBuffer(4, 2, agent.device, agent.sample_generator)
    agent.replay_buffer.add(*demo((0.0, 1.0), 1))
    (obs, *_), n_demo = agent._sample(demo_only=False)
    assert n_demo == 4 and obs[:4, 0].eq(1.0).all() and obs[4:, 1].eq(1.0).all()
    (obs, *_), n_demo = agent._sample(demo_only=True)
    assert n_demo == 16 and obs[:, 0].eq(1.0).all()


class RandomPolicy:
    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def reset(self, env_mask: np.ndarray) -> None:
        pass

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return self.rng.integers(2, size=len(obs))


def test_collected_demonstrations_are_the_scripts_n_step_transitions() -> None:
    demos = collect_demonstrations(cartpole(2, "same"), BalancePolicy(), total_steps=200, n_step=3, gamma=0.9,
                                   seed=0)
    obs, actions, rewards, next_obs, terminated, discounts = demos.transitions
    assert demos.env_steps == 200 and len(demos) == 200 - 2 * 2  # running episodes keep 2 steps each in windows
    assert np.array_equal(actions, BalancePolicy().act(obs, {}))
    assert np.allclose(discounts, 0.9 ** 3) and np.allclose(rewards, 1 + 0.9 + 0.81)  # CartPole pays 1 per step
    again = collect_demonstrations(cartpole(2, "same"), BalancePolicy(), total_steps=200, n_step=3, gamma=0.9,
                                   seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(demos.transitions, again.transitions))


@pytest.mark.parametrize("mode", ["same", "next"])
def test_episode_ends_in_either_autoreset_mode(mode: str) -> None:
    """Short random episodes: every episode's steps are stored once, ending in its true last observation."""
    demos = collect_demonstrations(cartpole(3, mode), RandomPolicy(), total_steps=300, n_step=2, gamma=0.5, seed=4)
    obs, actions, rewards, next_obs, terminated, discounts = demos.transitions
    assert 300 <= demos.env_steps < 303 and len(demos.episode_returns) > 5  # NEXT_STEP may end mid-batch
    ends = terminated.astype(bool)
    assert ends.sum() == 2 * len(demos.episode_returns)  # each ended episode's last two windows terminate
    assert not any((obs == last).all(axis=1).any() for last in next_obs[ends])  # no step from a fallen pole
    running = demos.env_steps - sum(demos.episode_returns)  # CartPole pays 1 per step
    assert demos.env_steps - 3 <= len(demos) <= demos.env_steps and 0 <= running <= 3 * 500  # n - 1 per window


def test_pretraining_imitates_the_demonstrator_and_then_balances() -> None:
    env = gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync")
    demos = collect_demonstrations(env, BalancePolicy(), total_steps=2000, n_step=3, gamma=0.9, seed=1)
    obs = torch.as_tensor(demos.transitions[0])

    def pretrained(demo_weight: float) -> tuple[DQNAgent, float, list[float]]:
        config = DQNConfig(hidden_sizes=(64, 64), batch_size=64, learning_rate=3e-3, gamma=0.9, demo_margin=0.8,
                           demo_weight=demo_weight, seed=2)  # the paper's margin
        agent = DQNAgent.for_env(env, config)
        agent.add_demonstrations(demos.transitions)
        losses = agent.pretrain(1000)
        agreement = (agent.q_network(obs).argmax(1).numpy() == demos.transitions[1]).mean()
        return agent, agreement, losses

    agent, agreement, losses = pretrained(1.0)
    _, td_only_agreement, _ = pretrained(0.0)
    assert agreement > 0.85 and agreement > td_only_agreement + 0.05  # the margin loss does the imitating
    assert np.mean(losses[-50:]) < np.mean(losses[:50])
    single = gym.make("CartPole-v1")
    returns = []
    for seed in range(3):
        state, _ = single.reset(seed=100 + seed)
        total, done = 0.0, False
        while not done:
            state, reward, terminated, truncated, _ = single.step(agent.act(state))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    assert np.mean(returns) > 150  # a random policy lasts about 22 steps


def test_refusals() -> None:
    agent = identity_agent()
    with pytest.raises(ValueError, match="add_demonstrations first"):
        agent.pretrain(1)
    with pytest.raises(ValueError, match="no demonstrations"):
        agent.add_demonstrations(tuple(np.zeros((0, 2)) for _ in range(6)))
    with pytest.raises(ValueError, match="demo_fraction"):
        DQNConfig(demo_fraction=1.5)
    with pytest.raises(ValueError, match="demo_margin"):
        DQNConfig(demo_margin=-0.1)
    with pytest.raises(ValueError, match="demonstrator must be one of"):
        DemonstrationPlan(demonstrator="oracle")
    with pytest.raises(ValueError, match="env_steps"):
        DemonstrationPlan(env_steps=0)
    disabled = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2,
                                        autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    with pytest.raises(ValueError, match="autoreset DISABLED"):
        collect_demonstrations(disabled, BalancePolicy(), 10, 1, 0.9, seed=0)
    with pytest.raises(ValueError, match="no 3-step transition"):
        collect_demonstrations(cartpole(2, "same"), BalancePolicy(), 2, 3, 0.9, seed=0)
