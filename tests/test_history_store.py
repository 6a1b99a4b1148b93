"""The history and the operator's queries in the SQLite store (real SQLite files):
events land with the write they belong to, lookups by destination respect the time
range, old events are purged, an old store gains the new columns, a read-only store
never writes. (The Redis store: tests/redis/test_operator_cluster.py and below.)"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sqlite3
from pathlib import Path

import pytest

from bridge.config import parse_config
from bridge.core.history import Journal
from bridge.core.lookup import Lookup, mask, parse_time
from bridge.core.message import Lifecycle
from bridge.core.numbers import Number
from bridge.core.ports import SendResult, StoreUnavailable
from bridge.smpp.constants import Status
from bridge.store.sqlite import SCHEMA, SqliteStore
from tests.support.providers import stored_message


async def test_events_land_with_the_write_that_takes_them(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "b.db")
    await store.open()
    try:
        message = stored_message(100, Lifecycle.ACCEPTED)
        message.session = "s1"
        store.journal.attempt(message, "p", SendResult.accepted("p-100").answered(200), 0.0123)
        other = stored_message(200, Lifecycle.ACCEPTED)
        other.session = "s2"
        store.journal.attempt(other, "p", SendResult.accepted("p-200"), 0.001)  # no write of 200 yet: pending
        await store.insert_messages([message])
        events = await store.history(100)
        assert [(e.kind, e.message_id) for e in events] == [("received", 100), ("attempt", 100)]
        assert events[1].data["http_status"] == 200 and events[1].data["latency_ms"] == 12.3
        assert await store.history(200) == []
        await store.insert_messages([other])
        assert [e.kind for e in await store.history(200)] == ["received", "attempt"]
    finally:
        await store.close()


async def test_the_received_event_is_read_from_the_message_row(tmp_path: Path) -> None:
    """No history row is written for `received`: the message's own row says it all
    (session, parts, route, ack, at its created_at), so it lasts as long as the message."""
    path = tmp_path / "b.db"
    store = SqliteStore(path)
    await store.open()
    try:
        message = stored_message(300)
        message.session, message.route, message.ack, message.created_at = "s7", ["sky", "kal"], "stored", 1234.5
        await store.insert_messages([message])
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM history").fetchone() == (0,)
        [event] = await store.history(300)
        assert (event.message_id, event.at, event.kind) == (300, 1234.5, "received")
        assert event.data == {"session": "s7", "parts": [300], "route": ["sky", "kal"], "ack": "stored"}
        assert await store.purge_history(10_000.0) == 0  # nothing to purge: it goes with the message
        assert [e.kind for e in await store.history(300)] == ["received"]
    finally:
        await store.close()


async def test_a_store_without_the_session_column_is_read_only_read(tmp_path: Path) -> None:
    """The operator's CLI on the file of a stopped daemon from before the session column
    (read-only: never migrated): its messages read, their history without a derived event."""
    path = tmp_path / "b.db"
    store = SqliteStore(path)
    await store.open()
    await store.insert_messages([stored_message(5)])
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("ALTER TABLE messages DROP COLUMN session")
        conn.commit()
    reader = SqliteStore(path, read_only=True)
    await reader.open()
    try:
        assert await reader.get_message(5) == stored_message(5)
        assert await reader.history(5) == []
    finally:
        await reader.close()


async def test_find_by_destination_keeps_to_the_time_range(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "b.db")
    await store.open()
    try:
        messages = []
        for i, at in enumerate((100.0, 200.0, 300.0)):
            message = dataclasses.replace(stored_message(10 + i), created_at=at)
            messages.append(message)
        elsewhere = stored_message(20)
        elsewhere.number = Number("4917099999")
        await store.insert_messages([*messages, elsewhere])
        found = await store.find_by_destination("4917012345", 150.0, 300.0, 10)
        assert [m.id for m in found] == [11]
        assert [m.id for m in await store.find_by_destination("4917012345", 0, 1000, 2)] == [10, 11]
        lookup = Lookup(store, clock=lambda: 1000.0)
        view = await lookup.find("+49 170 12345", 0, None, 10)
        assert [m["message_id"] for m in view["messages"]] == ["10", "11", "12"]
        assert view["destination"] == mask("4917012345") == "******2345"
    finally:
        await store.close()


async def test_old_events_are_purged_and_young_ones_kept(tmp_path: Path) -> None:
    now = [1000.0]
    store = SqliteStore(tmp_path / "b.db")
    store.journal = Journal(clock=lambda: now[0])
    await store.open()
    try:
        message = stored_message(1)
        store.journal.attempt(message, "p", SendResult.not_sent(Status.ESME_RSYSERR, "down"), None)
        await store.insert_messages([message])
        now[0] = 5000.0
        store.journal.recovered(message, "restart")
        await store.update_messages([message])
        assert await store.purge_history(4000.0) == 1
        assert [e.kind for e in await store.history(1)] == ["recovered"]
        assert await store.purge_history(4000.0) == 0
        assert await store.purge_history(6000.0) == 1
    finally:
        await store.close()


async def test_a_store_from_before_the_history_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)  # the tables as they were before the history
    conn.execute(
        "INSERT INTO messages (id, lifecycle, first_provider, provider, done_at, record) VALUES (1, 0, 'p', NULL,"
        " NULL, '[1]')"
    )
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        message = stored_message(2)
        await store.insert_messages([message])
        assert [m.id for m in await store.find_by_destination("4917012345", 0, 10, 10)] == [2]
    finally:
        await store.close()


async def test_a_read_only_store_reads_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    store = SqliteStore(path)
    await store.open()
    message = stored_message(7, Lifecycle.FINAL, done_at=5.0)
    message.session = "s1"
    await store.insert_messages([message])
    await store.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    reader = SqliteStore(path, read_only=True)
    await reader.open()
    try:
        assert (await reader.get_message(7)) is not None
        assert [e.kind for e in await reader.history(7)] == ["received"]
        with pytest.raises(StoreUnavailable):
            await reader.update_messages([message])
        with pytest.raises(StoreUnavailable):
            await reader.reserve_ids(10)
    finally:
        await reader.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


async def test_masking_reaches_provider_ids_that_carry_the_number(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "b.db")
    await store.open()
    try:
        # FlashSMS's provider id is "<messageId>:<phone>".
        message = stored_message(9, provider_id="cmjveq0001:233201234567")
        message.destination = dataclasses.replace(message.destination, addr="0201234567", ton=2)
        message.number = Number("233201234567")
        store.journal.attempt(message, "p", SendResult.accepted(*message.provider_ids), 0.01)
        await store.insert_messages([message])
        lookup = Lookup(store)
        masked = await lookup.message_view(message)
        assert "233201234567" not in str(masked)
        assert masked["provider_ids"] == ["cmjveq0001:********4567"]
        assert masked["history"][0]["provider_ids"] == ["cmjveq0001:********4567"]
        assert masked["message_id"] == "9"
        assert masked["destination"] == "******4567" and masked["number"] == "+********4567"
        full = await lookup.message_view(message, numbers=True)
        assert full["provider_ids"] == ["cmjveq0001:233201234567"] and full["destination"] == "0201234567"
        assert full["number"] == "+233201234567"
    finally:
        await store.close()


async def test_reports_overdue_are_the_accepted_messages_past_their_stored_due_time(tmp_path: Path) -> None:
    config = parse_config({"providers": {"p": {"type": "simulator"}, "q": {"type": "simulator"}}})
    store = SqliteStore(tmp_path / "b.db")
    await store.open()
    try:
        late, early, later, never = (stored_message(i) for i in (10, 20, 30, 40))
        late.due_at, early.due_at, later.due_at, never.due_at = 900.0, 500.0, 1100.0, None
        late.created_at, early.created_at = 300.0, 200.0
        done = stored_message(50, Lifecycle.FINAL, done_at=400.0)
        await store.insert_messages([late, early, later, never, done])
        queues = await Lookup(store, config, clock=lambda: 1000.0).queues()
        assert queues["awaiting_reports"] == [
            {
                "provider": "p",
                "awaiting": 4,
                "next_due_at": "1970-01-01T00:08:20.000Z",  # 500 s: the earliest, already past
                "overdue": 2,
                "oldest_overdue_received_at": "1970-01-01T00:03:20.000Z",
                "first_overdue": ["20", "10"],  # the longest overdue first
            },
            {
                "provider": "q",
                "awaiting": 0,
                "next_due_at": None,
                "overdue": 0,
                "oldest_overdue_received_at": None,
                "first_overdue": [],
            },
        ]
    finally:
        await store.close()


def test_times_the_operator_types() -> None:
    now = 10_000.0
    assert parse_time("90s", now) == now - 90
    assert parse_time("2h", now) == now - 7200
    assert parse_time("1d", now) == now - 86400
    assert parse_time("1970-01-01T00:00:10Z", now) == 10.0
    assert parse_time("1970-01-01T01:00:10+01:00", now) == 10.0
    assert parse_time("1970-01-01 00:00:10", now) == 10.0  # UTC unless it says
    assert parse_time("1234.5", now) == 1234.5
    with pytest.raises(Exception, match="not a time"):
        parse_time("yesterday", now)
