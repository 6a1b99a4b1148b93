"""The `Store` interface: everything the bridge must not lose.

Core code talks to this interface only; SQL and Redis commands stay in their modules.

Writes are queued the moment they are called, in call order, and return an
awaitable that completes once the write is durable (group-committed with whatever
else was waiting). A caller that must not answer before the write is safe awaits
it; one that only needs the order (a receipt acknowledged, an attempt counted)
may leave it running: failures are logged by the store.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence

from bridge.core.history import HistoryEvent, Journal
from bridge.core.message import Message, PendingSegment, Receipt

PURGE_BATCH = 1000  # messages one purge step deletes: a few ms of the store's time

# message_ids are in [1, MAX_MESSAGE_ID]: at most 10 decimal digits (SMPP v3.4 Appendix
# B's receipt id) or 8 hex digits (a v3.3 bind's message_id), and they fit the
# unsigned 32-bit integer some clients keep them in. The counter wraps; ids still
# held by a stored message are skipped.
MAX_MESSAGE_ID = 2**32 - 1
# Blocks looked at before a store gives up finding free ids (it would have to be full).
MAX_ID_PROBES = 10_000


def id_seed(now: float) -> int:
    """Where a new counter starts (a fresh store, or one whose counter is outside the
    range, from before ids were bounded): the clock in milliseconds folded into the
    range, so ids of a deleted store stay unused unless it averaged over 1000/s."""
    return int(now * 1000) % MAX_MESSAGE_ID + 1


def wrapped(first: int, count: int) -> int:
    """`first`, or 1 when a block of `count` from there would leave the range."""
    return first if first >= 1 and first + count - 1 <= MAX_MESSAGE_ID else 1


class StoreUnavailable(Exception):
    """The store cannot take writes now (disk full, Redis down): answer ESME_RSYSERR."""


class Store(ABC):
    def __init__(self) -> None:
        # Events of messages' lives noted by core code; every write below takes the
        # pending events of the messages it writes into the same transaction.
        self.journal = Journal()

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Finish queued writes, then close."""

    # ids
    @abstractmethod
    async def reserve_ids(self, count: int) -> int:
        """First id of a block of `count` ids in [1, MAX_MESSAGE_ID] that nobody (no
        restart, no other instance) gets while a message or part holding one of them
        is stored; the counter wraps. `count` 0 checks that the store takes writes."""

    # messages
    @abstractmethod
    def insert_messages(self, messages: Sequence[Message]) -> Awaitable[None]:
        """New messages, with their part-id and provider-id indexes (and the due time
        of one inserted ACCEPTED)."""

    @abstractmethod
    def update_messages(self, messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> Awaitable[None]:
        """New lifecycle / state / provider ids of stored messages, and `receipts` to
        add, in one transaction (a final state and its receipts land together). A
        message's `due_at` and `polls` are written when it becomes ACCEPTED (and by
        `reschedule`), cleared when it leaves ACCEPTED, and otherwise left as stored."""

    @abstractmethod
    async def get_message(self, message_id: int) -> Message | None:
        """By Message id or by any of its Part ids."""

    @abstractmethod
    async def find_by_provider_id(self, provider: str, provider_id: str) -> Message | None: ...

    @abstractmethod
    async def messages_in(
        self, lifecycles: Sequence[int], provider: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[Message]:
        """Messages in the given lifecycles, by id (outbox, polling, recovery)."""

    # due times of accepted messages (written by insert/update_messages with the
    # acceptance, cleared with the final state)
    @abstractmethod
    async def due_messages(self, provider: str, now: float, limit: int = 500) -> list[Message]:
        """ACCEPTED messages of `provider` whose `due_at` is at or before `now`, the
        earliest first, with `due_at` and `polls` filled in."""

    @abstractmethod
    async def next_due(self, provider: str) -> float | None:
        """The earliest `due_at` of `provider`'s messages; None when none is due ever."""

    @abstractmethod
    def reschedule(self, messages: Sequence[Message]) -> Awaitable[None]:
        """Store the new `due_at` (None: nothing more to do) and `polls` of each
        message that is still ACCEPTED; a message that became final meanwhile keeps
        no due time."""

    @abstractmethod
    async def count_outbox(self) -> dict[str, int]:
        """Queued or sending messages by first provider of their route."""

    @abstractmethod
    async def purge(self, finished_before: float, limit: int = PURGE_BATCH) -> int:
        """Delete up to `limit` final messages done before the cutoff, with their
        indexes; returns how many. One short step: submits wait for it."""

    async def purge_due(self, finished_before: float, batch: int = PURGE_BATCH) -> int:
        """Delete every final message done before the cutoff, `batch` at a time,
        letting the event loop run between batches; returns how many."""
        total = 0
        while True:
            deleted = await self.purge(finished_before, batch)
            total += deleted
            if deleted < batch:
                return total
            await asyncio.sleep(0)

    # segments of concatenated messages
    @abstractmethod
    async def add_segment(self, segment: PendingSegment) -> list[PendingSegment] | None:
        """Store one segment; when its set is complete, remove and return the set,
        ordered by index."""

    @abstractmethod
    async def take_expired_segments(self, created_before: float) -> list[PendingSegment]:
        """Remove and return the segments of sets that began before the cutoff."""

    # receipts
    @abstractmethod
    def add_receipts(self, receipts: Sequence[Receipt]) -> Awaitable[None]:
        """Store receipts; one with an `id` already stored is left as it is."""

    @abstractmethod
    def update_receipt(self, receipt: Receipt) -> Awaitable[None]:
        """Store a new attempt count and next attempt time."""

    @abstractmethod
    def delete_receipt(self, receipt_id: str) -> Awaitable[None]: ...

    @abstractmethod
    async def pending_receipts(self, system_id: str | None = None, limit: int = 10000) -> list[Receipt]: ...

    # history and the operator's queries (bridge.core.lookup)
    @abstractmethod
    def flush_history(self, message_ids: Sequence[int]) -> Awaitable[None]:
        """Write the pending events of these messages on their own (events with no
        state change to ride with: operator actions)."""

    @abstractmethod
    async def history(self, message_id: int) -> list[HistoryEvent]:
        """The events of one Message (by its id, not a Part id), oldest first."""

    @abstractmethod
    async def find_by_destination(self, destination: str, since: float, until: float, limit: int) -> list[Message]:
        """Messages to `destination` received in [since, until), oldest first."""

    @abstractmethod
    async def purge_history(self, before: float) -> int:
        """Delete history events older than the cutoff; returns how many."""

    @abstractmethod
    async def incomplete_sets(self, limit: int = 1000) -> list[list[PendingSegment]]:
        """The concatenated sets still waiting for parts (segments without their
        data), oldest first."""
