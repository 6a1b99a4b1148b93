"""The SQLite store's write path, counted on a real SQLite through its trace callback:
one statement for a stored submit (its row) and two for one accepted upstream (its row
and one history row), each kind of write one `executemany` per batch, no JSON record
of the message, no bound NULL for a message as the intake makes it;
and an older store file (JSON records, a provider-id row per id, one history row per
event) opens with its unfinished messages, receipts and history intact."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from bridge.core.history import HistoryEvent
from bridge.core.message import Address, Lifecycle, Message, Receipt
from bridge.core.ports import SendResult
from bridge.smpp.constants import MessageState, Status
from bridge.store.records import dump_event, dump_message, dump_receipt
from bridge.store.sqlite import SqliteStore
from tests.support.providers import stored_message

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class Statements:
    """The writing statements the store's thread ran (each executemany row is one)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, sql: str) -> None:
        self.seen.append(sql)

    def take(self) -> list[str]:
        taken = [s for s in self.seen if s.lstrip().upper().startswith(WRITES)]
        self.seen.clear()
        return taken


@contextlib.asynccontextmanager
async def traced(path: Path) -> AsyncIterator[tuple[SqliteStore, Statements]]:
    """An open store whose writing statements are counted from here on."""
    trace = Statements()
    store = SqliteStore(path, trace=trace)
    await store.open()
    try:
        trace.take()  # the schema's
        yield store, trace
    finally:
        await store.close()


def kinds(statements: list[str]) -> Counter[str]:
    """Statements by table and verb ("INSERT messages")."""
    counted: Counter[str] = Counter()
    for sql in statements:
        words = sql.replace("(", " ").split()
        verb = words[0].upper()
        table = words[words.index("INTO") + 1] if "INTO" in words else words[1] if verb == "UPDATE" else words[2]
        counted[f"{verb} {table}"] += 1
    return counted


def queued(message_id: int) -> Message:
    message = stored_message(message_id, Lifecycle.QUEUED, provider_id="")
    message.ack, message.text = "stored", "hello there"
    return message


async def test_a_message_accepted_upstream_is_two_statements(tmp_path: Path) -> None:
    """`ack = "upstream"`: received and accepted (a provider id, its attempt event) in
    one write: the message row with its provider id and session (the `received` event
    is read from it), and one history row."""
    async with traced(tmp_path / "s.db") as (store, trace):
        messages = [stored_message(i) for i in range(1, 11)]
        for m in messages:
            m.session = "s1"
            store.journal.attempt(m, "p", SendResult.accepted(f"p-{m.id}"), 0.001)
        await store.insert_messages(messages)
        written = trace.take()
        assert kinds(written) == {"INSERT messages": 10, "INSERT history": 10}
        assert await store.find_by_provider_id("p", "p-7") is messages[6]  # kept in memory
    reopened = SqliteStore(tmp_path / "s.db")
    await reopened.open()
    try:
        found = await reopened.find_by_provider_id("p", "p-7")  # from the disk, by the column
        assert found == messages[6]
        assert [e.kind for e in await reopened.history(7)] == ["received", "attempt"]
    finally:
        await reopened.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        assert conn.execute("SELECT DISTINCT record FROM messages").fetchall() == [("",)]  # columns, no JSON


async def test_a_stored_message_is_one_statement_then_two_per_write(tmp_path: Path) -> None:
    """`ack = "stored"`: stored (the row alone: its `received` event is read from it),
    marked SENDING (row), accepted (row with its provider id + history)."""
    async with traced(tmp_path / "s.db") as (store, trace):
        messages = [queued(i) for i in range(1, 6)]
        for m in messages:
            m.session = "s1"
        await store.insert_messages(messages)
        assert kinds(trace.take()) == {"INSERT messages": 5}
        for m in messages:
            m.lifecycle, m.attempts = Lifecycle.SENDING, 1
        await store.update_messages(messages)
        assert kinds(trace.take()) == {"UPDATE messages": 5}
        for m in messages:
            store.journal.attempt(m, "p", SendResult.accepted(f"p-{m.id}"), 0.001)
            m.lifecycle, m.provider, m.provider_ids, m.text, m.due_at = Lifecycle.ACCEPTED, "p", [f"p-{m.id}"], "", 50.0
        await store.update_messages(messages)
        assert kinds(trace.take()) == {"UPDATE messages": 5, "INSERT history": 5}
    reopened = SqliteStore(tmp_path / "s.db")
    await reopened.open()
    try:
        # (the due time is read by `due_messages`, not with the message)
        assert await reopened.find_by_provider_id("p", "p-3") == dataclasses.replace(messages[2], due_at=None)
        assert [m.id for m in await reopened.due_messages("p", 60.0)] == [1, 2, 3, 4, 5]
    finally:
        await reopened.close()


async def test_a_new_message_is_inserted_without_its_null_columns_and_in_order(tmp_path: Path) -> None:
    """A message as the intake makes it (no provider, ids, state, due time or parts of
    its own yet) is inserted by a statement that leaves those columns out (Python's
    sqlite3 passes each bound None through its adapter lookup) and reads back the
    same; a batch with other rows of the same message keeps their order."""
    path = tmp_path / "s.db"
    new, accepted = queued(1), stored_message(2)
    async with traced(path) as (store, trace):
        await store.insert_messages([new])
        [sql] = trace.take()
        columns = {c.strip() for c in sql.split("(")[1].split(")")[0].split(",")}
        assert not columns & {"provider", "done_at", "parts", "provider_id", "more_ids", "state", "due_at"}
        assert {"id", "lifecycle", "body", "session"} <= columns
        # One batch (one frame): the accepted row after the new one, then the other way round.
        await asyncio.gather(store.insert_messages([queued(2)]), store.insert_messages([accepted]))
        await asyncio.gather(store.insert_messages([stored_message(3)]), store.insert_messages([queued(3)]))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = dict(conn.execute("SELECT id, provider_id FROM messages").fetchall())
    assert rows == {1: None, 2: "p-2", 3: None}
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        assert await reopened.get_message(1) == new
        assert await reopened.get_message(2) == dataclasses.replace(accepted, due_at=None)
    finally:
        await reopened.close()


async def test_writes_of_many_messages_are_one_executemany_per_kind(tmp_path: Path) -> None:
    """Concurrent writes of one batch: each kind of statement prepared once."""
    async with traced(tmp_path / "s.db") as (store, trace):
        messages = [queued(i) for i in range(1, 21)]
        for m in messages:
            store.journal.attempt(m, "p", SendResult.not_sent(Status.ESME_RSYSERR, "later"), None)
        await asyncio.gather(*(store.insert_messages([m]) for m in messages))
        written = trace.take()
        assert len(written) == 40
        assert len({sql.split("VALUES")[0] for sql in written}) == 2  # two statement texts


async def test_a_finished_message_leaves_the_lifecycle_index_and_the_outbox_scan_uses_it(tmp_path: Path) -> None:
    """The lifecycle index holds unfinished messages only (a final one is a deletion
    from it, not a move to the end of an index of every row kept), and the scans by
    lifecycle (outbox at start, the operator's queues) are answered from it, not by
    walking the table from the first id."""
    trace = Statements()
    store = SqliteStore(tmp_path / "s.db", trace=trace)
    await store.open()
    try:
        waiting, sent, done = queued(1), stored_message(2), stored_message(3)
        await store.insert_messages([waiting, sent, done])
        done.lifecycle, done.state, done.done_at = Lifecycle.FINAL, MessageState.DELIVERED, 5.0
        await store.update_messages([done])
        trace.seen.clear()
        assert await store.messages_in([Lifecycle.QUEUED, Lifecycle.SENDING]) == [waiting]
        assert await store.messages_in([Lifecycle.ACCEPTED], provider="p") == [sent]
        scans = [sql for sql in trace.seen if sql.lstrip().startswith("SELECT")]
        assert await store.messages_in([Lifecycle.FINAL]) == [done]  # still answered, from the table
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        indexed = conn.execute("SELECT id FROM messages INDEXED BY messages_unfinished WHERE lifecycle != 3").fetchall()
        plans = [" ".join(str(step[3]) for step in conn.execute(f"EXPLAIN QUERY PLAN {sql}")) for sql in scans]
    assert indexed == [(1,), (2,)]
    assert len(plans) == 2 and all("USING INDEX messages_unfinished" in plan for plan in plans), plans


async def test_concatenated_and_multi_id_messages_keep_their_parts_and_ids(tmp_path: Path) -> None:
    """Off the hot path: parts with their own ids, several provider ids."""
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        message = stored_message(100, parts=3)
        message.provider_ids = ["a", "b", "c"]
        message.route = ["p", "q"]
        await store.insert_messages([message])
    finally:
        await store.close()
    reopened = SqliteStore(tmp_path / "s.db")
    await reopened.open()
    try:
        assert await reopened.get_message(102) == message
        assert await reopened.find_by_provider_id("p", "c") == message
    finally:
        await reopened.close()


# The tables as the store wrote them before messages were columns (main at 0055105):
# hand-written, so the test does not depend on the code it upgrades.
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY, lifecycle INTEGER NOT NULL, first_provider TEXT NOT NULL, provider TEXT,
    done_at REAL, record TEXT NOT NULL, due_at REAL, polls INTEGER NOT NULL DEFAULT 0,
    destination TEXT, created_at REAL
);
CREATE INDEX messages_by_lifecycle ON messages (lifecycle, id);
CREATE TABLE part_ids (part_id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL);
CREATE TABLE provider_ids (
    provider TEXT NOT NULL, provider_id TEXT NOT NULL, message_id INTEGER NOT NULL,
    PRIMARY KEY (provider, provider_id)
) WITHOUT ROWID;
CREATE TABLE segments (
    set_key TEXT NOT NULL, idx INTEGER NOT NULL, created_at REAL NOT NULL, record TEXT NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (set_key, idx)
) WITHOUT ROWID;
CREATE TABLE receipts (id TEXT PRIMARY KEY, system_id TEXT NOT NULL, seq INTEGER NOT NULL, record TEXT NOT NULL);
CREATE TABLE history (seq INTEGER PRIMARY KEY, message_id INTEGER NOT NULL, at REAL NOT NULL, record TEXT NOT NULL);
"""


async def test_a_store_written_before_columns_keeps_its_messages_receipts_and_history(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    accepted = stored_message(1, Lifecycle.ACCEPTED, parts=2)
    accepted.provider_ids = ["p-1", "p-1b"]
    waiting = queued(5)
    waiting.attempts, waiting.next_attempt_at = 2, 30.0
    finished = stored_message(9, Lifecycle.FINAL, done_at=20.0)
    receipt = Receipt(
        "esme1", 9, MessageState.DELIVERED, 0, 1.0, 20.0, "hello", Address(1, 1, "4917012345"), Address(1, 1, "123"),
        "p", "9:9:DELIVRD",
    )  # fmt: skip
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.executemany(
            "INSERT INTO messages VALUES (?, ?, 'p', ?, ?, ?, ?, 0, '4917012345', 1.0)",
            [
                (m.id, int(m.lifecycle), m.provider, m.done_at, dump_message(m), due)
                for m, due in ((accepted, 40.0), (waiting, None), (finished, None))
            ],
        )
        conn.executemany("INSERT INTO part_ids VALUES (?, ?)", [(2, 1)])
        conn.executemany("INSERT INTO provider_ids VALUES ('p', ?, ?)", [("p-1", 1), ("p-1b", 1), ("p-9", 9)])
        conn.execute("INSERT INTO receipts VALUES (?, 'esme1', 1, ?)", (receipt.id, dump_receipt(receipt)))
        event = HistoryEvent(1, 3.0, "received", {"session": "s0"})
        conn.execute("INSERT INTO history (message_id, at, record) VALUES (1, 3.0, ?)", (dump_event(event),))
        conn.commit()

    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.get_message(1) == accepted
        assert await store.get_message(2) == accepted  # by its second part's id
        assert await store.find_by_provider_id("p", "p-1b") == accepted
        assert await store.get_message(9) == finished  # still its JSON record
        assert await store.messages_in([Lifecycle.QUEUED]) == [waiting]
        assert [m.id for m in await store.due_messages("p", 50.0)] == [1]
        assert await store.pending_receipts() == [receipt]
        # The upgraded message changes as any other.
        store.journal.note(1, "report", stat="DELIVRD")
        accepted.lifecycle, accepted.state, accepted.done_at = Lifecycle.FINAL, MessageState.DELIVERED, 60.0
        await store.update_messages([accepted])
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        records = dict(conn.execute("SELECT id, record FROM messages").fetchall())
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert records[1] == "" and records[5] == "" and records[9] == dump_message(finished)
    # The lifecycle index over every row gave way to the one of unfinished messages.
    assert "messages_unfinished" in indexes and "messages_by_lifecycle" not in indexes

    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.get_message(1) == accepted
        assert await store.get_message(5) == waiting
        assert [e.kind for e in await store.history(1)] == ["received", "report"]
        assert await store.purge(finished_before=100.0) == 2
        assert await store.get_message(9) is None and await store.find_by_provider_id("p", "p-1b") is None
    finally:
        await store.close()


async def test_an_older_store_opened_read_only_is_read_from_its_records(tmp_path: Path) -> None:
    """The operator's CLI on a stopped daemon's file from before the upgrade: never migrated."""
    path = tmp_path / "old.db"
    waiting = queued(5)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.execute(
            "INSERT INTO messages VALUES (5, 0, 'p', NULL, NULL, ?, NULL, 0, '4917012345', 1.0)",
            (dump_message(waiting),),
        )
        conn.commit()
    store = SqliteStore(path, read_only=True)
    await store.open()
    try:
        assert await store.get_message(5) == waiting
        assert await store.find_by_destination("4917012345", 0.0, 10.0, 10) == [waiting]
    finally:
        await store.close()


async def test_history_rows_are_the_json_the_json_module_writes_and_older_rows_still_read(tmp_path: Path) -> None:
    """The history encoder (orjson) writes the compact JSON the json module wrote
    before, text kept as UTF-8; a row the json module wrote reads back beside new
    ones; a provider's raw report orjson refuses (an integer past 64 bits) is
    written all the same."""
    path = tmp_path / "h.db"
    message = stored_message(1)
    store = SqliteStore(path)
    await store.open()
    try:
        store.journal.note(1, "received", session="s1", route=["p"], ack="upstream")
        store.journal.note(1, "report", raw={"text": "Zürich ✓", "id": 2**70}, stat="DELIVRD")
        await store.insert_messages([message])
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        ((record,),) = conn.execute("SELECT record FROM history WHERE message_id = 1").fetchall()
        version, events = json.loads(record)
        assert version == 2 and [kind for _, kind, _ in events] == ["received", "report"]
        assert record == json.dumps([2, events], separators=(",", ":"), ensure_ascii=False)
        assert "Zürich ✓" in record and str(2**70) in record
        older = json.dumps([2, [[9.5, "operator", {"action": "cancel", "who": "ops é"}]]], separators=(",", ":"),
                           ensure_ascii=False)  # fmt: skip
        conn.execute("INSERT INTO history (message_id, at, record) VALUES (1, 9.5, ?)", (older,))
        conn.commit()
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        history = await reopened.history(1)
    finally:
        await reopened.close()
    assert [(e.kind, e.data) for e in history] == [
        ("received", {"session": "s1", "route": ["p"], "ack": "upstream"}),
        ("report", {"raw": {"text": "Zürich ✓", "id": 2**70}, "stat": "DELIVRD"}),
        ("operator", {"action": "cancel", "who": "ops é"}),
    ]
