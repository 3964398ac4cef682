"""Gymnasium's single-env API over LLMRepair-v0's native vector env.

:class:`SingleEnv` runs its ``vector_class`` (:class:`~llm_repair_gym.envs.repair.LLMRepairVectorEnv` or a
subclass) with one env, no autoreset and numpy outputs, and passes reset, step, render and the state calls
through. ``LLMRepairEnv`` and ``LLMMetaRepairEnv`` are this adapter with their vector env class.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from llm_repair_gym.envs.arguments import check_open, check_seeds
from llm_repair_gym.envs.host_io import generator_state, restore_generator
from llm_repair_gym.envs.snapshot import EnvState
from llm_repair_gym.envs.types import ResetReturn, StepReturn
from llm_repair_gym.envs.vector_info import unbatch

if TYPE_CHECKING:
    from llm_repair_gym.envs.repair import LLMRepairVectorEnv


class SingleEnv(gym.Env):
    """One env of ``vector_class`` (set by the subclass) behind Gymnasium's single-env API. Its generator seeds
    the first unseeded reset; later unseeded resets continue the env's own stream, as in the vector env."""

    vector_class: type[LLMRepairVectorEnv]  # the implementation, run with N = 1

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if "num_envs" in kwargs or "autoreset_mode" in kwargs or "output" in kwargs:
            raise ValueError(f"{type(self).__name__} is one env with numpy outputs: use gym.make_vec for num_envs, "
                             "autoreset_mode and output")
        self.vector = self.vector_class(num_envs=1, autoreset_mode=AutoresetMode.DISABLED, render_mode=render_mode,
                                        **kwargs)
        self.render_mode = render_mode
        self.observation_space = self.vector.single_observation_space
        self.action_space = self.vector.single_action_space
        self.action_names = self.vector.action_names
        self.feature_names = self.vector.feature_names

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> ResetReturn:
        check_open(self.vector)
        if seed is not None:
            check_seeds(seed, self.vector.num_envs)  # refused before anything changes
        super().reset(seed=seed)
        episode_seed = seed
        if seed is None and not self.vector.started:  # later unseeded resets continue the env's own stream
            episode_seed = int(self.np_random.integers(0, 2**62))
        obs, info = self.vector.reset(seed=episode_seed, options=options)
        return obs[0], unbatch(info, 0)

    def step(self, action) -> StepReturn:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {self.action_space.n}), got {action!r}")
        obs, reward, terminated, truncated, info = self.vector.step(np.array([int(action)]))
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), unbatch(info, 0)

    def render(self) -> str | np.ndarray | None:
        """The episode so far, as text or an image; see :meth:`LLMRepairVectorEnv.render`."""
        frames = self.vector.render()
        return None if frames is None else frames[0]

    def get_state(self) -> EnvState:
        """A copy of everything that determines the env's future; see :meth:`LLMRepairVectorEnv.get_state`."""
        state = self.vector.get_state()
        state.host["single_np_random"] = generator_state(self._np_random)
        return state

    def set_state(self, state: EnvState) -> None:
        """Continue from ``state``; a state of another env, or of a vector env, is refused with what differs."""
        if not isinstance(state, EnvState) or "single_np_random" not in state.host:
            raise ValueError("set_state takes an EnvState from a single LLMRepairEnv's get_state "
                             "(a vector env's state goes to a vector env)")
        try:  # read before the vector env changes, so a malformed state changes nothing
            generator = restore_generator(state.host["single_np_random"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"the state's host values are malformed: {err}") from err
        self.vector.set_state(state)
        self._np_random = generator

    def fork(self) -> SingleEnv:
        """An independent copy in the current state (unwrapped: call it on ``env.unwrapped``)."""
        other = copy.copy(self)
        other.vector = self.vector.fork()
        other.observation_space = other.vector.single_observation_space
        other.action_space = other.vector.single_action_space
        other._np_random = copy.deepcopy(self._np_random)
        return other

    def close(self) -> None:
        self.vector.close()
