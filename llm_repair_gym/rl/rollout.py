"""One rollout loop for every learner: play a Gymnasium vector env with an ``act`` function and hand each step
over as transitions, the episode bookkeeping and the training log done here.

In the spirit of Stable-Baselines3's ``collect_rollouts``, but as an iterator the learner drives::

    rollout = Rollout(env, total_steps, seed=seed, log_path=log_path)
    with rollout:
        for step in rollout.play(lambda obs, info: agent.act(obs)):
            learn_from(step.obs[step.real], step.actions[step.real], step.rewards[step.real],
                       step.next_obs[step.real], step.terminated[step.real])

A :class:`Step` holds one vector step for every sub-environment; ``real`` marks those whose step is a
transition to learn from. Gymnasium 1.x autoreset is handled in both of its modes:

* ``NEXT_STEP`` (the default of Gymnasium's vector envs): the step after an episode ends only resets that
  sub-environment, so its "transition" (last obs -> reset obs) is not real, and not counted.
* ``SAME_STEP``: an ending step already returns the reset observation; ``next_obs`` is the true last one,
  read from ``info["final_obs"]``.

A single ``gymnasium.Env`` is wrapped into a one-env ``SAME_STEP`` vector env; ``DISABLED`` is refused. Envs
with device-tensor outputs (``output="torch"``) keep their observations on the device; rewards and flags come
to the host. Steps are environment steps: real transitions, summed over sub-environments. The rollout stops
once ``total_steps`` are played, or where the learner stops iterating.

Every finished episode's undiscounted return is kept (:attr:`Rollout.episode_returns`) and logged, with its
length, to the training log (:mod:`llm_repair_gym.rl.training_log`) at the global step it finished on;
learners log their own scalars through :attr:`Rollout.log`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from tqdm import tqdm

from llm_repair_gym.rl.training_log import TrainingLog, training_log

Act = Callable[[np.ndarray | torch.Tensor, dict], np.ndarray]
"""Actions for a batch of observations and the env's info (a :class:`~llm_repair_gym.rl.episodes.VectorPolicy`'s
``act``; a learner's own act wrapped as ``lambda obs, info: ...``)."""


@dataclass
class Step:
    """One vector step: a transition per sub-environment, to learn from where ``real``."""

    obs: np.ndarray | torch.Tensor
    """Observations the actions were chosen on."""
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray | torch.Tensor
    """Observations after the actions; where an episode ended, its true last one (not the reset one)."""
    terminated: np.ndarray
    truncated: np.ndarray
    done: np.ndarray
    """Envs whose episode ended on this step (``terminated | truncated``)."""
    real: np.ndarray
    """Envs whose step is a transition (``NEXT_STEP``: all but those that were only reset)."""
    new_episodes: np.ndarray
    """Envs whose next action starts a new episode (a stateful policy resets them)."""
    info: dict

    @property
    def count(self) -> int:
        """Environment steps this vector step played (its real transitions)."""
        return int(self.real.sum())


class Rollout:
    """Plays ``env`` for ``total_steps`` environment steps with an ``act`` function (see the module docstring).

    Args:
        env: a vector env (``NEXT_STEP`` or ``SAME_STEP`` autoreset) or a single env.
        total_steps: environment steps to play, summed over sub-environments.
        seed: seeds the env's first reset.
        log_path: where the training log goes (nowhere when None).
        progress_bar: show a progress bar named ``desc``.
        first_step: the learner's global step count before this rollout; logged steps count on from it.
    """

    def __init__(self, env: gym.Env | gym.vector.VectorEnv, total_steps: int, seed: int | None = None,
                 log_path: str | Path | None = None, progress_bar: bool = False, desc: str | None = None,
                 first_step: int = 0) -> None:
        self.env = as_vector_env(env)
        self.same_step = autoreset_mode(self.env) is AutoresetMode.SAME_STEP
        self.total_steps = total_steps
        self.seed = seed
        self.log_path, self.progress_bar, self.desc = log_path, progress_bar, desc
        self.first_step = first_step
        self.steps = 0
        """Environment steps played so far."""
        self.episode_returns: list[float] = []
        """Undiscounted return of every episode finished so far, in order of finishing."""
        self.log: TrainingLog | None = None
        """The open training log, inside ``with``."""
        self._open: ExitStack | None = None
        self._progress: tqdm | None = None

    @property
    def global_step(self) -> int:
        """The learner's step count: ``first_step`` plus the steps played."""
        return self.first_step + self.steps

    def __enter__(self) -> Rollout:
        self._open = ExitStack()
        self.log = self._open.enter_context(training_log(self.log_path))
        self._progress = self._open.enter_context(tqdm(total=self.total_steps, disable=not self.progress_bar,
                                                       desc=self.desc))
        return self

    def __exit__(self, *exc) -> None:
        self.log = None
        self._open.close()

    def play(self, act: Act) -> Iterator[Step]:
        """Reset the env, then step it with ``act`` until ``total_steps`` are played, yielding every step."""
        if self.log is None:
            raise RuntimeError("play a rollout inside `with rollout:` (it opens the training log)")
        num_envs = self.env.num_envs
        obs, info = self.env.reset(seed=self.seed)
        resetting = np.zeros(num_envs, dtype=bool)  # NEXT_STEP: envs whose coming step only resets them
        episode_return = np.zeros(num_envs)
        episode_length = np.zeros(num_envs, dtype=np.int64)
        while self.steps < self.total_steps:
            actions = act(obs, info)
            next_obs, rewards, terminated, truncated, info = self.env.step(actions)
            if isinstance(next_obs, torch.Tensor):  # output="torch": observations stay on the device
                rewards, terminated, truncated = (x.cpu().numpy() for x in (rewards, terminated, truncated))
            real, done = ~resetting, terminated | truncated
            if self.same_step:
                true_next_obs, new_episodes = final_observations(next_obs, done, info), done
            else:
                true_next_obs, new_episodes, resetting = next_obs, resetting, done
            step = Step(obs, actions, rewards, true_next_obs, terminated, truncated, done, real, new_episodes, info)
            self.steps += step.count
            self._progress.update(min(self.steps, self.total_steps) - self._progress.n)

            episode_return[real] += rewards[real]
            episode_length[real] += 1
            for env_index in np.flatnonzero(done & real):
                self.episode_returns.append(float(episode_return[env_index]))
                self.log.episode(self.global_step, self.episode_returns[-1], episode_length[env_index])
                episode_return[env_index] = 0.0
                episode_length[env_index] = 0
            if done.any():
                self._progress.set_postfix(mean_return_100=np.mean(self.episode_returns[-100:]), refresh=False)
            yield step
            obs = next_obs


def as_vector_env(env: gym.Env | gym.vector.VectorEnv) -> gym.vector.VectorEnv:
    """Return ``env`` if it is a vector env, else a one-env ``SyncVectorEnv`` with ``SAME_STEP`` autoreset."""
    if isinstance(env, gym.vector.VectorEnv):
        return env
    return gym.vector.SyncVectorEnv([lambda: env], autoreset_mode=AutoresetMode.SAME_STEP)


def autoreset_mode(vec_env: gym.vector.VectorEnv) -> AutoresetMode:
    """The vector env's autoreset mode (``NEXT_STEP`` if unstated); ``DISABLED`` is refused."""
    mode = AutoresetMode(vec_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
    if mode is AutoresetMode.DISABLED:
        raise ValueError("vector envs with autoreset DISABLED are not supported; use NEXT_STEP or SAME_STEP")
    return mode


def final_observations(next_obs: np.ndarray | torch.Tensor, done: np.ndarray, info: dict) -> np.ndarray | torch.Tensor:
    """``SAME_STEP`` autoreset: ``next_obs`` with each done env's reset obs replaced by its true last obs
    (``info["final_obs"]``); a device tensor stays on its device."""
    if not done.any():
        return next_obs
    if isinstance(next_obs, torch.Tensor):
        mask = torch.as_tensor(info["_final_obs"], device=next_obs.device)
        return torch.where(mask[:, None], info["final_obs"], next_obs)
    last_obs = next_obs.copy()
    for env_index in np.flatnonzero(done):
        last_obs[env_index] = info["final_obs"][env_index]
    return last_obs
