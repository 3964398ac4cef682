"""The environments: LLMRepair (single and native vector) and LLMMetaRepair, its meta-task variant."""

from llm_repair_gym.envs.meta_repair import LLMMetaRepairEnv, LLMMetaRepairVectorEnv
from llm_repair_gym.envs.repair import LLMRepairEnv, LLMRepairVectorEnv

__all__ = ["LLMMetaRepairEnv", "LLMMetaRepairVectorEnv", "LLMRepairEnv", "LLMRepairVectorEnv"]
