"""Named types of what the envs' ``reset`` and ``step`` return (in the spirit of SB3's ``VecEnvStepReturn``).

A vector env returns numpy arrays, or device tensors when made with ``output="torch"``.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import torch

Info: TypeAlias = dict[str, Any]
ResetReturn: TypeAlias = tuple[np.ndarray, Info]
"""``(observation, info)`` of a single env."""
StepReturn: TypeAlias = tuple[np.ndarray, float, bool, bool, Info]
"""``(observation, reward, terminated, truncated, info)`` of a single env."""
Batch: TypeAlias = np.ndarray | torch.Tensor
VectorResetReturn: TypeAlias = tuple[Batch, Info]
"""``(observations [N, F], info)`` of a vector env."""
VectorStepReturn: TypeAlias = tuple[Batch, Batch, Batch, Batch, Info]
"""``(observations [N, F], rewards [N], terminated [N], truncated [N], info)`` of a vector env."""
