"""Counter-based random numbers with one independent stream per env, drawn in one batched call.

Env ``i`` owns a seed and a draw counter. Each draw hashes ``(seed, counter, element index)`` with
SplitMix64, so what env ``i`` sees depends only on its own seed and on how many draws it has made: not on
how many envs share the batch, not on which other envs reset, and not on the device (CPU and CUDA give
the same numbers). This is what lets one env of a vector env replay exactly as a single env.
"""

from __future__ import annotations

import math

import torch

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """An unsigned 64-bit constant as the signed int64 torch stores."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser on int64 tensors (wrapping arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ _shr(z, 30)) * _MUL1
    z = (z ^ _shr(z, 27)) * _MUL2
    return z ^ _shr(z, 31)


class BatchedRNG:
    """Independent per-env random streams: ``seeds [N]`` int64 on one device."""

    def __init__(self, seeds: torch.Tensor) -> None:
        self.seeds = seeds.to(torch.int64).clone()
        self.counters = torch.zeros_like(self.seeds)

    @property
    def device(self) -> torch.device:
        return self.seeds.device

    def reseed(self, env_ids: torch.Tensor, seeds: torch.Tensor) -> None:
        """Restart the streams of ``env_ids`` from ``seeds``."""
        self.seeds[env_ids] = seeds.to(self.seeds)
        self.counters[env_ids] = 0

    def _bits(self, env_ids: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Fresh random int64 words ``[len(env_ids), *shape]``; advances those envs' counters."""
        key = _splitmix64(_splitmix64(self.seeds[env_ids]) ^ self.counters[env_ids])
        self.counters[env_ids] += 1
        n_elem = math.prod(shape)
        offsets = torch.arange(n_elem, device=self.device, dtype=torch.int64) * _GOLDEN
        return _splitmix64(key[:, None] + offsets).view(len(env_ids), *shape)

    def uniform(self, env_ids: torch.Tensor, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """Uniform float32 in ``[0, 1)``."""
        return _shr(self._bits(env_ids, shape), 40).to(torch.float32) * (1.0 / (1 << 24))

    def integers(self, env_ids: torch.Tensor, high: int | torch.Tensor, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """Integers uniform in ``[0, high)``; ``high`` may be a per-env tensor ``[len(env_ids)]``."""
        unit = _shr(self._bits(env_ids, shape), 11).to(torch.float64) * (1.0 / (1 << 53))
        high_t = torch.as_tensor(high, device=self.device, dtype=torch.float64)
        if high_t.dim():
            high_t = high_t.view(-1, *([1] * len(shape)))
        return torch.minimum((unit * high_t).floor(), high_t - 1).to(torch.int64)

    def normal(self, env_ids: torch.Tensor, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """Standard normal float32 (Box-Muller)."""
        bits = self._bits(env_ids, (2, *shape))
        u1 = (_shr(bits[:, 0], 11).to(torch.float64) + 1.0) * (1.0 / (1 << 53))  # (0, 1]
        u2 = _shr(bits[:, 1], 11).to(torch.float64) * (1.0 / (1 << 53))
        return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * math.pi * u2)).to(torch.float32)
