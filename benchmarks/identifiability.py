"""How much of an episode's fault can be read off the observation? Per-type fault detection, free and after probes.

    python -m benchmarks.identifiability --env-id LLMRepair-v0 LLMRepair-v1 --seed 0 --num-envs 64 \\
        --out results/identifiability/identifiability.json

For each fault type, a classifier (scikit-learn's histogram gradient boosting, one binary classifier per type,
``class_weight="balanced"``, fixed ``random_state``) is trained on the observations of every train-split bank
instance and scored on every test-split instance: the balanced accuracy of "is this type present?" (0.5 is
chance, 1.0 a perfect read-out). Presence per type is asked, not the exact fault set: a v1 episode holds zero
to three faults, and each type's detector sees the others as background.

* ``free``: the observation at reset, which costs nothing. LLMRepair-v0 shows each fault's symptoms on
  purpose, so a detector is expected near 1.0 there. LLMRepair-v1 is built so that faults share their cheap
  symptoms (``llm_repair_gym.repair.faults_v1``): its free figure should stay well below that, or the probes
  would be worth nothing and the episode's diagnosis would be free.
* ``all_probes`` (v1): the observation after taking every probe action once from the reset state, the
  costliest first (the last observation holds every probe's slots and a fresh free measurement).
* ``<probe>`` (v1): the observation after that one probe alone, from the reset state (a fork of it; for the
  costliest, the first step of the sequence, which is the same): what that probe buys, beside its compute
  price (its FLOPs over one ``train_all``, the unit of the episode's price).
* ``after_train_all`` (v1): the reset observation beside the one after a single ``train_all`` step from it (a
  fork): what the model's answer to the commonest repair tells, the evidence a policy with memory reads while it
  repairs and the troubleshooter's beliefs (reset and probes) leave out.

Every instance of both splits is reset once (``options={"instance": ...}``, episode seed = ``--seed``, the split
and the instance id), in batches of ``--num-envs``. A type with no positive train instance is skipped and
listed. For the free and all-probes detectors the JSON also names the three features whose permutation (on the
test split, ``sklearn.inspection.permutation_importance``) costs the most balanced accuracy, so that a type that
is too easy to spot can be traced to what gives it away.

For ``free``, ``all_probes`` and ``after_train_all`` a **linear** detector (standardized features, balanced
logistic regression) is scored too. The troubleshooter's beliefs are linear in the reset and probe features, so
the boosting detector's lead over the linear one is what a policy that reads the observation non-linearly could
know and the troubleshooter cannot.

Writes ``--out`` (JSON) and prints a Markdown table: one row per fault type, one column per (env, observation).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

import llm_repair_gym  # noqa: F401  (registers the env ids)
from llm_repair_gym.repair.instances import BankConfig
from llm_repair_gym.repair.instances_v1 import DEFAULT_BANK_V1

SPLITS = ("train", "test")
TOP_FEATURES = 3  # features named per detector (permutation importance)
EXPLAINED = ("free", "all_probes")  # the conditions whose detectors get feature importances
RESPONSE = "after_train_all"  # v1: the reset observation beside the one after a single train_all step
LINEAR = (*EXPLAINED, RESPONSE)  # the conditions that also get a linear detector
MIN_SAMPLES_LEAF = 20  # scikit-learn's default; a smoke test's tiny bank gets n_train / 20 (at least 2)
SEED_STRIDE = 1 << 20  # episode seed = seed * 2 * SEED_STRIDE + split * SEED_STRIDE + instance id


def is_v1(env) -> bool:
    return hasattr(env, "probes")


def default_bank(env_id: str) -> BankConfig:
    return DEFAULT_BANK_V1 if env_id.startswith("LLMRepair-v1") else BankConfig()


def probe_indices(env) -> dict[str, int]:
    """The probe actions of a v1 env by name, in table order."""
    return {p.name: env.action_names.index(p.name) for p in env.probes}


def labels_of(env, info: dict) -> dict[str, np.ndarray]:
    """``{type: [n] bool}``: whether each fault type is present in each env (v0: one type per env)."""
    if is_v1(env):
        return {name: np.asarray(info["faults"][name], dtype=bool) for name in env.fault_names}
    kinds = np.asarray(info["fault"]["type"])
    return {name: kinds == name for name in env.fault_names if name != "none"}


def observe_split(env_id: str, split: str, num_envs: int, seed: int, bank: BankConfig, cache_dir: str | None,
                  probes: bool, **env_kwargs) -> dict:
    """Reset every instance of ``split`` once; the observations per condition ``[size, F]`` (``after_train_all``:
    ``[size, 2F]``) and the labels. ``env_kwargs`` go to the env (a preset, say)."""
    vec = gym.make_vec(env_id, num_envs=num_envs, instances=split, bank=bank, cache_dir=cache_dir,
                       **{"progress": True, **env_kwargs})
    env = vec.unwrapped
    size = env.bank.size
    conditions: dict[str, list[np.ndarray]] = {"free": []}
    probe_ids = probe_indices(env) if probes and is_v1(env) else {}
    if probe_ids:
        conditions |= {"all_probes": [], RESPONSE: [], **{name: [] for name in probe_ids}}
    order = sorted(probe_ids, key=lambda name: -env.actions[probe_ids[name]].flops)  # the costliest first
    labels: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, size, num_envs), desc=f"{env_id} {split}", unit="batch"):
        ids = np.arange(start, min(start + num_envs, size))
        taken = ids.size
        ids = np.resize(ids, num_envs)  # a short last batch repeats its instances; the repeats are dropped
        seeds = [seed * 2 * SEED_STRIDE + SPLITS.index(split) * SEED_STRIDE + int(k) for k in ids]
        obs, info = env.reset(seed=seeds, options={"instance": ids})
        conditions["free"].append(obs[:taken])
        for name, value in labels_of(env, info).items():
            labels.setdefault(name, []).append(value[:taken])
        if probe_ids:  # how the model answers one train_all step, from a copy of the reset state
            other = env.fork()
            after, *_ = other.step(np.full(num_envs, env.action_names.index("train_all")))
            conditions[RESPONSE].append(np.concatenate([obs, after], axis=1)[:taken])
            other.close()
        for name in order[1:]:  # one probe alone, from a copy of the reset state
            other = env.fork()
            obs, *_ = other.step(np.full(num_envs, probe_ids[name]))
            conditions[name].append(obs[:taken])
            other.close()
        for k, name in enumerate(order):  # every probe, one after the other
            obs, _, terminated, truncated, _ = env.step(np.full(num_envs, probe_ids[name]))
            if (terminated | truncated).any():
                raise RuntimeError("an episode ended during the probes: the budget is shorter than them")
            if k == 0:  # the costliest probe alone: the sequence's first step is what a fork would give
                conditions[name].append(obs[:taken])
        if order:
            conditions["all_probes"].append(obs[:taken])
    out = {"obs": {k: np.concatenate(v) for k, v in conditions.items()},
           "labels": {k: np.concatenate(v) for k, v in labels.items()},
           "feature_names": list(env.feature_names), "fault_names": list(labels), "size": size,
           "probe_cost": {name: env.actions[a].flops / env.flops_ref for name, a in probe_ids.items()}}
    vec.close()
    return out


def detector(kind: str, seed: int, n_train: int):
    """An unfitted binary classifier: ``"boosting"`` (the benchmark's detector) or ``"linear"`` (standardized
    features, balanced logistic regression: the kind of belief the troubleshooter fits)."""
    if kind == "linear":
        return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000))
    leaf = min(MIN_SAMPLES_LEAF, max(2, n_train // 20))  # the default leaf size, smaller on tiny banks
    return HistGradientBoostingClassifier(class_weight="balanced", min_samples_leaf=leaf, random_state=seed)


def detect(train: dict, test: dict, condition: str, seed: int, explain: bool, kind: str = "boosting") -> dict:
    """One ``kind`` detector (:func:`detector`) per fault type on ``condition``'s observations: balanced accuracy on
    the test split."""
    x_train, x_test = train["obs"][condition], test["obs"][condition]
    per_type, skipped = {}, []
    for name in train["fault_names"]:
        y_train, y_test = train["labels"][name], test["labels"][name]
        row = {"train_positives": int(y_train.sum()), "test_positives": int(y_test.sum())}
        if y_train.all() or not y_train.any() or y_test.all() or not y_test.any():
            skipped.append(name)  # balanced accuracy needs both classes in train and test
            per_type[name] = row | {"balanced_accuracy": None}
            continue
        model = detector(kind, seed, y_train.size)
        model.fit(x_train, y_train)
        row["balanced_accuracy"] = float(balanced_accuracy_score(y_test, model.predict(x_test)))
        if explain:
            imp = permutation_importance(model, x_test, y_test, scoring="balanced_accuracy", n_repeats=5,
                                         random_state=seed).importances_mean
            row["top_features"] = [{"feature": train["feature_names"][j], "importance": float(imp[j])}
                                   for j in np.argsort(-imp)[:TOP_FEATURES]]
        per_type[name] = row
    scores = [r["balanced_accuracy"] for r in per_type.values() if r["balanced_accuracy"] is not None]
    return {"per_type": per_type, "mean": float(np.mean(scores)) if scores else None, "types_scored": len(scores),
            "skipped": skipped}


def run_env(env_id: str, args: argparse.Namespace) -> dict:
    bank = default_bank(env_id)
    if args.train_size is not None or args.test_size is not None:
        bank = dataclasses.replace(bank, train_size=args.train_size or bank.train_size,
                                   test_size=args.test_size or bank.test_size,
                                   build_batch=min(bank.build_batch, args.train_size or bank.train_size))
    data = {split: observe_split(env_id, split, args.num_envs, args.seed, bank, args.cache_dir, not args.free_only)
            for split in SPLITS}
    train, test = data["train"], data["test"]
    conditions = {c: detect(train, test, c, args.seed, c in EXPLAINED and not args.no_importance)
                  for c in tqdm(train["obs"], desc=f"{env_id} detectors", unit="condition")}
    linear = {c: detect(train, test, c, args.seed, False, "linear") for c in LINEAR if c in train["obs"]}
    return {"bank": dataclasses.asdict(bank), "train_size": train["size"], "test_size": test["size"],
            "fault_types": train["fault_names"], "n_features": len(train["feature_names"]),
            "probe_cost": train["probe_cost"], "all_probes_cost": sum(train["probe_cost"].values()),
            "conditions": conditions, "linear": linear}


def table(results: dict) -> str:
    """Rows: fault types; columns: every (env, condition)."""
    columns = [(env_id, c) for env_id, r in results.items() for c in r["conditions"]]
    types = list(dict.fromkeys(t for r in results.values() for t in r["fault_types"]))

    def cell(env_id: str, condition: str, name: str) -> str:
        row = results[env_id]["conditions"][condition]["per_type"].get(name)
        if row is None:
            return ""
        return "skipped" if row["balanced_accuracy"] is None else f"{row['balanced_accuracy']:.3f}"

    def head(env_id: str, condition: str) -> str:
        cost = results[env_id]["probe_cost"].get(condition)
        if condition == "all_probes":
            cost = results[env_id]["all_probes_cost"]
        return f"{env_id} {condition}" + ("" if cost is None else f" ({cost:.3g} train_all)")

    lines = ["| fault type | " + " | ".join(head(*c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(cell(*c, name) for c in columns) + " |" for name in types]
    means = [results[e]["conditions"][c]["mean"] for e, c in columns]
    lines.append("| **mean** | " + " | ".join("" if m is None else f"**{m:.3f}**" for m in means) + " |")
    return "\n".join(lines)


def linear_table(results: dict) -> str:
    """Rows: fault types; per env and :data:`LINEAR` condition, the boosting detector, the linear one and their
    difference (what reading the observation non-linearly adds)."""
    columns = [(env_id, c) for env_id, r in results.items() for c in r.get("linear", {})]
    types = list(dict.fromkeys(t for r in results.values() for t in r["fault_types"]))

    def cells(env_id: str, condition: str, name: str) -> list[str]:
        boost = results[env_id]["conditions"][condition]["per_type"].get(name, {}).get("balanced_accuracy")
        line = results[env_id]["linear"][condition]["per_type"].get(name, {}).get("balanced_accuracy")
        if boost is None or line is None:
            return ["", "", ""]
        return [f"{boost:.3f}", f"{line:.3f}", f"{boost - line:+.3f}"]

    head = [f"{env_id} {c} {k}" for env_id, c in columns for k in ("boosting", "linear", "difference")]
    lines = ["| fault type | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    lines += [f"| {name} | " + " | ".join(x for c in columns for x in cells(*c, name)) + " |" for name in types]
    means = []
    for env_id, c in columns:
        boost, line = results[env_id]["conditions"][c]["mean"], results[env_id]["linear"][c]["mean"]
        means += [f"**{boost:.3f}**", f"**{line:.3f}**", f"**{boost - line:+.3f}**"]
    lines.append("| **mean** | " + " | ".join(means) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", nargs="+", default=["LLMRepair-v0", "LLMRepair-v1"])
    parser.add_argument("--seed", type=int, default=0, help="episode seeds and the classifiers' random_state")
    parser.add_argument("--num-envs", type=int, default=64, help="instances reset together")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=None, help="a smaller bank (default: the env's own)")
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--cache-dir", default=None, help="where banks are cached (default: the env's)")
    parser.add_argument("--free-only", action="store_true", help="no probes (the free observation only)")
    parser.add_argument("--no-importance", action="store_true", help="skip the permutation importances")
    parser.add_argument("--out", type=Path, default=Path("results/identifiability/identifiability.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    results = {env_id: run_env(env_id, args) for env_id in args.env_id}
    seconds = time.perf_counter() - start
    print(table(results))
    print("\n" + linear_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python -m benchmarks.identifiability " + " ".join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed, "num_envs": args.num_envs, "threads": args.threads, "seconds": round(seconds, 1),
        "classifier": {"model": "sklearn.ensemble.HistGradientBoostingClassifier", "class_weight": "balanced",
                       "min_samples_leaf": f"min({MIN_SAMPLES_LEAF}, max(2, train instances // 20))",
                       "random_state": args.seed, "metric": "balanced_accuracy (test split)",
                       "linear": "StandardScaler + LogisticRegression(class_weight='balanced'), per condition in "
                                 f"{list(LINEAR)}: envs.<id>.linear"},
        "envs": results}, indent=1) + "\n")
    print(f"\n{seconds:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
