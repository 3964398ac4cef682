"""Fast tests of the DQN agent: the loss on a hand-computed example, autoreset, seeding, I/O, logging."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from agents.dqn import DQNAgent, DQNConfig, QNetwork, ReplayBuffer

RESET_OBS = np.array([0.0, 0.0], dtype=np.float32)
LAST_OBS = np.array([1.0, 1.0], dtype=np.float32)
NO_TRAINING = {"learning_starts": 10**9}

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class OneStepBoxEnv(gym.Env):
    """Episodes of one step from ``RESET_OBS`` to ``LAST_OBS`` with reward 1, ended by termination
    (``terminal=True``) or by truncation."""

    observation_space = gym.spaces.Box(-1.0, 2.0, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return RESET_OBS.copy(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return LAST_OBS.copy(), 1.0, self.terminal, not self.terminal, {}


def small_config(**overrides: object) -> DQNConfig:
    """A config small enough for a CPU test to train in well under a second."""
    values = {
        "hidden_sizes": (32, 32),
        "buffer_size": 1_000,
        "batch_size": 16,
        "learning_starts": 100,
        "train_frequency": 10,
        "gradient_steps": 2,
        "target_network_frequency": 50,
        "exploration_fraction": 0.5,
        "seed": 0,
    }
    values.update(overrides)
    return DQNConfig(**values)


def linear_agent(double_q: bool) -> DQNAgent:
    """A DQN whose Q-networks are single linear layers set by hand: Q(s) = s, Q_target(s) = s reversed."""
    agent = DQNAgent(obs_dim=2, n_actions=2, config=DQNConfig(hidden_sizes=(), gamma=0.5, double_q=double_q))
    with torch.no_grad():
        (online_layer,) = [m for m in agent.q_network.modules() if isinstance(m, torch.nn.Linear)]
        (target_layer,) = [m for m in agent.target_network.modules() if isinstance(m, torch.nn.Linear)]
        online_layer.weight.copy_(torch.eye(2))
        target_layer.weight.copy_(torch.eye(2).flip(0))
        online_layer.bias.zero_()
        target_layer.bias.zero_()
    return agent


@pytest.mark.parametrize(
    ("double_q", "terminated", "expected_loss"),
    [
        # Q(s, 0) = 1. Double: argmax_a Q(s', .) = 0, Q_target(s', 0) = 1, target = 1 + 0.5 * 1 = 1.5.
        (True, False, 0.5 * 0.5**2),
        # Plain DQN: max_a Q_target(s', a) = 3, target = 1 + 0.5 * 3 = 2.5, Huber(1.5) = 1.5 - 0.5.
        (False, False, 1.0),
        # Terminal: target = r = 1 = Q(s, 0).
        (True, True, 0.0),
    ],
)
def test_loss_matches_hand_computed_targets(double_q: bool, terminated: bool, expected_loss: float) -> None:
    agent = linear_agent(double_q)
    agent.replay_buffer = ReplayBuffer(1, 2, agent.device, agent.sample_generator)
    agent.replay_buffer.add(
        obs=np.array([[1.0, 2.0]]),
        actions=np.array([0]),
        rewards=np.array([1.0]),
        next_obs=np.array([[3.0, 1.0]]),
        terminated=np.array([terminated]),
        discounts=np.array([0.5]),  # gamma of a one-step transition
    )
    weight_before = agent.q_network.layers[0].weight.detach().clone()
    loss = agent.train_step()
    assert loss.item() == expected_loss
    assert torch.equal(agent.q_network.layers[0].weight, weight_before) == (expected_loss == 0.0)


def test_n_step_windows_sum_discounted_rewards_and_flush_at_episode_end() -> None:
    from agents.dqn import NStepWindows

    windows = NStepWindows(n=3, gamma=0.5, num_envs=2)
    real, not_done = np.array([True, False]), np.zeros(2, dtype=bool)
    obs = [np.full((2, 1), float(t)) for t in range(5)]  # env 0's observation t is [t]
    for t in range(2):
        assert windows.push(real, obs[t], np.array([t, 0]), np.array([t + 1.0, 0]), obs[t + 1], not_done,
                            not_done) is None  # fewer than 3 rewards yet
    first, actions, rewards, nxt, terminated, discounts = windows.push(
        real, obs[2], np.array([2, 0]), np.array([3.0, 0]), obs[3], not_done, not_done)
    assert first[:, 0].tolist() == [0.0] and rewards.tolist() == [1 + 0.5 * 2 + 0.25 * 3]
    assert nxt[:, 0].tolist() == [3.0] and discounts.tolist() == [0.125] and not terminated.any()
    done = np.array([True, False])
    first, actions, rewards, nxt, terminated, discounts = windows.push(
        real, obs[3], np.array([3, 0]), np.array([4.0, 0]), obs[4], done, done)
    assert first[:, 0].tolist() == [1.0, 2.0, 3.0] and actions.tolist() == [1, 2, 3]
    assert rewards.tolist() == [2 + 0.5 * 3 + 0.25 * 4, 3 + 0.5 * 4, 4.0]
    assert discounts.tolist() == [0.125, 0.25, 0.5] and terminated.all() and (nxt[:, 0] == 4.0).all()
    assert not windows.windows[0]  # the episode's window is empty again


def test_dueling_head_centres_the_advantages() -> None:
    net = QNetwork(3, 4, (8,), dueling=True)
    obs = torch.randn(5, 3)
    q = net(obs)
    value = net.layers(obs)[:, :1]
    torch.testing.assert_close(q.mean(dim=1, keepdim=True), value)


@pytest.mark.parametrize("tau", [1.0, 0.25])
def test_target_update_moves_by_tau(tau: float) -> None:
    agent = linear_agent(double_q=True)
    agent.config.tau = tau
    agent.update_target_network()
    expected = tau * torch.eye(2) + (1 - tau) * torch.eye(2).flip(0)
    assert torch.equal(agent.target_network.layers[0].weight, expected)


@pytest.mark.parametrize(
    "make_env",
    [
        pytest.param(lambda terminal: OneStepBoxEnv(terminal), id="single-env"),
        *[
            pytest.param(
                lambda terminal, mode=mode: gym.vector.SyncVectorEnv(
                    [lambda: OneStepBoxEnv(terminal)] * 3, autoreset_mode=mode
                ),
                id=mode.name,
            )
            for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
        ],
    ],
)
@pytest.mark.parametrize("terminal", [True, False])
def test_replay_buffer_holds_only_real_transitions(make_env, terminal: bool) -> None:
    agent = DQNAgent(obs_dim=2, n_actions=2, config=small_config(**NO_TRAINING))
    returns = agent.learn(make_env(terminal), total_steps=30)
    buffer = agent.replay_buffer
    stored = slice(0, buffer.size)
    assert buffer.size == agent.num_steps == len(returns) >= 30
    assert (buffer.obs[stored] == torch.from_numpy(RESET_OBS)).all()
    assert (buffer.next_obs[stored] == torch.from_numpy(LAST_OBS)).all()
    assert (buffer.rewards[stored] == 1.0).all()
    assert (buffer.terminated[stored] == float(terminal)).all()


def test_learning_stops_early_once_recent_returns_reach_the_threshold() -> None:
    agent = DQNAgent(obs_dim=2, n_actions=2, config=small_config(**NO_TRAINING))
    returns = agent.learn(OneStepBoxEnv(terminal=True), total_steps=100, stop_return=1.0, stop_window=5)
    assert returns == [1.0] * 5
    assert agent.num_steps == 5


def test_callback_sees_every_step_and_can_stop_training() -> None:
    agent = DQNAgent(obs_dim=2, n_actions=2, config=small_config(**NO_TRAINING))
    seen = []

    def callback(a: DQNAgent) -> bool:
        seen.append(a.num_steps)
        return a.num_steps >= 7

    agent.learn(OneStepBoxEnv(terminal=True), total_steps=100, callback=callback)
    assert seen == list(range(1, 8)) and agent.num_steps == 7


def test_act_shapes_and_exploration() -> None:
    agent = DQNAgent(obs_dim=4, n_actions=3, config=small_config())
    obs = np.zeros((4000, 4), dtype=np.float32)
    greedy_action = agent.act(obs[0])
    assert isinstance(greedy_action, int)
    assert (agent.act(obs) == greedy_action).all()
    actions = agent.act(obs, epsilon=0.5)
    assert actions.shape == (4000,)
    assert set(actions.tolist()) == {0, 1, 2}
    assert 0.63 < np.mean(actions == greedy_action) < 0.70  # 0.5 + 0.5 / 3
    assert agent.q_network(torch.zeros(7, 4)).shape == (7, 3)


def train_cartpole(config: DQNConfig, steps: int = 300, num_envs: int = 2, log_path=None) -> DQNAgent:
    env = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync")
    agent = DQNAgent.for_env(env, config)
    agent.learn(env, total_steps=steps, log_path=log_path)
    return agent


def test_same_seed_gives_bitwise_identical_weights_and_other_seed_differs() -> None:
    first = train_cartpole(small_config(seed=5)).q_network.state_dict()
    again = train_cartpole(small_config(seed=5)).q_network.state_dict()
    other = train_cartpole(small_config(seed=6)).q_network.state_dict()
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


class TwoContextBanditEnv(gym.Env):
    """One-step episodes from observation ``[1, 0]`` or ``[0, 1]`` (drawn by the env's seeded rng): the action
    that indexes the 1 pays 1, the other 0. Q* is the identity; random play earns 0.5 an episode."""

    observation_space = gym.spaces.Box(-1.0, 2.0, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.context = int(self.np_random.integers(2))
        return np.eye(2, dtype=np.float32)[self.context], {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(2, dtype=np.float32), float(action == self.context), True, False, {}


def test_training_learns_changes_weights_and_logs_csv(tmp_path) -> None:
    """400 steps on the bandit learn Q*: measured, every Q-value within 0.074 of it, the logged loss from 0.145
    (mean of the first 5) to 0.0001 (the last 5), the last 100 training episodes' return 0.99 (epsilon 0.02 at
    the end). Without learning (a learning rate of 1e-12) the Q-values stay near their init (0.01-0.14), the loss
    rises (0.18 -> 0.24) and the greedy policy is wrong in one context (return 0.56); a learner blind to the
    rewards (stored as 0) ends with every Q-value near 0, its weights changed and its losses finite."""
    log_path = tmp_path / "dqn.csv"
    config = small_config(learning_starts=32, train_frequency=4, gradient_steps=4)
    untrained = DQNAgent(2, 2, config).q_network.state_dict()
    env = gym.vector.SyncVectorEnv([TwoContextBanditEnv for _ in range(4)])
    agent = DQNAgent.for_env(env, config)
    agent.learn(env, total_steps=400, log_path=log_path)
    assert 400 <= agent.num_steps < 404
    assert 0.0 < agent.optimizer.param_groups[0]["lr"] < 0.05 * config.learning_rate  # annealed to ~0
    assert not all(torch.equal(untrained[name], agent.q_network.state_dict()[name]) for name in untrained)
    with torch.no_grad():
        q = agent.q_network(torch.eye(2)).numpy()
    assert np.abs(q - np.eye(2)).max() < 0.1, q
    with open(log_path, newline="") as file:
        rows = list(csv.DictReader(file))
    metrics = {row["metric"] for row in rows}
    assert metrics == {"episodic_return", "episodic_length", "loss"}
    assert all(np.isfinite(float(row["value"])) for row in rows)
    loss = [float(row["value"]) for row in rows if row["metric"] == "loss"]
    returns = [float(row["value"]) for row in rows if row["metric"] == "episodic_return"]
    assert np.mean(loss[-5:]) < np.mean(loss[:5]) / 10  # the TD loss drops at least tenfold
    assert np.mean(returns[-100:]) > 0.9  # random: 0.5


def test_save_load_round_trip(tmp_path) -> None:
    agent = train_cartpole(small_config())
    path = tmp_path / "dqn.pt"
    agent.save(path)
    loaded = DQNAgent.load(path)
    assert loaded.config == agent.config
    for network, loaded_network in [
        (agent.q_network, loaded.q_network),
        (agent.target_network, loaded.target_network),
    ]:
        state, loaded_state = network.state_dict(), loaded_network.state_dict()
        assert all(torch.equal(state[name], loaded_state[name]) for name in state)
    obs = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    assert np.array_equal(agent.act(obs), loaded.act(obs))


def test_rejects_unsupported_spaces() -> None:
    with pytest.raises(TypeError, match="Box"):
        DQNAgent.for_env(gym.make("FrozenLake-v1"))
    agent = DQNAgent(obs_dim=3, n_actions=2, config=small_config())
    with pytest.raises(TypeError, match="shape"):
        agent.learn(gym.make("CartPole-v1"), total_steps=10)
