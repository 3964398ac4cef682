"""Reference policies for LLMRepair: no-op, random, and a privileged oracle.

``NoOpPolicy`` stops at once (the return of leaving the model as it is). ``RandomPolicy`` picks actions
uniformly. ``OraclePolicy`` reads ``info["fault"]`` (hidden from the observation) and applies the repair
the fault table names: lower a misconfigured lr; for a noisy pool, filter it before any training, lower
the lr one level at once (at the default lr even a healthy model drifts off some answers) and filter again
after ``refilter_after`` training actions (the retrained model's copy judges better); and train the one
family that is broken (or all, when several are), one lr level lower once every family is within
``settle_gap`` of healthy. It stops when every family is back within ``tolerance`` of its healthy
accuracy, or rolls back and stops when ``patience`` training steps in a row did not raise the score.
All take the batched observation and info of a vector env and return one action per env.

On LLMRepair-v1, ``DocumentedRepairPolicy`` is the privileged reference (``LLMRepair-Suite-v1``'s "1"): it
reads the episode's fault set, targets and severities from ``info`` at its first step and plays the set's
documented repair (:func:`llm_repair_gym.repair.faults_v1.documented_repair`), cut by the episode's budget
like any sequence.
"""

from __future__ import annotations

import numpy as np

from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.faults_v1 import FAULT_NAMES_V1, documented_repair


class NoOpPolicy:
    """Always ``stop``."""

    def __init__(self, action_names: list[str]) -> None:
        self.stop = action_names.index("stop")

    def reset(self, env_mask: np.ndarray) -> None:
        """Nothing to forget."""

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return np.full(len(obs), self.stop, dtype=np.int64)


class RandomPolicy:
    """Uniformly random actions from a seeded numpy generator."""

    def __init__(self, action_names: list[str], seed: int = 0) -> None:
        self.n_actions = len(action_names)
        self.rng = np.random.default_rng(seed)

    def reset(self, env_mask: np.ndarray) -> None:
        """Nothing to forget."""

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return self.rng.integers(self.n_actions, size=len(obs))


class OraclePolicy:
    """The scripted repair for each fault type, with privileged access to ``info["fault"]``."""

    DEFAULT_LOG10_LR = -3.0  # lr level 0 of the env's default dynamics
    LR_STEP = 0.5  # one lr_down, in log10

    def __init__(self, action_names: list[str], feature_names: list[str], tolerance: float = 0.02,
                 patience: int = 6, n_filters: int = 2, refilter_after: int = 8, settle_gap: float = 0.1) -> None:
        self.index = {name: i for i, name in enumerate(action_names)}
        self.lr_feature = feature_names.index("log10_lr")
        self.tolerance, self.patience = tolerance, patience
        self.n_filters, self.refilter_after, self.settle_gap = n_filters, refilter_after, settle_gap
        self.best: np.ndarray | None = None
        self.stale: np.ndarray | None = None
        self.filters: np.ndarray | None = None
        self.trainings: np.ndarray | None = None
        self.trained: np.ndarray | None = None

    def reset(self, env_mask: np.ndarray) -> None:
        if self.best is None or len(self.best) != len(env_mask):
            n = len(env_mask)
            self.best = np.full(n, -np.inf)
            self.stale, self.filters, self.trainings = (np.zeros(n, dtype=int) for _ in range(3))
            self.trained = np.zeros(n, dtype=bool)
        self.best[env_mask], self.stale[env_mask], self.filters[env_mask] = -np.inf, 0, 0
        self.trainings[env_mask], self.trained[env_mask] = 0, False

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        actions = np.empty(len(obs), dtype=np.int64)
        for i in range(len(obs)):
            actions[i] = self.index[self._choose(i, obs[i], info)]
        return actions

    def _choose(self, i: int, obs: np.ndarray, info: dict) -> str:
        fault = str(info["fault"]["type"][i])
        score = float(info["score"][i])
        if self.trained[i]:  # patience counts training steps that did not raise the score
            self.stale[i] = 0 if score > self.best[i] + 1e-9 else self.stale[i] + 1
        self.best[i] = max(self.best[i], score)
        healthy = np.array([info["healthy_accuracy"][f][i] for f in FAMILIES])
        deficit = healthy - np.array([info["accuracy"][f][i] for f in FAMILIES])
        repaired = bool((deficit <= self.tolerance).all())
        self.trained[i] = False
        if fault == "none" or repaired or self.stale[i] > self.patience:
            return "rollback" if score < self.best[i] - 1e-9 and not repaired else "stop"
        log_lr = obs[self.lr_feature]
        if fault == "bad_hparams" and log_lr > self.DEFAULT_LOG10_LR + 1e-3:
            return "lr_down"
        if fault == "label_noise":
            due = self.trainings[i] >= self.refilter_after * self.filters[i]
            if self.filters[i] < self.n_filters and due:
                self.filters[i] += 1
                return "filter_noisy"
        gentle = fault == "label_noise" or deficit.max() <= self.settle_gap
        if gentle and log_lr > self.DEFAULT_LOG10_LR - self.LR_STEP + 1e-3:
            return "lr_down"
        self.trained[i] = True
        self.trainings[i] += 1
        worst = int(np.argmax(deficit))
        others = np.delete(deficit, worst)
        return f"train_{FAMILIES[worst]}" if others.max() <= self.tolerance else "train_all"


def documented_plan(info: dict, i: int) -> list[str]:
    """LLMRepair-v1: the documented repair of env ``i``'s fault set, targets and severities, read from ``info``."""
    return documented_repair([bool(info["faults"][n][i]) for n in FAULT_NAMES_V1],
                             [int(info["fault_targets"][n][i]) for n in FAULT_NAMES_V1],
                             [float(info["fault_severities"][n][i]) for n in FAULT_NAMES_V1])


class OpenLoopPolicy:
    """Plays, in each env, a list of action names made at the episode's first step from that step's ``info``
    (:meth:`make_plan`), then repeats its last action (``stop``, or whatever the budget cuts)."""

    def __init__(self, action_names: list[str]) -> None:
        self.index = {name: i for i, name in enumerate(action_names)}
        self.plans: list[list[str] | None] = []
        self.position: list[int] = []

    def make_plan(self, info: dict, i: int) -> list[str]:
        raise NotImplementedError

    def reset(self, env_mask: np.ndarray) -> None:
        if len(self.plans) != len(env_mask):
            self.plans, self.position = [None] * len(env_mask), [0] * len(env_mask)
        for i in np.flatnonzero(env_mask):
            self.plans[i], self.position[i] = None, 0

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        out = np.empty(len(obs), dtype=np.int64)
        for i in range(len(obs)):
            if self.plans[i] is None:  # the episode's first step: what the plan needs is in this info
                self.plans[i] = self.make_plan(info, i)
            plan = self.plans[i]
            out[i] = self.index[plan[min(self.position[i], len(plan) - 1)]]
            self.position[i] += 1
        return out


class DocumentedRepairPolicy(OpenLoopPolicy):
    """LLMRepair-v1: the documented repair of each episode's fault set, read from ``info`` (privileged)."""

    def make_plan(self, info: dict, i: int) -> list[str]:
        return documented_plan(info, i)
