"""The import paths of 0.7.0's flat layout, kept working until 0.8 with a ``DeprecationWarning``.

``import llm_repair_gym.zoo`` (and ``from llm_repair_gym.zoo import load_zoo``, ``from llm_repair_gym import zoo``)
gives the module at its new place, :mod:`llm_repair_gym.lm.zoo`: the same module object, so state and classes
are shared and ``isinstance`` checks hold across the old and new names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
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


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``llm_repair_gym.<old>`` and loads it as the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, leaf = fullname.rpartition(".")
        if package != "llm_repair_gym" or leaf not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        target = f"llm_repair_gym.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {target}; the old path stops working in {REMOVED_IN}",
                      DeprecationWarning, stacklevel=_caller_level())
        module = importlib.import_module(target)
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module) -> None:
        """Nothing to run; the import system has just set the module's ``__spec__`` to the alias's: restore it."""
        module.__spec__ = module.__spec__.loader_state


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
