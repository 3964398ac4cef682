"""Gymnasium's vector-info layout, both ways: batch per-env values with masks, and take one env's info back out.

A vector env's ``info`` maps every key ``k`` to a batched value (an array over envs, or a nested dict of
them) and ``_k`` to a boolean array saying which envs have ``k``. :func:`with_masks` adds the masks;
:func:`unbatch` gives one env's info as a plain dict (masked-out keys left out, numpy scalars made Python
values), the form a single env, or one env of SB3's ``DummyVecEnv``, reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def with_masks(info: dict, mask: np.ndarray) -> dict:
    """``info`` with a boolean ``_k`` (a copy of ``mask``) beside every key ``k``, nested dicts included."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        out[key] = with_masks(value, mask) if isinstance(value, dict) else value
        out[f"_{key}"] = mask.copy()
    return out


def unbatch(info: dict, index: int, skip: tuple[str, ...] = ()) -> dict:
    """The info of env ``index``: keys whose mask leaves it out, mask keys and ``skip`` are dropped."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_") or key in skip:
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[index]:
            continue
        if isinstance(value, dict):
            out[key] = unbatch(value, index)
        else:
            item = value[index]
            out[key] = item.item() if isinstance(item, np.generic) else item
    return out
