"""Bulk coalescing: the same text from one account to many destinations, sent within
a short window, goes out as one multi-recipient request where the API allows it
(FlashSMS `recipients`, Kaleyra's comma-separated `to`). Each message still gets its
own result, provider id and receipt; only the HTTP request is shared.

A batch leaves when it is full (`coalesce_max`, at most the provider's `max_batch`)
or when its first message has waited `coalesce_window` seconds. A destination
already in the batch (the same normalised number, however the ESME wrote it) starts a
new one, so every recipient of a request is distinct.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.core.message import Message
from bridge.core.numbers import Number
from bridge.core.ports import Provider, SendResult
from bridge.core.tasks import Tasks

Key = tuple[str, str, str, bool]


@dataclass
class _Batch:
    messages: list[Message] = field(default_factory=list)
    waiters: list[asyncio.Future[SendResult]] = field(default_factory=list)
    destinations: set[Number] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None


class Coalescer:
    def __init__(self, provider: Provider, window: float, limit: int,
                 send_batch: Callable[[Sequence[Message]], Awaitable[list[SendResult]]], log: Any) -> None:  # fmt: skip
        self.provider = provider
        self.window = window
        self.limit = max(1, min(limit or provider.max_batch, provider.max_batch))
        self._send_batch = send_batch
        self._log = log
        self._open: dict[Key, _Batch] = {}
        self._flights = Tasks(log, "coalesced_batch")

    async def send(self, message: Message) -> SendResult:
        key: Key = (message.system_id, message.source.addr, message.text, message.flash)
        batch = self._open.get(key)
        if batch is not None and message.number in batch.destinations:
            self._flush(key)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch()
            batch.timer = asyncio.get_running_loop().call_later(self.window, self._flush, key)
        waiter: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        batch.messages.append(message)
        batch.waiters.append(waiter)
        batch.destinations.add(message.number)
        if len(batch.messages) >= self.limit:
            self._flush(key)
        return await waiter

    def _flush(self, key: Key) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        self._flights.spawn(self._fly(batch))

    async def _fly(self, batch: _Batch) -> None:
        try:
            results = await self._send_batch(batch.messages)
        except Exception as exc:  # a connector bug must not strand the waiters
            self._log.exception("batch_send_failed", provider=self.provider.name, messages=len(batch.messages))
            results = _unknown(f"batch send raised {type(exc).__name__}", len(batch.messages))
        if len(results) != len(batch.messages):
            self._log.error("batch_results_mismatch", provider=self.provider.name, messages=len(batch.messages))
            results = _unknown("batch answer did not match its messages", len(batch.messages))
        for waiter, result in zip(batch.waiters, results, strict=True):
            if not waiter.done():
                waiter.set_result(result)


def _unknown(reason: str, count: int) -> list[SendResult]:
    """What a batch that went wrong means for each of its messages: the request may
    have reached the provider, so UNKNOWN (never sent again)."""
    return [SendResult.unknown(reason, metric="error")] * count
