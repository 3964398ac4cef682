"""Where DQN keeps experience: a replay buffer on the agent's device, and the per-env windows that turn
steps into ``n``-step transitions for it (for the agent's own steps and for demonstrations alike)."""

from __future__ import annotations

import collections

import numpy as np
import torch


class ReplayBuffer:
    """Fixed-capacity ring buffer of transitions, preallocated as one float32 tensor on ``device``.

    Each transition is one row ``obs | next_obs | action | reward | terminated | discount``, so storing a step
    and sampling a batch are one tensor write and one gather each. ``discount`` is what the bootstrapped value
    of ``next_obs`` is multiplied by (``gamma ** m`` for an ``m``-step return). The fields are column views.
    """

    def __init__(self, capacity: int, obs_dim: int, device: torch.device, generator: torch.Generator) -> None:
        self.capacity = capacity
        self.obs_dim = obs_dim
        self.device = device
        self.generator = generator
        self.rows = torch.zeros((capacity, 2 * obs_dim + 4), dtype=torch.float32, device=device)
        self.position = 0
        self.size = 0

    @property
    def obs(self) -> torch.Tensor:
        """Observations, ``(capacity, obs_dim)``."""
        return self.rows[:, : self.obs_dim]

    @property
    def next_obs(self) -> torch.Tensor:
        """Observations after each transition, ``(capacity, obs_dim)``."""
        return self.rows[:, self.obs_dim : 2 * self.obs_dim]

    @property
    def actions(self) -> torch.Tensor:
        """Actions (stored as float32, exact below 2**24), ``(capacity,)``."""
        return self.rows[:, 2 * self.obs_dim]

    @property
    def rewards(self) -> torch.Tensor:
        """Rewards, ``(capacity,)``."""
        return self.rows[:, 2 * self.obs_dim + 1]

    @property
    def terminated(self) -> torch.Tensor:
        """1.0 where the transition reached a terminal state, else 0.0, ``(capacity,)``."""
        return self.rows[:, 2 * self.obs_dim + 2]

    @property
    def discounts(self) -> torch.Tensor:
        """Discount of each transition's bootstrapped value, ``(capacity,)``."""
        return self.rows[:, 2 * self.obs_dim + 3]

    def add(
        self,
        obs: np.ndarray | torch.Tensor,
        actions: np.ndarray | torch.Tensor,
        rewards: np.ndarray | torch.Tensor,
        next_obs: np.ndarray | torch.Tensor,
        terminated: np.ndarray | torch.Tensor,
        discounts: np.ndarray | torch.Tensor,
    ) -> None:
        """Store a batch of transitions (one per row), overwriting the oldest once full. Numpy arrays or
        tensors; tensors already on the buffer's device are written without a host copy."""
        count = len(obs)
        if count > self.capacity:
            raise ValueError(f"cannot add {count} transitions to a buffer of capacity {self.capacity}")
        columns = [obs, next_obs, actions[:, None], rewards[:, None], terminated[:, None], discounts[:, None]]
        if isinstance(obs, torch.Tensor):
            new_rows = torch.cat([torch.as_tensor(c, device=self.device).float() for c in columns], dim=1)
        else:
            new_rows = torch.as_tensor(np.concatenate(columns, axis=1, dtype=np.float32), device=self.device)
        first_part = min(count, self.capacity - self.position)
        self.rows[self.position : self.position + first_part] = new_rows[:first_part]
        if first_part < count:
            self.rows[: count - first_part] = new_rows[first_part:]
        self.position = (self.position + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """Uniformly sample ``(obs, actions, rewards, next_obs, terminated, discounts)`` with replacement."""
        indices = torch.randint(self.size, (batch_size,), device=self.device, generator=self.generator)
        batch = self.rows[indices]
        d = self.obs_dim
        return (batch[:, :d], batch[:, 2 * d].long(), batch[:, 2 * d + 1], batch[:, d : 2 * d], batch[:, 2 * d + 2],
                batch[:, 2 * d + 3])


class NStepWindows:
    """Per-env windows of the last ``n`` steps, turned into ``n``-step transitions for the replay buffer.

    A step's transition leaves its env's window once ``n`` rewards follow it, or when the episode ends
    (then with fewer), as ``(obs, action, sum_k gamma**k r_k, obs m steps on, terminated, gamma**m)``.
    """

    def __init__(self, n: int, gamma: float, num_envs: int) -> None:
        self.n, self.gamma = n, gamma
        self.windows: list[collections.deque] = [collections.deque() for _ in range(num_envs)]

    def push(self, real: np.ndarray, obs, actions: np.ndarray, rewards: np.ndarray, next_obs,
             terminated: np.ndarray, done: np.ndarray) -> tuple | None:
        """Add one vector step (envs in ``real``); the transitions now complete, in env order, or None."""
        out: list[tuple] = []
        for i in np.flatnonzero(real):
            window = self.windows[i]
            window.append((obs[i], int(actions[i]), float(rewards[i])))
            while len(window) == self.n or (done[i] and window):
                first_obs, action, _ = window[0]
                ret = sum(self.gamma ** k * r for k, (_, _, r) in enumerate(window))
                out.append((first_obs, action, ret, next_obs[i], bool(terminated[i]), self.gamma ** len(window)))
                window.popleft()
        if not out:
            return None
        stack = torch.stack if isinstance(obs, torch.Tensor) else np.stack
        columns = list(zip(*out))
        return (stack(columns[0]), np.array(columns[1]), np.array(columns[2], dtype=np.float32), stack(columns[3]),
                np.array(columns[4]), np.array(columns[5], dtype=np.float32))
