"""Command line: ``llm-repair-gym <command>`` (or ``python -m llm_repair_gym.cli``).

Commands
--------
``zoo``  build (or load from the cache) a preset's healthy model zoo and print its accuracy report.
"""

from __future__ import annotations

import argparse
import sys

from llm_repair_gym.presets import PRESETS


def _zoo(args: argparse.Namespace) -> int:
    from llm_repair_gym.zoo import load_zoo

    zoo = load_zoo(args.preset, seed=args.seed, cache_dir=args.cache_dir, device=args.device, rebuild=args.rebuild)
    print(zoo.report())
    worst = min(min(v) for v in zoo.accuracy("test").values())
    print(f"worst test exact-match accuracy over models and families: {worst:.4f}")
    return 0


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
