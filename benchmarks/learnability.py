"""Does a learner learn LLMRepair-v0? Learning curves, per-fault returns, actions, Q-values and TD losses.

    python -m benchmarks.learnability --config dqn_nstep --seeds 1 2 3 4 5 --total-steps 100000 --jobs 3

Every seed trains the hand-written DQN with one named configuration (``_configs``) on the bank's train split
(16 envs, one torch thread per run, ``--jobs`` runs at a time), and every ``--eval-every`` env steps plays
it greedily on 64 fixed held-out episodes (test instances 192-255), recording the return, the return per
fault type, the episode length, the action histogram, and the Q-values of the episodes' first
observations; the TD (Huber) losses of training come from the run's log. After training, the agent is
played on evaluation set ``seed`` (the leaderboard's held-out episodes) and saved.

``--config dqfd`` learns from demonstrations first (DQfD, ``agents.demonstrations``): the heuristic plays
4,096 env steps, the agent pretrains on them, and the curve starts after them, its env steps counting the
demonstrator's. ``--compare TAG`` draws an earlier report's curve beside it; ``--export-seed S`` saves seed
``S``'s agent with its recorded score under ``--checkpoint-dir`` (``benchmarks.replay_policy`` replays it).

No-op, the privileged oracle and the observation-only heuristic (``agents/heuristic.py``) are played on the
same episodes. Returns are normalized per episode set: no-op = 0 (its return is 0 by construction),
oracle = 1. The summary gives, for the learner and the heuristic, the mean normalized return over the
seeds' evaluation sets with a 95% Student-t interval. ``--hide-features`` blanks observation features for
the agent (for instance the ones that tell it how far it is from its best snapshot), to test what a
feature is worth. Writes ``learnability-<config>.{json,md,png}`` to ``--out-dir``; finished runs
(``run.json`` present) are reused unless ``--retrain``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import multiprocessing as mp
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.held_out_study import t_interval

CURVE_INSTANCES = list(range(192, 256))  # test instances outside the leaderboard's evaluation sets 1-5
CURVE_SEED_SET = 99  # their seeds: held_out_seeds(99, 64)
EVAL_EPISODES = 32


def _configs() -> dict:
    """Named DQN configurations: the one the leaderboard uses, and the changes tested against it."""
    from agents.dqn import REPAIR_DQFD, REPAIR_DQN

    long_run = dict(buffer_size=100_000, exploration_fraction=0.2, end_e=0.02, target_network_frequency=1_000,
                    hidden_sizes=(256, 256), learning_rate=3e-4)
    return {
        "dqn": REPAIR_DQN,  # the leaderboard's settings, tuned for 4,000-step runs
        "dqn_long": dataclasses.replace(REPAIR_DQN, **long_run),
        "dqn_nstep": dataclasses.replace(REPAIR_DQN, **long_run, n_step=3, dueling=True),
        "dqfd": REPAIR_DQFD,  # learns from the heuristic's demonstrations first (_demonstrations)
    }


def _demonstrations() -> dict:
    """Configurations that learn from a demonstrator first, and their plan (its env steps count in the curve)."""
    from agents.demonstrations import REPAIR_DEMONSTRATIONS

    return {"dqfd": REPAIR_DEMONSTRATIONS}


def blank_features(env, names: list[str]):
    """A vector-env wrapper whose observations (and ``final_obs``) have the named features set to 0."""
    import gymnasium as gym

    columns = np.array([env.feature_names.index(n) for n in names], dtype=np.int64)

    class Blank(gym.vector.VectorWrapper):
        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            return _blank(obs, columns), info

        def step(self, actions):
            obs, reward, terminated, truncated, info = self.env.step(actions)
            if "final_obs" in info:
                info["final_obs"] = np.array([None if o is None else _blank(o[None], columns)[0]
                                              for o in info["final_obs"]], dtype=object)
            return _blank(obs, columns), reward, terminated, truncated, info

    return Blank(env)


def _blank(obs: np.ndarray, columns: np.ndarray) -> np.ndarray:
    out = obs.copy()
    out[:, columns] = 0.0
    return out


def _play(env, policy, seeds: list[int], instances: list[int]):
    from llm_repair_gym.rl.episodes import run_episodes

    return run_episodes(env, policy, seeds, progress=False, instances=instances)


def train_one(spec: dict) -> dict:
    """One seed: train, with periodic held-out evaluations; then the final evaluation. Runs in a subprocess."""
    import gymnasium as gym
    import torch

    import llm_repair_gym  # noqa: F401  (registers the ids)
    from agents.demonstrations import learn_from_demonstrations
    from agents.dqn import DQNAgent
    from llm_repair_gym.envs.suites import held_out_instances, held_out_seeds
    from llm_repair_gym.rl.episodes import GreedyPolicy
    from llm_repair_gym.rl.training_log import LOG_FILE

    torch.set_num_threads(1)
    out_dir = Path(spec["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(_configs()[spec["config"]], seed=spec["seed"])
    env = gym.make_vec("LLMRepair-v0", num_envs=spec["num_envs"], progress=False)
    eval_env = gym.make_vec("LLMRepair-v0", num_envs=spec["num_envs"], autoreset_mode="Disabled",
                            instances="test", progress=False)
    hide = spec["hide_features"]
    if hide:
        env, eval_env = blank_features(env, hide), blank_features(eval_env, hide)
    agent = DQNAgent.for_env(env, config)
    curve_seeds = held_out_seeds(CURVE_SEED_SET, len(CURVE_INSTANCES))
    first_obs = None
    curve: list[dict] = []
    start = time.perf_counter()
    demo_steps = 0  # env steps the demonstrator took: the curve's x counts them with the learner's own

    def evaluate_now(own_steps: int) -> None:
        nonlocal first_obs
        if first_obs is None:
            obs, _ = eval_env.reset(seed=curve_seeds[:eval_env.num_envs],
                                    options={"instance": CURVE_INSTANCES[:eval_env.num_envs]})
            first_obs = torch.as_tensor(obs)
        records = _play(eval_env, GreedyPolicy(agent.act), curve_seeds, CURVE_INSTANCES)
        with torch.no_grad():
            q = agent.q_network(first_obs.to(agent.device))
        curve.append({"steps": demo_steps + own_steps, "own_steps": own_steps,
                      "minutes": (time.perf_counter() - start) / 60,
                      "return": float(np.mean([r.episode_return for r in records])),
                      "length": float(np.mean([r.steps for r in records])),
                      "by_fault": _by_fault(records),
                      "actions": dict(Counter(a for r in records for a in r.actions)),
                      "max_q": float(q.max(1).values.mean()),
                      "q_stop": float(q[:, env.unwrapped.action_names.index("stop")].mean())})

    def callback(a) -> None:
        if a.num_steps >= next_eval[0]:
            evaluate_now(a.num_steps)
            next_eval[0] += spec["eval_every"]

    next_eval = [spec["eval_every"]]
    demo_info = None
    plan = _demonstrations().get(spec["config"])
    if plan is not None:  # the curve's first point comes after the demonstrator's steps and the pretraining
        demo_info = learn_from_demonstrations(agent, env, plan, spec["seed"])
        demo_steps = demo_info["env_steps"]
    evaluate_now(0)
    agent.learn(env, spec["total_steps"], log_path=out_dir / LOG_FILE, callback=callback)
    if curve[-1]["own_steps"] != agent.num_steps:
        evaluate_now(agent.num_steps)
    train_minutes = (time.perf_counter() - start) / 60
    agent.save(out_dir / "agent.pt")
    final = _play(eval_env, GreedyPolicy(agent.act), held_out_seeds(spec["seed"], EVAL_EPISODES),
                  held_out_instances(spec["seed"], EVAL_EPISODES, eval_env.unwrapped.bank.size))
    losses = _td_losses(out_dir / LOG_FILE, [c["own_steps"] for c in curve])
    for point, loss in zip(curve, losses):
        point["td_loss"] = loss
    result = {**spec, "dqn_config": dataclasses.asdict(config), "demonstrations": demo_info,
              "train_minutes": train_minutes, "curve": curve,
              "final": {"return": float(np.mean([r.episode_return for r in final])),
                        "length": float(np.mean([r.steps for r in final])), "by_fault": _by_fault(final),
                        "episodes": [r.__dict__ for r in final]}}
    (out_dir / "run.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def _by_fault(records) -> dict[str, float]:
    faults = sorted({r.fault for r in records})
    return {f: float(np.mean([r.episode_return for r in records if r.fault == f])) for f in faults}


def _td_losses(log: Path, steps: list[int]) -> list[float | None]:
    """Mean logged TD (Huber) loss in each window between evaluation points (None before learning starts)."""
    with log.open() as handle:
        rows = [(int(r["global_step"]), float(r["value"])) for r in csv.DictReader(handle) if r["metric"] == "loss"]
    out: list[float | None] = []
    for low, high in zip([-1, *steps[:-1]], steps):
        window = [v for s, v in rows if low < s <= high]
        out.append(float(np.mean(window)) if window else None)
    return out


def reference_returns(seeds: list[int], num_envs: int) -> dict:
    """No-op, oracle and heuristic on the curve episodes and on every seed's evaluation set."""
    import gymnasium as gym

    import llm_repair_gym  # noqa: F401  (registers the ids)
    from agents.baselines import OraclePolicy
    from agents.heuristic import HeuristicPolicy
    from llm_repair_gym.envs.suites import held_out_instances, held_out_seeds

    env = gym.make_vec("LLMRepair-v0", num_envs=num_envs, autoreset_mode="Disabled", instances="test",
                       progress=False)
    sets = {"curve": (held_out_seeds(CURVE_SEED_SET, len(CURVE_INSTANCES)), CURVE_INSTANCES)}
    sets |= {f"set{s}": (held_out_seeds(s, EVAL_EPISODES), held_out_instances(s, EVAL_EPISODES, env.bank.size))
             for s in seeds}
    out: dict = {}
    for name, (episode_seeds, instances) in sets.items():
        out[name] = {}
        for policy_name, policy in (("oracle", OraclePolicy(env.action_names, env.feature_names)),
                                    ("heuristic", HeuristicPolicy(env.action_names, env.feature_names))):
            records = _play(env, policy, episode_seeds, instances)
            out[name][policy_name] = {"return": float(np.mean([r.episode_return for r in records])),
                                      "length": float(np.mean([r.steps for r in records])),
                                      "by_fault": _by_fault(records)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="dqn_nstep", choices=list(_configs()))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--total-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--hide-features", nargs="*", default=[], help="observation features the agent sees as 0")
    parser.add_argument("--jobs", type=int, default=2, help="training runs at a time (one torch thread each)")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=Path("results/learnability"))
    parser.add_argument("--compare", nargs="*", default=[], metavar="TAG",
                        help="draw these earlier reports' mean curves too (results of --config TAG)")
    parser.add_argument("--export-seed", type=int, default=None,
                        help="save this seed's agent as a policy under --checkpoint-dir/<config> (load_policy)")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("agents/checkpoints/LLMRepair-v0"))
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        print("one seed: the report has no interval (nan); the bar asks for 5", flush=True)
    tag = args.config + "".join(f"-no_{n.replace('/', '_')}" for n in args.hide_features)
    specs = [{"config": args.config, "seed": s, "total_steps": args.total_steps, "eval_every": args.eval_every,
              "num_envs": args.num_envs, "hide_features": args.hide_features,
              "out_dir": str(args.out_dir / tag / f"seed{s}")} for s in args.seeds]
    todo = [s for s in specs if args.retrain or not (Path(s["out_dir"]) / "run.json").exists()]
    with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        for result in pool.imap_unordered(train_one, todo):
            print(f"seed {result['seed']}: {result['train_minutes']:.0f} min, final held-out return "
                  f"{result['final']['return']:.3f}", flush=True)
    runs = [json.loads((Path(s["out_dir"]) / "run.json").read_text()) for s in specs]
    references = reference_returns(args.seeds, args.num_envs)
    report = _summarize(tag, runs, references, args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"learnability-{tag}.json").write_text(json.dumps(report, indent=1))
    (args.out_dir / f"learnability-{tag}.md").write_text(report["markdown"])
    others = []
    for other in args.compare:
        file = args.out_dir / f"learnability-{other}.json"
        if not file.exists():
            raise SystemExit(f"--compare {other}: no {file}; run --config {other} first")
        others.append(json.loads(file.read_text()))
    _plot(report, args.out_dir / f"learnability-{tag}.png", others)
    if args.export_seed is not None:
        export_checkpoint(runs, report, args)
    print(report["markdown"])
    return report


def export_checkpoint(runs: list[dict], report: dict, args: argparse.Namespace) -> Path:
    """Save seed ``--export-seed``'s trained agent with ``agents.save_checkpoint``: the policy, and the score
    it got on its evaluation set, which ``benchmarks.replay_policy`` replays."""
    import llm_repair_gym  # noqa: F401  (registers the ids)
    from agents import save_checkpoint
    from agents.dqn import DQNAgent
    from llm_repair_gym.rl.episodes import env_names

    run = next((r for r in runs if r["seed"] == args.export_seed), None)
    if run is None:
        raise SystemExit(f"--export-seed {args.export_seed} is not among --seeds {args.seeds}")
    _, feature_names = env_names("LLMRepair-v0")
    agent = DQNAgent.load(Path(run["out_dir"]) / "agent.pt")
    seeds = [r["seed"] for r in runs]
    normalized = report["normalized"]["learner"]
    folder = save_checkpoint(
        agent, args.checkpoint_dir / report["tag"], env_id="LLMRepair-v0", feature_names=feature_names,
        hide_features=run["hide_features"], learner=run["config"], seed=run["seed"],
        own_env_steps=run["curve"][-1]["own_steps"], demonstrations=run.get("demonstrations"),
        eval_set=run["seed"], eval_episodes=EVAL_EPISODES, eval_threads=1, eval_return=run["final"]["return"],
        eval_episode_returns=[e["episode_return"] for e in run["final"]["episodes"]],
        normalized_return=normalized["per_set"][seeds.index(run["seed"])],
        normalized_over_seeds={"mean": normalized["mean"], "ci95": normalized["ci95"], "seeds": seeds},
        command=f"python -m benchmarks.learnability --config {args.config} --seeds {' '.join(map(str, seeds))} "
                f"--total-steps {args.total_steps} --eval-every {args.eval_every} --export-seed {args.export_seed}")
    print(f"saved seed {run['seed']}'s agent to {folder}")
    return folder


def _summarize(tag: str, runs: list[dict], references: dict, args: argparse.Namespace) -> dict:
    curve_oracle = references["curve"]["oracle"]["return"]
    learner = [r["final"]["return"] / references[f"set{r['seed']}"]["oracle"]["return"] for r in runs]
    heuristic = [references[f"set{r['seed']}"]["heuristic"]["return"] / references[f"set{r['seed']}"]["oracle"]
                 ["return"] for r in runs]
    rows = {"learner": t_interval(learner), "heuristic": t_interval(heuristic)}
    lengths = {"learner": float(np.mean([r["final"]["length"] for r in runs])),
               "heuristic": float(np.mean([references[f"set{r['seed']}"]["heuristic"]["length"] for r in runs])),
               "oracle": float(np.mean([references[f"set{r['seed']}"]["oracle"]["length"] for r in runs]))}
    steps = [p["steps"] for p in runs[0]["curve"]]
    curve = {key: [[run["curve"][k][key] for run in runs if k < len(run["curve"])] for k in range(len(steps))]
             for key in ("return", "length", "max_q", "q_stop", "td_loss")}
    lines = [f"{tag}: {len(runs)} seeds x {args.total_steps} env steps on {args.num_envs} envs; held-out "
             f"evaluation sets {', '.join(str(r['seed']) for r in runs)} ({EVAL_EPISODES} episodes each). "
             "Normalized return: no-op = 0, oracle = 1, mean over sets with a 95% t-interval.", "",
             "| policy | normalized return | mean episode length |", "|---|---|---|"]
    for name, (mean, half) in rows.items():
        lines.append(f"| {name} | {mean:.3f} ± {half:.3f} | {lengths[name]:.1f} |")
    lines.append(f"| oracle (privileged) | 1.000 | {lengths['oracle']:.1f} |")
    demos = [r["demonstrations"] for r in runs if r.get("demonstrations")]
    if demos:
        lines += ["", f"Demonstrations: the heuristic played {demos[0]['env_steps']} env steps per seed on the train "
                  f"split ({np.mean([d['episodes'] for d in demos]):.0f} episodes, mean return "
                  f"{np.mean([d['mean_return'] for d in demos]):.3f}), then {demos[0]['pretrain_steps']} gradient "
                  "steps on them alone; the curve's env steps count the demonstrator's."]
    lines += ["", "Learning curve (64 held-out episodes; normalized return, mean over seeds [min, max]; episode "
              "length; mean max-Q of the first observations; mean TD loss since the previous point):", "",
              "| env steps | normalized return | length | max Q | TD loss |", "|---|---|---|---|---|"]
    for k, s in enumerate(steps):
        ret = np.array(curve["return"][k]) / curve_oracle
        td = [v for v in curve["td_loss"][k] if v is not None]
        lines.append(f"| {s} | {ret.mean():.3f} [{ret.min():.3f}, {ret.max():.3f}] | "
                     f"{np.mean(curve['length'][k]):.1f} | {np.mean(curve['max_q'][k]):.3f} | "
                     f"{np.mean(td) if td else float('nan'):.4f} |")
    final_actions = Counter()
    for run in runs:
        final_actions.update(run["curve"][-1]["actions"])
    total = sum(final_actions.values())
    lines += ["", "Actions of the final greedy policies on the curve episodes: " +
              ", ".join(f"{a} {n / total:.0%}" for a, n in final_actions.most_common())]
    faults = sorted(runs[0]["final"]["by_fault"])
    lines += ["", "Return by fault type on the evaluation sets (mean over seeds):", "",
              "| policy | " + " | ".join(faults) + " |", "|---|" + "---|" * len(faults)]
    per_policy = {"learner": [r["final"]["by_fault"] for r in runs]}
    for name in ("heuristic", "oracle"):
        per_policy[name] = [references[f"set{r['seed']}"][name]["by_fault"] for r in runs]
    for name, values in per_policy.items():
        lines.append(f"| {name} | " + " | ".join(f"{np.nanmean([v.get(f, np.nan) for v in values]):.3f}"
                                                  for f in faults) + " |")
    return {"tag": tag, "normalized": {k: {"mean": m, "ci95": h, "per_set": v} for (k, (m, h)), v in
                                       zip(rows.items(), (learner, heuristic))},
            "lengths": lengths, "steps": steps, "curve": curve, "curve_oracle_return": curve_oracle,
            "demo_steps": (runs[0].get("demonstrations") or {}).get("env_steps", 0),
            "curve_heuristic_return": references["curve"]["heuristic"]["return"], "references": references,
            "markdown": "\n".join(lines) + "\n"}


def _plot(report: dict, path: Path, others: list[dict] | None = None) -> None:
    """Learning curve (with ``others``' mean curves, e.g. a learner from scratch), episode length, Q and TD."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    steps = np.array(report["steps"])
    oracle = report["curve_oracle_return"]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
    returns = [np.array(v) / oracle for v in report["curve"]["return"]]
    for seed_index in range(len(returns[0])):
        left.plot(steps, [r[seed_index] if seed_index < len(r) else np.nan for r in returns], color="tab:blue",
                  alpha=0.3, linewidth=1)
    left.plot(steps, [r.mean() for r in returns], "o-", color="tab:blue", linewidth=2,
              label=f"{report['tag']}, mean over seeds")
    if report.get("demo_steps"):
        left.axvspan(0, report["demo_steps"], color="tab:orange", alpha=0.1, label="the heuristic's demonstrations")
    for other, color in zip(others or [], ("tab:green", "tab:red", "tab:purple")):
        other_returns = [np.mean(v) / other["curve_oracle_return"] for v in other["curve"]["return"]]
        left.plot(other["steps"], other_returns, "s-", color=color, linewidth=1.5,
                  label=f"{other['tag']}, mean over {len(other['curve']['return'][0])} seed(s)")
        middle.plot(other["steps"], [np.mean(v) for v in other["curve"]["length"]], "s-", color=color,
                    label=other["tag"])
    left.axhline(1.0, color="black", linestyle="--", linewidth=1, label="oracle (privileged)")
    left.axhline(report["curve_heuristic_return"] / oracle, color="tab:orange", linestyle="--", linewidth=1,
                 label="observation-only heuristic")
    left.axhline(0.0, color="grey", linewidth=0.8)
    left.set_xlabel("env steps")
    left.set_ylabel("normalized held-out return")
    left.set_title(f"{report['tag']}: learning curve")
    left.legend(fontsize=8)
    middle.plot(steps, [np.mean(v) for v in report["curve"]["length"]], "o-", color="tab:blue", label=report["tag"])
    middle.set_xlabel("env steps")
    middle.legend(fontsize=8)
    middle.set_title("greedy episode length (budget 32)")
    right.plot(steps, [np.mean(v) for v in report["curve"]["max_q"]], "o-", label="mean max Q, first obs")
    right.plot(steps, [np.mean(v) for v in report["curve"]["q_stop"]], "s--", label="mean Q(stop), first obs")
    td = [np.mean([x for x in v if x is not None]) if any(x is not None for x in v) else np.nan
          for v in report["curve"]["td_loss"]]
    right.plot(steps, td, "^:", label="TD loss")
    right.set_xlabel("env steps")
    right.set_title("Q-values and TD loss")
    right.legend(fontsize=8)
    for ax in (left, middle, right):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
