"""Stable-Baselines3 on the native vector env: an SB3 ``VecEnv`` over a Gymnasium ``VectorEnv``.

SB3 trains on its own ``VecEnv`` API, not on ``gymnasium.vector.VectorEnv``. Behind SB3's ``DummyVecEnv`` the
N envs are N single envs stepped one after another, which throws the batched step away. ``SB3VecEnv`` hands
SB3 the native vector env itself: one batched step for all N envs::

    from stable_baselines3 import PPO
    from llm_repair_gym.integrations.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("LLMRepair-v0", n_envs=16, seed=1)
    PPO("MlpPolicy", venv).learn(4_000)

It needs a vector env with ``autoreset_mode=SAME_STEP`` and numpy outputs (the default of every env of this
package; Gymnasium's own ``SyncVectorEnv``/``AsyncVectorEnv`` built with SAME_STEP work too). SB3's
conventions follow from SAME_STEP: where an episode ends, ``infos[i]`` is the info of its last step, with
``terminal_observation`` (the last observation) and ``TimeLimit.truncated`` (truncated and not terminated),
and ``reset_infos[i]`` is the info of the episode that started in its place. Seeded the same way, it gives
what ``DummyVecEnv`` over ``gym.make`` envs gives, step for step (tested).

The N envs of a native vector env are rows of one model batch, not N objects: ``get_attr`` returns the
vector env's attribute once per requested index, and ``set_attr`` and ``env_method`` act on the whole
vector env, so they refuse ``indices`` that name only some envs. This module is the only one that imports
stable_baselines3: ``import llm_repair_gym`` does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from llm_repair_gym.envs.vector_info import unbatch

_FINAL_KEYS = ("final_obs", "final_info")


class SB3VecEnv(VecEnv):
    """``vector_env`` (a Gymnasium ``VectorEnv`` with SAME_STEP autoreset and numpy outputs) as an SB3 ``VecEnv``."""

    def __init__(self, vector_env: VectorEnv) -> None:
        if not isinstance(vector_env, VectorEnv):
            raise TypeError(f"SB3VecEnv wraps a gymnasium.vector.VectorEnv, got {type(vector_env).__name__}")
        mode = vector_env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"SB3VecEnv needs autoreset_mode=SAME_STEP (SB3 resets an env in the step that ends "
                             f"its episode), got {mode}; make the env with autoreset_mode='SameStep'")
        if getattr(vector_env.unwrapped, "output", "numpy") != "numpy":
            raise ValueError("SB3VecEnv needs numpy outputs (SB3's data path is numpy); make the env with "
                             "output='numpy'")
        self.vector_env = vector_env
        self._actions: np.ndarray | None = None
        self._reset_keys: set[str] = set()
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)

    def reset(self) -> VecEnvObs:
        """Reset every env, with the seeds of :meth:`seed` and the options of ``set_options`` if given."""
        obs, info = self.vector_env.reset(seed=self._next_seeds(), options=self._next_options())
        self.reset_infos = [unbatch(info, i) for i in range(self.num_envs)]
        self._reset_keys = set(self.reset_infos[0])  # what a reset reports (a step reports more)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait without step_async: call step_async(actions) first")
        actions, self._actions = self._actions, None
        obs, reward, terminated, truncated, info = self.vector_env.step(actions)
        dones = np.logical_or(terminated, truncated)
        infos = []
        for i in range(self.num_envs):
            if dones[i]:  # info of the ended episode's last step; the new episode's info goes to reset_infos
                step_info = unbatch(info["final_info"], i)
                step_info["terminal_observation"] = info["final_obs"][i]
                fresh = unbatch(info, i, skip=_FINAL_KEYS)
                self.reset_infos[i] = {k: v for k, v in fresh.items() if k in self._reset_keys}
            else:
                step_info = unbatch(info, i, skip=_FINAL_KEYS)
            step_info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            infos.append(step_info)
        return obs, np.asarray(reward, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.vector_env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute ``attr_name``, once per index (the envs share one object)."""
        value = getattr(self.vector_env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set ``attr_name`` on the vector env, which every env shares (``indices`` must name them all)."""
        self._check_all(indices, "set_attr")
        setattr(self.vector_env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call the vector env's method once (``indices`` must name every env); its result, once per env."""
        self._check_all(indices, "env_method")
        result = getattr(self.vector_env, method_name)(*method_args, **method_kwargs)
        return [result for _ in range(self.num_envs)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """Whether a Gymnasium vector wrapper of class ``wrapper_class`` lies between SB3 and the envs."""
        env, wrapped = self.vector_env, False
        while isinstance(env, VectorWrapper):
            wrapped = wrapped or isinstance(env, wrapper_class)
            env = env.env
        return [wrapped for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None for _ in range(self.num_envs)]
        return list(self.vector_env.render())

    def _check_all(self, indices: VecEnvIndices, what: str) -> None:
        chosen = sorted(set(self._get_indices(indices)))
        if chosen != list(range(self.num_envs)):
            raise ValueError(f"{what} acts on the whole vector env (its {self.num_envs} envs share one object); "
                             f"pass indices=None, not {indices!r}")

    def _next_seeds(self) -> list[int] | None:
        if all(s is None for s in self._seeds):
            return None
        if any(s is None for s in self._seeds):
            raise ValueError(f"seed every env or none, got {self._seeds}")
        return [int(s) for s in self._seeds]

    def _next_options(self) -> dict | None:
        """SB3 keeps options per env; a vector env takes one dict, with per-env values as arrays."""
        options = self._options
        if all(o == options[0] for o in options):
            return dict(options[0]) or None
        keys = set(options[0])
        if any(set(o) != keys for o in options):
            raise ValueError(f"every env needs the same option keys, got {[sorted(o) for o in options]}")
        return {k: np.array([o[k] for o in options]) for k in keys}


def make_sb3_vec_env(env_id: str, n_envs: int, seed: int | None = None, **env_kwargs) -> SB3VecEnv:
    """``gym.make_vec(env_id, num_envs=n_envs, **env_kwargs)`` as an SB3 ``VecEnv``; env ``i`` gets ``seed + i``
    at the first reset, as with SB3's ``make_vec_env``."""
    venv = SB3VecEnv(gym.make_vec(env_id, num_envs=n_envs, **env_kwargs))
    if seed is not None:
        venv.seed(seed)
    return venv
