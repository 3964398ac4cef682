"""The MAML paper's sinusoid regression: the task distribution and a batched 1-40-40-1 ReLU MLP.

A task is ``y = amplitude * sin(x - phase)`` with amplitude U[0.1, 5.0], phase U[0, pi] and inputs
x U[-5, 5]; the loss is the mean squared error. Networks are flat parameter rows ``[T, P]``, one per task,
so :mod:`llm_repair_gym.meta.maml` adapts a whole meta-batch in one batched forward and backward.
"""

from __future__ import annotations

import math

import torch

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)
HIDDEN = (40, 40)


def _layer_sizes() -> list[tuple[int, int]]:
    widths = [1, *HIDDEN, 1]
    return list(zip(widths[:-1], widths[1:]))


def num_params() -> int:
    """Size of one flat network (weights ``[in, out]`` then bias, layer by layer)."""
    return sum(i * o + o for i, o in _layer_sizes())


INIT_STD = 0.01


def init_mlp(generator: torch.Generator) -> torch.Tensor:
    """One flat network ``[P]`` initialised as in the MAML paper's code: weights from a normal of std 0.01
    truncated at two standard deviations, biases zero.

    """
    chunks = []
    for fan_in, fan_out in _layer_sizes():
        weight = torch.empty(fan_in * fan_out)
        torch.nn.init.trunc_normal_(weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD, generator=generator)
        chunks += [weight, torch.zeros(fan_out)]
    return torch.cat(chunks)


def mlp(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Predictions ``[T, K, 1]`` of the networks ``params [T, P]`` on their own inputs ``x [T, K, 1]``."""
    t, start, h = params.shape[0], 0, x
    layers = _layer_sizes()
    for depth, (fan_in, fan_out) in enumerate(layers):
        weight = params[:, start:start + fan_in * fan_out].view(t, fan_in, fan_out)
        bias = params[:, start + fan_in * fan_out:start + fan_in * fan_out + fan_out]
        start += fan_in * fan_out + fan_out
        h = torch.baddbmm(bias.unsqueeze(1), h, weight)
        if depth < len(layers) - 1:
            h = torch.relu(h)
    return h


def mse(params: torch.Tensor, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean squared error ``[T]`` of every network on its own task's points ``(x, y)``, each ``[T, K, 1]``."""
    x, y = data
    return (mlp(params, x) - y).pow(2).mean((1, 2))


def sample_tasks(num_tasks: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitudes and phases ``[T]`` of ``num_tasks`` random sinusoids."""
    amplitude = AMPLITUDE[0] + (AMPLITUDE[1] - AMPLITUDE[0]) * torch.rand(num_tasks, generator=generator)
    phase = PHASE[0] + (PHASE[1] - PHASE[0]) * torch.rand(num_tasks, generator=generator)
    return amplitude, phase


def sample_points(amplitude: torch.Tensor, phase: torch.Tensor, k: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` random points ``(x, y)``, each ``[T, k, 1]``, of every task."""
    x = X_RANGE[0] + (X_RANGE[1] - X_RANGE[0]) * torch.rand(amplitude.numel(), k, 1, generator=generator)
    return x, amplitude[:, None, None] * torch.sin(x - phase[:, None, None])
