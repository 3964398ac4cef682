"""Step-indexed schedules shared by the hand-written agents (exploration rate, learning rate)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Schedule = Callable[[int], float]
"""A schedule maps the number of environment steps taken so far to a value."""


@dataclass(frozen=True)
class LinearSchedule:
    """Interpolate linearly from ``start`` to ``end`` over ``duration`` steps, then hold ``end``.

    ``LinearSchedule(1.0, 0.05, 10_000)(5_000) == 0.525``. A ``duration`` of 0 yields ``end`` at once.
    """

    start: float
    end: float
    duration: int

    def __post_init__(self) -> None:
        if self.duration < 0:
            raise ValueError(f"duration must be >= 0, got {self.duration}")

    def __call__(self, step: int) -> float:
        """Value of the schedule after ``step`` environment steps."""
        if self.duration == 0 or step >= self.duration:
            return self.end
        return self.start + (self.end - self.start) * (step / self.duration)


def as_schedule(value: float | Schedule) -> Schedule:
    """Return ``value`` itself if it is a schedule, or a constant schedule if it is a number."""
    if callable(value):
        return value
    constant = float(value)
    return lambda _step: constant
