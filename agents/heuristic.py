"""An observation-only repair script: eight if-then rules, no learning, no privileged information.

``HeuristicPolicy`` reads only the observation (through the env's feature names) and a few counters of its
own (what it has done this episode), never ``info``. It is the bar a learned agent must clear: a learner
that cannot beat a short script has not learned what the env asks.

The rules, in order (a family is *fine* at validation accuracy >= ``FINE``):

1. a diverged model is rolled back;
2. every family fine before anything was done: ``stop`` (nothing is wrong);
3. a learning rate above the default: ``lr_down``;
4. one family broken while the model still fits its own training pool (low train loss, small gradients)
   looks like learned label noise: ``filter_noisy`` once first, ``lr_down`` once, and filter again after
   ``REFILTER_AFTER`` trainings;
5. every family fine after repairs: ``stop``;
6. ``PATIENCE`` trainings in a row without a better score: ``rollback`` (if the score fell) and ``stop``;
7. every family within ``SETTLE`` of fine: one ``lr_down`` to finish gently (training at the default lr
   costs even a healthy model a few examples);
8. otherwise train: the one broken family alone when it is the only one, else every family.
"""

from __future__ import annotations

import numpy as np

from llm_repair_gym.lm.tasks import FAMILIES


class HeuristicPolicy:
    """The rules above, for the batched observations of a vector env (one action per env)."""

    FINE = 0.97  # validation accuracy at which a family counts as repaired
    SETTLE = 0.1  # within this of FINE everywhere: lower the lr once
    DEFAULT_LOG10_LR = -3.0
    NOISY_TRAIN_LOSS = 0.75  # a broken family whose own pool loss stays below this fits noisy labels
    NOISY_GRAD = 0.45  # ... and whose block gradients (log10 norm) stay below this
    REFILTER_AFTER = 8
    PATIENCE = 6

    def __init__(self, action_names: list[str], feature_names: list[str]) -> None:
        self.index = {name: i for i, name in enumerate(action_names)}
        self.feature = {name: i for i, name in enumerate(feature_names)}
        self.blocks = [n for n in feature_names if n.startswith("log_grad_norm/block")]
        self.counters: dict[str, np.ndarray] = {}

    def reset(self, env_mask: np.ndarray) -> None:
        n = len(env_mask)
        if not self.counters or len(self.counters["steps"]) != n:
            self.counters = {k: np.zeros(n) for k in ("steps", "trainings", "filters", "settled", "stale",
                                                         "noisy", "lowered")}
            self.counters["best"] = np.full(n, -np.inf)
        for values in self.counters.values():
            values[env_mask] = -np.inf if values is self.counters["best"] else 0

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return np.array([self.index[self._choose(i, row)] for i, row in enumerate(obs)], dtype=np.int64)

    def _choose(self, i: int, row: np.ndarray) -> str:
        c = {k: v[i] for k, v in self.counters.items()}
        acc = np.array([row[self.feature[f"val_acc/{f}"]] for f in FAMILIES])
        score = acc.mean()
        first = c["steps"] == 0
        self.counters["steps"][i] += 1
        if self.counters["trainings"][i] > 0:
            self.counters["stale"][i] = 0 if score > c["best"] + 1e-9 else c["stale"] + 1
        self.counters["best"][i] = max(c["best"], score)
        broken = acc < self.FINE
        if row[self.feature["diverged"]] > 0.5:
            return "rollback"
        if first and not broken.any():
            return "stop"
        if row[self.feature["log10_lr"]] > self.DEFAULT_LOG10_LR + 1e-3:
            return "lr_down"
        if first:
            self.counters["noisy"][i] = self._looks_noisy(row, acc)
        if self.counters["noisy"][i]:
            if self.counters["filters"][i] == 0 or (
                    self.counters["filters"][i] == 1 and self.counters["trainings"][i] >= self.REFILTER_AFTER):
                self.counters["filters"][i] += 1
                return "filter_noisy"
            if not self.counters["lowered"][i]:
                self.counters["lowered"][i] = 1
                return "lr_down"
        if not broken.any():
            return "stop"
        if self.counters["stale"][i] > self.PATIENCE:
            return "rollback" if score < self.counters["best"][i] - 1e-9 else "stop"
        if (acc >= self.FINE - self.SETTLE).all() and not self.counters["lowered"][i]:
            self.counters["lowered"][i] = 1
            return "lr_down"
        self.counters["trainings"][i] += 1
        worst = int(np.argmin(acc))
        return f"train_{FAMILIES[worst]}" if broken.sum() == 1 else "train_all"

    def _looks_noisy(self, row: np.ndarray, acc: np.ndarray) -> bool:
        """One broken family, which the model still fits on its own (noisy) pool, with small gradients."""
        broken = np.flatnonzero(acc < self.FINE)
        if len(broken) != 1:
            return False
        family = FAMILIES[broken[0]]
        grads = max(row[self.feature[name]] for name in self.blocks)
        return row[self.feature[f"train_loss/{family}"]] < self.NOISY_TRAIN_LOSS and grads < self.NOISY_GRAD
