"""Does a meta-learned initialization make the same repair budget go further? DQN on LLMMetaRepair-v0 from the
zoo model and from the MAML initialization.

    python -m benchmarks.meta_repair_agents --seeds 1 2 3 4 5 --total-steps 4000 --jobs 2

For each initialization (``init="zoo"``, ``init="maml"``) and seed ``s``, the hand-written DQN trains on the
meta-train tasks (``scripts/train_dqn.py --env-id LLMMetaRepair-v0 --env-kwargs init=...``, ``--jobs`` runs at a
time, one torch thread each) and is played greedily on evaluation set ``s``: held-out seeds on the meta-test
tasks, the same episodes (task, fault, pool) for both initializations. No-op, random and the observation-only
heuristic are played on the same episodes. Columns: the episode return and the final score (mean accuracy
over families when the episode ends), each the mean over seeds with a 95% Student-t interval, and the mean
episode length. Runs are cached under ``--out-dir/<init>/`` (:mod:`benchmarks.held_out_study`); writes
``meta-repair.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np

import llm_repair_gym  # noqa: F401  (registers the ids)
from benchmarks.held_out_study import baseline_summaries, t_interval, train_runs
from llm_repair_gym.envs.meta_repair import INITS
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.meta.initialization import load_meta_init
from llm_repair_gym.rl.episodes import env_names

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ENV_ID = "LLMMetaRepair-v0"
BASELINE_ROWS = ("noop", "random", "heuristic")  # the oracle's rules assume a healthy model to return to
ROWS = (*BASELINE_ROWS, "dqn")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--total-steps", type=int, default=4_000, help="DQN training env steps per init and seed")
    p.add_argument("--eval-episodes", type=int, default=32, help="held-out episodes per seed")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=2, help="training runs at a time")
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--out-dir", type=Path, default=Path("results/meta_repair"))
    args = p.parse_args(argv)
    if len(args.seeds) < 2:
        p.error("a confidence interval over seeds needs at least 2 --seeds")
    return args


def final_score(run: Path) -> float:
    """Mean over a run's episodes of the final accuracy averaged over families."""
    episodes = json.loads((run / "eval.json").read_text())["episodes"]
    return float(np.mean([np.mean([e["final_accuracy"][f] for f in FAMILIES]) for e in episodes]))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    load_meta_init("tiny")  # build the MAML initialization once, before the training processes need it
    names = env_names(ENV_ID, args.device)
    board: dict = {}
    for init in INITS:
        out_dir = args.out_dir / init
        runs = argparse.Namespace(seeds=args.seeds, agents=["dqn"], out_dir=out_dir, retrain=args.retrain,
                                  env_id=ENV_ID, num_envs=args.num_envs, total_steps=args.total_steps,
                                  eval_episodes=args.eval_episodes, device=args.device, jobs=args.jobs,
                                  env_kwargs=[f"init={init}"])
        train_runs(runs)
        for seed in args.seeds:
            baseline_summaries(runs, seed, *names, names=BASELINE_ROWS)
        board[init] = {}
        for row in ROWS:
            runs = [out_dir / f"{row}_seed{seed}" for seed in args.seeds]
            summaries = [json.loads((r / "eval.json").read_text())["summary"] for r in runs]
            returns = [s["mean_return"] for s in summaries]
            scores = [final_score(r) for r in runs]
            board[init][row] = {"return": t_interval(returns), "final_score": t_interval(scores),
                                "per_seed": returns, "mean_steps": float(np.mean([s["mean_steps"] for s in summaries])),
                                "return_by_fault": {f: float(np.mean([s["return_by_fault"][f] for s in summaries]))
                                                    for f in summaries[0]["return_by_fault"]}}
    text = report(args, board)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "meta-repair.md").write_text(text)
    (args.out_dir / "meta-repair.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                               "board": board}, indent=1))
    plot(board, args.out_dir / "meta-repair.png")
    return board


def report(args: argparse.Namespace, board: dict) -> str:
    lines = [f"{ENV_ID}: {len(args.seeds)} seeds x {args.eval_episodes} held-out episodes on the meta-test tasks "
             f"(the same episodes for both initializations); DQN trained {args.total_steps} env steps on "
             f"{args.num_envs} envs on the meta-train tasks. Mean over seeds ± 95% t-interval.", "",
             "| init | policy | return | final score | steps | " + " | ".join(
                 next(iter(board.values()))["noop"]["return_by_fault"]) + " |",
             "|---|---|---|---|---|" + "---|" * len(next(iter(board.values()))["noop"]["return_by_fault"])]
    for init, rows in board.items():
        for row, b in rows.items():
            lines.append(f"| {init} | {row} | {b['return'][0]:.3f} ± {b['return'][1]:.3f} | "
                         f"{b['final_score'][0]:.3f} ± {b['final_score'][1]:.3f} | {b['mean_steps']:.1f} | "
                         + " | ".join(f"{v:.3f}" for v in b["return_by_fault"].values()) + " |")
    return "\n".join(lines) + "\n"


def plot(board: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.38
    x = np.arange(len(ROWS))
    for k, init in enumerate(board):
        for ax, key, label in zip(axes, ("return", "final_score"), ("episode return", "final score")):
            means = [board[init][r][key][0] for r in ROWS]
            halves = [board[init][r][key][1] for r in ROWS]
            ax.bar(x + (k - 0.5) * width, means, width, yerr=halves, capsize=3, label=f"init={init}")
            ax.set_xticks(x, ROWS)
            ax.set_ylabel(label)
    axes[0].axhline(0, color="black", linewidth=0.8)
    axes[0].legend()
    fig.suptitle("LLMMetaRepair-v0, meta-test tasks (95% t-intervals over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
