"""Numeric precision of the env's model work: ``"fp32"`` (the default), ``"tf32"`` and ``"bf16"``.

* ``fp32``: plain float32 everywhere; the precision every published figure of LLMRepair-v0 uses.
* ``tf32``: float32 storage, with CUDA matmuls on TensorFloat-32 tensor cores (CUDA only).
* ``bf16``: mixed precision: the forward and backward passes run under ``torch.autocast`` in bfloat16,
  while parameters, optimizer state and every reduction that decides a score stay float32 (the master
  weights). CPUs run it too, fast where they have bf16 matrix units.

The setting applies only inside the env's own calls (:func:`precision_context`); the process-wide TF32
flag is restored afterwards, so an agent training beside the env keeps its own settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")


def precision_context(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of context managers that run the env's model work at ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "tf32" and device.type != "cuda":
        raise ValueError(f"precision='tf32' needs a CUDA device, got device={str(device)!r}; use 'fp32' or 'bf16'")

    @contextlib.contextmanager
    def run() -> Iterator[None]:
        if precision == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        elif precision == "tf32":
            before = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32 = before
        else:
            yield

    return run
