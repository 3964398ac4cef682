"""What crosses between the env's device and the host, and how.

The env computes on its device (:func:`check_device` says which it may use). Host arrays go to it with
:func:`to_device`; results come back packed: every value of a step (observations, rewards, the info's tensors)
becomes float64 columns of one array (:func:`as_columns`), copied to the host at once, and :class:`Unpacker`
reads them back in packing order (:func:`step_to_host` does both for a step). The host's random generator is
saved as its bit generator's JSON-able state (:func:`generator_state`, :func:`restore_generator`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

_NUMPY_DTYPES = {torch.float32: np.float32, torch.int64: np.int64, torch.bool: np.bool_}
"""The dtypes a packed (float64) column is read back as, by its tensor's dtype; exact for every value of them
(integers up to 2**53)."""


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device the env can run on; ``ValueError`` saying what is allowed otherwise."""
    allowed = "'cpu', 'cuda' or 'cuda:<index>'"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be {allowed}, got {device!r}") from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be {allowed}, got {device!r}")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r}: this machine's torch sees no CUDA device; use 'cpu'")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {device!r}: only {count} CUDA device(s) here (cuda:0 to cuda:{count - 1})")
    return dev


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on ``device``; through pinned memory on CUDA, so the copy does not wait."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def as_columns(info: dict) -> list[torch.Tensor]:
    """Every tensor of ``info`` (nested dicts included) as a float64 column ``[N, 1]``, in the order
    :meth:`Unpacker.unpack` reads them."""
    out = []
    for value in info.values():
        out += as_columns(value) if isinstance(value, dict) else [value.double()[:, None]]
    return out


class Unpacker:
    """Reads the columns of one packed host array back, in the order they were packed."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.at = array, 0

    @classmethod
    def transfer(cls, columns: list[torch.Tensor]) -> Unpacker:
        """The device tensors ``columns`` (each ``[N, k]``, float64) side by side, in one copy to the host."""
        return cls(torch.cat(columns, 1).cpu().numpy())

    def take(self, width: int) -> np.ndarray:
        """The next ``width`` columns."""
        out = self.array[:, self.at:self.at + width]
        self.at += width
        return out

    def unpack(self, info: dict) -> dict:
        """Numpy arrays shaped like ``info``'s tensors (one column each), in packing order, with their dtype
        (float32, int64 and bool come back as such; any other dtype stays float64)."""
        out = {}
        for key, value in info.items():
            if isinstance(value, dict):
                out[key] = self.unpack(value)
            else:
                column = self.take(1)[:, 0]
                dtype = _NUMPY_DTYPES.get(value.dtype)
                out[key] = column if dtype is None else column.astype(dtype)
        return out


def step_to_host(obs: torch.Tensor, reward: torch.Tensor, info: dict, final: tuple[torch.Tensor, dict] | None,
                 host_info: Callable[[Unpacker, dict], dict]) -> tuple[np.ndarray, np.ndarray, dict, tuple | None]:
    """A step's observations ``[N, D]``, rewards ``[N]`` and info, and the ``final`` observations and info of
    the envs that ended (or None), as numpy, from one transfer to the host; ``host_info(unpacker, info)`` reads
    an info back."""
    parts = [obs.double(), reward.double()[:, None], *as_columns(info)]
    if final is not None:
        parts += [final[0].double(), *as_columns(final[1])]
    host = Unpacker.transfer(parts)  # the step's one device-to-host transfer
    obs_np = host.take(obs.shape[1]).astype(np.float32)
    reward_np = host.take(1)[:, 0].astype(np.float32)
    info_np = host_info(host, info)
    if final is None:
        return obs_np, reward_np, info_np, None
    return obs_np, reward_np, info_np, (host.take(obs.shape[1]).astype(np.float32), host_info(host, final[1]))


def generator_state(generator: np.random.Generator | None) -> dict | None:
    """The JSON-able state of a numpy generator's bit generator (None stays None); :func:`restore_generator`
    inverts it."""
    return None if generator is None else generator.bit_generator.state


def restore_generator(state: dict | None) -> np.random.Generator | None:
    """A numpy generator restored from its bit generator's ``state`` (None stays None)."""
    if state is None:
        return None
    generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
    generator.bit_generator.state = state
    return generator
