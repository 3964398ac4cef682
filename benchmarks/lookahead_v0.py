"""LLMRepair-v0: what one-step lookahead over the observation-only heuristic finds above it, entry by entry.

    python -m benchmarks.lookahead_v0 --seeds 1 --per-fault 4   # about an hour on one core

This is a *lower* bound on the headroom above the heuristic (what one round of policy improvement finds on a
sample of entries with one run seed), not a ceiling: nothing here bounds what a repair could reach. LLMRepair-v1's
ceiling is the planner of ``benchmarks/headroom.py``.

The rollout algorithm (Bertsekas & Tsitsiklis, 1996; Bertsekas, 2019, ch. 2) improves a base policy by
simulation: in every state it tries each action once, lets the base policy finish the episode from there,
and takes the action whose simulated return is best. In a deterministic env its return is never below the
base policy's (the base policy's own action is always one of those tried). LLMRepair-v0 is deterministic
given an episode's seed and actions, so the env's saved states (``get_state`` / ``set_state``) make the
simulation exact: every action of a decision runs in its own env slot from copies of one state, and the
chosen one is replayed.

The lookahead policy is privileged (it simulates the future, and it sees the validation accuracy that the
reward is measured on, noise included), so its score is not a learner's: it is an estimate of the headroom
above the heuristic that policy improvement can find, entry by entry. Scores are normalized the way the
leaderboard does (``llm_repair_gym.bench.scores``): per suite entry, no-op = 0 and oracle = 1, using the
mean returns of the carried reference runs in ``--references`` (``benchmarks/leaderboard/episodes``).

Because the lookahead also exploits the luck of the validation examples, every episode's final model is
scored once more on the task suite's test split, which neither the reward nor the observation ever sees:
an improvement a learner could hope to find shows there too; a lucky draw does not.

Writes ``headroom.json`` (per entry: fault, both returns and action sequences, the heuristic's choice at
every step, both final models' accuracy per family on the validation examples and on the test split;
finished entries are kept when the command is run again), ``headroom.png``, and prints the per-fault
summary.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

import llm_repair_gym  # noqa: F401  (registers the env ids)
from agents.heuristic import HeuristicPolicy
from llm_repair_gym.bench.results import read_many
from llm_repair_gym.bench.scores import entry_bounds
from llm_repair_gym.bench.verify import ReplayPolicy
from llm_repair_gym.envs.suites import load_suite
from llm_repair_gym.repair.dynamics import validation_accuracy
from llm_repair_gym.rl.episodes import env_names


def lookahead_episode(env, heuristic: HeuristicPolicy, seed: int, instance: int, stop: int) -> dict:
    """Play one episode with one-step lookahead over the heuristic. Env slot ``k`` tries action ``k``; every slot
    holds the same episode, so the chosen action is replayed in all of them. ``estimates[t]`` is the simulated
    return of the chosen action from step ``t`` on; ``heuristic_return`` is the heuristic's own episode (the
    branch of its first choice)."""
    n = env.num_envs
    obs, info = env.reset(seed=[seed] * n, options={"instance": [instance] * n})
    heuristic.reset(np.ones(n, dtype=bool))
    total, actions, base_actions, estimates = 0.0, [], [], []
    done = False
    while not done:
        state = env.get_state()
        base = int(heuristic.act(obs, info)[0])  # the heuristic's choice (and its counters after choosing)
        after_choice = copy.deepcopy(heuristic.counters)
        values = _branch_values(env, heuristic, obs, info, stop)
        best = base if values[base] >= values.max() - 1e-9 else int(np.argmax(values))
        env.set_state(state)
        heuristic.counters = after_choice
        obs, reward, terminated, truncated, info = env.step(np.full(n, best))
        total += float(reward[0])
        actions.append(best)
        base_actions.append(base)
        estimates.append(float(values[best]))
        if len(actions) == 1:
            heuristic_return = float(values[base])
        done = bool(terminated[0] or truncated[0])
    return {"return": total, "heuristic_return": heuristic_return, "actions": actions,
            "heuristic_choices": base_actions, "estimates": estimates}


def final_accuracy(env, seed: int, instance: int, policy) -> dict[str, list[float]]:
    """Play one episode in the one-env vector ``env`` with ``policy`` (``reset``/``act``) and score the final
    model per family on the validation examples the reward uses and on the task suite's test split, which
    neither the reward nor the observation ever sees."""
    obs, info = env.reset(seed=[seed], options={"instance": [instance]})
    policy.reset(np.ones(1, dtype=bool))
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        done = bool(terminated[0] or truncated[0])
    ctx, state = env.unwrapped.ctx, env.unwrapped.state
    test_ids = {family: ids["test"] for family, ids in ctx.task_suite.split_ids.items()}
    return {"val": validation_accuracy(ctx, state.params, state.fact_tables)[0].tolist(),
            "test": validation_accuracy(dataclasses.replace(ctx, eval_ids=test_ids), state.params,
                                        state.fact_tables)[0].tolist()}


def _branch_values(env, heuristic: HeuristicPolicy, obs, info, stop: int) -> np.ndarray:
    """Return of taking action ``k`` in slot ``k`` and following the heuristic to the episode's end. Every slot's
    heuristic starts from its counters after its own choice at this step (what it remembers doing); a finished
    slot is reset and takes the cheap ``stop`` until every slot is done, and its rewards no longer count."""
    n = env.num_envs
    returns = np.zeros(n)
    live = np.ones(n, dtype=bool)
    actions = np.arange(n)
    while live.any():
        if not live.all():
            env.reset(options={"reset_mask": ~live})
        obs, reward, terminated, truncated, info = env.step(np.where(live, actions, stop))
        returns += np.where(live, reward, 0.0)
        live &= ~(terminated | truncated)
        if live.any():
            actions = heuristic.act(obs, info)
    return returns


def play_entry(env, single, seed: int, instance: int, action_names: list[str], feature_names: list[str]) -> dict:
    """The lookahead episode of one suite entry, and the final accuracies after it and after the heuristic's."""
    heuristic = HeuristicPolicy(action_names, feature_names)
    result = lookahead_episode(env, heuristic, seed, instance, action_names.index("stop"))
    result["accuracy"] = final_accuracy(single, seed, instance,
                                        ReplayPolicy([result["actions"]], action_names.index("stop")))
    result["heuristic_accuracy"] = final_accuracy(single, seed, instance, heuristic)
    return {**result, "actions": [action_names[a] for a in result["actions"]],
            "heuristic_choices": [action_names[a] for a in result["heuristic_choices"]]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="LLMRepair-Suite-v0")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="run seeds (episode seeds of the suite)")
    parser.add_argument("--per-fault", type=int, default=None,
                        help="only the first K entries of each fault (default: every entry)")
    parser.add_argument("--references", default="benchmarks/leaderboard/episodes",
                        help="results directory with the suite's no-op, oracle and heuristic runs")
    parser.add_argument("--out-dir", default="results/headroom")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    suite = load_suite(args.suite)
    entries = [e for e in suite.entries(args.split) if e.fault != "none"]  # a healthy model has no scale
    if args.per_fault is not None:
        entries = [e for k, e in enumerate(entries)
                   if sum(x.fault == e.fault for x in entries[:k]) < args.per_fault]
    action_names, feature_names = env_names(suite.env_id)
    env = gym.make_vec(suite.env_id, num_envs=len(action_names), autoreset_mode="Disabled", progress=False,
                       **suite.make_kwargs(args.split))
    single = gym.make_vec(suite.env_id, num_envs=1, autoreset_mode="Disabled", progress=False,
                          **suite.make_kwargs(args.split))
    references = read_many([args.references])
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "headroom.json"
    rows = json.loads(saved.read_text())["episodes"] if saved.exists() else []  # resume: keep finished episodes
    done = {(row["seed"], row["index"]) for row in rows}
    try:
        with tqdm(total=len(entries) * len(args.seeds), desc="lookahead episodes") as bar:
            for run_seed in args.seeds:
                seeds = suite.episode_seeds(args.split, run_seed)
                for entry in entries:
                    if (run_seed, entry.index) not in done:
                        result = play_entry(env, single, seeds[entry.index], entry.instance, action_names,
                                            feature_names)
                        rows.append({"seed": run_seed, "index": entry.index, "fault": entry.fault, **result})
                        report = summarize(rows, references, args.suite, args.split)
                        saved.write_text(json.dumps({"summary": report, "episodes": rows}, indent=1))
                    bar.update()
    finally:
        env.close()
        single.close()
    report = summarize(rows, references, args.suite, args.split)
    plot(report, out / "headroom.png")
    print(json.dumps(report, indent=1))


def summarize(rows: list[dict], records: list[dict], suite: str, split: str) -> dict:
    """Per fault and overall, means over the episodes: the normalized score of the heuristic (same episodes) and
    of the lookahead; how many of the lookahead's actions differ from what the heuristic would have done in
    their place; the lookahead's gain in raw return and in final accuracy (mean over families) on the
    validation examples (the reward's: return gain = validation gain + compute saved) and on the test split."""
    bounds = entry_bounds([r for r in records if r["suite"] == suite and r["split"] == split])
    table: dict[str, dict[str, list]] = {}
    for row in rows:
        if row["index"] not in bounds:  # an entry the references do not scale
            continue
        low, high = bounds[row["index"]]
        cell = table.setdefault(row["fault"], {"heuristic": [], "lookahead": [], "deviations": [], "return_gain": [],
                                               "val_accuracy_gain": [], "test_accuracy_gain": []})
        cell["heuristic"].append((row["heuristic_return"] - low) / (high - low))
        cell["lookahead"].append((row["return"] - low) / (high - low))
        cell["return_gain"].append(row["return"] - row["heuristic_return"])
        cell["deviations"].append(sum(a != b for a, b in zip(row["actions"], row["heuristic_choices"])))
        for split in ("val", "test"):
            cell[f"{split}_accuracy_gain"].append(np.mean(row["accuracy"][split])
                                                   - np.mean(row["heuristic_accuracy"][split]))
    summary = {fault: {k: float(np.mean(v)) for k, v in cell.items()} | {"episodes": len(cell["heuristic"])}
               for fault, cell in sorted(table.items())}
    every = {k: [x for cell in table.values() for x in cell[k]] for k in next(iter(table.values()))}
    summary["all"] = {k: float(np.mean(v)) for k, v in every.items()} | {"episodes": len(every["heuristic"])}
    return summary


def plot(report: dict, path: Path) -> None:
    """Per fault: the heuristic's and the lookahead's normalized return (left), and how much more accurate the
    lookahead's final model is than the heuristic's on the validation examples and on the test split (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faults = list(report)
    x = np.arange(len(faults))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 3.8))
    for shift, key in ((-0.2, "heuristic"), (0.2, "lookahead")):
        left.bar(x + shift, [report[f][key] for f in faults], width=0.4, label=key)
    left.axhline(1.0, color="k", lw=0.8, ls="--", label="oracle")
    left.set_title("normalized return (validation reward)")
    for shift, split in ((-0.2, "val"), (0.2, "test")):
        right.bar(x + shift, [100 * report[f][f"{split}_accuracy_gain"] for f in faults], width=0.4,
                  label=f"{split} examples", color={"val": "tab:gray", "test": "tab:green"}[split])
    right.axhline(0.0, color="k", lw=0.8)
    right.set_title("final accuracy, lookahead - heuristic (points)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xticks(x, [f"{f}\n({report[f]['episodes']})" for f in faults], fontsize=7)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
