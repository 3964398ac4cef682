"""A saved env state: everything needed to continue a repair exactly where it was, in this process or another.

An :class:`EnvState` holds the batched episode state's tensors (parameters, optimizer moments, pools,
random streams, bookkeeping), the env's host-side counters and its numpy generator, and the identity of
the env that made it: env id, package version, state format, ``num_envs`` and every constructor setting
that changes a trajectory (preset, zoo seed, dynamics, instances, faults, reward weights, episode length,
precision, autoreset mode). ``set_state`` refuses a state whose identity differs, naming what differs.

On disk a state is one safetensors file: the tensors, plus the rest as JSON in the file's metadata, with a
sha256 over all of it. A truncated or altered file is refused when loaded, never half-read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

STATE_FORMAT = 1
_METADATA_KEY = "llm_repair_gym_state"


@dataclass
class EnvState:
    """One env's (or vector env's) state. ``tensors`` live on the CPU; ``identity`` and ``host`` are JSON."""

    identity: dict[str, Any]  # what made it: env_id, version, format, num_envs, config
    host: dict[str, Any]  # host-side counters and the numpy generator's state
    tensors: dict[str, torch.Tensor]

    def save(self, path: str | Path) -> Path:
        """Write the state to ``path`` (one safetensors file, written whole then renamed into place)."""
        path = Path(path)
        meta = {"identity": self.identity, "host": self.host,
                "sha256": _digest(self.tensors, self.identity, self.host)}
        data = save({k: t.contiguous() for k, t in self.tensors.items()},
                    metadata={_METADATA_KEY: json.dumps(meta)})
        scratch = path.with_name(f"{path.name}.tmp")
        scratch.write_bytes(data)
        scratch.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EnvState:
        """Read a state written by :meth:`save`; ``ValueError`` when the file is truncated, altered or not one."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ValueError(f"cannot read env state {path}: {err}") from err
        try:
            tensors = load(data)
            header_len = int.from_bytes(data[:8], "little")
            metadata = json.loads(data[8:8 + header_len]).get("__metadata__", {})
            meta = json.loads(metadata[_METADATA_KEY])
        except (SafetensorError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path} is not an llm-repair-gym env state (or it is truncated): {err}") from err
        if not isinstance(meta, dict) or not {"identity", "host", "sha256"} <= set(meta):
            raise ValueError(f"{path} is not an llm-repair-gym env state: its metadata lacks identity, host or sha256")
        if _digest(tensors, meta["identity"], meta["host"]) != meta["sha256"]:
            raise ValueError(f"{path}: the checksum does not match the one saved with the state "
                             "(the file was altered or damaged)")
        return cls(identity=meta["identity"], host=meta["host"], tensors=tensors)

    def rows(self, rows: list[int]) -> EnvState:
        """The state of the envs ``rows`` of this one, in that order (a row may repeat): what a vector env of
        ``len(rows)`` envs, otherwise made alike, continues from (search branches many copies of one episode).
        Every tensor and every host list with one value per env is indexed; the rest is shared."""
        n = self.identity["num_envs"]
        bad = [r for r in rows if not 0 <= int(r) < n]
        if not rows or bad:
            raise ValueError(f"rows must be a non-empty list of env indices in [0, {n}), got {bad or rows}")
        index = torch.as_tensor([int(r) for r in rows], dtype=torch.long)
        tensors = {}
        for name, t in self.tensors.items():
            if t.ndim == 0 or t.shape[0] != n:
                raise ValueError(f"state tensor {name} has no env axis of {n}: cannot select rows")
            tensors[name] = t[index].clone()
        host = {k: [v[int(r)] for r in rows] if isinstance(v, list) and len(v) == n else v
                for k, v in self.host.items()}
        identity = {**self.identity, "num_envs": len(rows)}
        return EnvState(identity=identity, host=host, tensors=tensors)

    def check_matches(self, identity: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming every difference between this state's identity and ``identity``."""
        problems = [f"{key}: state has {self.identity.get(key)!r}, env has {identity[key]!r}"
                    for key in ("env_id", "format", "version", "num_envs")
                    if self.identity.get(key) != identity[key]]
        mine, theirs = self.identity.get("config", {}), identity["config"]
        problems += [f"config {key}: state has {mine.get(key)!r}, env has {theirs.get(key)!r}"
                     for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]
        if problems:
            raise ValueError("this state was made by a different env; " + "; ".join(problems))


def json_config(**config: Any) -> dict[str, Any]:
    """``config`` as it reads back from JSON (tuples become lists), so saved and live configs compare equal."""
    return json.loads(json.dumps(config))


def _digest(tensors: dict[str, torch.Tensor], identity: dict, host: dict) -> str:
    """sha256 over the identity and host values (as canonical JSON) and every tensor's name, dtype, shape and
    bytes, in name order."""
    h = hashlib.sha256(json.dumps([identity, host], sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
