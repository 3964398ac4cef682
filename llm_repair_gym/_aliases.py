"""The import paths of 0.7.0's flat layout, kept working until 0.8 with a ``DeprecationWarning``.

``import llm_repair_gym.zoo`` (and ``from llm_repair_gym.zoo import load_zoo``, ``from llm_repair_gym import zoo``)
gives a stand-in module whose names are those of the module at its new place, :mod:`llm_repair_gym.lm.zoo`
(the same objects, so classes are shared and ``isinstance`` checks hold across the old and new names), plus
the names that moved on to a third module in the same change (:data:`MOVED_NAMES`: ``llm_repair_gym.model``
still has ``export_hf``, now in :mod:`llm_repair_gym.lm.hf`). Assigning to the stand-in does not patch the
real module: patch the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

REMOVED_IN = "0.8"
MOVED = {
    "threads": "runtime.threads", "allocator": "runtime.allocator", "precision": "runtime.precision",
    "cache": "runtime.cache",
    "model": "lm.model", "optim": "lm.optim", "training": "lm.training", "tasks": "lm.tasks",
    "metrics": "lm.metrics", "presets": "lm.presets", "zoo": "lm.zoo",
    "maml": "meta.maml", "sinusoid": "meta.sinusoid", "meta_tasks": "meta.tasks", "meta_init": "meta.initialization",
    "state": "repair.state", "rng": "repair.rng", "dynamics": "repair.dynamics", "faults": "repair.faults",
    "actions": "repair.actions", "features": "repair.features", "instances": "repair.instances",
    "env_state": "envs.snapshot", "vector_info": "envs.vector_info", "trace": "envs.trace",
    "wrappers": "envs.wrappers", "checks": "envs.checker", "suites": "envs.suites",
    "sb3": "integrations.sb3",
    "evaluation": "rl.episodes", "training_log": "rl.training_log",
    "results": "bench.results", "runner": "bench.runner", "verify": "bench.verify", "explain": "bench.explain",
    "leaderboard": "bench.leaderboard",
    "micro": "testing",
}
"""Old module (under ``llm_repair_gym.``) -> its new place (under ``llm_repair_gym.``)."""

MOVED_NAMES = {
    "model": {name: "lm.hf" for name in ("hf_config", "to_hf", "config_from_hf", "from_hf", "export_hf")},
    "dynamics": {"Context": "repair.dynamics:RepairContext"},
    "evaluation": {"HELD_OUT_BASE": "envs.suites"},
    "runner": {"AgentSpec": "rl.agent_spec", "agents_for": "bench.registry",
               "AGENTS": "bench.registry:registered_agents()"},
    "leaderboard": {"THRESHOLDS": "bench.plots", "agent_colors": "bench.plots", "METRICS": "bench.scores",
                    "RUN_MEAN": "bench.scores", "COLUMNS": "bench.scores", "entry_bounds": "bench.scores",
                    "run_mean_interval": "bench.scores", "MIN_GAP": "bench.scores"},
}
"""Old module -> {name: where it lives now}: ``"room.module"`` (same name), ``"room.module:new_name"``, or
``"room.module:function()"`` for a table that is now computed (the runner's agents come from entry points).
Gone without a stand-in: ``dynamics.is_nonfinite`` (it had no caller) and ``suites.main`` (now
``llm-repair-gym suite``)."""


class _OldModule(types.ModuleType):
    """A 0.7.0 module path: the names of the module at its new place, and of :data:`MOVED_NAMES`."""

    def __init__(self, name: str, target: str) -> None:
        super().__init__(name, f"Moved to {target} (this path stops working in {REMOVED_IN}).")
        self._target = target
        self._moved = MOVED_NAMES.get(name.rpartition(".")[2], {})

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr in self._moved:
            where, _, new_name = self._moved[attr].partition(":")
            value = getattr(importlib.import_module(f"llm_repair_gym.{where}"), new_name.rstrip("()") or attr)
            return value() if new_name.endswith("()") else value
        return getattr(importlib.import_module(self._target), attr)

    def __dir__(self) -> list[str]:
        return sorted({*dir(importlib.import_module(self._target)), *self._moved})


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``llm_repair_gym.<old>`` and loads it as an :class:`_OldModule` onto the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, leaf = fullname.rpartition(".")
        if package != "llm_repair_gym" or leaf not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        target = f"llm_repair_gym.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {target}; the old path stops working in {REMOVED_IN}",
                      DeprecationWarning, stacklevel=_caller_level())
        importlib.import_module(target)
        return _OldModule(spec.name, target)

    def exec_module(self, module) -> None:
        """Nothing to run: the stand-in looks its names up when they are read."""


def _caller_level() -> int:
    """The ``stacklevel`` that makes the warning name the importing line: ``warnings`` skips the import system's
    own frames when it counts; the frames of this module and of ``importlib.import_module`` are counted here."""
    frame, level = sys._getframe(2), 1  # frame 2: the caller of create_module
    while frame is not None:
        name = frame.f_code.co_filename
        if "importlib" in name and "_bootstrap" in name:
            frame = frame.f_back
            continue
        level += 1
        if name != __file__ and name != importlib.__file__:
            break
        frame = frame.f_back
    return level


def install() -> None:
    """Put the alias finder first on ``sys.meta_path`` (once), so that an old path never finds a stale file."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
