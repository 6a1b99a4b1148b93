"""Delivery-status polling, for the connectors whose provider must be asked (FlashSMS
always, Kaleyra when no callback came): which keys still wait for a final state,
when each is asked next, and the loop that asks.

A key is first due `interval` seconds after it is watched, then after twice that per
poll so far, capped at `interval_max`, and never sooner than a provider's
Retry-After. Due keys go to the connector's `poll` in batches, only on the instance
that holds the cluster's polling lease for the provider (the others drop them: the
holder polls every accepted message).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.providers.base import POLL_LEASE_TTL

Poll = Callable[[list[str]], Awaitable[None]]


@dataclass(slots=True)
class Watch:
    """One key waiting for its final state. `items`: what a key covers, if several
    (FlashSMS: the phones of one messageId, each with its last status)."""

    since: float
    due: float
    polls: int = 0
    unknown: int = 0
    items: dict[str, str] = field(default_factory=dict)


class PollSchedule:
    def __init__(self, clock: Callable[[], float], interval: float, interval_max: float) -> None:
        self.clock = clock
        self.interval = interval
        self.interval_max = interval_max
        self.watches: dict[str, Watch] = {}
        self._heap: list[tuple[float, str]] = []  # (due, key); stale entries are skipped
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def watch(self, key: str, since: float, due: float) -> Watch:
        """Start (or keep) watching `key`; a new one is first due at `due`."""
        current = self.watches.get(key)
        if current is not None:
            return current
        watch = self.watches[key] = Watch(since, due)
        heapq.heappush(self._heap, (due, key))
        self._wake.set()
        return watch

    def forget(self, key: str) -> None:
        self.watches.pop(key, None)

    def reschedule(self, keys: Iterable[str], at_least: float | None = None) -> None:
        """The next poll of each key: backoff from `interval`, at least `at_least` seconds."""
        now = self.clock()
        for key in keys:
            watch = self.watches.get(key)
            if watch is None:
                continue
            watch.polls += 1
            delay = min(self.interval * 2**watch.polls, self.interval_max)
            watch.due = now + max(delay, at_least or 0.0)
            heapq.heappush(self._heap, (watch.due, key))

    def due(self, now: float, limit: int) -> list[str]:
        """Keys whose time has come, oldest first, at most `limit`."""
        batch: list[str] = []
        while self._heap and len(batch) < limit:
            due, key = self._heap[0]
            watch = self.watches.get(key)
            if watch is None or watch.due != due or key in batch:
                heapq.heappop(self._heap)
                continue
            if due > now:
                break
            heapq.heappop(self._heap)
            batch.append(key)
        return batch

    def next_due(self) -> float | None:
        while self._heap:
            due, key = self._heap[0]
            watch = self.watches.get(key)
            if watch is not None and watch.due == due:
                return due
            heapq.heappop(self._heap)
        return None

    # -- the loop ----------------------------------------------------------------------

    def start(self, name: str, lease: Callable[[str, float], Awaitable[Any]], poll: Poll, batch: int,
              log: Any) -> None:  # fmt: skip
        self._runner = asyncio.ensure_future(self._run(name, lease, poll, batch, log))

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None

    async def _run(self, name: str, lease: Callable[[str, float], Awaitable[Any]], poll: Poll, batch: int,
                   log: Any) -> None:  # fmt: skip
        while True:
            now = self.clock()
            keys = self.due(now, batch)
            if not keys:
                next_due = self.next_due()
                self._wake.clear()
                timeout = None if next_due is None else max(0.0, next_due - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            if not await lease(name, POLL_LEASE_TTL):
                for key in keys:  # another instance polls every accepted message
                    self.forget(key)
                continue
            try:
                await poll(keys)
            except Exception:  # a poller that dies silently would leave messages without receipts
                log.exception("poll_failed", provider=name)
                self.reschedule(keys)
