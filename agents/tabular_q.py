"""Tabular Q-learning for environments with discrete observations and discrete actions.

The agent learns from a single ``gymnasium.Env`` or from a ``gymnasium.vector.VectorEnv`` (one transition
per sub-environment per vector step, applied as one vectorized numpy update), played by the shared rollout
loop (:class:`llm_repair_gym.rl.rollout.Rollout`), which handles Gymnasium 1.x autoreset in both modes: in
``NEXT_STEP`` the steps that only reset a sub-environment are not learned from, and in ``SAME_STEP`` the true
last observation comes from ``info["final_obs"]``.

A real terminal state (``terminated``) is never bootstrapped past; a time-limit truncation is.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from agents.schedules import LinearSchedule, Schedule, as_schedule
from llm_repair_gym.rl.rollout import Rollout

DEFAULT_EPSILON = LinearSchedule(1.0, 0.05, 10_000)
"""Default exploration: epsilon decays from 1.0 to 0.05 over the first 10k environment steps."""


class TabularQAgent:
    """Q-learning with a ``(n_states, n_actions)`` table and epsilon-greedy exploration.

    Args:
        n_states: number of discrete observations.
        n_actions: number of discrete actions.
        alpha: learning rate of the Q update.
        gamma: discount factor.
        epsilon: exploration rate, a constant or a schedule of the agent's environment-step count.
        seed: seeds exploration and the environment resets done by :meth:`learn`; ``None`` for fresh entropy.
    """

    def __init__(
        self,
        n_states: int,
        n_actions: int,
        alpha: float = 0.1,
        gamma: float = 0.99,
        epsilon: float | Schedule = DEFAULT_EPSILON,
        seed: int | None = None,
    ) -> None:
        if n_states < 1 or n_actions < 1:
            raise ValueError(f"need n_states >= 1 and n_actions >= 1, got {n_states} and {n_actions}")
        self.n_states = n_states
        self.n_actions = n_actions
        self.alpha = alpha
        self.gamma = gamma
        self.epsilon = as_schedule(epsilon)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.q_table = np.zeros((n_states, n_actions), dtype=np.float64)
        self.num_steps = 0
        """Environment steps learned from so far; the argument of the epsilon schedule."""

    @classmethod
    def for_env(cls, env: gym.Env | gym.vector.VectorEnv, **kwargs) -> TabularQAgent:
        """Build an agent sized for ``env`` (single or vector); ``kwargs`` go to the constructor."""
        observation_space = getattr(env, "single_observation_space", env.observation_space)
        action_space = getattr(env, "single_action_space", env.action_space)
        if not isinstance(observation_space, gym.spaces.Discrete) or not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(
                f"tabular Q-learning needs Discrete observation and action spaces, "
                f"got {observation_space} and {action_space}"
            )
        return cls(int(observation_space.n), int(action_space.n), **kwargs)

    def act(self, obs: int | np.ndarray, greedy: bool = False) -> int | np.ndarray:
        """Choose actions for one observation (returns an int) or an array of them (returns an array).

        Greedy actions take the first maximizing action; otherwise each action is uniformly random with
        probability ``epsilon(num_steps)``.
        """
        states = np.asarray(obs, dtype=np.int64)
        actions = self.q_table[states].argmax(axis=-1)
        if not greedy:
            explore = self.rng.random(states.shape) < self.epsilon(self.num_steps)
            actions = np.where(explore, self.rng.integers(self.n_actions, size=states.shape), actions)
        return int(actions) if states.ndim == 0 else actions

    def update(
        self,
        obs: int | np.ndarray,
        action: int | np.ndarray,
        reward: float | np.ndarray,
        next_obs: int | np.ndarray,
        terminated: bool | np.ndarray,
    ) -> np.ndarray:
        """Apply one Q-learning update per transition and return the TD errors.

        ``Q(s, a) <- Q(s, a) + alpha * (r + gamma * max_a' Q(s', a') - Q(s, a))``, with no bootstrap term
        when ``terminated``. A batch of transitions is applied at once, every TD error computed from the
        table as it was before the batch; transitions sharing a ``(s, a)`` pair contribute their mean TD
        error, so a batch of one is exactly the textbook update.
        """
        obs = np.atleast_1d(np.asarray(obs, dtype=np.int64))
        action = np.atleast_1d(np.asarray(action, dtype=np.int64))
        reward = np.atleast_1d(np.asarray(reward, dtype=np.float64))
        next_obs = np.atleast_1d(np.asarray(next_obs, dtype=np.int64))
        terminated = np.atleast_1d(np.asarray(terminated, dtype=bool))

        # td_target = r + gamma * max_a' Q(s', a'), or just r past a terminal state
        bootstrap = np.where(terminated, 0.0, self.q_table[next_obs].max(axis=1))
        td_target = reward + self.gamma * bootstrap
        td_error = td_target - self.q_table[obs, action]

        # Q(s, a) <- Q(s, a) + alpha * td_error, one mean TD error per distinct (s, a) pair of the batch
        flat_pairs = obs * self.n_actions + action
        pairs, pair_of_transition, pair_counts = np.unique(flat_pairs, return_inverse=True, return_counts=True)
        mean_td_error = np.bincount(pair_of_transition, weights=td_error) / pair_counts
        pair_states, pair_actions = np.divmod(pairs, self.n_actions)
        self.q_table[pair_states, pair_actions] += self.alpha * mean_td_error
        return td_error

    def learn(self, env: gym.Env | gym.vector.VectorEnv, total_steps: int, progress_bar: bool = False,
              log_path: str | Path | None = None) -> list[float]:
        """Run epsilon-greedy Q-learning on ``env`` for ``total_steps`` environment steps.

        A vector env contributes one transition per sub-environment per step; autoreset steps of the
        ``NEXT_STEP`` mode are not counted. The env is reset at the start. ``log_path``, if given, receives
        every finished episode's return and length by env step (``llm_repair_gym.rl.training_log``). Returns the
        undiscounted return of every episode completed, in order of completion.
        """
        with Rollout(env, total_steps, seed=int(self.rng.integers(2**31)), log_path=log_path,
                     progress_bar=progress_bar, desc="tabular Q", first_step=self.num_steps) as rollout:
            for step in rollout.play(lambda obs, info: self.act(obs, greedy=False)):
                real = step.real
                self.update(step.obs[real], step.actions[real], step.rewards[real], step.next_obs[real],
                            step.terminated[real])
                self.num_steps = rollout.global_step
        return rollout.episode_returns

    def save(self, path: str | Path) -> None:
        """Write the Q-table, ``alpha`` and ``gamma`` to an ``.npz`` file at exactly ``path``."""
        with open(path, "wb") as file:
            np.savez(file, q_table=self.q_table, alpha=self.alpha, gamma=self.gamma)

    @classmethod
    def load(
        cls,
        path: str | Path,
        epsilon: float | Schedule = 0.0,
        seed: int | None = None,
    ) -> TabularQAgent:
        """Read an agent written by :meth:`save`; exploration settings are not saved and are given here."""
        with np.load(path, allow_pickle=False) as data:
            q_table = data["q_table"]
            agent = cls(
                *q_table.shape,
                alpha=float(data["alpha"]),
                gamma=float(data["gamma"]),
                epsilon=epsilon,
                seed=seed,
            )
        agent.q_table[...] = q_table
        return agent

