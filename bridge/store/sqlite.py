"""Embedded store on SQLite (WAL), with group commit.

One thread owns the connection. Writes are queued as rows; the thread takes
everything that is waiting, runs each kind of write as one `executemany` in a fixed
order, and commits once: N concurrent submits cost one fsync and a handful of
statements, not N of each. `synchronous=FULL` makes a completed write survive a
power cut; a process crash (kill -9) loses nothing either way. A read queued behind
writes sees them (it runs after them, in the same transaction).

Messages that may still change (not final) are also kept in memory, so a provider
report finds its message without a round trip to the disk.

Why not aiosqlite: it makes one thread hop and one commit per call; batching the
commits and statements is the point here.

A message is a row of columns (bridge/store/records.py), not a JSON record: its
insert binds plain values and a state change updates only what changes, its first
provider id included (a column with an index, not a row of its own). Each write also
appends the history events pending for its messages, one row per message holding
its events of that write. So a message accepted upstream is two statements (its row,
its history row), as is a stored one, and each later state change; an older store's
unfinished messages are rewritten as columns when it is opened. `read_only` opens a
stopped daemon's file for the operator's CLI without ever writing to it.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bridge.core.history import HistoryEvent, receipt_owner
from bridge.core.message import UPGRADE_DUE, Lifecycle, Message, PendingSegment, Receipt
from bridge.core.ports import MAX_MESSAGE_ID, PURGE_BATCH, Store, StoreUnavailable
from bridge.logging import get_logger
from bridge.store.ids import MAX_ID_PROBES, id_seed, wrapped
from bridge.store.records import (
    MESSAGE_COLUMNS,
    dump_events,
    dump_receipt,
    dump_segment,
    load_events,
    load_message,
    load_receipt,
    load_segment,
    message_row,
    row_message,
    state_row,
)

T = TypeVar("T")
OnConnection = Callable[[sqlite3.Connection], Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    lifecycle INTEGER NOT NULL,
    first_provider TEXT NOT NULL,
    provider TEXT,
    done_at REAL,
    record TEXT NOT NULL DEFAULT '',
    due_at REAL,
    polls INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_lifecycle ON messages (lifecycle, id);
CREATE INDEX IF NOT EXISTS messages_by_done_at ON messages (done_at) WHERE done_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS part_ids (part_id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS part_ids_by_message ON part_ids (message_id);
CREATE TABLE IF NOT EXISTS provider_ids (
    provider TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (provider, provider_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS provider_ids_by_message ON provider_ids (message_id);
CREATE TABLE IF NOT EXISTS segments (
    set_key TEXT NOT NULL,
    idx INTEGER NOT NULL,
    created_at REAL NOT NULL,
    record TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (set_key, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segments_by_age ON segments (created_at);
CREATE TABLE IF NOT EXISTS receipts (
    id TEXT PRIMARY KEY,
    system_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_by_system_id ON receipts (system_id, seq);
"""
# Lifecycle values as the SQL below compares them: from the enum, never written out.
_ACCEPTED = int(Lifecycle.ACCEPTED)
_FINAL = int(Lifecycle.FINAL)
# After MIGRATE (a database from before due times lacks the column).
DUE_INDEX = "CREATE INDEX IF NOT EXISTS messages_due ON messages (provider, due_at) WHERE due_at IS NOT NULL"
# Columns added since the first schema, and what fills them in an older database:
# messages accepted before due times were stored are due at once (each connector
# then decides, from the message, what is still to do and when).
MIGRATE: dict[str, tuple[str, ...]] = {
    "due_at": (
        "ALTER TABLE messages ADD COLUMN due_at REAL",
        f"UPDATE messages SET due_at = {UPGRADE_DUE} WHERE lifecycle = {_ACCEPTED}",
    ),
    "polls": ("ALTER TABLE messages ADD COLUMN polls INTEGER NOT NULL DEFAULT 0",),
}
# The message as columns (bridge/store/records.py, MESSAGE_COLUMNS) instead of one JSON
# `record`: added to every store, fresh or older (`_migrate`), in one transaction with
# the rewrite of an older store's unfinished rows (`_columns_from_records`). Finished
# rows of an older store keep their JSON record (`record` not empty) until the
# retention purges them; they never change again, and `_load` reads either form.
MESSAGE_FIELDS: tuple[tuple[str, str], ...] = (
    ("system_id", "TEXT"),
    ("src_ton", "INTEGER"),
    ("src_npi", "INTEGER"),
    ("src_addr", "TEXT"),
    ("dst_ton", "INTEGER"),
    ("dst_npi", "INTEGER"),
    ("dst_addr", "TEXT"),
    ("international", "INTEGER"),
    ("body", "TEXT"),
    ("flash", "INTEGER"),
    ("parts", "TEXT"),
    ("registered_delivery", "INTEGER"),
    ("preview", "TEXT"),
    ("id_format", "TEXT"),
    ("route", "TEXT"),
    ("ack", "TEXT"),
    ("provider_id", "TEXT"),
    ("more_ids", "TEXT"),
    ("state", "INTEGER"),
    ("error", "INTEGER"),
    ("attempts", "INTEGER"),
    ("next_attempt_at", "REAL"),
)
# A report's lookup by provider id: the first id is a column of its message (no row
# of its own); `provider_ids` holds further ids and the ids of older stores.
PROVIDER_ID_INDEX = (
    "CREATE INDEX IF NOT EXISTS messages_by_provider_id ON messages (provider, provider_id)"
    " WHERE provider_id IS NOT NULL"
)

# The operator's view: every message's events in arrival order (rowid: an append),
# and messages by destination and time. Stores made before these existed are
# brought up to date at open (the two columns are added; older rows stay NULL).
HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_message ON history (message_id, seq);
CREATE INDEX IF NOT EXISTS messages_by_destination ON messages (destination, created_at);
"""
HISTORY_PURGE_BATCH = 5000

# Each kind of write, in the order a batch runs them: a row inserted and then
# updated or deleted in the same batch ends up right.
WRITES: tuple[tuple[str, str], ...] = (
    (
        "insert_message",
        f"INSERT OR REPLACE INTO messages ({MESSAGE_COLUMNS}, due_at, polls)"
        f" VALUES ({', '.join('?' * (MESSAGE_COLUMNS.count(',') + 3))})",
    ),
    ("insert_part", "INSERT OR IGNORE INTO part_ids (part_id, message_id) VALUES (?, ?)"),
    ("insert_provider_id", "INSERT OR REPLACE INTO provider_ids (provider, provider_id, message_id) VALUES (?, ?, ?)"),
    # The due time is the acceptance's (when the row becomes ACCEPTED), the stored one
    # (while it stays ACCEPTED: `reschedule` owns it), or none. SET sees the old row.
    # A final row never changes again: a late write cannot un-finish it.
    (
        "update_message",
        "UPDATE messages SET lifecycle = ?1, provider = ?2, done_at = ?3, body = ?4, provider_id = ?5, more_ids = ?6,"
        " state = ?7, error = ?8, attempts = ?9, next_attempt_at = ?10,"
        f" due_at = CASE WHEN ?1 != {_ACCEPTED} THEN NULL WHEN lifecycle = {_ACCEPTED} THEN due_at ELSE ?11 END,"
        f" polls = CASE WHEN ?1 != {_ACCEPTED} THEN 0 WHEN lifecycle = {_ACCEPTED} THEN polls ELSE ?12 END"
        f" WHERE id = ?13 AND lifecycle != {_FINAL}",
    ),
    ("reschedule", f"UPDATE messages SET due_at = ?, polls = ? WHERE id = ? AND lifecycle = {_ACCEPTED}"),
    ("insert_receipt", "INSERT OR IGNORE INTO receipts (id, system_id, seq, record) VALUES (?, ?, ?, ?)"),
    ("update_receipt", "UPDATE receipts SET record = ? WHERE id = ?"),
    ("delete_receipt", "DELETE FROM receipts WHERE id = ?"),
    ("insert_history", "INSERT INTO history (message_id, at, record) VALUES (?, ?, ?)"),
)
# The highest Message or Part id stored in a range (reserve_ids skips past it).
_HIGHEST_TAKEN = (
    "SELECT MAX(id) FROM (SELECT MAX(id) AS id FROM messages WHERE id BETWEEN ? AND ?"
    " UNION ALL SELECT MAX(part_id) FROM part_ids WHERE part_id BETWEEN ? AND ?)"
)
_STOP = object()
_MAX_ITEMS = 5000
_LIVE_LIMIT = 500_000  # messages kept in memory for report lookups; beyond, the disk answers


class _Write:
    __slots__ = ("future", "rows")

    def __init__(self, rows: dict[str, list[tuple[Any, ...]]], future: asyncio.Future[None]) -> None:
        self.rows = rows
        self.future = future


class _Call:
    __slots__ = ("fn", "future")

    def __init__(self, fn: OnConnection, future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future


class SqliteStore(Store):
    def __init__(
        self,
        path: Path | str,
        synchronous: str = "FULL",
        read_only: bool = False,
        trace: Callable[[str], object] | None = None,
    ) -> None:
        """`trace` is given every SQL statement the writer thread runs, with its values
        (sqlite3's trace callback: what a test counts; it runs on that thread)."""
        super().__init__()
        self.path = Path(path)
        self.synchronous = synchronous
        self.read_only = read_only
        self.trace = trace
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = get_logger("store")
        self._live: dict[int, Message] = {}
        self._by_provider: dict[tuple[str, str], int] = {}
        self._receipt_seq = 0
        self._select, self._select_m = _SELECT, _SELECT_M

    # -- the writer thread -----------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        if str(self.path) != ":memory:" and not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        ready: asyncio.Future[int] = self._loop.create_future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="sqlite-store", daemon=True)
        self._thread.start()
        self._receipt_seq = await ready

    async def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._thread = None

    def _serve(self, ready: asyncio.Future[int]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            if self.read_only:
                conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False)
                conn.execute("SELECT COUNT(*) FROM messages")
                seq = 0
                if "provider_id" not in {row[1] for row in conn.execute("PRAGMA table_info(messages)")}:
                    self._select, self._select_m = _SELECT_RECORDS, _SELECT_RECORDS_M
            else:
                conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                conn.set_trace_callback(self.trace)
                conn.executescript(SCHEMA)
                _add_history(conn)
                _migrate(conn)
                (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM receipts").fetchone()
        except Exception as exc:  # a failed migration too: the open fails, the thread ends
            loop.call_soon_threadsafe(_settle, [(ready, None, StoreUnavailable(f"cannot open {self.path}: {exc}"))])
            return
        loop.call_soon_threadsafe(_settle, [(ready, int(seq), None)])
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            while len(items) < _MAX_ITEMS:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in items:
                stopping = True
                items = [item for item in items if item is not _STOP]
            if items:
                loop.call_soon_threadsafe(_settle, self._run_batch(conn, items))
        conn.close()

    def _run_batch(self, conn: sqlite3.Connection, items: list[Any]) -> list[Any]:
        if self.read_only:  # reads only: no transaction to open on a read-only file
            results: list[Any] = []
            for item in items:
                try:
                    results.append((item.future, item.fn(conn), None))
                except Exception as exc:
                    error = StoreUnavailable(str(exc)) if isinstance(exc, sqlite3.Error) else exc
                    results.append((item.future, None, error))
            return results
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = self._run_items(conn, items)
            conn.execute("COMMIT")
            return results
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        # Something failed: run each item on its own so one bad write does not take
        # the others down with it.
        results = []
        for item in items:
            try:
                conn.execute("BEGIN IMMEDIATE")
                results.extend(self._run_items(conn, [item]))
                conn.execute("COMMIT")
            except Exception as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                error = StoreUnavailable(str(exc)) if isinstance(exc, sqlite3.Error) else exc
                results.append((item.future, None, error))
        return results

    def _run_items(self, conn: sqlite3.Connection, items: list[Any]) -> list[Any]:
        results: list[Any] = []
        pending: dict[str, list[tuple[Any, ...]]] = {}
        for item in items:
            if isinstance(item, _Write):
                for kind, rows in item.rows.items():
                    pending.setdefault(kind, []).extend(rows)
                results.append((item.future, None, None))
            else:
                _execute_writes(conn, pending)
                pending = {}
                results.append((item.future, item.fn(conn), None))
        _execute_writes(conn, pending)
        return results

    def _write(self, rows: dict[str, list[tuple[Any, ...]]], owners: Iterable[int] = ()) -> asyncio.Future[None]:
        """Queue `rows`, with the history events pending for the messages `owners`."""
        if self._thread is None or self._loop is None:
            raise StoreUnavailable("store is closed")
        if self.read_only:
            raise StoreUnavailable(f"{self.path} is open read-only")
        events = self.journal.take(owners)
        if events:
            rows["insert_history"] = _history_rows(events)
        future: asyncio.Future[None] = self._loop.create_future()
        if not rows:
            future.set_result(None)
            return future
        future.add_done_callback(self._log_failure)
        self._queue.put(_Write(rows, future))
        return future

    def _log_failure(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._log.error("store_write_failed", error=str(future.exception()))

    async def _transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on the writer thread's connection, in order with the queued writes
        and inside their transaction (so it may write too: ids, purges, segments)."""
        if self._thread is None or self._loop is None:
            raise StoreUnavailable("store is closed")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Call(fn, future))
        return await future

    # -- ids -------------------------------------------------------------------------

    async def reserve_ids(self, count: int) -> int:
        def reserve(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()
            # A fresh database, or one whose counter is from before ids were bounded
            # (clock x 1000: its ids are all above the range), starts from the clock.
            first = row[0] if row and 1 <= row[0] <= MAX_MESSAGE_ID + 1 else id_seed(time.time())
            for _ in range(MAX_ID_PROBES):
                first = wrapped(first, count)
                last = first + count - 1
                taken = conn.execute(_HIGHEST_TAKEN, (first, last, first, last)).fetchone()[0]
                if taken is None:
                    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?)", (first + count,))
                    return int(first)
                first = taken + 1  # after the stored ids (after a wrap: still in retention)
            raise StoreUnavailable("no free message ids: the store holds too many messages")

        return await self._transact(reserve)

    # -- messages --------------------------------------------------------------------

    def insert_messages(self, messages: Sequence[Message]) -> Awaitable[None]:
        rows: dict[str, list[tuple[Any, ...]]] = {"insert_message": []}
        for m in messages:
            rows["insert_message"].append((*message_row(m), *_due(m)))
            if len(m.parts) > 1 or m.parts[0].message_id != m.id:
                rows.setdefault("insert_part", []).extend((p.message_id, m.id) for p in m.parts if p.message_id != m.id)
            if len(m.provider_ids) > 1:
                rows.setdefault("insert_provider_id", []).extend(_more_ids(m))
            self._remember(m)
        return self._write(rows, [m.id for m in messages])

    def update_messages(self, messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> Awaitable[None]:
        rows: dict[str, list[tuple[Any, ...]]] = {"update_message": []}
        for m in messages:
            rows["update_message"].append((*state_row(m), *_due(m), m.id))
            if len(m.provider_ids) > 1:
                rows.setdefault("insert_provider_id", []).extend(_more_ids(m))
            self._remember(m)
        if receipts:
            rows["insert_receipt"] = self._receipt_rows(receipts)
        return self._write(rows, [m.id for m in messages])

    def _remember(self, m: Message) -> None:
        """Keep not-final messages in memory for report lookups; forget final ones."""
        if m.lifecycle is Lifecycle.FINAL:
            if self._live.pop(m.id, None) is not None and m.provider:
                for pid in m.provider_ids:
                    self._by_provider.pop((m.provider, pid), None)
            return
        if m.id not in self._live and len(self._live) >= _LIVE_LIMIT:
            return
        self._live[m.id] = m
        if m.provider:
            for pid in m.provider_ids:
                self._by_provider[(m.provider, pid)] = m.id

    async def get_message(self, message_id: int) -> Message | None:
        live = self._live.get(message_id)
        if live is not None:
            return live

        def get(conn: sqlite3.Connection) -> Message | None:
            row = conn.execute(f"SELECT {self._select} FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                row = conn.execute(
                    f"SELECT {self._select_m} FROM part_ids p JOIN messages m ON m.id = p.message_id"
                    " WHERE p.part_id = ?",
                    (message_id,),
                ).fetchone()
            return _load(row) if row else None

        found = await self._transact(get)
        if found is not None and found.lifecycle is not Lifecycle.FINAL:
            found = self._live.setdefault(found.id, found)  # one object per unfinished message
        return found

    async def find_by_provider_id(self, provider: str, provider_id: str) -> Message | None:
        message_id = self._by_provider.get((provider, provider_id))
        if message_id is not None and message_id in self._live:
            return self._live[message_id]

        def find(conn: sqlite3.Connection) -> Message | None:
            row = None
            if self._select is _SELECT:
                row = conn.execute(
                    f"SELECT {_SELECT} FROM messages WHERE provider = ? AND provider_id = ? ORDER BY id DESC LIMIT 1",
                    (provider, provider_id),
                ).fetchone()
            if row is None:  # a further id, or one stored before ids were columns
                row = conn.execute(
                    f"SELECT {self._select_m} FROM provider_ids p JOIN messages m ON m.id = p.message_id"
                    " WHERE p.provider = ? AND p.provider_id = ?",
                    (provider, provider_id),
                ).fetchone()
            return _load(row) if row else None

        found = await self._transact(find)
        if found is not None and found.lifecycle is not Lifecycle.FINAL:
            found = self._live.setdefault(found.id, found)  # one object per message, whoever read it first
        return found

    async def messages_in(
        self, lifecycles: Sequence[int], provider: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[Message]:
        marks = ",".join("?" * len(lifecycles))
        sql = f"SELECT {self._select} FROM messages WHERE lifecycle IN ({marks}) AND id > ?"
        args: list[Any] = [*lifecycles, after_id]
        if provider is not None:
            sql += " AND provider = ?"
            args.append(provider)
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)

        def select(conn: sqlite3.Connection) -> list[Message]:
            return [_load(row) for row in conn.execute(sql, args)]

        found = await self._transact(select)
        out = []
        for message in found:
            live = self._live.get(message.id)
            if live is None and message.lifecycle is not Lifecycle.FINAL:
                self._remember(message)
                live = message
            out.append(live or message)
        return out

    async def due_messages(self, provider: str, now: float, limit: int = 500) -> list[Message]:
        def select(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                f"SELECT due_at, polls, {self._select} FROM messages WHERE provider = ? AND due_at <= ?"
                " ORDER BY due_at LIMIT ?",
                (provider, now, limit),
            ).fetchall()

        out = []
        for row in await self._transact(select):
            due_at, polls = row[0], row[1]
            message = _load(row[2:])
            live = self._live.get(message.id)
            if live is None:
                self._remember(message)
                live = message
            live.due_at, live.polls = due_at, polls
            out.append(live)
        return out

    async def next_due(self, provider: str) -> float | None:
        def select(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT MIN(due_at) FROM messages WHERE provider = ? AND due_at IS NOT NULL", (provider,)
            ).fetchone()
            return row[0] if row else None

        return await self._transact(select)

    def reschedule(self, messages: Sequence[Message]) -> Awaitable[None]:
        return self._write({"reschedule": [(m.due_at, m.polls, m.id) for m in messages]})

    async def purge(self, finished_before: float, limit: int = PURGE_BATCH) -> int:
        # By id, through the indexes on message_id: no record is decoded. One batch is
        # one short step of the writer thread, between the group commits of submits.
        def purge(conn: sqlite3.Connection) -> int:
            ids = conn.execute(
                "SELECT id FROM messages WHERE done_at IS NOT NULL AND done_at < ? AND lifecycle = ? LIMIT ?",
                (finished_before, int(Lifecycle.FINAL), limit),
            ).fetchall()
            conn.executemany("DELETE FROM provider_ids WHERE message_id = ?", ids)
            conn.executemany("DELETE FROM part_ids WHERE message_id = ?", ids)
            conn.executemany("DELETE FROM messages WHERE id = ?", ids)
            return len(ids)

        return await self._transact(purge)

    # -- segments --------------------------------------------------------------------

    async def add_segment(self, segment: PendingSegment) -> list[PendingSegment] | None:
        record = dump_segment(segment)

        def add(conn: sqlite3.Connection) -> list[PendingSegment] | None:
            conn.execute(
                "INSERT OR REPLACE INTO segments (set_key, idx, created_at, record, data) VALUES (?, ?, ?, ?, ?)",
                (segment.set_key, segment.index, segment.submitted_at, record, segment.data),
            )
            (count,) = conn.execute("SELECT COUNT(*) FROM segments WHERE set_key = ?", (segment.set_key,)).fetchone()
            if count < segment.total:
                return None
            rows = conn.execute(
                "SELECT record, data FROM segments WHERE set_key = ? ORDER BY idx", (segment.set_key,)
            ).fetchall()
            conn.execute("DELETE FROM segments WHERE set_key = ?", (segment.set_key,))
            return [load_segment(r, data) for r, data in rows]

        return await self._transact(add)

    async def take_expired_segments(self, created_before: float) -> list[PendingSegment]:
        def take(conn: sqlite3.Connection) -> list[PendingSegment]:
            keys = [
                row[0]
                for row in conn.execute("SELECT DISTINCT set_key FROM segments WHERE created_at < ?", (created_before,))
            ]
            out: list[PendingSegment] = []
            for key in keys:
                rows = conn.execute("SELECT record, data FROM segments WHERE set_key = ? ORDER BY idx", (key,))
                out.extend(load_segment(r, data) for r, data in rows)
                conn.execute("DELETE FROM segments WHERE set_key = ?", (key,))
            return out

        return await self._transact(take)

    # -- receipts --------------------------------------------------------------------

    def _receipt_rows(self, receipts: Sequence[Receipt]) -> list[tuple[Any, ...]]:
        rows = []
        for receipt in receipts:
            self._receipt_seq += 1
            rows.append((receipt.id, receipt.system_id, self._receipt_seq, dump_receipt(receipt)))
        return rows

    def add_receipts(self, receipts: Sequence[Receipt]) -> Awaitable[None]:
        owners = {receipt_owner(r.id, r.message_id) for r in receipts}
        return self._write({"insert_receipt": self._receipt_rows(receipts)}, owners)

    def update_receipt(self, receipt: Receipt) -> Awaitable[None]:
        owner = receipt_owner(receipt.id, receipt.message_id)
        return self._write({"update_receipt": [(dump_receipt(receipt), receipt.id)]}, [owner])

    def delete_receipt(self, receipt_id: str) -> Awaitable[None]:
        return self._write({"delete_receipt": [(receipt_id,)]}, [receipt_owner(receipt_id)])

    def delete_receipts(self, receipt_ids: Sequence[str]) -> None:
        self._write({"delete_receipt": [(i,) for i in receipt_ids]}, [receipt_owner(i) for i in receipt_ids])

    async def pending_receipts(self, system_id: str | None = None, limit: int = 10000) -> list[Receipt]:
        def select(conn: sqlite3.Connection) -> list[Receipt]:
            if system_id is None:
                rows = conn.execute("SELECT record FROM receipts ORDER BY seq LIMIT ?", (limit,))
            else:
                rows = conn.execute(
                    "SELECT record FROM receipts WHERE system_id = ? ORDER BY seq LIMIT ?", (system_id, limit)
                )
            return [load_receipt(row[0]) for row in rows]

        return await self._transact(select)

    # -- history and the operator's queries -------------------------------------------

    def flush_history(self, message_ids: Sequence[int]) -> Awaitable[None]:
        return self._write({}, message_ids)

    async def history(self, message_id: int) -> list[HistoryEvent]:
        def select(conn: sqlite3.Connection) -> list[HistoryEvent]:
            rows = conn.execute("SELECT record FROM history WHERE message_id = ? ORDER BY seq", (message_id,))
            return [event for row in rows for event in load_events(message_id, row[0])]

        return await self._transact(select)

    async def find_by_destination(self, destination: str, since: float, until: float, limit: int) -> list[Message]:
        def select(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(
                f"SELECT {self._select} FROM messages WHERE destination = ? AND created_at >= ? AND created_at < ?"
                " ORDER BY created_at LIMIT ?",
                (destination, since, until, limit),
            )
            return [_load(row) for row in rows]

        return [self._live.get(m.id, m) for m in await self._transact(select)]

    async def purge_history(self, before: float) -> int:
        # Rows are appended in time order: everything before the first young row is
        # old, found without an index on `at` by reading only the rows to delete.
        def purge(conn: sqlite3.Connection) -> int:
            young = conn.execute("SELECT seq FROM history WHERE at >= ? ORDER BY seq LIMIT 1", (before,)).fetchone()
            bound = young[0] if young else conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM history").fetchone()[0]
            cursor = conn.execute(
                "DELETE FROM history WHERE seq IN (SELECT seq FROM history WHERE seq < ? ORDER BY seq LIMIT ?)",
                (bound, HISTORY_PURGE_BATCH),
            )
            return cursor.rowcount

        total = 0
        while True:
            deleted = await self._transact(purge)
            total += deleted
            if deleted < HISTORY_PURGE_BATCH:
                return total

    async def incomplete_sets(self, limit: int = 1000) -> list[list[PendingSegment]]:
        def select(conn: sqlite3.Connection) -> list[list[PendingSegment]]:
            sets: dict[str, list[PendingSegment]] = {}
            rows = conn.execute(
                "SELECT s.set_key, s.record FROM segments s JOIN"
                " (SELECT set_key, MIN(created_at) AS began FROM segments GROUP BY set_key"
                "  ORDER BY began LIMIT ?) o ON o.set_key = s.set_key ORDER BY o.began, s.idx",
                (limit,),
            )
            for set_key, record in rows:
                sets.setdefault(set_key, []).append(load_segment(record, b""))
            return list(sets.values())

        return await self._transact(select)


def _add_history(conn: sqlite3.Connection) -> None:
    """The history table and the destination index (columns added to older stores)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    for column, kind in (("destination", "TEXT"), ("created_at", "REAL")):
        if column not in columns:
            conn.execute(f"ALTER TABLE messages ADD COLUMN {column} {kind}")
    conn.executescript(HISTORY_SCHEMA)


def _history_rows(events: Sequence[HistoryEvent]) -> list[tuple[Any, ...]]:
    """One row per message: its events of this write together (one statement each)."""
    by_message: dict[int, list[HistoryEvent]] = {}
    for e in events:
        by_message.setdefault(e.message_id, []).append(e)
    return [(message_id, group[0].at, dump_events(group)) for message_id, group in by_message.items()]


def _more_ids(m: Message) -> list[tuple[str | None, str, int]]:
    """The provider-id index rows of a message's ids beyond the first (its column)."""
    return [(m.provider, pid, m.id) for pid in m.provider_ids[1:]]


# What a read of a message selects, and `_load` makes a Message of: the JSON record of
# a row from an older store, or else the columns. An older store opened read-only (the
# operator's CLI on a stopped daemon's file: never migrated) has only records.
_SELECT = f"record, {MESSAGE_COLUMNS}"
_SELECT_M = "m.record, " + ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))
_SELECT_RECORDS = "record" + ", NULL" * (MESSAGE_COLUMNS.count(",") + 1)
_SELECT_RECORDS_M = "m." + _SELECT_RECORDS


def _load(row: Sequence[Any]) -> Message:
    return load_message(row[0]) if row[0] else row_message(row[1:])


def _due(m: Message) -> tuple[float | None, int]:
    """The due columns of a message as written with its lifecycle."""
    return (m.due_at, m.polls) if m.lifecycle is Lifecycle.ACCEPTED else (None, 0)


def _migrate(conn: sqlite3.Connection) -> None:
    """Add the columns an older database lacks, and rewrite its unfinished messages
    as columns, in one transaction."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    missing = [statements for column, statements in MIGRATE.items() if column not in columns]
    missing.extend(
        (f"ALTER TABLE messages ADD COLUMN {column} {kind}",)
        for column, kind in MESSAGE_FIELDS
        if column not in columns
    )
    if missing:
        conn.execute("BEGIN IMMEDIATE")
        for statements in missing:
            for statement in statements:
                conn.execute(statement)
        _columns_from_records(conn)
        conn.execute("COMMIT")
    conn.execute(DUE_INDEX)
    conn.execute(PROVIDER_ID_INDEX)


def _columns_from_records(conn: sqlite3.Connection) -> None:
    """An older store's unfinished messages (they still change) rewritten as columns,
    their due time and polls kept; the finished ones keep their JSON record."""
    names = [c.strip() for c in MESSAGE_COLUMNS.split(",")][1:]
    rewrite = f"UPDATE messages SET {', '.join(f'{n} = ?' for n in names)}, record = '' WHERE id = ?"
    found = conn.execute("SELECT record FROM messages WHERE record != '' AND lifecycle != ?", (int(Lifecycle.FINAL),))
    rows = []
    for (record,) in found.fetchall():
        try:
            rows.append(message_row(load_message(record)))
        except (ValueError, TypeError):  # unreadable before as after: left as it is, not in the way of the others
            continue
    conn.executemany(rewrite, [(*row[1:], row[0]) for row in rows])


def _execute_writes(conn: sqlite3.Connection, pending: dict[str, list[tuple[Any, ...]]]) -> None:
    if not pending:
        return
    for kind, sql in WRITES:
        rows = pending.get(kind)
        if rows:
            conn.executemany(sql, rows)


def _settle(results: list[Any]) -> None:
    for future, value, error in results:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
