"""Store maintenance: finished messages expire after the retention; unfinished ones stay."""

from __future__ import annotations

from pathlib import Path

from bridge.core.message import Address, Lifecycle, Message, Part
from bridge.smpp.constants import MessageState
from bridge.store.sqlite import SqliteStore


def message(message_id: int, lifecycle: Lifecycle, done_at: float | None) -> Message:
    return Message(
        id=message_id,
        system_id="esme1",
        source=Address(1, 1, "1"),
        destination=Address(1, 1, "4917012345"),
        text="",
        flash=False,
        parts=[Part(message_id, 1, 1.0, "")],
        route=["p"],
        ack="upstream",
        created_at=1.0,
        lifecycle=lifecycle,
        provider="p",
        provider_ids=[f"p-{message_id}"],
        state=MessageState.DELIVERED if lifecycle is Lifecycle.FINAL else None,
        done_at=done_at,
    )


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
