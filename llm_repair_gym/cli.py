"""Command line: ``llm-repair-gym <command>`` (or ``python -m llm_repair_gym.cli``).

Commands
--------
``zoo``          build (or load from the cache) a preset's healthy model zoo and print its accuracy report.
``run``          train or load agents and play them on a suite split; one results line per episode.
``train``        train one registered agent with its own command line (``llm-repair-gym train dqn --help``).
``leaderboard``  rank the agents of results files (rliable statistics); Markdown, JSON, HTML and plots.
``suite``        show a frozen evaluation suite (``show NAME``), or freeze one anew (``freeze NAME``, maintainers).
``verify``       replay every episode of a results file and refuse it if anything differs.
``explain``      replay one episode of a results file step by step: a JSON trace and a figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llm_repair_gym.lm.presets import PRESETS


def _zoo(args: argparse.Namespace) -> int:
    from llm_repair_gym.lm.zoo import load_zoo

    zoo = load_zoo(args.preset, seed=args.seed, cache_dir=args.cache_dir, device=args.device, rebuild=args.rebuild)
    print(zoo.report())
    worst = min(min(v) for v in zoo.accuracy("test").values())
    print(f"worst test exact-match accuracy over models and families: {worst:.4f}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from llm_repair_gym.bench.registry import agents_for
    from llm_repair_gym.bench.runner import PLAYED_SOURCES, plan_jobs, run_jobs
    from llm_repair_gym.envs.suites import load_suite

    agents = agents_for(load_suite(args.suite).env_id) if args.agents == ["all"] else args.agents
    todo, done = plan_jobs(agents, args.seeds, args.suite, args.split, args.out_dir, rerun=args.rerun,
                           total_steps=args.total_steps, train_envs=args.num_envs, limit=args.limit)
    print(f"{len(todo)} jobs to run, {len(done)} already done (results in {args.out_dir}/episodes)")
    if todo and (todo[0].git_commit or "").endswith("+dirty"):
        print(f"warning: uncommitted changes under {', '.join(PLAYED_SOURCES)}; the results will name commit "
              f"{todo[0].git_commit}, which no clone can check out. Commit first for results others can reproduce.")
    run_jobs(todo, workers=args.workers, ray_address=args.ray)
    return 0


def _train(args: argparse.Namespace) -> int:
    from llm_repair_gym.bench.registry import agent_spec

    spec = agent_spec(args.agent)
    if spec.kind != "trained":
        raise ValueError(f"{args.agent} is a {spec.kind} agent: only trained agents train")
    spec.train([*spec.script[1:], *args.arguments])
    return 0


def _suite(args: argparse.Namespace) -> int:
    from llm_repair_gym.envs.suites import freeze_suite, load_suite

    if args.action == "freeze":
        print(f"wrote {freeze_suite(args.name)}")
    print(load_suite(args.name).summary())
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from llm_repair_gym.bench.leaderboard import write_leaderboard

    write_leaderboard(args.results, args.out_dir, seed=args.seed)
    print((args.out_dir / "leaderboard.md").read_text())
    print(f"wrote leaderboard.md, leaderboard.json, leaderboard.html and the plots to {args.out_dir}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from llm_repair_gym.bench.verify import verify_results

    report = verify_results(args.results, num_envs=args.num_envs, policy=args.policy)
    print(report.text())
    return 0 if report.ok else 1


def _explain(args: argparse.Namespace) -> int:
    from llm_repair_gym.bench.explain import explain_episode
    from llm_repair_gym.bench.results import read_results
    from llm_repair_gym.bench.runner import agent_env_kwargs
    from llm_repair_gym.envs.suites import load_suite

    records = read_results(args.results)
    if not 0 <= args.episode < len(records):
        raise ValueError(f"--episode must lie in [0, {len(records)}): {args.results} holds {len(records)} episodes")
    r = records[args.episode]
    suite = load_suite(r["suite"])
    env_kwargs = {**suite.make_kwargs(r["split"]), **agent_env_kwargs(r["agent"])}
    trace = explain_episode(suite.env_id, env_kwargs, r["episode_seed"], r["instance"], r["actions"], args.out_dir,
                            option=suite.reset_option)
    print(f"{r['agent']} seed {r['seed']} entry {r['index']} ({r['fault']}): return {trace['return']:.4f} "
          f"(recorded {r['return']:.4f}); wrote trace.json and trace.png to {args.out_dir}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-repair-gym", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    zoo = commands.add_parser("zoo", help="build or load a preset's model zoo and print its report")
    zoo.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    zoo.add_argument("--seed", type=int, default=0)
    zoo.add_argument("--device", default="cpu")
    zoo.add_argument("--cache-dir", default=None, help="zoo cache root (default: $LLM_REPAIR_GYM_CACHE or user cache)")
    zoo.add_argument("--rebuild", action="store_true", help="train afresh even if a valid cache exists")
    zoo.set_defaults(run=_zoo)

    from llm_repair_gym.bench.registry import registered_agents
    from llm_repair_gym.envs.suites import suite_names

    agents = registered_agents()
    run = commands.add_parser("run", help="train or load agents and play them on a suite split")
    run.add_argument("--agents", nargs="+", default=["all"], choices=["all", *agents], metavar="AGENT",
                     help=f"'all' (every agent that plays the suite's env) or some of {', '.join(agents)}")
    run.add_argument("--suite", default="LLMRepair-Suite-v0", choices=suite_names())
    run.add_argument("--split", default="test", choices=("train", "test"))
    run.add_argument("--seeds", type=_positive, default=10, help="runs per agent: seeds 1..SEEDS")
    run.add_argument("--total-steps", type=_positive, default=4_000, help="training env steps of trained agents")
    run.add_argument("--num-envs", type=_positive, default=16, help="envs of the trained agents' training")
    run.add_argument("--workers", type=_positive, default=2, help="local worker processes")
    run.add_argument("--ray", default=None, metavar="ADDRESS", help="run the jobs on this Ray cluster ('local': "
                     "start one here) instead of local workers")
    run.add_argument("--limit", type=_positive, default=None, help="play only the split's first LIMIT entries")
    run.add_argument("--rerun", action="store_true", help="play jobs again even where their results exist")
    run.add_argument("--out-dir", type=Path, default=Path("results/leaderboard"))
    run.set_defaults(run=_run)

    train = commands.add_parser("train", help="train one registered agent with its own command line",
                                description="Train AGENT with its spec's train function: the agent's recipe "
                                "(its script's fixed flags) followed by ARGUMENTS, e.g. llm-repair-gym train dqfd "
                                "--seed 1 --total-steps 8000 --out-dir results/dqfd. Its flags: llm-repair-gym "
                                "train AGENT --help.")
    train.add_argument("agent", choices=[name for name, spec in agents.items() if spec.kind == "trained"],
                       metavar="AGENT", help=f"one of {', '.join(n for n, s in agents.items() if s.kind == 'trained')}")
    train.add_argument("arguments", nargs=argparse.REMAINDER, help="the agent's own flags")
    train.set_defaults(run=_train)

    board = commands.add_parser("leaderboard", help="rank the agents of results files")
    board.add_argument("results", nargs="+", type=Path, help="results files or folders of them")
    board.add_argument("--out-dir", type=Path, default=Path("results/leaderboard"))
    board.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    board.set_defaults(run=_leaderboard)

    suite = commands.add_parser("suite", help="show (or freeze) an evaluation suite")
    suite.add_argument("action", choices=("show", "freeze"))
    suite.add_argument("name", choices=suite_names())
    suite.set_defaults(run=_suite)

    verify = commands.add_parser("verify", help="replay a results file and refuse it if anything differs")
    verify.add_argument("results", nargs="+", type=Path, help="results files or folders of them")
    verify.add_argument("--num-envs", type=_positive, default=8,
                        help="envs replaying at once (the runner evaluates 8 at once; on LLMRepair-v1 another number "
                             "can change the last bits, and chaotic episodes' outcomes)")
    verify.add_argument("--policy", action="store_true", help="replay reference and carried agents as policies: "
                        "their choices must be the recorded actions")
    verify.set_defaults(run=_verify)

    explain = commands.add_parser("explain", help="replay one episode step by step: trace.json and trace.png")
    explain.add_argument("results", type=Path, help="a results file")
    explain.add_argument("--episode", type=int, default=0, help="line of the episode (from 0)")
    explain.add_argument("--out-dir", type=Path, default=Path("results/explain"))
    explain.set_defaults(run=_explain)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        args.seeds = list(range(1, args.seeds + 1))
    try:
        return args.run(args)
    except ValueError as err:  # bad input (a results file, a suite, an agent): say what, no traceback
        print(f"llm-repair-gym {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
