"""Store maintenance: finished messages expire after the retention; unfinished ones stay."""

from __future__ import annotations

from pathlib import Path

from bridge.core.message import Lifecycle, Message
from bridge.store.sqlite import SqliteStore
from tests.support.providers import stored_message


def message(message_id: int, lifecycle: Lifecycle, done_at: float | None) -> Message:
    return stored_message(message_id, lifecycle, done_at=done_at)


async def test_purge_deletes_only_finished_messages_older_than_the_cutoff(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.insert_messages(
            [
                message(1, Lifecycle.FINAL, done_at=100.0),
                message(2, Lifecycle.FINAL, done_at=900.0),
                message(3, Lifecycle.ACCEPTED, done_at=None),
            ]
        )
        assert await store.purge(finished_before=500.0) == 1
        assert await store.get_message(1) is None
        assert await store.find_by_provider_id("p", "p-1") is None
        assert (await store.get_message(2)) is not None
        assert (await store.get_message(3)) is not None
        assert await store.purge(finished_before=500.0) == 0
    finally:
        await store.close()


async def test_reopening_a_store_keeps_ids_and_unfinished_messages(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    first = await store.reserve_ids(1000)
    await store.insert_messages([message(first, Lifecycle.ACCEPTED, None)])
    await store.close()
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        assert await store.reserve_ids(1000) == first + 1000
        [found] = await store.messages_in([Lifecycle.ACCEPTED])
        assert found.id == first
    finally:
        await store.close()
