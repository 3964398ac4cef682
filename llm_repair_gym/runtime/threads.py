"""torch's CPU threads in worker processes: no hang after ``fork``, no oversubscription under ``spawn``.

Two traps meet an env that runs in a multiprocessing worker:

* **fork** (Gymnasium's ``AsyncVectorEnv`` default on Linux). A parent that has run a parallel torch op
  has started libgomp's OpenMP thread pool. A forked child inherits the pool's bookkeeping but not its
  threads, and its first parallel op waits for them forever (seen with LLMRepair-v0: both workers stuck
  in an index kernel for minutes). :func:`install_fork_handler` (run on import of the package) makes a
  forked child use one torch thread, so torch never enters an OpenMP parallel region there.
* **spawn / forkserver** (SB3's ``SubprocVecEnv`` default). Each fresh worker starts one torch thread per
  core, so W workers on C cores run W x C threads; on the 2-core machine two busy processes then ran a
  step 40-70x slower. :func:`configure_threads` (called by the env's constructor) gives a worker process
  one thread unless told otherwise.

The main process is left alone: there torch keeps its default (one thread per core) or what the user set.
A worker that should use more threads (one benchmark configuration per fresh process, say) passes
``num_threads``. Raising the threads of a forked child by hand brings the libgomp hang back.
"""

from __future__ import annotations

import multiprocessing
import os

import torch

_installed = False


def _one_thread_after_fork() -> None:
    torch.set_num_threads(1)


def install_fork_handler() -> None:
    """Make every process forked from this one run torch on one thread (idempotent)."""
    global _installed
    if not _installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_one_thread_after_fork)
        _installed = True


def configure_threads(num_threads: int | None) -> None:
    """Set torch's CPU threads for an env: ``num_threads`` when given, else one in a multiprocessing worker
    (spawn, forkserver or fork), else leave the process as it is."""
    if num_threads is not None:
        if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
            raise ValueError(f"num_threads must be None or a positive int, got {num_threads!r}")
        torch.set_num_threads(num_threads)
    elif multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)
