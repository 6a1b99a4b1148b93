"""A fake clock for code that takes one (`clock: Callable[[], float]`): time moves
only when a test moves it."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
