"""Replay a saved policy's held-out score: load it, play it on its evaluation set, compare with what it recorded.

    python -m benchmarks.replay_policy agents/checkpoints/LLMRepair-v0/dqfd
    python -m benchmarks.replay_policy results/agents/dqfd_seed2 --eval-set 2 --oracle

The folder is anything ``agents.load_policy`` reads (``policy.json`` with our DQN's ``agent.pt`` or a
Stable-Baselines3 policy). The policy is played greedily on held-out evaluation set ``--eval-set`` (default:
the one ``policy.json`` records) with ``--threads`` torch threads (default: the recorded ``eval_threads``, else
1): the env's observations agree across thread counts only to about 1e-7, and a policy can branch on that.
Where ``policy.json`` records ``eval_return`` and ``eval_episode_returns`` for that set, every episode's
return must match to ``--tolerance``, or the command fails. ``--oracle`` also plays the privileged oracle on
the same episodes and prints the normalized return (no-op = 0, oracle = 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a saved policy (policy.json + weights)")
    parser.add_argument("--eval-set", type=int, default=None, help="held-out evaluation set (default: recorded)")
    parser.add_argument("--episodes", type=int, default=None, help="default: recorded, else 32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: recorded, else 1)")
    parser.add_argument("--tolerance", type=float, default=1e-6, help="largest per-episode return difference")
    parser.add_argument("--oracle", action="store_true", help="also play the oracle: normalized return")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import llm_repair_gym  # noqa: F401  (registers the ids)
    from agents import load_policy
    from agents.baselines import OraclePolicy
    from llm_repair_gym.rl.episodes import env_names, evaluate_on_held_out

    try:
        policy = load_policy(args.folder, device=args.device)
    except ValueError as err:
        parser.error(str(err))
    meta = policy.meta
    eval_set = args.eval_set if args.eval_set is not None else meta.get("eval_set")
    if eval_set is None:
        parser.error(f"{args.folder / 'policy.json'} records no eval_set: pass --eval-set")
    episodes = args.episodes or meta.get("eval_episodes", 32)
    torch.set_num_threads(args.threads or meta.get("eval_threads", 1))
    env_id = meta["env_id"]
    records = evaluate_on_held_out(env_id, policy, eval_set, episodes, device=args.device)
    returns = np.array([r.episode_return for r in records])
    print(f"{args.folder} ({meta['kind']}, {env_id}, package {meta['package_version']}): evaluation set {eval_set}, "
          f"{episodes} episodes: mean return {returns.mean():.4f}, mean length "
          f"{np.mean([r.steps for r in records]):.1f}")
    if args.oracle:
        oracle = evaluate_on_held_out(env_id, OraclePolicy(*env_names(env_id, args.device)), eval_set, episodes,
                                      device=args.device)
        oracle_mean = float(np.mean([r.episode_return for r in oracle]))
        print(f"oracle on the same episodes: {oracle_mean:.4f}; normalized: {returns.mean() / oracle_mean:.3f}")
    recorded = meta.get("eval_episode_returns")
    if recorded is None or eval_set != meta.get("eval_set") or episodes != len(recorded):
        print("nothing recorded for these episodes to compare with")
        return 0
    differ = np.flatnonzero(np.abs(returns - np.array(recorded)) > args.tolerance)
    if differ.size:
        for k in differ:
            print(f"episode {k} (seed {records[k].seed}): replayed {returns[k]:.6f}, recorded {recorded[k]:.6f}")
        print(f"FAIL: {differ.size} of {episodes} episode returns differ by more than {args.tolerance}")
        return 1
    print(f"OK: all {episodes} episode returns match the recorded ones (recorded mean {meta['eval_return']:.4f}); "
          f"recorded normalized return {json.dumps(meta.get('normalized_return'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
