"""Wrappers: ``DiscretizeObservation`` turns LLMRepair's Box observation into a ``Discrete`` state.

Each chosen feature is cut into bins by sorted edges; the state is the mixed-radix number of the bin
indices (first feature most significant), so ``n_states`` is the product of ``len(edges) + 1``. The
same mapping serves a single env (``DiscretizeObservation``) and a vector env
(``VectorDiscretizeObservation``), so tabular Q-learning runs on both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorWrapper

DEFAULT_BINS: dict[str, tuple[float, ...]] = {
    "val_acc/syntax": (0.6, 0.95),
    "val_acc/logic": (0.6, 0.95),
    "val_acc/fact": (0.6, 0.95),
    "log10_lr": (-2.75,),  # above 10^-2.75: the lr is too high to train with
    "loss_spread/syntax": (0.15,),
    "steps_used": (0.5,),
}
"""LLMRepair-v0's (and LLMMetaRepair-v0's) bins: 3 x 3 x 3 x 2 x 2 x 2 = 216 states."""
BINS_V1: dict[str, tuple[float, ...]] = {
    "val_acc/syntax": (0.6, 0.95),
    "val_acc/logic": (0.6, 0.95),
    "val_acc/fact": (0.6, 0.95),
    "log10_lr": (-3.25,),  # below the default lr: an lr_down was taken
    "log10_price": (-2.5,),  # above the median price: training costs more
    "steps_used": (0.5,),
}
"""LLMRepair-v1's (which has no ``loss_spread``; its price varies by episode): 216 states."""


def default_bins(feature_names: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """:data:`DEFAULT_BINS` for an env that has its features (LLMRepair-v0 and its meta env), else
    :data:`BINS_V1`."""
    return DEFAULT_BINS if all(name in feature_names for name in DEFAULT_BINS) else BINS_V1


class Discretizer:
    """The feature -> bin mapping, shared by the single and the vector wrapper."""

    def __init__(self, feature_names: Sequence[str], bins: Mapping[str, Sequence[float]]) -> None:
        if not bins:
            raise ValueError("bins must name at least one feature")
        unknown = [name for name in bins if name not in feature_names]
        if unknown:
            raise ValueError(f"unknown features {unknown}; the env has {list(feature_names)}")
        self.names = list(bins)
        self.indices = np.array([list(feature_names).index(n) for n in self.names])
        self.edges = [np.asarray(bins[n], dtype=np.float64) for n in self.names]
        for name, edges in zip(self.names, self.edges):
            if edges.ndim != 1 or len(edges) == 0 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"bins[{name!r}] must be a non-empty, strictly increasing list of edges")
        self.radix = np.array([len(e) + 1 for e in self.edges])
        self.n_states = int(np.prod(self.radix))
        self.place = np.concatenate([np.cumprod(self.radix[::-1])[::-1][1:], [1]]).astype(np.int64)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """States ``[...]`` (int64) of observations ``[..., n_features]``."""
        digits = [np.searchsorted(edges, obs[..., i], side="right")
                  for i, edges in zip(self.indices, self.edges)]
        return (np.stack(digits, -1) * self.place).sum(-1).astype(np.int64)


def _feature_names(env) -> list[str]:
    names = getattr(env.unwrapped, "feature_names", None)
    if names is None:
        raise ValueError("DiscretizeObservation needs an env whose unwrapped env has feature_names")
    return list(names)


class DiscretizeObservation(gym.ObservationWrapper):
    """A single env's Box observation as a ``Discrete(n_states)`` state."""

    def __init__(self, env: gym.Env, bins: Mapping[str, Sequence[float]] | None = None) -> None:
        super().__init__(env)
        names = _feature_names(env)
        self.discretizer = Discretizer(names, default_bins(names) if bins is None else bins)
        self.observation_space = spaces.Discrete(self.discretizer.n_states)

    def observation(self, observation: np.ndarray) -> int:
        return int(self.discretizer(observation))


class VectorDiscretizeObservation(VectorWrapper):
    """A vector env's Box observations as ``Discrete`` states, one per env.

    Supports SAME_STEP autoreset (Gymnasium's ``VectorObservationWrapper`` does not): the final
    observations in ``info["final_obs"]`` are discretized too.
    """

    def __init__(self, env: VectorEnv, bins: Mapping[str, Sequence[float]] | None = None) -> None:
        super().__init__(env)
        names = _feature_names(env)
        self.discretizer = Discretizer(names, default_bins(names) if bins is None else bins)
        self.single_observation_space = spaces.Discrete(self.discretizer.n_states)
        self.observation_space = spaces.MultiDiscrete(np.full(env.num_envs, self.discretizer.n_states))

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self.discretizer(obs), info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            info = dict(info)
            info["final_obs"] = np.array([None if o is None else int(self.discretizer(o))
                                          for o in info["final_obs"]], dtype=object)
        return self.discretizer(obs), reward, terminated, truncated, info
