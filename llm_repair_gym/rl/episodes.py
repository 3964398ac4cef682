"""Run a policy over a list of seeded episodes on a vector env and collect one record per episode.

Every episode ``k`` starts from ``reset(seed=seeds[k])`` (and, where given, from bank instance
``instances[k]``), whatever the policy, so policies are compared on exactly the same faulted models.
Evaluation is held out twice over: its episodes start from the instance bank's ``test`` split, whose
instances training (on ``train``) never meets, and ``held_out_seeds`` names episode seeds that training
never draws (training resets use seeds below 2**31 and autoresets fresh 62-bit ones; evaluation uses seeds
from 2**40 on). ``held_out_instances`` spreads evaluation sets over the test split in contiguous runs, each
with every fault type about equally often.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from tqdm.auto import tqdm

from llm_repair_gym.envs.suites import held_out_instances, held_out_seeds
from llm_repair_gym.lm.tasks import FAMILIES


class VectorPolicy(Protocol):
    """What :func:`run_episodes` drives: one action per env from the batched observation and info."""

    def reset(self, env_mask: np.ndarray) -> None: ...

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray: ...


class GreedyPolicy:
    """A :class:`VectorPolicy` from a function of the observation alone (e.g. a trained agent's greedy act)."""

    def __init__(self, act: Callable[[np.ndarray], np.ndarray]) -> None:
        self.act_fn = act

    def reset(self, env_mask: np.ndarray) -> None:
        """Stateless: nothing to forget."""

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return np.asarray(self.act_fn(obs), dtype=np.int64).reshape(len(obs))


@dataclass
class EpisodeRecord:
    """The outcome of one episode."""

    seed: int
    instance: int  # bank instance the episode started from (-1: a live fault)
    fault: str
    target: str | None
    severity: float
    episode_return: float
    steps: int
    episode_cost: float
    flops: float  # the episode's FLOPs
    crashed: bool
    healthy_accuracy: dict[str, float]
    reset_accuracy: dict[str, float]
    final_accuracy: dict[str, float]
    actions: list[str]


def run_episodes(env, policy: VectorPolicy, seeds: Sequence[int], progress: bool = True, desc: str = "episodes",
                 instances: Sequence[int] | None = None, option: str = "instance") -> list[EpisodeRecord]:
    """Play one episode per seed (from bank instance ``instances[k]``, where given) on a vector env built with
    ``autoreset_mode=DISABLED``. ``option`` names the reset option ``instances`` go to (``"task"``: the task
    index of an LLMMetaRepair env)."""
    if env.metadata.get("autoreset_mode") != AutoresetMode.DISABLED:
        raise ValueError("run_episodes needs a vector env with autoreset_mode=DISABLED")
    if instances is not None and len(instances) != len(seeds):
        raise ValueError(f"got {len(instances)} instances for {len(seeds)} seeds")
    n = env.num_envs
    queue = list(zip(seeds, instances if instances is not None else [None] * len(seeds)))
    slots: list[tuple[int, int | None] | None] = [queue.pop(0) if queue else None for _ in range(n)]

    def reset(mask: np.ndarray | None) -> tuple[np.ndarray, dict]:
        options = {} if mask is None else {"reset_mask": mask}
        if instances is not None:
            options[option] = np.array([slot[1] if slot else 0 for slot in slots])
        return env.reset(seed=[slot[0] if slot else 0 for slot in slots], options=options)

    obs, info = reset(None)
    policy.reset(np.ones(n, dtype=bool))
    starts = [_start(info, i) for i in range(n)]
    returns, actions = np.zeros(n), [[] for _ in range(n)]
    records: list[EpisodeRecord] = []
    bar = tqdm(total=len(seeds), desc=desc, disable=not progress)
    while any(slot is not None for slot in slots):
        a = policy.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(a)
        returns += reward
        for i in range(n):
            actions[i].append(str(info["action_name"][i]))
        done = terminated | truncated
        for i in np.flatnonzero(done):
            if slots[i] is not None:
                records.append(EpisodeRecord(
                    seed=int(slots[i][0]), episode_return=float(returns[i]), steps=len(actions[i]),
                    episode_cost=float(info["episode_cost"][i]), flops=float(info["episode_flops"][i]),
                    crashed=bool(info["crashed"][i]),
                    final_accuracy={f: float(info["accuracy"][f][i]) for f in FAMILIES}, actions=actions[i],
                    **starts[i]))
                bar.update(1)
        if done.any():
            for i in np.flatnonzero(done):
                slots[i] = queue.pop(0) if queue else None
            obs, info = reset(done)
            policy.reset(done)
            for i in np.flatnonzero(done):
                starts[i], returns[i], actions[i] = _start(info, i), 0.0, []
    bar.close()
    return sorted(records, key=lambda r: r.seed)


def _start(info: dict, i: int) -> dict:
    return {
        "instance": int(info["instance"][i]),
        "fault": str(info["fault"]["type"][i]),
        "target": info["fault"]["target"][i],
        "severity": float(info["fault"]["severity"][i]),
        "healthy_accuracy": {f: float(info["healthy_accuracy"][f][i]) for f in FAMILIES},
        "reset_accuracy": {f: float(info["accuracy"][f][i]) for f in FAMILIES},
    }


HELD_OUT_KWARGS = {"LLMRepair-v0": {"instances": "test"}, "LLMMetaRepair-v0": {"split": "test"},
                   "LLMRepair-v1": {"instances": "test"}}
"""What makes an env's episodes held out: the instance bank's test split, or the meta-test tasks."""


def held_out_kwargs(env_id: str) -> dict:
    """The constructor kwargs of ``env_id``'s held-out episodes (an id may carry its ``module:`` prefix)."""
    name = env_id.split(":")[-1]
    if name not in HELD_OUT_KWARGS:
        raise ValueError(f"no held-out episodes are defined for {env_id!r}; known: {sorted(HELD_OUT_KWARGS)}")
    return HELD_OUT_KWARGS[name]


def evaluate_on_held_out(env_id: str, policy: VectorPolicy, eval_set: int, episodes: int, num_envs: int = 8,
                         device: str = "cpu", progress: bool = True, **env_kwargs) -> list[EpisodeRecord]:
    """Play ``policy`` on evaluation set ``eval_set`` of ``env_id``: held-out seeds on the held-out split
    (:data:`HELD_OUT_KWARGS`; with a bank, its test instances), on a vector env with autoreset disabled."""
    env = gym.make_vec(env_id, num_envs=min(num_envs, episodes), device=device, autoreset_mode="Disabled",
                       progress=progress, **{**env_kwargs, **held_out_kwargs(env_id)})
    bank = getattr(env, "bank", None)
    try:
        return run_episodes(env, policy, held_out_seeds(eval_set, episodes), progress=progress, desc="evaluate",
                            instances=None if bank is None else held_out_instances(eval_set, episodes, bank.size))
    finally:
        env.close()


def env_names(env_id: str, device: str = "cpu", **env_kwargs) -> tuple[list[str], list[str]]:
    """``(action_names, feature_names)`` of ``env_id`` made with ``env_kwargs`` (a preset, say), read from a one-env
    probe of its held-out split (the split evaluation loads anyway; a train split need not be built just to name
    things)."""
    probe = gym.make_vec(env_id, num_envs=1, device=device, progress=False,
                         **{**env_kwargs, **held_out_kwargs(env_id)}).unwrapped
    try:
        return list(probe.action_names), list(probe.feature_names)
    finally:
        probe.close()


def summarize(records: Sequence[EpisodeRecord]) -> dict:
    """Mean return (with its 95% CI half-width over episodes), mean steps, and mean return per fault type."""
    returns = np.array([r.episode_return for r in records])
    half_width = 1.96 * returns.std(ddof=1) / np.sqrt(len(returns)) if len(returns) > 1 else float("nan")
    faults = sorted({r.fault for r in records})
    return {
        "episodes": len(records),
        "mean_return": float(returns.mean()),
        "ci95": float(half_width),
        "mean_steps": float(np.mean([r.steps for r in records])),
        "return_by_fault": {f: float(np.mean([r.episode_return for r in records if r.fault == f])) for f in faults},
    }


def evaluate_and_save(env_id: str, policy: VectorPolicy, eval_set: int, episodes: int, out_dir: str | Path,
                      device: str = "cpu", num_envs: int = 8, progress: bool = True, env_kwargs: dict | None = None,
                      **fields) -> dict:
    """Evaluate on a held-out set, write ``out_dir/eval.json`` (summary + every episode), return the summary.

    ``env_kwargs`` go to the env; ``fields`` (agent name, seed, training time, ...) are stored at the front of
    the summary.
    """
    env_kwargs = env_kwargs or {}
    records = evaluate_on_held_out(env_id, policy, eval_set, episodes, num_envs=num_envs, device=device,
                                   progress=progress, **env_kwargs)
    summary = {**fields, **({"env_kwargs": env_kwargs} if env_kwargs else {}), "eval_set": eval_set,
               **summarize(records)}
    payload = {"summary": summary, "episodes": [r.__dict__ for r in records]}
    (Path(out_dir) / "eval.json").write_text(json.dumps(payload, indent=1, default=str))
    return summary


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every LLMRepair training script shares (``--seed`` and ``--device`` are the script's own)."""
    parser.add_argument("--env-id", default="LLMRepair-v0")
    parser.add_argument("--num-envs", type=int, default=16, help="envs of the training vector env")
    parser.add_argument("--total-steps", type=int, default=4_000, help="training env steps (all envs)")
    parser.add_argument("--eval-set", type=int, default=None, help="held-out evaluation set (default: --seed)")
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--out-dir", type=Path, default=None, help="default: results/agents/<agent>_seed<seed>")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                        help="env constructor arguments, e.g. init=maml (values read as Python literals, "
                             "else as strings)")


def check_run_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject shared flags out of range, through ``parser.error``."""
    if args.total_steps < 1 or args.num_envs < 1 or args.eval_episodes < 1:
        parser.error("--total-steps, --num-envs and --eval-episodes must be >= 1")
    try:
        args.env_kwargs = parse_env_kwargs(args.env_kwargs)
    except ValueError as err:
        parser.error(str(err))


def parse_env_kwargs(pairs: Sequence[str]) -> dict:
    """``["init=maml", "cost_weight=0.01"]`` as ``{"init": "maml", "cost_weight": 0.01}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--env-kwargs takes KEY=VALUE pairs with a Python name as KEY, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def prepare_run(args: argparse.Namespace, agent: str) -> Path:
    """Apply ``--threads`` and create the run's output folder (``--out-dir`` or the default); return it."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = args.out_dir or Path("results/agents") / f"{agent}_seed{args.seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir
