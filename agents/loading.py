"""Saved policies: a folder with the weights and a ``policy.json`` that says what they are.

``save_checkpoint(agent, folder, env_id=..., ...)`` writes ``agent.pt`` (``DQNAgent.save``) and
``policy.json`` (kind, env id, package version, the observation's feature names, features the agent was
trained blind to, and any figures worth keeping). ``load_policy(folder)`` returns a policy with
``reset(env_mask)`` and ``act(obs, info)`` (for Stable-Baselines3 models saved by
``agents.sb3_baselines.save_policy`` and the planner's plan table too), the interface
``llm_repair_gym.rl.episodes.run_episodes`` drives, so a published agent's score can be replayed::

    from agents import load_policy
    policy = load_policy("agents/checkpoints/LLMRepair-v0/dqn_nstep")

Weights are read with ``torch.load(weights_only=True)``: a checkpoint file cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from agents.dqn import DQNAgent

POLICY_FILE = "policy.json"
KINDS = ("dqn", "sb3", "tabular_q", "planner", "troubleshooter")


class CheckpointPolicy:
    """The greedy policy of a saved agent; observation features it was trained without are blanked (0)."""

    def __init__(self, agent: DQNAgent, meta: dict) -> None:
        self.agent, self.meta = agent, meta
        self.feature_names: list[str] = list(meta["feature_names"])
        self.hidden = np.array([self.feature_names.index(n) for n in meta.get("hide_features", [])], dtype=np.int64)

    def reset(self, env_mask: np.ndarray) -> None:
        """Stateless: nothing to forget."""

    def act(self, obs: np.ndarray, info: dict | None = None) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape[-1] != len(self.feature_names):
            raise ValueError(f"this policy reads {len(self.feature_names)} features ({self.meta['env_id']}, "
                             f"package {self.meta['package_version']}), got observations of {obs.shape[-1]}")
        if self.hidden.size:
            obs = obs.copy()
            obs[:, self.hidden] = 0.0
        return np.asarray(self.agent.act(obs), dtype=np.int64).reshape(len(obs))


def save_checkpoint(agent: DQNAgent, folder: str | Path, env_id: str, feature_names: list[str],
                    hide_features: list[str] | None = None, **facts) -> Path:
    """Write ``agent.pt`` and ``policy.json`` into ``folder``; ``facts`` (scores, training steps) are kept too."""
    from llm_repair_gym._version import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    agent.save(folder / "agent.pt")
    meta = {"kind": "dqn", "env_id": env_id, "package_version": __version__, "feature_names": list(feature_names),
            "hide_features": list(hide_features or []), **facts}
    (folder / POLICY_FILE).write_text(json.dumps(meta, indent=1))
    return folder


def load_policy(folder: str | Path, device: str | None = None):
    """The policy saved in ``folder`` by :func:`save_checkpoint` (our DQN), by ``scripts/train_tabular_q.py``
    (tabular Q: ``agent.npz`` and the observation's bins), by ``agents.sb3_baselines.save_policy`` (a
    Stable-Baselines3 model) or by :func:`agents.planner.save_table` (the privileged planner's plan table) or
    :func:`agents.troubleshooter.save_model` (the troubleshooter's fitted model)."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / POLICY_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{folder} holds no readable {POLICY_FILE}: {err}") from err
    if not isinstance(meta, dict) or meta.get("kind") not in KINDS or not isinstance(meta.get("feature_names"), list):
        raise ValueError(f"{folder / POLICY_FILE} is not a policy description (kind one of {KINDS}, feature_names)")
    if meta["kind"] == "tabular_q":
        return _tabular_policy(folder, meta)
    if meta["kind"] == "planner":
        from agents.planner import load_planner

        return load_planner(folder)
    if meta["kind"] == "troubleshooter":
        from agents.troubleshooter import load_troubleshooter

        return load_troubleshooter(folder)
    if meta["kind"] == "sb3":
        from agents.sb3_baselines import load_sb3_policy  # needs the optional stable-baselines3

        return load_sb3_policy(folder, meta, device=device)
    return CheckpointPolicy(DQNAgent.load(folder / "agent.pt", device=device), meta)


def _tabular_policy(folder: Path, meta: dict):
    """Tabular Q's greedy policy on the observation cut into the bins it was trained with."""
    from agents.tabular_q import TabularQAgent
    from llm_repair_gym.envs.wrappers import Discretizer
    from llm_repair_gym.rl.episodes import GreedyPolicy

    agent = TabularQAgent.load(folder / "agent.npz")
    discretizer = Discretizer(meta["feature_names"], meta["bins"])
    return GreedyPolicy(lambda obs: agent.act(discretizer(np.asarray(obs)), greedy=True))
