"""Keep freed memory in the process on glibc, so that large CPU tensors do not page-fault on every step.

torch's CPU allocator hands every tensor to ``malloc``. glibc serves blocks above its mmap threshold (at
most 32 MiB by default) with fresh ``mmap`` pages and returns them on ``free``, so every step of a vector
env, whose activations and optimizer tensors are tens of MiB at N = 64, faults its pages in again: on the
2-core machine an out-of-place add of 50 MiB took 13 ms instead of 3 ms, and a ``train_all`` step of 64
envs 3.3 s instead of 2.7 s. Raising the mmap and trim thresholds keeps freed blocks for reuse. The cost
is that the process keeps its peak heap (what PyTorch's CUDA caching allocator does on a GPU).

:func:`keep_freed_memory` is called by the envs when they run on the CPU; set
``LLM_REPAIR_GYM_MALLOC_TUNING=0`` to leave malloc as it is. It does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

OPT_OUT_VAR = "LLM_REPAIR_GYM_MALLOC_TUNING"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_KEEP_BYTES = 2**31 - 1  # blocks up to 2 GiB come from (and return to) the heap


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when malloc now keeps freed memory."""
    if os.environ.get(OPT_OUT_VAR, "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: other C libraries lack it)
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
