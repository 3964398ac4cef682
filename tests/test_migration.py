"""The one-off migration of carried results to corrected agent descriptions (scripts/migrate_agent_descriptions.py)."""

import json
import shutil
import sys
from pathlib import Path

from llm_repair_gym.bench.registry import registered_agents
from llm_repair_gym.bench.runner import Job, config_hash, plan_jobs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import migrate_agent_descriptions as migration  # noqa: E402

sys.path.pop(0)
CARRIED = ROOT / "benchmarks" / "leaderboard" / "episodes" / "heuristic" / "seed1.jsonl"


def test_migration_changes_only_the_description_and_its_hash(tmp_path):
    old = [json.loads(line) for line in CARRIED.read_text().splitlines()]
    stale = tmp_path / "episodes" / "heuristic" / "seed1.jsonl"  # a carried file as it was before the correction
    stale.parent.mkdir(parents=True)
    stale.write_text("".join(json.dumps({**r, "agent_config": {**r["agent_config"], "description": "stale words"},
                                          "config_hash": "0123456789abcdef"}, sort_keys=True, separators=(",", ":"))
                             + "\n" for r in old))
    foreign = tmp_path / "episodes" / "someone" / "seed1.jsonl"  # an agent not registered here is left alone
    foreign.parent.mkdir(parents=True)
    foreign.write_text(stale.read_text().replace('"agent":"heuristic"', '"agent":"someone"'))
    before = foreign.read_bytes()

    assert migration.migrate([tmp_path / "episodes"], dry_run=True) == [stale]
    assert stale.read_text().count("stale words") == len(old)  # a dry run writes nothing
    assert migration.migrate([tmp_path / "episodes"]) == [stale]
    new = [json.loads(line) for line in stale.read_text().splitlines()]
    spec = registered_agents()["heuristic"]
    for a, b in zip(old, new):
        assert b["agent_config"]["description"] == spec.description
        assert {k: v for k, v in a.items() if k not in ("agent_config", "config_hash")} == \
            {k: v for k, v in b.items() if k not in ("agent_config", "config_hash")}
        assert {k: v for k, v in a["agent_config"].items() if k != "description"} == \
            {k: v for k, v in b["agent_config"].items() if k != "description"}
    job = Job("heuristic", 1, new[0]["suite"], "test", str(tmp_path))
    assert {r["config_hash"] for r in new} == {config_hash(job, new[0]["suite_hash"])}  # what the runner computes
    todo, done = plan_jobs(["heuristic"], [1], new[0]["suite"], "test", tmp_path)
    assert todo == [] and [(j.agent, j.seed) for j in done] == [("heuristic", 1)]  # so the job counts as done
    assert foreign.read_bytes() == before
    migrated = stale.read_bytes()
    assert migration.migrate([tmp_path / "episodes"]) == [] and stale.read_bytes() == migrated  # idempotent


def test_carried_results_are_migrated_and_counted_as_done(tmp_path):
    carried = [CARRIED.parents[1], CARRIED.parents[3] / "leaderboard-meta" / "episodes"]
    assert migration.migrate(carried, dry_run=True) == []  # every carried line has its agent's description
    out = tmp_path / "board"
    shutil.copytree(CARRIED.parent, out / "episodes" / "heuristic")
    record = json.loads(CARRIED.read_text().splitlines()[0])
    runs = sorted(int(p.stem[4:]) for p in CARRIED.parent.glob("seed*.jsonl"))
    todo, done = plan_jobs(["heuristic"], runs, record["suite"], "test", out)
    assert todo == [] and len(done) == len(runs) == 10  # no carried job is planned again
