"""One-off migration (0.7.0, issue #28): carried results lines take their agent's corrected description.

    python scripts/migrate_agent_descriptions.py benchmarks/leaderboard/episodes benchmarks/leaderboard-meta/episodes

An agent's description is part of the configuration a results line records (``agent_config``) and hashes
(``config_hash``), so correcting one (the heuristic's "a dozen if-then rules": it has eight) would make the
runner play its carried jobs again. This rewrites, on every line of a registered agent whose recorded
description differs from its spec's, exactly two fields: ``agent_config.description`` and ``config_hash``
(recomputed as the runner computes it). Nothing else changes: not the episodes, not the commit that played
them; ``verify`` replays the same actions to the same numbers, and the runner counts the jobs as done.
Lines are written back in the results format (sorted keys, compact), atomically. Running it again changes
nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llm_repair_gym.bench.registry import registered_agents
from llm_repair_gym.bench.results import read_results, write_results
from llm_repair_gym.bench.runner import record_hash


def migrate_record(record: dict, description: str) -> dict:
    """``record`` with ``description`` and the config hash that goes with it (a new dict)."""
    config = {**record["agent_config"], "description": description}
    return {**record, "agent_config": config,
            "config_hash": record_hash(record["agent"], config, record["suite"], record["suite_hash"],
                                       record["split"])}


def migrate(paths: list[str | Path], dry_run: bool = False) -> list[Path]:
    """Migrate every results file in ``paths`` (files, or folders searched for ``*.jsonl``); the files changed
    (with ``dry_run``: the files that would change, none written)."""
    agents = registered_agents()
    files = [f for p in map(Path, paths) for f in (sorted(p.rglob("*.jsonl")) if p.is_dir() else [p])]
    changed = []
    for path in files:
        records = read_results(path)
        new = [migrate_record(r, agents[r["agent"]].description)
               if r["agent"] in agents and r["agent_config"].get("description") != agents[r["agent"]].description
               else r for r in records]
        if new != records:
            if not dry_run:
                write_results(path, new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__)
        return 2
    changed = migrate(paths)
    for path in changed:
        print(f"migrated {path}")
    print(f"{len(changed)} files migrated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
