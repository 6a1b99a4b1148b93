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

In memory the outbox is one queue ordered by next attempt time (a heap) drained by
`concurrency` workers: a new message, a retry falling due and a provider coming
back (`wake`) each hand the earliest due message to an idle worker. Nothing else
waits per message, so 100,000 stored messages cost 100,000 heap entries, not tasks.
`stop` lets the workers finish what they are sending; what is not sent stays stored.

Intake comes first: while the pipeline is taking in submits of `ack = "stored"`
accounts (`intake_began` .. `intake_ended`, a read's batch from its PDUs to its
answers), at most INTAKE_SHARE messages are in flight; the rest wait in the heap
until intake pauses. Both compete for the one core the event loop runs on, and a
burst is better taken at full speed (each submit stored and answered) with the
backlog drained behind it than slowed to the providers' pace.

A read's batch alone is not enough: the outbox sends between the batches, while each
waits for its commit. So for the length of a burst the outbox holds back further:
it starts no send at all (BURST_SHARE), during the batches and between them (even
one message kept in flight cost the burst ~8 % of its rate: a send takes ~60 µs of
the core, a stored submit ~20 µs). The sends already in flight finish. A burst is
reads that bring many submits each (on average BURST_READ or more: the clients' windows
are full, they submit faster than we answer) while the outbox is behind
(`concurrency` messages or more waiting) and the daemon's core is busy (CpuGauge:
BUSY_SHARE of it or more over the last BUSY_WINDOW seconds; when the core has room a
hold gains the intake nothing and only slows the sends). The hold ends when the
reads get small (on average under BURST_READ / 2), when the core has room, when no
stored read has come for BURST_QUIET seconds, or when the backlog reaches
`[outbox] burst` (at most `limit`): sustained overload is not a burst, so from there
the outbox sends as without one (all of `concurrency` between the reads' batches)
while the intake goes on at what is left (and `limit` answers ESME_RMSGQFUL), and
no new hold starts until the backlog is back under `concurrency`. Steady traffic
(small reads) never starts one: its messages are sent as they come.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from bridge.config import OutboxSettings
from bridge.core.cluster import OwnershipLost
from bridge.core.message import Lifecycle, Message
from bridge.core.ports import Outcome, SendResult, Store, StoreUnavailable
from bridge.core.receipts import ReceiptEngine
from bridge.core.sender import Sender
from bridge.core.tasks import Tasks
from bridge.metrics import Metrics
from bridge.smpp.constants import MessageState

INTAKE_SHARE = 4  # messages in flight while stored intake is running (concurrency otherwise)
BURST_SHARE = 0  # messages in flight while a burst lasts: none (how long is bounded by `[outbox] burst`)
BURST_READ = 8  # submits per stored read, on average, that make a burst (the clients' windows are full)
BURST_QUIET = 0.05  # seconds without a stored read that end a burst
_READ_AVERAGE = 8  # reads the average read size is taken over (exponentially)
BUSY_SHARE = 0.5  # of a core, used by this process: a burst is held for only then
BUSY_WINDOW = 0.1  # seconds the share is measured over


class CpuGauge:
    """Is this process busy: did it use BUSY_SHARE of a core or more over the last
    BUSY_WINDOW (the window just ended; measured at most once per window)?"""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, cpu: Callable[[], float] = time.process_time
    ) -> None:
        self._clock = clock
        self._cpu = cpu
        self._at = clock()
        self._used = cpu()
        self._busy = False

    def busy(self) -> bool:
        now = self._clock()
        if now - self._at >= BUSY_WINDOW:
            used = self._cpu()
            self._busy = (used - self._used) / (now - self._at) >= BUSY_SHARE
            self._at, self._used = now, used
        return self._busy


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
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self._busy = busy or CpuGauge().busy  # is the core busy (a burst is held for only then)
        self._store = store
        self._sender = sender
        self._receipts = receipts
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self._waiting: dict[str, int] = {}  # by first provider of the route
        self._count = 0  # the same in all (waiting or in flight)
        self._queue: list[tuple[float, int, Message]] = []  # (due, order, message): a heap
        self._order = itertools.count()
        self._idle: deque[asyncio.Future[Message]] = deque()  # workers waiting for a message
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._workers = Tasks(log, "outbox_worker")
        self._stopping = False
        self._reserved = 0
        self._intake = 0  # intake batches running
        self._read_size = 0.0  # submits per stored read, a moving average
        self._burst_since: float | None = None  # loop time a burst hold began; None: no hold
        self._burst_spent = False  # a hold reached `burst`: none again until the backlog is back under concurrency
        self._last_read = 0.0  # loop time of the last stored read
        self._quiet: asyncio.TimerHandle | None = None
        self._sending = 0  # messages taken by workers, not yet done with
        self._holding: dict[int, Message] = {}  # by id: the object each attempt marks and checks

    @property
    def size(self) -> int:
        return self._count + self._reserved

    def full(self) -> bool:
        return self.size >= self.settings.limit

    def reserve(self) -> bool:
        """Claim room for one message about to be stored; False when full. Taken
        before the store write, so a burst of submits cannot overshoot the limit."""
        if self.full():
            return False
        self._reserved += 1
        return True

    def reserve_up_to(self, count: int) -> int:
        """`reserve` for up to `count` messages at once (a read's batch): how many
        got room, the first ones (one call for the batch, not one per message)."""
        taken = min(count, self.settings.limit - self.size)
        if taken <= 0:
            return 0
        self._reserved += taken
        return taken

    def unreserve(self, count: int = 1) -> None:
        self._reserved -= count

    def intake_began(self, submits: int = 1) -> None:
        """A read's batch of `submits` stored submits is being taken in: the outbox
        steps back meanwhile, and for the length of a burst (module docstring)."""
        self._intake += 1
        self._read_size += (submits - self._read_size) / _READ_AVERAGE
        self._last_read = now = asyncio.get_running_loop().time()
        if self._burst_since is None:
            if self._burst_spent and self.size < self.settings.concurrency:
                self._burst_spent = False  # caught up: the next burst may be held for
            if (
                not self._burst_spent
                and self._read_size >= BURST_READ
                and self.settings.burst
                and self.size >= self.settings.concurrency
                and self._busy()
            ):
                self._burst_since = now
                self._log.info("outbox_burst_began", backlog=self.size)
        elif self._read_size < BURST_READ / 2:
            self._end_burst("reads got small")
        elif not self._busy():
            self._end_burst("core not busy")

    def intake_ended(self) -> None:
        self._intake -= 1
        if self._burst_since is not None and self.size >= min(self.settings.burst, self.settings.limit):
            self._burst_spent = True
            self._end_burst("backlog reached [outbox] burst")
            return
        if self._intake:
            return
        if self._burst_since is not None:
            if self._quiet is None:
                self._quiet = asyncio.get_running_loop().call_later(BURST_QUIET, self._quiet_check)
            return
        self._dispatch()

    def _quiet_check(self) -> None:
        """End the hold once no stored read has come for BURST_QUIET seconds."""
        self._quiet = None
        if self._burst_since is None:
            return
        left = self._last_read + BURST_QUIET - asyncio.get_running_loop().time()
        if left > 0 or self._intake:
            self._quiet = asyncio.get_running_loop().call_later(max(left, 0.001), self._quiet_check)
            return
        self._end_burst("intake rests")

    def _end_burst(self, reason: str) -> None:
        assert self._burst_since is not None
        took = asyncio.get_running_loop().time() - self._burst_since
        self._burst_since = None
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
        log = self._log.warning if self._burst_spent else self._log.info
        log("outbox_burst_ended", reason=reason, backlog=self.size, seconds=round(took, 3))
        if not self._intake:
            self._dispatch()

    @property
    def intake_running(self) -> bool:
        return self._intake > 0

    @property
    def holding_for_burst(self) -> bool:
        """The outbox holds back for a burst of stored intake (module docstring)."""
        return self._burst_since is not None

    def _may_start(self) -> bool:
        """Room for one more message in flight: all of `concurrency` while intake
        rests, INTAKE_SHARE while it runs, BURST_SHARE while a burst lasts."""
        if self._burst_since is not None:
            return self._sending < BURST_SHARE
        return not self._intake or self._sending < INTAKE_SHARE

    def depth(self) -> list[tuple[str, float]]:
        return sorted((provider, float(n)) for provider, n in self._waiting.items())

    def submit(self, message: Message, reserved: bool = False) -> None:
        """Take a stored QUEUED message; it is sent as soon as there is room."""
        self.submit_all((message,), reserved)

    def submit_all(self, messages: Sequence[Message], reserved: bool = False) -> None:
        """`submit` for the messages of one read's batch: one hand-out to the workers."""
        if reserved:
            self._reserved -= len(messages)
        waiting, holding = self._waiting, self._holding
        for message in messages:
            first = message.route[0] if message.route else "none"
            waiting[first] = waiting.get(first, 0) + 1
            holding[message.id] = message
            self._enqueue(message, message.next_attempt_at)
        self._count += len(messages)
        self._dispatch()

    def holding(self, message_id: int) -> Message | None:
        """The outbox's own object of a message it holds (waiting or in flight), else
        None. An operator's action decides on this object: an attempt checks it
        before it starts and marks it SENDING in the same step, with no await
        between, so a decision taken on it cannot cross an attempt starting (a copy
        read from the store could: Redis hands out copies, and so does SQLite for
        messages beyond what it keeps in memory)."""
        return self._holding.get(message_id)

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

    # -- the queue and its workers -----------------------------------------------------

    def start(self) -> None:
        """Start the `concurrency` workers (messages submitted before wait for them)."""
        self._stopping = False
        for _ in range(self.settings.concurrency - len(self._workers)):
            self._workers.spawn(self._work())

    def queued(self) -> list[int]:
        """Ids of the messages waiting for an attempt, in the order they are due."""
        return [message.id for _, _, message in sorted(self._queue)]

    def _push(self, message: Message, due: float) -> None:
        if self._enqueue(message, due):
            self._dispatch()

    def _enqueue(self, message: Message, due: float) -> bool:
        """Into the heap, unless stopping (then it stays stored; the next start recovers it)."""
        if self._stopping:
            return False
        heapq.heappush(self._queue, (due, next(self._order), message))
        return True

    def _dispatch(self) -> None:
        """Hand due messages to idle workers; arm one timer for the next one due."""
        now = self._clock()
        while self._idle and self._queue and self._queue[0][0] <= now and self._may_start():
            worker = self._idle.popleft()
            if not worker.done():
                self._sending += 1
                worker.set_result(heapq.heappop(self._queue)[2])
        if not self._idle or not self._queue or self._stopping or not self._may_start():
            return
        due = self._queue[0][0]
        if self._timer is not None:
            if self._timer_at <= due:
                return
            self._timer.cancel()
        self._timer_at = due
        self._timer = asyncio.get_running_loop().call_later(due - now, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._dispatch()

    async def _next(self) -> Message:
        """The earliest message due, once it is due (and there is room: `_may_start`);
        counted in `_sending` until its worker is done with it."""
        if self._queue and self._queue[0][0] <= self._clock() and self._may_start():
            self._sending += 1
            return heapq.heappop(self._queue)[2]
        worker: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._idle.append(worker)
        self._dispatch()
        try:
            return await worker
        except asyncio.CancelledError:
            if worker.done() and not worker.cancelled():  # handed a message, stopped before taking it
                self._sending -= 1
            raise
        finally:
            if not worker.done():
                self._idle.remove(worker)

    async def _work(self) -> None:
        while not self._stopping:
            message = await self._next()
            try:
                await self._deliver(message)
            finally:
                self._sending -= 1

    async def _deliver(self, message: Message) -> None:
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
        if message.lifecycle is Lifecycle.FINAL:  # finished during the attempt: its answer changes nothing
            self._answer_after_final(message, result, provider)
            return
        if result.outcome is Outcome.ACCEPTED:
            self._sender.accepted(message, result, provider, self._clock())
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
        self._push(message, self._clock() + delay)

    def wake(self, provider: str) -> None:
        """A provider is back (its circuit closed): retry its waiting messages now
        instead of at the end of their backoff."""
        self.retry_now(lambda message: provider in message.route)

    def retry_now(self, wanted: Callable[[Message], bool]) -> list[int]:
        """The waiting messages `wanted` picks are due now (a provider back, an
        operator's "retry"); returns their ids, those already due included."""
        now = self._clock()
        woken: list[int] = []
        queue = []
        for due, order, message in self._queue:
            if wanted(message):
                woken.append(message.id)
                due = min(due, now)
            queue.append((due, order, message))
        if woken:
            heapq.heapify(queue)
            self._queue = queue
            self._dispatch()
        return woken

    def _done(self, message: Message) -> None:
        self._holding.pop(message.id, None)
        self._count -= 1
        first = message.route[0] if message.route else "none"
        self._waiting[first] -= 1
        if not self._waiting[first]:
            del self._waiting[first]

    def _answer_after_final(self, message: Message, result: SendResult, provider: str | None) -> None:
        """A provider's answer for a message that finished while it was in flight is
        not written over the final state, and sends no second receipt."""
        name = provider or (message.route[0] if message.route else "none")
        self._metrics.answers_after_final.labels(name).inc()
        self._log.debug("outbox_answer_after_final", message_id=message.id, provider=name, outcome=result.outcome.value)
        self._done(message)

    def _possible_duplicate(self, message: Message, reason: str) -> None:
        provider = message.provider or (message.route[0] if message.route else "none")
        self._metrics.duplicates.labels(provider).inc()
        self._log.warning("possible_duplicate", message_id=message.id, provider=provider, reason=reason)

    async def stop(self, timeout: float) -> None:
        """Let requests in flight finish (up to `timeout`), then stop every worker and
        wait for it; the messages not sent stay stored for the next start."""
        self._stopping = True
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._idle:
            self._idle.popleft().cancel()
        await self._workers.wait(timeout)
        await self._workers.cancel()
        self._queue.clear()
