"""The environments: LLMRepair (single and native vector) and LLMMetaRepair, its meta-task variant, with what
belongs to them: saved states, suites of instances, traces, wrappers and a vector-env checker."""

from llm_repair_gym.envs.checker import check_vector_env
from llm_repair_gym.envs.meta_repair import LLMMetaRepairEnv, LLMMetaRepairVectorEnv
from llm_repair_gym.envs.registration import ENVS, register_envs
from llm_repair_gym.envs.repair import LLMRepairEnv, LLMRepairVectorEnv
from llm_repair_gym.envs.snapshot import EnvState
from llm_repair_gym.envs.types import ResetReturn, StepReturn, VectorResetReturn, VectorStepReturn

__all__ = ["ENVS", "EnvState", "LLMMetaRepairEnv", "LLMMetaRepairVectorEnv", "LLMRepairEnv", "LLMRepairVectorEnv",
           "ResetReturn", "StepReturn", "VectorResetReturn", "VectorStepReturn", "check_vector_env",
           "register_envs"]
