"""Meta-tasks: variants of the three task families, and the frozen meta-train / meta-test splits.

A variant keeps every family's format and changes what it asks:

========  =========================================================  ==========================================
family    variant                                                     how it is applied
========  =========================================================  ==========================================
syntax    the bracket alphabet relabelled: ``syntax`` is a            every bracket token of prompt and answer is
          permutation of ``( ) [ ]`` (token ``j`` becomes ``p[j]``)   relabelled (which token opens or closes
                                                                      which kind changes)
logic     sorting under a permuted digit order: ``logic[r]`` is the   digit ``d`` is written ``logic[d]`` in
          digit of rank ``r``                                         prompt and answer
fact      a fresh fact table drawn from ``fact_seed``                 the table answers every key
========  =========================================================  ==========================================

A variant is a small JSON dict, ``{"id": "test-003", "syntax": [...4], "logic": [...10], "fact_seed": n}``,
that reproduces it exactly (:func:`task_tables`). The splits are frozen in
``data/meta_tasks_v<version>.json`` (checked against :data:`META_TASKS_SHA256` on every load): 64 meta-train
and 32 meta-test variants, no identity relabelling, meta-test bracket relabellings that meta-training never
sees, and digit orders and fact tables that differ from every meta-train variant. Changing the file means a
new version.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from importlib import resources

import numpy as np
import torch

from llm_repair_gym.lm.tasks import _BRACKETS, _DIGIT0, TaskSuite

META_TASKS_VERSION = 1
META_TASKS_SHA256 = "6d91d6511247a881834c57d142ce15d4754655caf96c3f9cb74ee3c28d509281"
META_SPLITS = ("train", "test")
BRACKET_ORDER = "()[]"
_GENERATOR = {"seed": 20261201, "train": 64, "test": 32, "test_syntax": 6}


def generate_meta_tasks(seed: int = _GENERATOR["seed"], num_train: int = _GENERATOR["train"],
                        num_test: int = _GENERATOR["test"], test_syntax: int = _GENERATOR["test_syntax"]) -> dict:
    """The split file's content: ``num_train`` and ``num_test`` variants drawn from ``seed``.

    The 23 non-identity bracket relabellings are divided: ``test_syntax`` of them only in meta-test. Digit
    orders are distinct non-identity permutations; fact seeds are distinct.
    """
    rng = np.random.default_rng(seed)
    relabellings = [list(p) for p in itertools.permutations(range(4)) if list(p) != [0, 1, 2, 3]]
    order = rng.permutation(len(relabellings))
    syntax = {"test": [relabellings[i] for i in order[:test_syntax]],
              "train": [relabellings[i] for i in order[test_syntax:]]}
    seen_orders: set[tuple[int, ...]] = {tuple(range(10))}
    fact_seeds = rng.choice(2**31, size=num_train + num_test, replace=False)
    out: dict = {"version": META_TASKS_VERSION, "generator": {"seed": seed, "train": num_train, "test": num_test,
                                                              "test_syntax": test_syntax}}
    start = 0
    for split, count in (("train", num_train), ("test", num_test)):
        tasks = []
        for i in range(count):
            digits = tuple(int(d) for d in rng.permutation(10))
            while digits in seen_orders:
                digits = tuple(int(d) for d in rng.permutation(10))
            seen_orders.add(digits)
            tasks.append({"id": f"{split}-{i:03d}", "syntax": syntax[split][i % len(syntax[split])],
                          "logic": list(digits), "fact_seed": int(fact_seeds[start + i])})
        start += count
        out[split] = tasks
    return out


def _canonical(content: dict) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


@functools.cache
def _load() -> dict:
    raw = resources.files("llm_repair_gym").joinpath(f"data/meta_tasks_v{META_TASKS_VERSION}.json").read_bytes()
    content = json.loads(raw)
    digest = hashlib.sha256(_canonical(content)).hexdigest()
    if digest != META_TASKS_SHA256:
        raise ValueError(f"meta-task split file v{META_TASKS_VERSION} has sha256 {digest}, expected "
                         f"{META_TASKS_SHA256}: it was edited; a changed split needs a new version")
    for split in META_SPLITS:
        for task in content[split]:
            check_task(task)
    return content


def meta_tasks(split: str) -> list[dict]:
    """The frozen variants of a split (``"train"`` or ``"test"``), as fresh copies."""
    if split not in META_SPLITS:
        raise ValueError(f"unknown meta-task split {split!r}; expected one of {META_SPLITS}")
    return [dict(t, syntax=list(t["syntax"]), logic=list(t["logic"])) for t in _load()[split]]


def check_task(task: object) -> dict:
    """``task`` if it is a well-formed variant; else ``ValueError`` naming what is wrong and what is allowed."""
    if not isinstance(task, dict):
        raise ValueError(f"a meta-task is a dict with keys id, syntax, logic, fact_seed; got {type(task).__name__}")
    missing = {"syntax", "logic", "fact_seed"} - set(task)
    if missing:
        raise ValueError(f"meta-task {task.get('id', '?')!r} lacks {sorted(missing)}")
    for key, size in (("syntax", 4), ("logic", 10)):
        value = task[key]
        if not isinstance(value, list | tuple) or sorted(value) != list(range(size)) or \
                any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise ValueError(f"meta-task {key!r} must be a permutation of 0..{size - 1}, got {value!r}")
    seed = task["fact_seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"meta-task fact_seed must be an int in [0, 2**63), got {seed!r}")
    return task


def token_map(task: dict, vocab_size: int) -> torch.Tensor:
    """``[vocab]`` long: the token each token of the original task becomes in ``task``'s variant."""
    check_task(task)
    out = torch.arange(vocab_size)
    brackets = [_BRACKETS[c] for c in BRACKET_ORDER]
    for j, p in enumerate(task["syntax"]):
        out[brackets[j]] = brackets[p]
    out[_DIGIT0:_DIGIT0 + 10] = _DIGIT0 + torch.tensor(task["logic"])
    return out


def task_tables(tasks: list[dict], suite: TaskSuite) -> tuple[torch.Tensor, torch.Tensor]:
    """Fact tables ``[N, fact_keys]`` and token maps ``[N, vocab]`` of ``tasks`` on the suite's device: what
    :meth:`TaskSuite.batch` and :func:`llm_repair_gym.lm.metrics.evaluate` take to pose each env its variant."""
    if not tasks:
        raise ValueError("task_tables needs at least one meta-task")
    facts = [suite.sample_fact_tables(1, torch.Generator().manual_seed(check_task(t)["fact_seed"]))[0]
             for t in tasks]
    maps = [token_map(t, suite.vocab_size) for t in tasks]
    return torch.stack(facts).to(suite.device), torch.stack(maps).to(suite.device)
