"""The outbox: messages of `ack = "stored"` accounts, owned by the bridge once stored.

Each message is marked SENDING (and that mark committed) before its HTTP request,
so after a crash the bridge knows which messages may have reached a provider
already: those are sent again and counted as possible duplicates. Failed attempts
are retried with exponential backoff and jitter (at least the provider's
Retry-After); a definitive rejection, too many attempts or too much age end the
message with a failure receipt.

With several instances on one store each message belongs to the instance that
stored it; the outbox of an instance that went away is `adopt`ed by another, and
an instance that finds its message taken over (`OwnershipLost`) lets it go.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from bridge.config import OutboxSettings
from bridge.core.cluster import OwnershipLost
from bridge.core.message import Lifecycle, Message
from bridge.core.receipts import ReceiptEngine
from bridge.core.sender import Sender
from bridge.metrics import Metrics
from bridge.providers.base import Outcome, SendResult
from bridge.smpp.constants import MessageState
from bridge.store.base import Store, StoreUnavailable


def backoff_delay(attempts: int, base: float, cap: float, retry_after: float | None, rand: float) -> float:
    """Full-jitter exponential backoff, never shorter than the provider's Retry-After."""
    delay = min(cap, base * (2 ** max(0, attempts - 1))) * (0.5 + rand / 2)
    return max(delay, retry_after or 0.0)


class Outbox:
    def __init__(
        self,
        settings: OutboxSettings,
        store: Store,
        sender: Sender,
        receipts: ReceiptEngine,
        metrics: Metrics,
        log: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._store = store
        self._sender = sender
        self._receipts = receipts
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        self._waiting: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._delayed: dict[int, tuple[Message, asyncio.TimerHandle]] = {}
        self._stopping = False
        self._reserved = 0

    @property
    def size(self) -> int:
        return sum(self._waiting.values()) + self._reserved

    def full(self) -> bool:
        return self.size >= self.settings.limit

    def reserve(self) -> bool:
        """Claim room for one message about to be stored; False when full. Taken
        before the store write, so a burst of submits cannot overshoot the limit."""
        if self.full():
            return False
        self._reserved += 1
        return True

    def unreserve(self) -> None:
        self._reserved -= 1

    def depth(self) -> list[tuple[str, float]]:
        return sorted((provider, float(n)) for provider, n in self._waiting.items())

    def submit(self, message: Message, reserved: bool = False) -> None:
        """Take a stored QUEUED message; it is sent as soon as there is room."""
        if reserved:
            self._reserved -= 1
        first = message.route[0] if message.route else "none"
        self._waiting[first] = self._waiting.get(first, 0) + 1
        self._start(message)

    async def recover(self) -> int:
        """Re-queue what a previous run left in the outbox. SENDING ones may already
        have reached their provider: counted and logged as possible duplicates."""
        count = 0
        after = 0
        while True:
            batch = await self._store.messages_in([Lifecycle.QUEUED, Lifecycle.SENDING], limit=1000, after_id=after)
            if not batch:
                return count
            for message in batch:
                if message.lifecycle is Lifecycle.SENDING:
                    self._possible_duplicate(message, "in flight at the last stop")
                self._store.journal.recovered(message, "restart")
                self.submit(message)
                count += 1
            after = batch[-1].id

    async def adopt(self, message_ids: Sequence[int]) -> int:
        """Take over the outbox of an instance that went away. SENDING ones may already
        have reached their provider: counted and logged as possible duplicates."""
        count = 0
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start : start + 500]
            found = await asyncio.gather(*(self._store.get_message(i) for i in chunk))
            for message in found:
                if message is None or message.lifecycle not in (Lifecycle.QUEUED, Lifecycle.SENDING):
                    continue
                if message.lifecycle is Lifecycle.SENDING:
                    self._possible_duplicate(message, "in flight on an instance that went away")
                self._store.journal.recovered(message, "adopted from an instance that went away")
                self.submit(message)
                count += 1
        if count:
            self._log.warning("outbox_adopted", messages=count)
        return count

    def _start(self, message: Message) -> None:
        task = asyncio.ensure_future(self._deliver(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, message: Message) -> None:
        async with self._semaphore:
            if self._stopping:
                return
            try:
                await self._attempt(message)
            except OwnershipLost:
                self._log.warning("outbox_taken_over", message_id=message.id)
                self._done(message)
            except StoreUnavailable as exc:
                self._log.error("outbox_store_error", message_id=message.id, error=str(exc))
                self._later(message, self.settings.backoff_max)
            except Exception:
                self._log.exception("outbox_error", message_id=message.id)
                self._later(message, self.settings.backoff_max)

    async def _attempt(self, message: Message) -> None:
        if message.lifecycle is Lifecycle.FINAL:  # an operator gave up on it meanwhile
            self._done(message)
            return
        message.lifecycle = Lifecycle.SENDING
        message.attempts += 1
        await self._store.update_messages([message])
        result, provider = await self._sender.send(message)
        if result.outcome is Outcome.ACCEPTED:
            message.lifecycle = Lifecycle.ACCEPTED
            message.provider = provider
            message.provider_ids = list(result.provider_ids)
            message.text = ""  # handed over: keep no more personal data than needed
            self._receipts.hold(p.message_id for p in message.parts)
            try:
                await self._store.update_messages([message])
            finally:
                self._receipts.release(p.message_id for p in message.parts)
            self._done(message)
            return
        message.provider = provider or message.provider
        if result.outcome is Outcome.REJECTED:
            await self._fail(message, MessageState.REJECTED, result)
            return
        if result.outcome is Outcome.UNKNOWN:
            self._possible_duplicate(message, result.reason)
        too_old = self._clock() - message.created_at >= self.settings.max_age
        if message.attempts >= self.settings.max_attempts or too_old:
            await self._fail(message, MessageState.UNDELIVERABLE, result)
            return
        delay = backoff_delay(
            message.attempts, self.settings.backoff_base, self.settings.backoff_max, result.retry_after, random.random()
        )
        message.lifecycle = Lifecycle.QUEUED
        message.next_attempt_at = self._clock() + delay
        self._store.journal.retry_scheduled(message, delay)
        await self._store.update_messages([message])
        self._log.info(
            "outbox_retry",
            message_id=message.id,
            attempts=message.attempts,
            delay=round(delay, 3),
            reason=result.reason,
        )
        self._later(message, delay)

    async def _fail(self, message: Message, state: MessageState, result: SendResult) -> None:
        self._log.warning(
            "outbox_failed", message_id=message.id, attempts=message.attempts, reason=result.reason, state=state.stat
        )
        self._store.journal.gave_up(message, state, result.reason)
        await self._store.update_messages([message])
        await self._receipts.apply(message.id, state, int(result.status), self._clock())
        self._done(message)

    def _later(self, message: Message, delay: float) -> None:
        if self._stopping:
            return

        def again() -> None:
            self._delayed.pop(message.id, None)
            self._start(message)

        handle = asyncio.get_running_loop().call_later(delay, again)
        self._delayed[message.id] = (message, handle)

    def wake(self, provider: str) -> None:
        """A provider is back (its circuit closed): retry its waiting messages now
        instead of at the end of their backoff."""
        for message_id, (message, handle) in list(self._delayed.items()):
            if provider in message.route:
                handle.cancel()
                del self._delayed[message_id]
                self._start(message)

    def retry_now(self, wanted: Callable[[Message], bool]) -> list[int]:
        """Messages waiting for their next attempt that `wanted` picks are tried now
        (an operator's "retry"); returns their ids."""
        woken = []
        for message_id, (message, handle) in list(self._delayed.items()):
            if wanted(message):
                handle.cancel()
                del self._delayed[message_id]
                self._start(message)
                woken.append(message_id)
        return woken

    def _done(self, message: Message) -> None:
        first = message.route[0] if message.route else "none"
        self._waiting[first] -= 1
        if not self._waiting[first]:
            del self._waiting[first]

    def _possible_duplicate(self, message: Message, reason: str) -> None:
        provider = message.provider or (message.route[0] if message.route else "none")
        self._metrics.duplicates.labels(provider).inc()
        self._log.warning("possible_duplicate", message_id=message.id, provider=provider, reason=reason)

    async def stop(self, timeout: float) -> None:
        """Let requests in flight finish (up to `timeout`); the rest stays stored."""
        self._stopping = True
        for _, handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
