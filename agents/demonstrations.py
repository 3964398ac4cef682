"""Demonstrations: a scripted policy's transitions, for a DQN to learn from before and while it acts.

Deep Q-learning from Demonstrations (DQfD, Hester et al., 2018) pretrains a Q-network on a demonstrator's
transitions with the TD loss plus a large-margin loss that makes the demonstrated action's value exceed every
other by a margin, then keeps the demonstrations in replay while the agent learns from its own experience.
Here the demonstrator is any :class:`~llm_repair_gym.rl.episodes.VectorPolicy` (for LLMRepair-v0, the
observation-only :class:`~agents.heuristic.HeuristicPolicy`): :func:`collect_demonstrations` plays it on a
training env and returns its ``n``-step transitions in the replay buffer's layout, which
:meth:`agents.dqn.DQNAgent.add_demonstrations` stores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from agents.replay import NStepWindows
from llm_repair_gym.rl.rollout import Rollout

DEMONSTRATORS = ("heuristic", "rules_v1")
"""Policies that can demonstrate: the observation-only :class:`agents.heuristic.HeuristicPolicy` (LLMRepair-v0)
and :class:`agents.rules_v1.RulesV1Policy` (LLMRepair-v1)."""


@dataclass(frozen=True)
class DemonstrationPlan:
    """DQfD's first phase: whose demonstrations, how many env steps of them, how many gradient steps on them."""

    demonstrator: str = "heuristic"
    env_steps: int = 4096
    """Env steps (summed over sub-envs) the demonstrator plays on the training env: they count in the learner's
    sample budget."""
    pretrain_steps: int = 4000
    """Gradient steps on the demonstrations alone before the learner acts."""

    def __post_init__(self) -> None:
        if self.demonstrator not in DEMONSTRATORS:
            raise ValueError(f"demonstrator must be one of {DEMONSTRATORS}, got {self.demonstrator!r}")
        if self.env_steps < 1 or self.pretrain_steps < 0:
            raise ValueError(f"env_steps must be >= 1 and pretrain_steps >= 0, got {self.env_steps}, "
                             f"{self.pretrain_steps}")


REPAIR_DEMONSTRATIONS = DemonstrationPlan()
"""The plan used on LLMRepair-v0 (with :data:`agents.dqn_config.REPAIR_DQFD`): about 350 heuristic episodes."""


@dataclass
class Demonstrations:
    """Transitions of a demonstrator, as ``(obs, actions, rewards, next_obs, terminated, discounts)`` arrays
    (``n``-step returns, as :class:`agents.replay.NStepWindows` makes them), and what its episodes returned."""

    transitions: tuple[np.ndarray, ...]
    episode_returns: list[float]
    env_steps: int

    def __len__(self) -> int:
        return len(self.transitions[0])


def collect_demonstrations(env, policy, total_steps: int, n_step: int, gamma: float, seed: int,
                           progress: bool = False) -> Demonstrations:
    """Play ``policy`` on ``env`` (a vector env with ``SAME_STEP`` or ``NEXT_STEP`` autoreset, or a single
    env) for ``total_steps`` env steps, summed over sub-envs, from a reset with ``seed``; return its ``n_step``
    transitions. Episodes still running at the end give only their complete windows (a flushed window's
    return would be cut short, not ended).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    parts: list[tuple] = []
    with Rollout(env, total_steps, seed=seed, progress_bar=progress, desc="demonstrations") as rollout:
        n = rollout.env.num_envs
        windows = NStepWindows(n_step, gamma, n)
        policy.reset(np.ones(n, dtype=bool))
        for step in rollout.play(lambda obs, info: np.asarray(policy.act(obs, info), dtype=np.int64)):
            out = windows.push(step.real, step.obs, step.actions, step.rewards, step.next_obs, step.terminated,
                               step.done)
            if out is not None:
                parts.append(out)
            if step.new_episodes.any():
                policy.reset(step.new_episodes)
    if not parts:
        raise ValueError(f"{total_steps} env steps on {n} envs completed no {n_step}-step transition; "
                         "collect more steps")
    transitions = tuple(np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(6))
    return Demonstrations(transitions, rollout.episode_returns, rollout.steps)


def learn_from_demonstrations(agent, env, plan: DemonstrationPlan, seed: int, progress: bool = False) -> dict:
    """DQfD's first phase for ``agent`` on vector env ``env``: play the demonstrator (its resets seeded from
    ``seed``, apart from the learner's own), keep its transitions, and pretrain on them. Returns what happened."""
    from agents.heuristic import HeuristicPolicy
    from agents.rules_v1 import RulesV1Policy

    policy = {"heuristic": HeuristicPolicy, "rules_v1": RulesV1Policy}[plan.demonstrator]
    demonstrator = policy(env.unwrapped.action_names, env.unwrapped.feature_names)
    reset_seed = int(np.random.default_rng([seed, 1]).integers(2**31))
    demos = collect_demonstrations(env, demonstrator, plan.env_steps, agent.config.n_step, agent.config.gamma,
                                   seed=reset_seed, progress=progress)
    agent.add_demonstrations(demos.transitions)
    losses = agent.pretrain(plan.pretrain_steps, progress_bar=progress)
    return {**asdict(plan), "env_steps": demos.env_steps, "transitions": len(demos),
            "episodes": len(demos.episode_returns),
            "mean_return": float(np.mean(demos.episode_returns)) if demos.episode_returns else None,
            "pretrain_loss_first": losses[0] if losses else None,
            "pretrain_loss_last": float(np.mean(losses[-100:])) if losses else None}
