"""The privileged planner of LLMRepair-v1: a beam search over repair plans, every branch a copy of the episode
in one batched vector env. It is the ceiling ("1") of the v1 board, not an agent a learner could be.

A *plan* is a prefix of repairs, then ``k`` ``train_all`` steps, then ``stop``. A repair is any action but
``train_all``, the probes, ``checkpoint``, ``rollback`` and ``stop``: a planner that sees the future needs no
diagnosis and no undo. The planner knows what no agent is shown: the fault set (the documented repair's
prefix is one of its first candidates) and the test split that the objective scores.

**Search** (:func:`search_plans`, offline, once per suite entry). Every candidate prefix of every entry gets its
own env slot, copied from the entry's reset state (:meth:`EnvState.rows
<llm_repair_gym.envs.snapshot.EnvState.rows>`); all slots of a level step together as one vector env. A slot
plays its prefix, then ``train_all`` until :data:`ROLLOUT_STEPS` steps; after ``k`` training steps for ``k`` in
:data:`TAIL_GRID` its test score, compute and crashes are recorded (:meth:`score_test
<llm_repair_gym.envs.repair_v1.LLMRepairV1VectorEnv.score_test>`). The slots' random streams are reseeded
from :data:`ROLLOUT_SEED` and the entry (the same stream for every candidate of an entry: common random
numbers), so the search never sees the training noise of the episode it will play.

* level 1: no repair, each repair alone, and the documented repair's prefix;
* level ``d > 1``: the ``beam`` best prefixes of each entry not yet extended, each followed by every repair.

A prefix is ranked by its best estimated objective over ``k`` at the env's reference price (``cost_weight``)
with the longest budget. Effort is the number of levels: the planner at effort ``e`` chooses among the
candidates of levels ``1..e``.

**Play** (:class:`PlannerPolicy`). At an episode's first step it reads the instance, the price and the step
budget from ``info`` and plays, open-loop, the (candidate, ``k``) whose estimated objective (test gain minus
price x compute minus crash penalties) is best among those that fit the budget. Its return is the real
episode's, noise and all: the estimates only choose.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from agents.baselines import OpenLoopPolicy, documented_plan
from llm_repair_gym._version import __version__
from llm_repair_gym.envs.suites import load_suite

ROLLOUT_STEPS = 24
"""Steps a candidate's rollout runs (prefix and training): plans are at most this long (budgets reach 32, but
training gains little after 20 steps)."""
TAIL_GRID = (0, 1, 2, 3, 4, 6, 8, 11, 15, 19, 24)
"""Training steps after the prefix at which a rollout is scored (a test scoring costs about one step)."""
ROLLOUT_SEED = 20_261_207
"""Base of the rollouts' random streams (an entry's stream is this plus its instance id)."""
SEARCH_SEED = 7_000_000
"""Episode seed of an entry's reset in the search (not an evaluation seed; only the instance's state is used)."""
NOT_REPAIRS = frozenset({"train_all", "checkpoint", "rollback", "stop"})
TABLE_FILE = "plans.json"
CARRIED = Path(__file__).resolve().parent / "checkpoints" / "LLMRepair-v1" / "planner"
"""The carried plan table of ``LLMRepair-Suite-v1``'s test split (what the ``planner`` agent plays)."""
TABLE_FORMAT = 1


def repair_actions(action_names: list[str]) -> list[str]:
    """The actions a plan's prefix may hold (see the module docstring)."""
    return [a for a in action_names if a not in NOT_REPAIRS and not a.startswith("probe_")]


def documented_prefix(info: dict, i: int) -> tuple[str, ...]:
    """The documented repair of env ``i``'s fault set (read from ``info``) up to its first training action."""
    prefix = []
    for action in documented_plan(info, i):
        if action.startswith("train_") or action == "stop":
            break
        prefix.append(action)
    return tuple(prefix)


class EntryRollouts:
    """The reset states of a suite split's entries (its first ``limit``), and rollouts of repair prefixes from
    them (see the module docstring): what :func:`search_plans` searches with, and what the troubleshooter's fit
    measures repairs with."""

    def __init__(self, suite_name: str, split: str, limit: int | None = None) -> None:
        suite = load_suite(suite_name)
        if suite.env_id != "LLMRepair-v1":
            raise ValueError(f"the planner plans LLMRepair-v1 episodes; {suite_name} is a suite of {suite.env_id}")
        self.suite, self.split = suite, split
        self.entries = suite.entries(split)[:limit]
        self.kwargs = {**suite.make_kwargs(split), "autoreset_mode": "Disabled", "progress": False}
        source = gym.make_vec(suite.env_id, num_envs=len(self.entries), **self.kwargs).unwrapped
        try:
            _, self.info = source.reset(seed=[SEARCH_SEED + e.instance for e in self.entries],
                                        options={"instance": np.array([e.instance for e in self.entries])})
            self.start = source.get_state()
            self.test_start = np.asarray(self.info["test_score"], dtype=float)
            self.action_names = list(source.action_names)
            self.reference_price, self.crash_penalty = source.cost_weight, source.crash_penalty
        finally:
            source.close()
        self.documented = [documented_prefix(self.info, i) for i in range(len(self.entries))]

    def value(self, result: dict, prefix_length: int) -> float:
        """A rollout's best estimated objective over its training lengths, at the reference price with the longest
        budget (relative to the reset score, which is the same for every candidate of an entry)."""
        values = estimates(result, prefix_length, 0.0, self.reference_price, self.crash_penalty, ROLLOUT_STEPS)
        return float(values.max()) if values.size else -np.inf

    def rollouts(self, jobs: list[tuple[int, tuple[str, ...]]], level: int = 1, progress: bool = True) -> list[dict]:
        """Roll every job (entry row, prefix) out in its own slot of one vector env."""
        env = gym.make_vec(self.suite.env_id, num_envs=len(jobs), **self.kwargs).unwrapped
        try:
            state = self.start.rows([row for row, _ in jobs])
            state.tensors["rng.seeds"] = state.tensors["rng.seeds"].new_tensor(
                [ROLLOUT_SEED + self.entries[row].instance for row, _ in jobs])
            state.tensors["rng.counters"].zero_()
            scored = play_prefixes(env, state, [prefix for _, prefix in jobs], ROLLOUT_STEPS, TAIL_GRID,
                                   desc=f"level {level}: {len(jobs)} rollouts", progress=progress)
            return [{"level": level, "k": r["k"], "test": [round(v, 6) for v in r["test"]],
                     "units": [round(v, 6) for v in r["units"]], "crashes": r["crashes"]} for r in scored]
        finally:
            env.close()


def play_prefixes(env, start, prefixes: list[tuple[str, ...]], steps: int, grid: tuple[int, ...],
                  desc: str = "rollouts", progress: bool = True) -> list[dict]:
    """Play, from ``start`` (an :class:`~llm_repair_gym.envs.snapshot.EnvState` of ``env``, one row per prefix),
    each slot's prefix, then ``train_all``, for ``steps`` steps in all (no slot's episode ends inside them); after
    ``k`` training steps, for each ``k`` of ``grid`` reached, record the slot's test score (the privileged
    ``score_test``), its compute so far (``train_all`` units) and its crashes. Returns per slot ``{"k": [...],
    "test": [...], "units": [...], "crashes": [...]}``. ``start``'s step budgets are raised to ``steps + 1``."""
    start.tensors["budget"].fill_(steps + 1)
    start.host["budget"] = [steps + 1] * len(prefixes)
    env.set_state(start)
    index = {name: i for i, name in enumerate(env.action_names)}
    length = np.array([len(p) for p in prefixes])
    due_at = set(grid)
    results = [{"k": [], "test": [], "units": [], "crashes": []} for _ in prefixes]
    for t in tqdm(range(steps + 1), desc=desc, leave=False, disable=not progress):
        due = np.flatnonzero([t >= n and t - n in due_at for n in length])
        if due.size:
            test = env.score_test(due)
            units = (env.state.flops[due] / env.flops_ref).cpu().numpy()
            crashes = env.state.crashes[due].cpu().numpy()
            for j, score, u, c in zip(due, test, units, crashes):
                results[j]["k"].append(int(t - length[j]))
                results[j]["test"].append(float(score))
                results[j]["units"].append(float(u))
                results[j]["crashes"].append(int(c))
        if t == steps:
            break
        env.step(np.array([index[p[t]] if t < len(p) else index["train_all"] for p in prefixes]))
    return results


def estimates(result: dict, prefix_length: int, start: float, price: float, crash_penalty: float,
              budget: int) -> np.ndarray:
    """A rollout's estimated objective after each of its training lengths ``k``: test score minus ``start``, minus
    price x compute, minus crash penalties; -inf where the plan (prefix, then ``k`` steps) exceeds ``budget``."""
    k = np.asarray(result["k"])
    value = np.asarray(result["test"]) - start - price * np.asarray(result["units"]) \
        - crash_penalty * np.asarray(result["crashes"])
    return np.where(prefix_length + k <= budget, value, -np.inf)


def search_plans(suite_name: str = "LLMRepair-Suite-v1", split: str = "test", levels: int = 3, beam: int = 2,
                 limit: int | None = None, progress: bool = True) -> dict:
    """Search every entry of ``split`` (its first ``limit``) and return the plan table (:class:`PlannerPolicy`
    reads it): per entry its candidates, each with the level that proposed it, its prefix and, at every
    ``k`` of :data:`TAIL_GRID` it reached, the mean test score, the compute (``train_all`` units) and the
    crashes so far."""
    if levels < 1 or beam < 1:
        raise ValueError(f"levels and beam must be >= 1, got levels={levels}, beam={beam}")
    search = EntryRollouts(suite_name, split, limit)
    repairs = repair_actions(search.action_names)
    found: list[dict[tuple[str, ...], dict]] = [{} for _ in search.entries]
    extended: list[set[tuple[str, ...]]] = [set() for _ in search.entries]
    bar = tqdm(total=levels, desc="planner levels", disable=not progress)
    for level in range(1, levels + 1):
        jobs: list[tuple[int, tuple[str, ...]]] = []
        for row in range(len(search.entries)):
            if level == 1:
                proposals = [(), *((r,) for r in repairs), search.documented[row]]
            else:
                open_ = [p for p in found[row] if p not in extended[row] and len(p) < ROLLOUT_STEPS]
                best = sorted(open_, key=lambda p: -search.value(found[row][p], len(p)))[:beam]
                extended[row] |= set(best)
                proposals = [(*p, r) for p in best for r in repairs]
            jobs += [(row, prefix) for prefix in dict.fromkeys(proposals) if prefix not in found[row]]
        for (row, prefix), result in zip(jobs, search.rollouts(jobs, level, progress)):
            found[row][prefix] = result
        if level == 1:  # every one-repair prefix is a level-1 candidate already
            for done in extended:
                done.add(())
        bar.update(1)
    bar.close()
    table = {"format": TABLE_FORMAT, "package_version": __version__, "suite": search.suite.name, "split": split,
             "levels": levels, "beam": beam, "rollout_steps": ROLLOUT_STEPS, "tail_grid": list(TAIL_GRID),
             "rollout_seed": ROLLOUT_SEED, "search_seed": SEARCH_SEED, "crash_penalty": search.crash_penalty,
             "action_names": search.action_names, "repairs": repairs, "entries": []}
    for row, entry in enumerate(search.entries):
        table["entries"].append({
            "index": entry.index, "instance": entry.instance, "fault": entry.fault,
            "test_start": float(search.test_start[row]), "documented_prefix": list(search.documented[row]),
            "candidates": [{"prefix": list(p), **r} for p, r in found[row].items()]})
    return table


def save_table(table: dict, folder: str | Path) -> Path:
    """Write the plan table and a ``policy.json`` naming it (what :func:`agents.load_policy` reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TABLE_FILE).write_text(json.dumps(table, separators=(",", ":")) + "\n")
    meta = {"kind": "planner", "env_id": "LLMRepair-v1", "package_version": table["package_version"],
            "suite": table["suite"], "split": table["split"],
            "levels": table["levels"], "beam": table["beam"], "feature_names": []}
    (folder / "policy.json").write_text(json.dumps(meta, indent=1) + "\n")
    return folder


def load_planner(folder: str | Path, effort: int | None = None) -> PlannerPolicy:
    """The planner of the table in ``folder`` (written by :func:`save_table`)."""
    path = Path(folder) / TABLE_FILE
    try:
        table = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable plan table: {err}") from err
    return PlannerPolicy(table, effort)


class PlannerPolicy(OpenLoopPolicy):
    """Plays the plan table's best plan for each episode's instance, price and budget (privileged: reads
    ``info``). ``effort`` limits the choice to candidates of levels ``1..effort`` (all by default)."""

    def __init__(self, table: dict, effort: int | None = None) -> None:
        if table.get("format") != TABLE_FORMAT:
            raise ValueError(f"a plan table of format {TABLE_FORMAT} is needed, got {table.get('format')!r}")
        effort = table["levels"] if effort is None else effort
        if not 1 <= effort <= table["levels"]:
            raise ValueError(f"effort must be in [1, {table['levels']}] (the table's levels), got {effort}")
        super().__init__(table["action_names"])
        self.split, self.suite = table["split"], table["suite"]
        self.by_instance = {e["instance"]: [c for c in e["candidates"] if c["level"] <= effort]
                            for e in table["entries"]}
        self.test_start = {e["instance"]: e["test_start"] for e in table["entries"]}
        self.crash_penalty = table["crash_penalty"]

    def plan(self, instance: int, price: float, budget: int) -> list[str]:
        """The best plan of ``instance`` at this price and step budget, ``stop`` included where steps remain."""
        if instance not in self.by_instance:
            raise ValueError(f"the plan table holds {self.suite} {self.split} instances; instance {instance} is not "
                             "one (play the planner on the split it searched)")
        best: list[str] = []  # stopping at once: an estimated objective of 0
        best_value = 0.0
        for c in self.by_instance[instance]:
            values = estimates(c, len(c["prefix"]), self.test_start[instance], price, self.crash_penalty, budget)
            j = int(np.argmax(values)) if values.size else 0
            if values.size and values[j] > best_value:
                best, best_value = [*c["prefix"], *["train_all"] * c["k"][j]], float(values[j])
        return best if len(best) >= budget else [*best, "stop"]

    def make_plan(self, info: dict, i: int) -> list[str]:
        """At an episode's first step the instance, price and budget are in ``info``."""
        return self.plan(int(info["instance"][i]), float(info["price"][i]), int(info["budget"][i]))


def main(argv: list[str] | None = None) -> Path:
    """``python scripts/plan_v1.py``: search a suite split and write the plan table the ``planner`` agent plays."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="LLMRepair-Suite-v1")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--levels", type=int, default=3, help="search levels (effort): 1 = every single repair")
    parser.add_argument("--beam", type=int, default=2, help="prefixes each entry extends per level after the first")
    parser.add_argument("--limit", type=int, default=None, help="search only the split's first LIMIT entries")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out-dir", default=str(CARRIED))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    table = search_plans(args.suite, args.split, args.levels, args.beam, args.limit)
    folder = save_table(table, args.out_dir)
    print(f"{sum(len(e['candidates']) for e in table['entries'])} candidates over {len(table['entries'])} entries "
          f"-> {folder / TABLE_FILE}")
    return folder
if __name__ == "__main__":
    main()
