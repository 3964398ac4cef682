"""Results files: one JSON line per played episode, as ``llm-repair-gym run`` writes them and ``verify`` reads them.

A line records who played (agent, its config and the config's hash), on what (suite, its version and hash,
split, env id, package version, git commit: ``<hash>+dirty`` when the played sources had uncommitted changes),
which episode (run seed, suite entry, bank instance, episode seed), and what came of it (return, steps, final
accuracy per family, FLOPs, safety cost, whether the model crashed, and every action by name): enough to replay
the episode on any CPU and check it.

:func:`read_results` reads a file defensively: a file over :data:`MAX_FILE_BYTES`, a line over
:data:`MAX_LINE_BYTES`, bad JSON, a missing or extra field or a value of the wrong type is refused with a
message naming the line, before anything is used, so a file is never half-read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

RESULTS_FORMAT = 1
MAX_FILE_BYTES = 64 * 2**20
MAX_LINE_BYTES = 16 * 2**10
MAX_ACTIONS = 1024

_NUMBER = (int, float)
FIELDS: dict[str, tuple[type, ...]] = {
    "format": (int,),
    "agent": (str,),
    "agent_config": (dict,),
    "config_hash": (str,),
    "suite": (str,),
    "suite_version": (int,),
    "suite_hash": (str,),
    "split": (str,),
    "env_id": (str,),
    "package_version": (str,),
    "git_commit": (str, type(None)),
    "threads": (int,),
    "seed": (int,),
    "index": (int,),
    "instance": (int,),
    "episode_seed": (int,),
    "fault": (str,),
    "return": _NUMBER,
    "steps": (int,),
    "final_accuracy": (dict,),
    "flops": _NUMBER,
    "safety_cost": _NUMBER,
    "crashed": (bool,),
    "actions": (list,),
}
"""Every field of a results line and the JSON types it may take (``int`` excludes ``bool``)."""


def dump_line(record: dict) -> str:
    """One results line (checked against :data:`FIELDS` first)."""
    check_record(record, "record")
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def write_results(path: str | Path, records: Iterable[dict]) -> Path:
    """Write ``records`` to ``path`` atomically (a scratch file renamed into place): a reader never sees half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    scratch.write_text("".join(dump_line(r) + "\n" for r in records))
    os.replace(scratch, path)
    return path


def read_results(path: str | Path) -> list[dict]:
    """Every record of a results file, each checked; ``ValueError`` naming the file and line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path} is {size} bytes; a results file may hold at most {MAX_FILE_BYTES}")
    records = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}, line {number}"
            if len(raw) > MAX_LINE_BYTES:
                raise ValueError(f"{where}: {len(raw)} bytes; a line may hold at most {MAX_LINE_BYTES}")
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
            except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as err:
                raise ValueError(f"{where}: not a JSON line ({err})") from err
            check_record(record, where)
            records.append(record)
    if not records:
        raise ValueError(f"{path} holds no results")
    return records


def read_many(paths: Iterable[str | Path]) -> list[dict]:
    """The records of several results files (or of every ``*.jsonl`` under a folder), each file checked."""
    out = []
    for path in paths:
        path = Path(path)
        files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
        if not files:
            raise ValueError(f"{path} holds no *.jsonl results files")
        for file in files:
            out += read_results(file)
    return out


def check_record(record, where: str) -> None:
    """Refuse a record whose fields or types differ from :data:`FIELDS`."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: a record is a JSON object, got {type(record).__name__}")
    missing, extra = sorted(set(FIELDS) - set(record)), sorted(set(record) - set(FIELDS))
    if missing or extra:
        raise ValueError(f"{where}: missing fields {missing}, unknown fields {extra}")
    for name, types in FIELDS.items():
        value = record[name]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            allowed = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"{where}: field {name!r} must be {allowed}, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}: field {name!r} is not finite")
    if record["format"] != RESULTS_FORMAT:
        raise ValueError(f"{where}: results format {record['format']}; this version reads {RESULTS_FORMAT}")
    actions = record["actions"]
    if not 0 < len(actions) <= MAX_ACTIONS or not all(isinstance(a, str) and len(a) <= 64 for a in actions):
        raise ValueError(f"{where}: 'actions' must be 1..{MAX_ACTIONS} action names")
    if not all(isinstance(k, str) and isinstance(v, _NUMBER) and not isinstance(v, bool)
               for k, v in record["final_accuracy"].items()):
        raise ValueError(f"{where}: 'final_accuracy' must map family names to numbers")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")
