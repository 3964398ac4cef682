"""What a caller passes to LLMRepair-v0, checked on the host before anything changes.

Each check raises ``ValueError`` (``RuntimeError`` for a closed env) naming what is allowed, and returns the
value in the form the env uses: the constructor's settings, episode seeds, the reset options, bank instance ids
and actions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from llm_repair_gym.envs.trace import RENDERERS
from llm_repair_gym.repair.instances import INSTANCE_MODES, InstanceBank

AUTORESET_MODES = (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)
OUTPUTS = ("numpy", "torch")


def check_open(env: VectorEnv) -> None:
    """``RuntimeError`` when ``env`` is closed (every call but ``close`` raises then)."""
    if env.closed:
        raise RuntimeError("this env is closed: make a new one")


def check_settings(num_envs: int, max_episode_steps: int, cost_weight: float, crash_penalty: float,
                   cost_limit: float | None, autoreset_mode: AutoresetMode | str, instances: str, output: str,
                   chunk_envs: int, render_mode: str | None) -> AutoresetMode:
    """Check the constructor's settings that need no zoo, preset or device; the autoreset mode as an enum."""
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
    for name, value in (("cost_weight", cost_weight), ("crash_penalty", crash_penalty)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    if cost_limit is not None and not (np.isfinite(cost_limit) and cost_limit >= 0):
        raise ValueError(f"cost_limit must be None or finite and >= 0, got {cost_limit!r}")
    autoreset_mode = AutoresetMode(autoreset_mode)
    if autoreset_mode not in AUTORESET_MODES:
        raise ValueError(f"autoreset_mode must be one of {[m.value for m in AUTORESET_MODES]}")
    if instances not in INSTANCE_MODES:
        raise ValueError(f"instances must be one of {INSTANCE_MODES}, got {instances!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if not isinstance(chunk_envs, int) or chunk_envs < 1:
        raise ValueError(f"chunk_envs must be a positive int, got {chunk_envs!r}")
    if render_mode is not None and render_mode not in RENDERERS:
        raise ValueError(f"render_mode must be None or one of {list(RENDERERS)}, got {render_mode!r}")
    return autoreset_mode


def check_seeds(seed: Any, num_envs: int) -> np.ndarray | None:
    """Every env's episode seed (``None``: drawn from the env's generator) from ``reset(seed=...)``."""
    allowed = f"None, an int in [0, 2**63 - {num_envs}] or {num_envs} such ints"
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if not 0 <= int(seed) <= 2**63 - num_envs:
            raise ValueError(f"seed must be {allowed}, got {seed!r}")
        return np.arange(num_envs, dtype=np.int64) + int(seed)
    seeds = np.asarray(seed)
    if seeds.shape != (num_envs,) or not np.issubdtype(seeds.dtype, np.integer) or (seeds < 0).any():
        raise ValueError(f"seed must be {allowed}, got {seed!r}")
    return seeds.astype(np.int64)


def check_reset_mask(options: dict[str, Any], num_envs: int, started: bool) -> np.ndarray:
    """The envs to reset (bool ``[num_envs]``) from ``reset``'s ``options``, whose keys are checked too."""
    unknown = set(options) - {"reset_mask", "instance"}
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; expected 'reset_mask' and/or 'instance'")
    mask = np.ones(num_envs, dtype=bool)
    if "reset_mask" in options:
        mask = np.asarray(options["reset_mask"])
        if mask.shape != (num_envs,) or mask.dtype != np.bool_:
            raise ValueError(f"reset_mask must be a bool array of shape ({num_envs},)")
        if not started and not mask.all():
            raise ValueError("the first reset must reset every env (no reset_mask)")
    return mask


def check_instances(instance: Any, mask: np.ndarray, bank: InstanceBank | None) -> np.ndarray | None:
    """The bank instances (int64) the reset envs of ``mask`` start from, from ``options["instance"]``."""
    if instance is None:
        return None
    if bank is None:
        raise ValueError("options['instance'] needs an instance bank: make the env with instances='train' or "
                         "'test' (it was made with instances='live')")
    num_envs = mask.shape[0]
    ids = np.broadcast_to(np.asarray(instance), (num_envs,)) if np.ndim(instance) == 0 else np.asarray(instance)
    if ids.shape != (num_envs,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"options['instance'] must be an int or {num_envs} ints, got {instance!r}")
    chosen = ids[mask]
    if (chosen < 0).any() or (chosen >= bank.size).any():
        raise ValueError(f"instances must lie in [0, {bank.size}) for the {bank.split} bank, "
                         f"got {chosen.tolist()}")
    return chosen.astype(np.int64)


def check_actions(actions: Any, num_envs: int, num_actions: int) -> np.ndarray:
    """One action index per env (int64) from ``step``'s ``actions`` (a sequence, array or tensor)."""
    if isinstance(actions, torch.Tensor):
        actions = actions.detach().cpu().numpy()
    a = np.asarray(actions)
    if a.shape != (num_envs,) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"actions must be {num_envs} integers, got {actions!r}")
    if (a < 0).any() or (a >= num_actions).any():
        raise ValueError(f"actions must lie in [0, {num_actions}), got {a.tolist()}")
    return a.astype(np.int64)
