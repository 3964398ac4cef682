"""Verified on-disk caches of generated tensors (the model zoo, the instance banks).

An entry is a folder ``<cache root>/<name>/`` holding ``weights.safetensors`` and ``manifest.json``
(what built it, its config hash, package and torch versions, and the sha256 of the weights). Loading
hashes and parses the same bytes, checks the config hash and the checksum and lets the caller check
names and shapes; a missing, truncated, corrupt or mismatched entry is rebuilt with a warning, never
used. A file lock serialises builders, and a finished entry is moved into place with one atomic rename,
so concurrent processes never see half an entry. Tensors are only ever read through safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock
from safetensors.torch import load, save_file

from llm_repair_gym._version import __version__

WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
CACHE_ENV_VAR = "LLM_REPAIR_GYM_CACHE"

Tensors = dict[str, torch.Tensor]


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where caches live: ``cache_dir``, else ``$LLM_REPAIR_GYM_CACHE``, else the user cache directory."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("llm-repair-gym"))


def config_hash(config: dict) -> str:
    """Short hash of a JSON-serialisable description of everything that determines an entry's content."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def read_entry(path: Path, expected_hash: str) -> tuple[Tensors, dict]:
    """Tensors and manifest of a cached entry; ``ValueError`` with the reason when anything does not check out."""
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable manifest: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("config_hash") != expected_hash:
        found = manifest.get("config_hash") if isinstance(manifest, dict) else None
        raise ValueError(f"config hash {found} != expected {expected_hash}")
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise ValueError(f"{WEIGHTS_FILE} is missing")
    data = weights.read_bytes()  # hash and parse the same bytes; no mmap a later writer could pull away
    if hashlib.sha256(data).hexdigest() != manifest.get("files", {}).get(WEIGHTS_FILE):
        raise ValueError(f"{WEIGHTS_FILE} checksum does not match the manifest")
    try:
        return load(data), manifest
    except Exception as err:  # safetensors raises its own error types for malformed files
        raise ValueError(f"{WEIGHTS_FILE} is not a valid safetensors file: {err}") from err


def write_entry(path: Path, tensors: Tensors, manifest: dict) -> None:
    """Write an entry into a scratch folder beside ``path`` and rename it into place atomically."""
    scratch = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    save_file({k: t.detach().cpu().contiguous() for k, t in tensors.items()}, scratch / WEIGHTS_FILE)
    manifest = {**manifest, "package_version": __version__, "torch_version": torch.__version__,
                "files": {WEIGHTS_FILE: hashlib.sha256((scratch / WEIGHTS_FILE).read_bytes()).hexdigest()}}
    (scratch / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    if path.exists():
        shutil.rmtree(path)
    os.replace(scratch, path)


def load_or_build(path: Path, manifest: dict, build: Callable[[], tuple[Tensors, dict]],
                  check: Callable[[Tensors], None], what: str, rebuild: bool = False) -> tuple[Tensors, dict]:
    """The entry at ``path``: loaded when valid, else built by ``build()`` (tensors and extra manifest fields)
    and cached. ``manifest`` must hold ``config_hash``; ``check(tensors)`` raises ``ValueError`` when names
    or shapes are wrong. The manifest gets ``build_seconds``; ``rebuild=True`` builds even over a valid entry.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not rebuild and path.exists():
            try:
                tensors, found = read_entry(path, manifest["config_hash"])
                check(tensors)
                return tensors, found
            except ValueError as err:
                warnings.warn(f"{what} cache {path} is invalid ({err}); rebuilding it", stacklevel=3)
        start = time.perf_counter()
        tensors, extra = build()
        write_entry(path, tensors, {**manifest, **extra, "build_seconds": time.perf_counter() - start})
        tensors, found = read_entry(path, manifest["config_hash"])
        check(tensors)
        return tensors, found
