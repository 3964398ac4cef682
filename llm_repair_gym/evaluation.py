"""Run a policy over a list of seeded episodes on a vector env and collect one record per episode.

Every episode ``k`` starts from ``reset(seed=seeds[k])``, whatever the policy, so policies are compared
on exactly the same faulted models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from gymnasium.vector import AutoresetMode
from tqdm.auto import tqdm

from llm_repair_gym.tasks import FAMILIES


class VectorPolicy(Protocol):
    """What :func:`run_episodes` drives: one action per env from the batched observation and info."""

    def reset(self, env_mask: np.ndarray) -> None: ...

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray: ...


@dataclass
class EpisodeRecord:
    """The outcome of one episode."""

    seed: int
    fault: str
    target: str | None
    severity: float
    episode_return: float
    steps: int
    episode_cost: float
    crashed: bool
    healthy_accuracy: dict[str, float]
    reset_accuracy: dict[str, float]
    final_accuracy: dict[str, float]
    actions: list[str]


def run_episodes(env, policy: VectorPolicy, seeds: Sequence[int], progress: bool = True,
                 desc: str = "episodes") -> list[EpisodeRecord]:
    """Play one episode per seed on a vector env built with ``autoreset_mode=DISABLED``."""
    if env.metadata.get("autoreset_mode") != AutoresetMode.DISABLED:
        raise ValueError("run_episodes needs a vector env with autoreset_mode=DISABLED")
    n = env.num_envs
    queue = list(seeds)
    slot_seed = np.array([queue.pop(0) if queue else -1 for _ in range(n)], dtype=np.int64)
    obs, info = env.reset(seed=[int(s) if s >= 0 else 0 for s in slot_seed])
    policy.reset(np.ones(n, dtype=bool))
    starts = [_start(info, i) for i in range(n)]
    returns, actions = np.zeros(n), [[] for _ in range(n)]
    records: list[EpisodeRecord] = []
    bar = tqdm(total=len(seeds), desc=desc, disable=not progress)
    while (slot_seed >= 0).any():
        a = policy.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(a)
        returns += reward
        for i in range(n):
            actions[i].append(str(info["action_name"][i]))
        done = terminated | truncated
        for i in np.flatnonzero(done & (slot_seed >= 0)):
            records.append(EpisodeRecord(
                seed=int(slot_seed[i]), episode_return=float(returns[i]), steps=len(actions[i]),
                episode_cost=float(info["episode_cost"][i]), crashed=bool(info["crashed"][i]),
                final_accuracy={f: float(info["accuracy"][f][i]) for f in FAMILIES}, actions=actions[i],
                **starts[i]))
            bar.update(1)
        if done.any():
            for i in np.flatnonzero(done):
                slot_seed[i] = queue.pop(0) if queue else -1
            seed_list = [int(s) if s >= 0 else 0 for s in slot_seed]
            obs_new, info_new = env.reset(seed=seed_list, options={"reset_mask": done})
            obs, info = obs_new, info_new
            policy.reset(done)
            for i in np.flatnonzero(done):
                starts[i], returns[i], actions[i] = _start(info, i), 0.0, []
    bar.close()
    return sorted(records, key=lambda r: r.seed)


def _start(info: dict, i: int) -> dict:
    return {
        "fault": str(info["fault"]["type"][i]),
        "target": info["fault"]["target"][i],
        "severity": float(info["fault"]["severity"][i]),
        "healthy_accuracy": {f: float(info["healthy_accuracy"][f][i]) for f in FAMILIES},
        "reset_accuracy": {f: float(info["accuracy"][f][i]) for f in FAMILIES},
    }
