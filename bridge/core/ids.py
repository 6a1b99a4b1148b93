"""message_id allocation and rendering.

Ids are integers handed out from blocks the store reserves, so a restart (or another
instance sharing the store) never hands out one again, and the hot path does not
touch the store for each id. An account sees them in its `message_id_format`.
"""

from __future__ import annotations

import asyncio

from bridge.core.ports import Store


def render_id(message_id: int, fmt: str) -> str:
    return format(message_id, "x") if fmt == "hex" else str(message_id)


def parse_id(text: str, fmt: str) -> int | None:
    """The integer behind a rendered id, or None if it cannot be one of ours."""
    try:
        value = int(text, 16) if fmt == "hex" else int(text, 10)
    except ValueError:
        return None
    if fmt == "decimal" and not text.isdigit():
        return None
    return value if value > 0 else None


class IdAllocator:
    def __init__(self, store: Store, block: int = 1000) -> None:
        self._store = store
        self._block = block
        self._next = 0
        self._end = 0
        self._refill: asyncio.Task[tuple[int, int]] | None = None
        self._spare: tuple[int, int] | None = None

    async def next_id(self) -> int:
        value = self.take()
        if value is None:
            await self._take_block()
            value = self.take()
            assert value is not None  # (the block taken has ids left: nothing ran since)
        return value

    def has_id(self) -> bool:
        """Is an id at hand (`take` gives one)?"""
        return self._next < self._end

    def take(self) -> int | None:
        """`next_id` without an await, for the hot path: the next id of the block in
        hand, or None when the block is used up (then await `next_id`)."""
        value = self._next
        if value >= self._end:
            return None
        self._next = value + 1
        if self._spare is None and self._refill is None and self._end - self._next < self._block // 4:
            self._refill = asyncio.ensure_future(self._reserve())
        return value

    async def _take_block(self) -> None:
        while self._next >= self._end:
            if self._spare is None:
                if self._refill is None:
                    self._refill = asyncio.ensure_future(self._reserve())
                await asyncio.shield(self._refill)
            if self._spare is not None and self._next >= self._end:
                self._next, self._end = self._spare
                self._spare = None

    async def _reserve(self) -> tuple[int, int]:
        try:
            first = await self._store.reserve_ids(self._block)
            self._spare = (first, first + self._block)
            return self._spare
        finally:
            self._refill = None
