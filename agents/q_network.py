"""The DQN's Q-network: an MLP from an observation vector to one Q-value per action, optionally dueling."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class QNetwork(nn.Module):
    """MLP from an observation vector to one Q-value per action, with ReLU hidden layers.

    The input is first mapped ``(obs - obs_shift) / obs_scale`` (identity unless ``obs_low``/``obs_high``
    are given; unbounded features pass through); both are buffers, saved with the weights.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: tuple[int, ...],
                 obs_low: np.ndarray | None = None, obs_high: np.ndarray | None = None, dueling: bool = False) -> None:
        super().__init__()
        shift, scale = np.zeros(obs_dim, dtype=np.float32), np.ones(obs_dim, dtype=np.float32)
        if obs_low is not None and obs_high is not None:
            low, high = np.asarray(obs_low, dtype=np.float64), np.asarray(obs_high, dtype=np.float64)
            bounded = np.isfinite(low) & np.isfinite(high) & (high > low)
            shift[bounded] = (high[bounded] + low[bounded]) / 2
            scale[bounded] = (high[bounded] - low[bounded]) / 2
        self.register_buffer("obs_shift", torch.from_numpy(shift))
        self.register_buffer("obs_scale", torch.from_numpy(scale))
        layers: list[nn.Module] = []
        in_features = obs_dim
        for width in hidden_sizes:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        self.dueling = dueling
        layers.append(nn.Linear(in_features, n_actions + 1 if dueling else n_actions))
        self.layers = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values of shape ``(batch, n_actions)`` for observations of shape ``(batch, obs_dim)``."""
        out = self.layers((obs - self.obs_shift) / self.obs_scale)
        if not self.dueling:
            return out
        value, advantage = out[:, :1], out[:, 1:]
        return value + advantage - advantage.mean(dim=1, keepdim=True)
