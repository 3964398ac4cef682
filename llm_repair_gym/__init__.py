"""llm-repair-gym: Gymnasium environments in which a small language model with something wrong with it is
the environment and the agent is its repair process.

Importing the package registers ``LLMRepair-v0`` and ``LLMMetaRepair-v0`` (``gym.make`` and ``gym.make_vec``)
and makes processes forked from this one run torch on one thread (see :mod:`llm_repair_gym.runtime.threads`).
In a process that has not imported the package (a ``spawn`` or ``forkserver`` worker), make the env as
``"llm_repair_gym:LLMRepair-v0"``.

The names below are the public API; the rooms of the package, lowest layer first, are
:mod:`~llm_repair_gym.runtime`, :mod:`~llm_repair_gym.lm`, :mod:`~llm_repair_gym.meta` and
:mod:`~llm_repair_gym.repair`, :mod:`~llm_repair_gym.envs`, :mod:`~llm_repair_gym.rl` and
:mod:`~llm_repair_gym.integrations`, then :mod:`~llm_repair_gym.bench` (``scripts/check_layers.py`` checks
that every import points down). The flat module paths of 0.7.0 (``llm_repair_gym.zoo``, ...) still import,
with a ``DeprecationWarning``, until 0.8 (:mod:`llm_repair_gym._aliases`).
"""

from llm_repair_gym import _aliases
from llm_repair_gym._version import __version__
from llm_repair_gym.bench.verify import verify_results
from llm_repair_gym.envs import (
    ENVS,
    EnvState,
    LLMMetaRepairEnv,
    LLMMetaRepairVectorEnv,
    LLMRepairEnv,
    LLMRepairVectorEnv,
    ResetReturn,
    StepReturn,
    VectorResetReturn,
    VectorStepReturn,
    check_vector_env,
    register_envs,
)
from llm_repair_gym.envs.suites import load_suite, suite_names
from llm_repair_gym.envs.wrappers import DiscretizeObservation
from llm_repair_gym.lm.hf import export_hf
from llm_repair_gym.lm.metrics import evaluate
from llm_repair_gym.lm.presets import PRESETS, get_preset
from llm_repair_gym.lm.tasks import FAMILIES, TaskSuite
from llm_repair_gym.lm.zoo import load_zoo
from llm_repair_gym.meta.maml import MAML, MAMLConfig
from llm_repair_gym.rl.episodes import EpisodeRecord, GreedyPolicy, VectorPolicy, run_episodes
from llm_repair_gym.runtime.threads import install_fork_handler

__all__ = [
    "ENVS", "FAMILIES", "MAML", "PRESETS", "DiscretizeObservation", "EnvState", "EpisodeRecord", "GreedyPolicy",
    "LLMMetaRepairEnv", "LLMMetaRepairVectorEnv", "LLMRepairEnv", "LLMRepairVectorEnv", "MAMLConfig", "ResetReturn",
    "StepReturn", "TaskSuite", "VectorPolicy", "VectorResetReturn", "VectorStepReturn", "__version__",
    "check_vector_env", "evaluate", "export_hf", "get_preset", "load_suite", "load_zoo", "run_episodes",
    "suite_names", "verify_results",
]

_aliases.install()
register_envs()
install_fork_handler()
