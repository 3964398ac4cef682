"""Fast tests of tabular Q-learning: the update rule, autoreset and truncation handling, seeding, I/O."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from agents.schedules import LinearSchedule
from agents.tabular_q import TabularQAgent

LAST_STATE_VALUE = 8.0


class OneStepEnv(gym.Env):
    """Episodes of one step: state 0 --any action, reward 1--> state 1, which ends the episode.

    ``terminal=True`` ends it by termination, ``terminal=False`` by truncation (a time limit).
    """

    observation_space = gym.spaces.Discrete(2)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        return 1, 1.0, self.terminal, not self.terminal, {}


def make_one_step_env(terminal: bool, num_envs: int | None, mode: AutoresetMode) -> gym.Env:
    """A single ``OneStepEnv`` (``num_envs=None``) or a sync vector env of them with autoreset ``mode``."""
    if num_envs is None:
        return OneStepEnv(terminal)
    return gym.vector.SyncVectorEnv([lambda: OneStepEnv(terminal)] * num_envs, autoreset_mode=mode)


def one_step_agent() -> TabularQAgent:
    """Agent on ``OneStepEnv`` with dyadic constants (exact float arithmetic) and Q(1, .) preset."""
    agent = TabularQAgent(n_states=2, n_actions=2, alpha=0.5, gamma=0.5, epsilon=1.0, seed=0)
    agent.q_table[1] = LAST_STATE_VALUE
    return agent


def test_update_matches_hand_computed_value() -> None:
    agent = TabularQAgent(n_states=2, n_actions=2, alpha=0.5, gamma=0.5, seed=0)
    agent.q_table[:] = [[1.0, 2.0], [3.0, 4.0]]
    td_error = agent.update(obs=0, action=1, reward=1.0, next_obs=1, terminated=False)
    # target = 1 + 0.5 * max(3, 4) = 3; Q(0, 1) = 2 + 0.5 * (3 - 2) = 2.5
    assert td_error.tolist() == [1.0]
    assert agent.q_table.tolist() == [[1.0, 2.5], [3.0, 4.0]]


def test_update_does_not_bootstrap_past_terminal_state() -> None:
    agent = TabularQAgent(n_states=2, n_actions=2, alpha=0.5, gamma=0.5, seed=0)
    agent.q_table[:] = [[1.0, 2.0], [3.0, 4.0]]
    agent.update(obs=0, action=1, reward=1.0, next_obs=1, terminated=True)
    # target = 1; Q(0, 1) = 2 + 0.5 * (1 - 2) = 1.5
    assert agent.q_table.tolist() == [[1.0, 1.5], [3.0, 4.0]]


def test_batched_update_averages_repeated_pairs() -> None:
    agent = TabularQAgent(n_states=2, n_actions=2, alpha=0.5, gamma=0.5, seed=0)
    agent.update(
        obs=np.array([0, 0, 1]),
        action=np.array([0, 0, 1]),
        reward=np.array([1.0, 3.0, -2.0]),
        next_obs=np.array([1, 1, 0]),
        terminated=np.array([True, True, False]),
    )
    # (0, 0) gets the mean TD error (1 + 3) / 2 = 2, (1, 1) gets -2
    assert agent.q_table.tolist() == [[1.0, 0.0], [0.0, -1.0]]


@pytest.mark.parametrize("num_envs", [None, 1, 3])
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize(("terminal", "expected_q0"), [(True, 0.5), (False, 0.5 * (1 + 0.5 * LAST_STATE_VALUE))])
def test_first_update_bootstraps_past_truncation_only(
    num_envs: int | None, mode: AutoresetMode, terminal: bool, expected_q0: float
) -> None:
    agent = one_step_agent()
    agent.learn(make_one_step_env(terminal, num_envs, mode), total_steps=1)  # one transition per env
    updated = agent.q_table[0] != 0.0
    assert updated.any()
    assert (agent.q_table[0][updated] == expected_q0).all()


@pytest.mark.parametrize("num_envs", [None, 1, 3])
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("terminal", [True, False])
def test_autoreset_steps_are_not_learned_from(num_envs: int | None, mode: AutoresetMode, terminal: bool) -> None:
    agent = one_step_agent()
    returns = agent.learn(make_one_step_env(terminal, num_envs, mode), total_steps=200)
    # A learned reset "transition" (1 -> 0, reward 0) would pull Q(1, .) away from its preset value.
    assert (agent.q_table[1] == LAST_STATE_VALUE).all()
    converged = 1.0 if terminal else 1.0 + 0.5 * LAST_STATE_VALUE
    np.testing.assert_allclose(agent.q_table[0], converged, rtol=1e-9)
    assert returns == [1.0] * len(returns)
    assert 200 <= len(returns) == agent.num_steps < 200 + (num_envs or 1)


def test_act_shapes_and_greedy_choice() -> None:
    agent = TabularQAgent(n_states=3, n_actions=4, epsilon=0.0, seed=0)
    agent.q_table[:, 2] = 1.0
    assert agent.act(1, greedy=True) == 2
    assert isinstance(agent.act(1), int)
    actions = agent.act(np.array([0, 1, 2, 2]))
    assert actions.shape == (4,)
    assert (actions == 2).all()


def test_exploration_follows_schedule() -> None:
    agent = TabularQAgent(n_states=1, n_actions=4, epsilon=LinearSchedule(1.0, 0.0, 100), seed=0)
    agent.q_table[0, 3] = 1.0
    assert 0.22 < np.mean(agent.act(np.zeros(4000, dtype=np.int64)) == 3) < 0.28  # epsilon 1: uniform
    agent.num_steps = 50
    assert 0.595 < np.mean(agent.act(np.zeros(4000, dtype=np.int64)) == 3) < 0.655  # 0.5 + 0.5 / 4
    agent.num_steps = 100
    assert (agent.act(np.zeros(100, dtype=np.int64)) == 3).all()


def test_same_seed_gives_identical_table_and_other_seed_differs() -> None:
    def train(seed: int) -> np.ndarray:
        env = gym.make_vec("Taxi-v4", num_envs=4, vectorization_mode="sync")
        agent = TabularQAgent.for_env(env, alpha=0.1, epsilon=LinearSchedule(1.0, 0.1, 500), seed=seed)
        agent.learn(env, total_steps=800)
        return agent.q_table

    first = train(seed=3)
    assert np.array_equal(first, train(seed=3))
    assert not np.array_equal(first, train(seed=4))


def test_learns_frozen_lake_deterministic_map() -> None:
    env = gym.make_vec("FrozenLake-v1", num_envs=4, vectorization_mode="sync", is_slippery=False)
    agent = TabularQAgent.for_env(env, alpha=0.5, gamma=0.9, epsilon=1.0, seed=0)
    agent.learn(env, total_steps=20_000)
    eval_env = gym.make("FrozenLake-v1", is_slippery=False)
    obs, _ = eval_env.reset(seed=0)
    done = False
    while not done:
        obs, reward, terminated, truncated, _ = eval_env.step(agent.act(obs, greedy=True))
        done = terminated or truncated
    assert reward == 1.0
    np.testing.assert_allclose(agent.q_table[0].max(), 0.9**5, rtol=1e-6)  # 6 steps to the goal


def test_save_load_round_trip(tmp_path) -> None:
    agent = TabularQAgent(n_states=5, n_actions=3, alpha=0.25, gamma=0.75, seed=0)
    agent.q_table[:] = np.random.default_rng(0).normal(size=(5, 3))
    path = tmp_path / "q_table.npz"
    agent.save(path)
    loaded = TabularQAgent.load(path)
    assert np.array_equal(loaded.q_table, agent.q_table)
    assert (loaded.alpha, loaded.gamma) == (0.25, 0.75)
    assert loaded.act(np.arange(5), greedy=True).tolist() == agent.q_table.argmax(axis=1).tolist()


def test_rejects_non_discrete_spaces() -> None:
    with pytest.raises(TypeError, match="Discrete"):
        TabularQAgent.for_env(gym.make("CartPole-v1"))


def test_linear_schedule() -> None:
    schedule = LinearSchedule(1.0, 0.0, 4)
    assert [schedule(step) for step in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert LinearSchedule(1.0, 0.1, 0)(0) == 0.1


def test_training_log_holds_every_finished_episode(tmp_path) -> None:
    env = gym.make_vec("Taxi-v4", num_envs=4, vectorization_mode="sync")
    agent = TabularQAgent.for_env(env, alpha=0.1, epsilon=LinearSchedule(1.0, 0.1, 500), seed=3)
    returns = agent.learn(env, total_steps=1000, log_path=tmp_path / "train.csv")
    lines = (tmp_path / "train.csv").read_text().splitlines()
    assert lines[0] == "global_step,metric,value"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[1] for r in rows] == ["episodic_return", "episodic_length"] * len(returns) and len(returns) >= 4
    assert [float(r[2]) for r in rows[::2]] == returns
    steps, lengths = [int(r[0]) for r in rows[::2]], [int(r[2]) for r in rows[1::2]]
    assert steps == sorted(steps) and steps[-1] <= agent.num_steps
    assert all(1 <= n <= 200 for n in lengths) and sum(lengths) <= agent.num_steps  # Taxi truncates at 200
    assert sum(lengths) > agent.num_steps - 4 * 200  # only the 4 unfinished episodes are missing
