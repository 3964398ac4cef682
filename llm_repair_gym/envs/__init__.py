"""The environments: LLMRepair (single and native vector)."""

from llm_repair_gym.envs.repair import LLMRepairEnv, LLMRepairVectorEnv

__all__ = ["LLMRepairEnv", "LLMRepairVectorEnv"]
