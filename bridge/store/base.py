"""The `Store` interface: everything the bridge must not lose.

Core code talks to this interface only; SQL and Redis commands stay in their modules.
Every method that returns has made its change durable (a write that returned is on
disk, group-committed with whatever else was waiting).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from bridge.core.message import Message, PendingSegment, Receipt


class StoreUnavailable(Exception):
    """The store cannot take writes now (disk full, Redis down): answer ESME_RSYSERR."""


class Store(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # ids
    @abstractmethod
    async def reserve_ids(self, count: int) -> int:
        """First id of a block of `count` ids nobody (no restart, no other instance)
        will get again."""

    # messages
    @abstractmethod
    async def save_messages(self, messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> None:
        """Insert or replace, with their provider-id and part-id indexes, and add
        `receipts` in the same transaction (a final state and its receipts land
        together or not at all)."""

    @abstractmethod
    async def get_message(self, message_id: int) -> Message | None:
        """By Message id or by any of its Part ids."""

    @abstractmethod
    async def find_by_provider_id(self, provider: str, provider_id: str) -> Message | None: ...

    @abstractmethod
    async def messages_in(
        self, lifecycles: Sequence[int], provider: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[Message]:
        """Messages in the given lifecycles, oldest first (outbox, polling, recovery)."""

    @abstractmethod
    async def count_outbox(self) -> dict[str, int]:
        """Queued or sending messages by first provider of their route."""

    @abstractmethod
    async def purge(self, finished_before: float) -> int:
        """Delete final messages done before the cutoff; returns how many."""

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
    async def add_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Store receipts, setting their `id`."""

    @abstractmethod
    async def pending_receipts(self, system_id: str | None = None, limit: int = 10000) -> list[Receipt]: ...

    @abstractmethod
    async def delete_receipt(self, receipt_id: int) -> None: ...

    @abstractmethod
    async def update_receipt(self, receipt: Receipt) -> None:
        """Store a new attempt count and next attempt time."""
