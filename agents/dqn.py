"""Deep Q-learning (DQN with double-DQN targets), in the style of CleanRL's ``dqn.py``.

Everything tunable is in :class:`~agents.dqn_config.DQNConfig`, the network is :mod:`agents.q_network`, the
replay buffer and the ``n``-step windows are :mod:`agents.replay`, and the steps come from the rollout loop
every learner shares (:class:`llm_repair_gym.rl.rollout.Rollout`); this module is the agent and its learning
rule. The agent learns on a ``gymnasium.vector.VectorEnv`` (or a single ``gymnasium.Env``, wrapped into a
one-env vector env) with ``Box`` float observations and ``Discrete`` actions, storing one transition per
sub-environment per vector step in a replay buffer that lives, as one preallocated tensor, on the agent's
device.

The learning rule, with ``Q`` the online network and ``Q_target`` its lagged copy::

    target = R + gamma**m * (1 - terminated) * Q_target(s', argmax_a Q(s', a))
    loss   = Huber(Q(s, a), target)

where ``R`` sums the next ``m`` rewards discounted (``m = n_step``, fewer when the episode ends sooner)
and ``s'`` is the state ``m`` steps on. ``n_step=1`` is plain one-step DQN; ``dueling=True`` splits the
network's head into a state value and action advantages (Wang et al., 2016).

With demonstrations (:meth:`DQNAgent.add_demonstrations`, made by :mod:`agents.demonstrations`) the agent
learns as DQfD does (Hester et al., 2018): :meth:`DQNAgent.pretrain` takes gradient steps on them alone,
and afterwards a ``demo_fraction`` of every batch comes from them. On demonstrated transitions the loss
gains ``demo_weight`` times the large-margin term ``max_a [Q(s, a) + demo_margin * (a != a_E)] - Q(s, a_E)``,
which pulls the demonstrated action ``a_E`` above every other; the TD loss grounds the values in the rewards.

Only real terminal states stop bootstrapping; a time-limit truncation bootstraps from the true last
observation. Gymnasium 1.x autoreset is handled in both modes by the rollout: ``NEXT_STEP`` steps that only
reset a sub-environment are not stored, and with ``SAME_STEP`` the true last observation comes from
``info["final_obs"]``.

Step counts (``learning_starts``, ``train_frequency``, ``target_network_frequency``, ``total_steps``) are
environment steps: transitions summed over sub-environments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from agents.dqn_config import REPAIR_DQFD, REPAIR_DQN, DQNConfig, add_config_arguments, config_from_args
from agents.q_network import QNetwork
from agents.replay import NStepWindows, ReplayBuffer
from agents.schedules import LinearSchedule
from llm_repair_gym.rl.rollout import Rollout

__all__ = ["REPAIR_DQFD", "REPAIR_DQN", "DQNAgent", "DQNConfig", "NStepWindows", "QNetwork", "ReplayBuffer",
           "add_config_arguments", "config_from_args"]


class DQNAgent:
    """Double DQN for ``Box`` observation vectors and ``Discrete`` actions.

    Args:
        obs_dim: length of the (flat, float32) observation vector.
        n_actions: number of discrete actions.
        config: hyperparameters; ``DQNConfig()`` if omitted.
        obs_bounds: ``(low, high)`` of the observations, used when ``config.scale_obs``.
    """

    def __init__(self, obs_dim: int, n_actions: int, config: DQNConfig | None = None,
                 obs_bounds: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.config = config if config is not None else DQNConfig()
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.device = torch.device(self.config.device)
        self.rng = np.random.default_rng(self.config.seed)
        if self.config.scale_obs and obs_bounds is None:
            raise ValueError("scale_obs needs obs_bounds=(low, high); DQNAgent.for_env reads them from the env")
        low, high = obs_bounds if self.config.scale_obs else (None, None)
        sizes = tuple(self.config.hidden_sizes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.q_network = QNetwork(obs_dim, n_actions, sizes, low, high, self.config.dueling).to(self.device)
        self.target_network = QNetwork(obs_dim, n_actions, sizes, low, high, self.config.dueling).to(self.device)
        self.target_network.load_state_dict(self.q_network.state_dict())
        self.target_network.requires_grad_(False)
        self.optimizer = torch.optim.Adam(
            self.q_network.parameters(),
            lr=self.config.learning_rate,
            fused=self.device.type in ("cpu", "cuda"),  # one kernel per step instead of ~10 per tensor
        )
        self.sample_generator = torch.Generator(device=self.device).manual_seed(self.config.seed)
        self.replay_buffer: ReplayBuffer | None = None
        self.demo_buffer: ReplayBuffer | None = None
        self.num_steps = 0
        """Environment steps learned from so far, over all calls to :meth:`learn`."""

    @classmethod
    def for_env(cls, env: gym.Env | gym.vector.VectorEnv, config: DQNConfig | None = None) -> DQNAgent:
        """Build an agent sized for ``env`` (single or vector)."""
        observation_space = getattr(env, "single_observation_space", env.observation_space)
        action_space = getattr(env, "single_action_space", env.action_space)
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise TypeError(f"DQN needs a 1-D Box observation space, got {observation_space}")
        if not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(f"DQN needs a Discrete action space, got {action_space}")
        bounds = (observation_space.low, observation_space.high)
        return cls(observation_space.shape[0], int(action_space.n), config, obs_bounds=bounds)

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, epsilon: float = 0.0) -> int | np.ndarray:
        """Epsilon-greedy actions: an int for one observation, an array for a batch of them.

        ``epsilon=0`` (the default) is greedy. The network is not evaluated when every action is random.
        ``obs`` may be a tensor on the agent's device (an env with ``output="torch"``): it is not copied.
        """
        if not isinstance(obs, torch.Tensor):
            obs = np.asarray(obs, dtype=np.float32)
        batch_shape = tuple(obs.shape[:-1])
        explore = self.rng.random(batch_shape) < epsilon if epsilon > 0.0 else np.zeros(batch_shape, dtype=bool)
        if explore.all():
            actions = self.rng.integers(self.n_actions, size=batch_shape)
        else:
            q_values = self.q_network(torch.as_tensor(obs, device=self.device, dtype=torch.float32))
            actions = q_values.argmax(dim=-1).cpu().numpy()
            if explore.any():
                actions[explore] = self.rng.integers(self.n_actions, size=int(explore.sum()))
        return int(actions) if actions.ndim == 0 else actions

    def add_demonstrations(self, transitions: tuple) -> None:
        """Keep a demonstrator's transitions ``(obs, actions, rewards, next_obs, terminated, discounts)`` (as
        :func:`agents.demonstrations.collect_demonstrations` returns them) for the rest of training."""
        count = len(transitions[0])
        if count == 0:
            raise ValueError("no demonstrations to add")
        self.demo_buffer = ReplayBuffer(count, self.obs_dim, self.device, self.sample_generator)
        self.demo_buffer.add(*transitions)

    def pretrain(self, steps: int, progress_bar: bool = False) -> list[float]:
        """``steps`` gradient steps on the demonstrations alone (target network synced every
        ``target_network_frequency`` steps and at the end); returns the losses."""
        if self.demo_buffer is None:
            raise ValueError("pretrain needs demonstrations: call add_demonstrations first")
        losses = []
        for step in tqdm(range(steps), disable=not progress_bar, desc="pretrain"):
            losses.append(float(self.train_step(demo_only=True)))
            if (step + 1) % self.config.target_network_frequency == 0:
                self.update_target_network()
        self.update_target_network()
        return losses

    def _sample(self, demo_only: bool) -> tuple[tuple[torch.Tensor, ...], int]:
        """A batch, its first rows from the demonstrations (DQfD); returns it and how many rows are demos."""
        config = self.config
        if self.demo_buffer is None:
            return self.replay_buffer.sample(config.batch_size), 0
        n_demo = config.batch_size if demo_only else round(config.demo_fraction * config.batch_size)
        demo = self.demo_buffer.sample(n_demo)
        if n_demo == config.batch_size:
            return demo, n_demo
        own = self.replay_buffer.sample(config.batch_size - n_demo)
        return tuple(torch.cat(pair) for pair in zip(demo, own, strict=True)), n_demo

    def train_step(self, demo_only: bool = False) -> torch.Tensor:
        """One gradient step on a sampled batch (of demonstrations alone if ``demo_only``); returns the
        (detached) loss: Huber TD loss, plus the weighted large-margin loss where the batch holds demos."""
        config = self.config
        (obs, actions, rewards, next_obs, terminated, discounts), n_demo = self._sample(demo_only)
        with torch.no_grad():
            next_q_target = self.target_network(next_obs)
            next_q_selector = self.q_network(next_obs) if config.double_q else next_q_target
            next_actions = next_q_selector.argmax(dim=1, keepdim=True)
            next_q = next_q_target.gather(1, next_actions).squeeze(1)
            td_target = rewards + discounts * (1.0 - terminated) * next_q
        q_all = self.q_network(obs)
        q = q_all.gather(1, actions.unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q, td_target)
        if n_demo and config.demo_weight > 0:
            demo_q, demo_actions = q_all[:n_demo], actions[:n_demo]
            margins = torch.full_like(demo_q, config.demo_margin).scatter_(1, demo_actions.unsqueeze(1), 0.0)
            margin_loss = (demo_q + margins).max(dim=1).values - q[:n_demo]
            loss = loss + config.demo_weight * margin_loss.mean()

        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_network.parameters(), config.max_grad_norm)
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def update_target_network(self) -> None:
        """Move the target network towards the online one by ``tau`` (``tau=1`` copies it exactly)."""
        for target_param, param in zip(self.target_network.parameters(), self.q_network.parameters(), strict=True):
            target_param.lerp_(param, self.config.tau)

    def learn(
        self,
        env: gym.Env | gym.vector.VectorEnv,
        total_steps: int,
        log_path: str | Path | None = None,
        progress_bar: bool = False,
        stop_return: float | None = None,
        stop_window: int = 10,
        callback: Callable[[DQNAgent], bool | None] | None = None,
    ) -> list[float]:
        """Train on ``env`` for ``total_steps`` environment steps (the env is reset first).

        ``log_path``, if given, receives a CSV with columns ``global_step,metric,value`` where metric is
        ``episodic_return``, ``episodic_length`` or ``loss`` (last loss of each training round).
        If ``stop_return`` is given, training stops early (a "solved" criterion) as soon as the mean return
        of the last ``stop_window`` completed episodes reaches it. ``callback(agent)``, if given, runs after
        every vector step (after that step's training) and stops training by returning True.
        Returns the undiscounted return of every episode completed, in order of completion.
        """
        config = self.config
        rollout = Rollout(env, total_steps, seed=int(self.rng.integers(2**31)), log_path=log_path,
                          progress_bar=progress_bar, desc="DQN", first_step=self.num_steps)
        self._check_env(rollout.env)
        if self.replay_buffer is None:
            self.replay_buffer = ReplayBuffer(config.buffer_size, self.obs_dim, self.device, self.sample_generator)
        epsilon = LinearSchedule(config.start_e, config.end_e, int(config.exploration_fraction * total_steps))
        windows = NStepWindows(config.n_step, config.gamma, rollout.env.num_envs)
        with rollout:
            for step in rollout.play(lambda obs, info: self.act(obs, epsilon=epsilon(rollout.steps))):
                transitions = windows.push(step.real, step.obs, step.actions, step.rewards, step.next_obs,
                                           step.terminated, step.done)
                if transitions is not None:
                    self.replay_buffer.add(*transitions)
                self.num_steps = rollout.global_step
                returns = rollout.episode_returns
                if (stop_return is not None and step.done.any() and len(returns) >= stop_window
                        and np.mean(returns[-stop_window:]) >= stop_return):
                    break

                steps_before, steps_done = rollout.steps - step.count, rollout.steps
                if steps_done > config.learning_starts:
                    if _crossed_multiple(steps_before, steps_done, config.train_frequency):
                        if config.anneal_lr:
                            remaining = 1.0 - steps_before / total_steps
                            self.optimizer.param_groups[0]["lr"] = config.learning_rate * remaining
                        for _ in range(config.gradient_steps):
                            loss = self.train_step()
                        rollout.log.scalar(self.num_steps, "loss", loss.item())
                    if _crossed_multiple(steps_before, steps_done, config.target_network_frequency):
                        self.update_target_network()
                if callback is not None and callback(self):
                    break
        return rollout.episode_returns

    def save(self, path: str | Path) -> None:
        """Write the config, network sizes and both networks' weights with ``torch.save``."""
        torch.save(
            {
                "config": asdict(self.config),
                "obs_dim": self.obs_dim,
                "n_actions": self.n_actions,
                "q_network": self.q_network.state_dict(),
                "target_network": self.target_network.state_dict(),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> DQNAgent:
        """Read an agent written by :meth:`save` (with ``weights_only=True``), optionally onto ``device``."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        config = DQNConfig(**checkpoint["config"])
        if device is not None:
            config.device = device
        no_bounds = np.zeros(checkpoint["obs_dim"], dtype=np.float32)  # the saved buffers replace them
        agent = cls(checkpoint["obs_dim"], checkpoint["n_actions"], config, obs_bounds=(no_bounds, no_bounds))
        agent.q_network.load_state_dict(checkpoint["q_network"])
        agent.target_network.load_state_dict(checkpoint["target_network"])
        return agent

    def _check_env(self, vec_env: gym.vector.VectorEnv) -> None:
        observation_space = vec_env.single_observation_space
        action_space = vec_env.single_action_space
        if not isinstance(observation_space, gym.spaces.Box) or observation_space.shape != (self.obs_dim,):
            raise TypeError(f"expected Box observations of shape ({self.obs_dim},), got {observation_space}")
        if not isinstance(action_space, gym.spaces.Discrete) or action_space.n != self.n_actions:
            raise TypeError(f"expected Discrete({self.n_actions}) actions, got {action_space}")


def _crossed_multiple(before: int, after: int, period: int) -> bool:
    """Whether a multiple of ``period`` lies in ``(before, after]``."""
    return after // period > before // period
