"""A decision-theoretic troubleshooter for LLMRepair-v1: beliefs from the train split, repairs in order of
expected benefit over cost, probes where the information is worth its price. Observation only.

Classic troubleshooting under uncertainty (Heckerman, Breese & Rommelse, 1995, "Decision-theoretic
troubleshooting") keeps a belief over what is wrong, tries repairs in order of probability of success over
cost, and observes first where the expected value of the information exceeds its price. Here:

* **Beliefs.** For each repair of the documented table (:data:`REPAIRS`: the actions a documented repair
  holds besides training), the probability that this episode's documented repair holds it: a logistic
  regression on the diagnostic features of the observation at reset plus the probes measured so far. The
  intercept carries the train split's prior. Each train entry ran every probe once; every subset of probes
  is synthesized from that (a probe changes nothing but its own slots), so one model reads any subset.
* **Value of a repair** ``a`` with belief ``P`` at price ``p``: ``EV = P G - (1 - P) H - p u``, where ``G`` is
  the objective gained by doing ``a`` (then training as long as pays) on train entries whose documented
  repair holds it, ``H`` the objective lost on entries whose repair does not, both measured with the
  planner's rollouts (:class:`agents.planner.EntryRollouts`), and ``u`` its compute in ``train_all`` units.
* **Value of a probe.** The expected value of perfect information of each repair decision,
  ``P max(0, G - p u) + (1 - P) max(0, -H - p u) - max(0, EV)``, times the share of that decision's
  uncertainty (its cross-entropy on the train split) the probe's features remove; a probe runs when the sum
  exceeds its price (myopic, largest net value first).

Play (:class:`TroubleshooterPolicy`): probes while one pays; then every repair with ``EV > 0``, in order of
``P G / (p u + (1 - P) H)`` (``lr_down`` once per half-decade of the optimizer probe's trial update, once
without it); then :class:`~agents.rules_v1.RulesV1Policy`'s training phase (train while the validation score
rises by more than the price, then ``stop``). Beliefs are formed on the model as it was at reset, before any
repair changes what the observation shows.

Fitted by :func:`fit_troubleshooter` (``python scripts/fit_troubleshooter.py``) on ``LLMRepair-Suite-v1``'s
train split only and carried in ``agents/checkpoints/LLMRepair-v1/troubleshooter``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Generator
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from agents.planner import EntryRollouts, documented_prefix
from agents.rules_v1 import RulesV1Policy
from llm_repair_gym._version import __version__
from llm_repair_gym.envs.suites import load_suite

REPAIRS = ("reset_optimizer", "lr_down", "reset_norms", "reinit_block0", "reinit_block1", "filter_noisy",
           "refresh_data")
"""The repairs a documented v1 repair holds besides training (``lr_down``: its first)."""
FREE_PREFIXES = ("val_acc/", "val_loss/", "train_loss/", "log_weight_rms/", "sparsity", "diverged")
"""The free features beliefs read (the rest are settings, prices and counters, the same at every reset)."""
FIT_SEED = 9_000_000
"""Episode seeds of the fit's train-split resets (apart from evaluation seeds)."""
L2 = 1.0  # ridge penalty of the logistic regressions (on standardized features)
MODEL_FILE = "model.json"
CARRIED = Path(__file__).resolve().parent / "checkpoints" / "LLMRepair-v1" / "troubleshooter"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 25) -> np.ndarray:
    """Ridge logistic regression by Newton's method: weights ``[bias, *w]`` for standardized ``x``."""
    design = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = _sigmoid(design @ w)
        gradient = design.T @ (p - y) + penalty * w
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


class Beliefs:
    """The fitted belief model: ``probabilities(row)`` of every repair in :data:`REPAIRS` being due."""

    def __init__(self, model: dict, feature_names: list[str]) -> None:
        index = {name: i for i, name in enumerate(feature_names)}
        missing = [n for n in model["features"] if n not in index]
        if missing:
            raise ValueError(f"the troubleshooter reads features this env lacks: {missing[:5]}")
        self.columns = np.array([index[n] for n in model["features"]])
        self.mean, self.std = np.array(model["mean"]), np.array(model["std"])
        self.weights = np.array([model["weights"][a] for a in REPAIRS])

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = (x[self.columns] - self.mean) / self.std
        return _sigmoid(self.weights[:, 0] + self.weights[:, 1:] @ z)


def _belief_features(feature_names: list[str], probes: list[str], probe_features: dict[str, list[str]]) -> list[str]:
    free = [n for n in feature_names if n.startswith(FREE_PREFIXES)]
    return [*free, *(f for p in probes for f in probe_features[p]), *(f"measured/{p}" for p in probes)]


def _with_probes(reset_row: np.ndarray, probed_row: np.ndarray, subset: tuple[str, ...], probes: list[str],
                 probe_features: dict[str, list[str]], index: dict[str, int]) -> np.ndarray:
    """The observation at reset with the probes of ``subset`` measured (their values from ``probed_row``)."""
    row = reset_row.copy()
    for p in subset:
        for f in [*probe_features[p], f"measured/{p}"]:
            row[index[f]] = probed_row[index[f]]
    return row


def fit_troubleshooter(suite_name: str = "LLMRepair-Suite-v1", repair_entries: int = 96,
                       progress: bool = True) -> dict:
    """Fit the model on the suite's train split: beliefs on every train entry, repair values on the first
    ``repair_entries`` (rollouts of each repair, and of none, from their reset states)."""
    suite = load_suite(suite_name)
    entries = suite.entries("train")
    env = gym.make_vec(suite.env_id, num_envs=len(entries), autoreset_mode="Disabled", progress=False,
                       **suite.make_kwargs("train")).unwrapped
    try:
        names = list(env.feature_names)
        index = {n: i for i, n in enumerate(names)}
        probes = [p.name for p in env.probes]
        probe_features = {p.name: [f.name for f in p.features] for p in env.probes}
        units = {a.name: a.flops / env.flops_ref for a in env.actions}
        action_names = list(env.action_names)
        obs, info = env.reset(seed=[FIT_SEED + e.instance for e in entries],
                              options={"instance": np.array([e.instance for e in entries])})
        reset_obs = obs.copy()
        labels = np.zeros((len(entries), len(REPAIRS)))
        for i in range(len(entries)):
            prefix = documented_prefix(info, i)
            labels[i] = [a in prefix for a in REPAIRS]
        for p in tqdm(probes, desc="probes on the train split", disable=not progress):
            obs, *_ = env.step(np.full(len(entries), env.action_names.index(p)))
    finally:
        env.close()
    features = _belief_features(names, probes, probe_features)
    columns = [index[f] for f in features]
    subsets = [s for r in range(len(probes) + 1) for s in itertools.combinations(probes, r)]
    rows = {s: np.stack([_with_probes(reset_obs[i], obs[i], s, probes, probe_features, index)[columns]
                         for i in range(len(entries))]) for s in subsets}
    x = np.concatenate(list(rows.values()))
    mean, std = x.mean(0), x.std(0) + 1e-6
    y = np.tile(labels, (len(subsets), 1))
    weights = {a: fit_logistic((x - mean) / std, y[:, j]) for j, a in enumerate(REPAIRS)}
    information = _information(rows, labels, weights, mean, std, probes)
    values = _repair_values(suite_name, repair_entries, progress)
    return {"format": 1, "package_version": __version__, "suite": suite.name, "split": "train",
            "entries": len(entries), "repair_entries": values.pop("entries"), "features": features,
            "mean": mean.tolist(), "std": std.tolist(), "weights": {a: w.tolist() for a, w in weights.items()},
            "prior": dict(zip(REPAIRS, labels.mean(0).tolist())), "information": information,
            "gain": values["gain"], "harm": values["harm"], "units": {a: units[a] for a in (*REPAIRS, *probes)},
            "probes": probes, "probe_features": probe_features, "action_names": action_names,
            "feature_names": names}


def _information(rows: dict, labels: np.ndarray, weights: dict, mean: np.ndarray, std: np.ndarray,
                 probes: list[str]) -> dict[str, dict[str, float]]:
    """Per probe and repair: the share of the decision's cross-entropy (no probe) that the probe alone removes."""
    def entropy(x: np.ndarray, j: int, a: str) -> float:
        p = _sigmoid(weights[a][0] + ((x - mean) / std) @ np.array(weights[a][1:]))
        y = labels[:, j]
        return float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))

    out = {}
    for probe in probes:
        out[probe] = {}
        for j, a in enumerate(REPAIRS):
            before, after = entropy(rows[()], j, a), entropy(rows[(probe,)], j, a)
            out[probe][a] = float(np.clip((before - after) / max(before, 1e-9), 0.0, 1.0))
    return out


def _repair_values(suite_name: str, limit: int, progress: bool) -> dict:
    """``gain`` and ``harm`` of every repair (see the module docstring), from rollouts on train entries."""
    search = EntryRollouts(suite_name, "train", limit)
    jobs = [(row, prefix) for row in range(len(search.entries)) for prefix in [(), *((a,) for a in REPAIRS)]]
    results = dict(zip(jobs, search.rollouts(jobs, progress=progress)))
    gain, harm = {}, {}
    for a in REPAIRS:
        delta = np.array([search.value(results[(row, (a,))], 1) - search.value(results[(row, ())], 0)
                          for row in range(len(search.entries))])
        due = np.array([a in search.documented[row] for row in range(len(search.entries))])
        gain[a] = float(delta[due].mean()) if due.any() else 0.0
        harm[a] = float(-delta[~due].mean()) if (~due).any() else 0.0
    return {"gain": gain, "harm": harm, "entries": len(search.entries)}


def save_model(model: dict, folder: str | Path) -> Path:
    """Write the model and a ``policy.json`` naming it (what :func:`agents.load_policy` reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_text(json.dumps(model, indent=1) + "\n")
    meta = {"kind": "troubleshooter", "env_id": "LLMRepair-v1", "package_version": model["package_version"],
            "suite": model["suite"], "split": model["split"], "feature_names": model["features"]}
    (folder / "policy.json").write_text(json.dumps(meta, indent=1) + "\n")
    return folder


class TroubleshooterPolicy(RulesV1Policy):
    """The troubleshooter above (observation only), one script per env of a vector env."""

    def __init__(self, action_names: list[str], feature_names: list[str], model: dict) -> None:
        super().__init__(action_names, feature_names)
        self.model = model
        self.beliefs = Beliefs(model, feature_names)
        self.gain = np.array([model["gain"][a] for a in REPAIRS])
        self.harm = np.array([model["harm"][a] for a in REPAIRS])
        self.repair_units = np.array([model["units"][a] for a in REPAIRS])
        self.probe_names = list(model["probes"])
        self.information = np.array([[model["information"][p][a] for a in REPAIRS] for p in self.probe_names])
        self.probe_units = np.array([model["units"][p] for p in self.probe_names])

    def decide(self, beliefs_row: np.ndarray, price: float, done_probes: set[str]) -> tuple[str | None, list[str]]:
        """The next probe worth its price (or None), and the repairs worth doing in order (for one belief row)."""
        p = self.beliefs.probabilities(beliefs_row)
        cost = price * self.repair_units
        value = p * self.gain - (1 - p) * self.harm - cost
        perfect = p * np.maximum(0, self.gain - cost) + (1 - p) * np.maximum(0, -self.harm - cost)
        evpi = perfect - np.maximum(0, value)
        net = self.information @ evpi - price * self.probe_units
        open_ = [k for k, name in enumerate(self.probe_names) if name not in done_probes and net[k] > 0]
        probe = self.probe_names[max(open_, key=lambda k: net[k])] if open_ else None
        worth = np.flatnonzero(value > 0)
        ratio = p * self.gain / (cost + (1 - p) * np.maximum(self.harm, 0) + 1e-9)
        return probe, [REPAIRS[k] for k in sorted(worth, key=lambda k: -ratio[k])]

    def _script(self) -> Generator[str, np.ndarray, None]:
        row = yield ""
        beliefs_row, price, done = row.copy(), self._price(row), set()
        while True:
            probe, repairs = self.decide(beliefs_row, price, done)
            if probe is None:
                break
            row = yield probe
            done.add(probe)
            for name in [*self.model["probe_features"][probe], f"measured/{probe}"]:
                beliefs_row[self.feature[name]] = row[self.feature[name]]
        for repair in repairs:
            times = 1
            if repair == "lr_down" and "probe_optimizer" in done:
                hidden = max(self._get(beliefs_row, f"trial_update/{g}") for g in self.groups)
                times = max(1, int(round(hidden / self.LR_STEP)))
            for _ in range(times):
                row = yield repair
        yield from self._train(row)


def load_troubleshooter(folder: str | Path) -> TroubleshooterPolicy:
    """The troubleshooter of the model in ``folder`` (written by :func:`save_model`)."""
    folder = Path(folder)
    try:
        model = json.loads((folder / MODEL_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{folder} holds no readable troubleshooter model: {err}") from err
    return TroubleshooterPolicy(model["action_names"], model["feature_names"], model)


def main(argv: list[str] | None = None) -> Path:
    """``python scripts/fit_troubleshooter.py``: fit on the suite's train split and write the carried model."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="LLMRepair-Suite-v1")
    parser.add_argument("--repair-entries", type=int, default=96, help="train entries the repair values roll out")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out-dir", default=str(CARRIED))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = fit_troubleshooter(args.suite, args.repair_entries)
    folder = save_model(model, args.out_dir)
    print(json.dumps({"prior": model["prior"], "gain": model["gain"], "harm": model["harm"]}, indent=1))
    return folder


if __name__ == "__main__":
    main()
