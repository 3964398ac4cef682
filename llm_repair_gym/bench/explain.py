"""Explain one episode: replay it from its seed, instance and action names, and write what each step did.

:func:`explain_episode` steps a fresh env through the given actions and records, per step, the action, the
per-family accuracy, every observation feature by name (per family: losses, train-validation gap, loss
spread; per layer: gradient norm and weight RMS; the settings and budget), the step's cost and reward
and the cumulative cost. It writes them as ``trace.json`` and draws them as ``trace.png`` (accuracy, per-layer
gradient norms and cost over the steps; the plotting is :class:`llm_repair_gym.envs.trace.Trace`'s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from llm_repair_gym.envs.trace import Trace, TraceStep
from llm_repair_gym.lm.tasks import FAMILIES

PANELS = ("accuracy", "grad_norm", "cost")


def explain_episode(env_id: str, env_kwargs: dict, seed: int, instance: int, actions: list[str],
                    out_dir: str | Path, option: str = "instance") -> dict[str, Any]:
    """Replay one episode of ``env_id`` (made with ``env_kwargs``) and explain it in ``out_dir``.

    The env starts from ``reset(seed=[seed])``, at bank instance ``instance`` when it is >= 0 (drawn from the
    seed otherwise; ``option="task"``: the meta-task of that index), and takes ``actions`` by name; they must
    end the episode exactly (by ``stop``, a cost limit or truncation), or ``ValueError`` names the step: an
    unknown name, an action after the episode ended, or an episode still running when the actions ran out
    (nothing is written then).
    Writes ``out_dir/trace.json`` (the returned dict: env id, seed, instance, return, whether the episode
    terminated, and one record per step, the start first) and ``out_dir/trace.png``.
    """
    clashes = {"num_envs", "autoreset_mode"} & set(env_kwargs)
    if clashes:
        raise ValueError(f"explain_episode makes one env without autoreset: env_kwargs must not set {sorted(clashes)}")
    kwargs = {"progress": False, **env_kwargs}  # quiet unless env_kwargs asks for progress bars
    env = gym.make_vec(env_id, num_envs=1, autoreset_mode="Disabled", **kwargs)
    try:
        names, features = list(env.unwrapped.action_names), list(env.unwrapped.feature_names)
        for step, name in enumerate(actions, 1):
            if name not in names:
                raise ValueError(f"step {step}: unknown action {name!r}; {env_id}'s actions are {names}")
        obs, info = env.reset(seed=[seed], options={option: [instance]} if instance >= 0 else None)
        trace = Trace(instance if option == "task" else int(info["instance"][0]), len(actions))
        trace.steps.append(_row(None, obs, info, 0.0, features))
        terminated = truncated = False
        for step, name in enumerate(actions, 1):
            if terminated or truncated:
                raise ValueError(f"step {step} ({name!r}): the episode already ended at step {step - 1}")
            obs, reward, term, trunc, info = env.step(np.array([names.index(name)]))
            terminated, truncated = bool(term[0]), bool(trunc[0])
            trace.steps.append(_row(name, obs, info, float(reward[0]), features))
        if not (terminated or truncated):
            raise ValueError(f"step {len(actions) + 1}: the actions ran out before the episode ended; end it with "
                             "'stop' or give actions up to its truncation")
    finally:
        env.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"env_id": env_id, "seed": seed, "instance": trace.instance,
              "return": float(sum(s.reward for s in trace.steps)), "terminated": terminated, "steps": trace.to_json()}
    (out / "trace.json").write_text(json.dumps(record, indent=1))
    trace.figure(PANELS).savefig(out / "trace.png")
    return record


def _row(action: str | None, obs: np.ndarray, info: dict, reward: float, features: list[str]) -> TraceStep:
    """The trace row of env 0 from a vector env's batched outputs (the start has no action, cost or reward)."""
    return TraceStep(action=action, accuracy={f: float(info["accuracy"][f][0]) for f in FAMILIES},
                     cost=float(info["cost"][0]) if action is not None else 0.0, reward=reward,
                     features=dict(zip(features, obs[0].tolist())))
