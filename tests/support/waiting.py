"""Waiting for a condition that has no event to block on (state inside the bridge).

Checks the condition until it holds or the deadline passes; the interval only
bounds how late we notice, it never decides a result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


async def until(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.002) -> None:
    """`wait_for` on a running event loop: checks between turns of the loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)
