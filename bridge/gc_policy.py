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

The middle generation is collected after 1,000 young collections instead of
CPython's 10. What survives a young collection (one every ~20 messages under load)
is mostly work in flight: a message's objects live from its submit to its receipt
(about a second in the benchmark). With 10, a middle collection every ~35 ms scanned
them again and moved the ones still in flight to the oldest generation, which
brought the full collections sooner: in `upstream` (Skycore receipts) the collector
took ~10 % of the daemon's CPU and freed almost nothing (~1,700 objects in a run of
~45,000 messages, counted with gc.callbacks). With 1,000 (a middle collection every
few seconds under load) most are freed by reference counting before one sees them:
-5 % CPU a message with its receipt (README, Performance).

The young generation is collected after 20,000 allocations instead of CPython's 700.
Most of a message's objects are freed by reference counting within a turn or two of
the loop; with 700 a young collection came every ~20 messages and scanned the ~1,700
objects of the work in flight each time (~6 µs a message with its receipt). With
20,000 it comes ~30 times less often over about as many survivors: -5 % CPU a message
with its receipt, the tail unchanged (README, "where it ended"; an earlier try of a
larger young threshold, before the middle one was raised, made the tail worse).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

THAW_EVERY = 600.0  # seconds between full collections over the whole heap
YOUNG_THRESHOLD = 20_000  # allocations between two young collections (CPython: 700)
MIDDLE_THRESHOLD = 1000  # young collections between two of the middle generation (CPython: 10)


class FreezeSurvivors:
    """Installed by `smpp-bridge run` (one per process), not by the library code."""

    def __init__(
        self,
        thaw_every: float = THAW_EVERY,
        clock: Callable[[], float] = time.monotonic,
        middle_threshold: int = MIDDLE_THRESHOLD,
        young_threshold: int = YOUNG_THRESHOLD,
    ) -> None:
        self.thaw_every = thaw_every
        self.middle_threshold = middle_threshold
        self.young_threshold = young_threshold
        self._clock = clock
        self._thawed_at = 0.0
        self._thawing = False
        self._thresholds: tuple[int, int, int] | None = None  # as they were before install

    def install(self) -> None:
        self._thawed_at = self._clock()
        gc.callbacks.append(self._after_collection)
        _, _, old = self._thresholds = gc.get_threshold()
        gc.set_threshold(self.young_threshold, self.middle_threshold, old)

    def uninstall(self) -> None:
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
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
