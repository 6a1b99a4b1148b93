"""Store maintenance: finished messages expire after the retention; unfinished ones stay;
due times survive a restart and an upgrade."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from bridge.core.message import Lifecycle, Message
from bridge.core.ports import PURGE_BATCH
from bridge.store.records import dump_message
from bridge.store.sqlite import SqliteStore
from tests.support.due_store import check_due_times_survive_a_restart, check_upgraded
from tests.support.providers import stored_message


def message(message_id: int, lifecycle: Lifecycle, done_at: float | None) -> Message:
    return stored_message(message_id, lifecycle, done_at=done_at)


def index_rows(path: Path) -> tuple[list[tuple[int, ...]], list[tuple[str, ...]]]:
    """The part-id and provider-id index rows, read from the file itself."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        parts = conn.execute("SELECT part_id, message_id FROM part_ids ORDER BY part_id").fetchall()
        provider_ids = conn.execute(  # the first id is a column of its message, further ones have rows
            "SELECT provider_id FROM messages WHERE provider_id IS NOT NULL"
            " UNION ALL SELECT provider_id FROM provider_ids ORDER BY 1"
        ).fetchall()
    return parts, provider_ids


async def test_purge_deletes_only_finished_messages_older_than_the_cutoff(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.insert_messages(
            [
                stored_message(1, Lifecycle.FINAL, parts=3, done_at=100.0),
                message(10, Lifecycle.FINAL, done_at=900.0),
                message(20, Lifecycle.ACCEPTED, done_at=None),
            ]
        )
        assert await store.purge(finished_before=500.0) == 1
        assert await store.get_message(1) is None
        assert await store.get_message(2) is None
        assert await store.find_by_provider_id("p", "p-1") is None
        assert (await store.get_message(10)) is not None
        assert (await store.get_message(20)) is not None
        assert await store.purge(finished_before=500.0) == 0
    finally:
        await store.close()
    # Its index entries went with it; the others' stay.
    assert index_rows(tmp_path / "s.db") == ([], [("p-10",), ("p-20",)])


async def test_purge_due_deletes_in_bounded_steps_until_nothing_is_due(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.insert_messages([message(i, Lifecycle.FINAL, done_at=float(i)) for i in range(1, 26)])
        await store.insert_messages([message(100, Lifecycle.FINAL, done_at=900.0)])
        steps: list[int] = []
        purge = store.purge

        async def counted(finished_before: float, limit: int = PURGE_BATCH) -> int:
            steps.append(await purge(finished_before, limit))
            return steps[-1]

        store.purge = counted  # type: ignore[method-assign]  # a spy: the size of each step
        assert await store.purge_due(finished_before=500.0, batch=10) == 25
        assert steps == [10, 10, 5]
        assert await store.get_message(100) is not None
        assert await store.purge_due(finished_before=500.0, batch=10) == 0
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


# -- message_id range (issue 14): [1, 2**32), wrapping, never an id still stored --------

ID_MAX = 4294967295  # 2**32 - 1: 10 decimal digits, 8 hex digits


def set_counter(database: Path, value: int) -> None:
    with sqlite3.connect(database) as db:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?)", (value,))


async def test_ids_are_at_most_10_decimal_and_8_hex_digits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        first = await store.reserve_ids(1000)
        assert first >= 1 and first + 999 <= ID_MAX
        assert len(str(first + 999)) <= 10 and len(format(first + 999, "x")) <= 8
    finally:
        await store.close()


async def test_a_counter_from_before_the_bounded_range_restarts_inside_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    old = 1733500000000  # clock x 1000, as ids were made before
    await store.insert_messages([message(old, Lifecycle.ACCEPTED, None)])
    await store.close()
    set_counter(tmp_path / "s.db", old + 1)
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        first = await store.reserve_ids(1000)
        assert first >= 1 and first + 999 <= ID_MAX
        assert (await store.get_message(old)) is not None  # the old message stays queryable
    finally:
        await store.close()


async def test_the_counter_wraps_past_ids_still_stored(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    await store.insert_messages([message(5, Lifecycle.ACCEPTED, None), stored_message(1498, parts=3)])
    await store.close()
    set_counter(tmp_path / "s.db", ID_MAX - 10)
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        assert await store.reserve_ids(1000) == 6  # 1..1000 would hold message 5
        assert await store.reserve_ids(1000) == 1501  # 1006..2005 would hold parts 1499, 1500
        assert await store.reserve_ids(1000) == 2501
    finally:
        await store.close()


async def test_due_times_survive_a_restart(tmp_path: Path) -> None:
    async def open_store() -> SqliteStore:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        return store

    await check_due_times_survive_a_restart(open_store)


# The messages table as it was before due times were stored.
OLD_MESSAGES = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY, lifecycle INTEGER NOT NULL, first_provider TEXT NOT NULL,
    provider TEXT, done_at REAL, record TEXT NOT NULL
)
"""


async def test_messages_waiting_in_an_older_database_become_due_at_once(tmp_path: Path) -> None:
    """Upgrading: an older database gets the due columns, and its accepted messages
    are due at once (UPGRADE_DUE: their connectors work out what is left); a queued
    one gets its due time when it is accepted."""
    path = tmp_path / "old.db"
    waiting, queued = stored_message(1, Lifecycle.ACCEPTED), stored_message(2, Lifecycle.QUEUED)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(OLD_MESSAGES)
        conn.executemany(
            "INSERT INTO messages VALUES (?, ?, 'p', ?, NULL, ?)",
            [(m.id, int(m.lifecycle), m.provider, dump_message(m)) for m in (waiting, queued)],
        )
        conn.commit()
    store = SqliteStore(path)
    await store.open()
    await check_upgraded(store)


async def test_a_finished_message_stays_finished_whatever_is_written_over_it(tmp_path: Path) -> None:
    """A late write of an attempt (QUEUED after NOT_SENT, ACCEPTED after the provider
    took it) for a message that finished meanwhile leaves the stored row final: as in
    Redis, a final state never changes again."""
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    await store.open()
    try:
        done = message(1, Lifecycle.FINAL, done_at=5.0)
        await store.insert_messages([message(1, Lifecycle.QUEUED, done_at=None)])
        await store.update_messages([done])
        for late in (Lifecycle.QUEUED, Lifecycle.SENDING, Lifecycle.ACCEPTED):
            await store.update_messages([message(1, late, done_at=None)])
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        row = conn.execute("SELECT lifecycle, done_at, due_at FROM messages WHERE id = 1").fetchone()
    assert row == (int(Lifecycle.FINAL), 5.0, None)
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        found = await reopened.get_message(1)
        assert found is not None and (found.lifecycle, found.done_at) == (Lifecycle.FINAL, 5.0)
        assert await reopened.messages_in([Lifecycle.QUEUED, Lifecycle.SENDING, Lifecycle.ACCEPTED]) == []
    finally:
        await reopened.close()
