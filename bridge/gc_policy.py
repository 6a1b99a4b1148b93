"""The daemon's garbage-collector policy: the survivors of a full collection are frozen.

CPython's cyclic collector scans every tracked object in a full (generation 2)
collection, and one runs each time the long-lived heap has grown by a quarter. The
bridge keeps its unfinished messages in memory (the store's live set, for report
lookups: about nine tracked objects each), so under load a full collection took
95-170 ms over 300,000-560,000 objects while every submit in flight waited: that was
the p99 of submit_sm -> submit_sm_resp (180 ms against a p50 of 25 ms; README,
Performance). After each full collection its survivors go to the permanent
generation (`gc.freeze`), so the next ones scan only what is new. Frozen objects are
still freed by reference counting the moment they are dropped; only garbage cycles
among them wait, until `thaw_every` seconds have passed: then they are unfrozen,
and the next full collection scans everything once and frees them.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

THAW_EVERY = 600.0  # seconds between full collections over the whole heap


class FreezeSurvivors:
    """Installed by `smpp-bridge run` (one per process), not by the library code."""

    def __init__(self, thaw_every: float = THAW_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.thaw_every = thaw_every
        self._clock = clock
        self._thawed_at = 0.0
        self._thawing = False

    def install(self) -> None:
        self._thawed_at = self._clock()
        gc.callbacks.append(self._after_collection)

    def uninstall(self) -> None:
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        gc.unfreeze()

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        if self._thawing:  # this one scanned the whole heap: freeze again
            self._thawing = False
        elif self._clock() - self._thawed_at >= self.thaw_every:
            self._thawed_at = self._clock()
            self._thawing = True
            gc.unfreeze()  # the next full collection scans everything
            return
        gc.freeze()
