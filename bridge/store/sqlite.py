"""Embedded store on SQLite (WAL), with group commit.

One thread owns the connection. Every operation is queued to it; the thread takes
everything that is waiting, runs it in one transaction and commits once, so N
concurrent submits cost one fsync, not N. `synchronous=FULL` makes a returned
write survive a power cut; a process crash (kill -9) loses nothing either way.

Why not aiosqlite: it makes one thread hop and one commit per call; batching the
commits is the point here.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bridge.core.message import Address, Lifecycle, Message, PendingSegment, Receipt
from bridge.store.base import Store, StoreUnavailable

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    lifecycle INTEGER NOT NULL,
    first_provider TEXT NOT NULL,
    provider TEXT,
    done_at REAL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_lifecycle ON messages (lifecycle, id);
CREATE INDEX IF NOT EXISTS messages_by_done_at ON messages (done_at) WHERE done_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS part_ids (
    part_id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS provider_ids (
    provider TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (provider, provider_id)
) WITHOUT ROWID;
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_by_system_id ON receipts (system_id, id);
"""

_STOP = object()
_MAX_BATCH = 2000


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


class SqliteStore(Store):
    def __init__(self, path: Path | str, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0  # transactions committed (for the benchmark's notes)

    # -- the writer thread -----------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="sqlite-store", daemon=True)
        self._thread.start()
        await ready

    async def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._thread = None

    def _serve(self, ready: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            error = StoreUnavailable(f"cannot open {self.path}: {exc}")
            loop.call_soon_threadsafe(_settle, [(ready, None, error)])
            return
        loop.call_soon_threadsafe(_settle, [(ready, None, None)])
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                results = self._run_batch(conn, batch)
                loop.call_soon_threadsafe(_settle, results)
        conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[tuple[asyncio.Future[Any], Operation]]) -> list[Any]:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for future, operation in batch:
                results.append((future, operation(conn), None))
            conn.execute("COMMIT")
            self.commits += 1
            return results
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        # Something failed: run each operation on its own so one bad write does not
        # take the others down with it.
        results = []
        for future, operation in batch:
            try:
                conn.execute("BEGIN IMMEDIATE")
                value = operation(conn)
                conn.execute("COMMIT")
                results.append((future, value, None))
            except Exception as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                error = StoreUnavailable(str(exc)) if isinstance(exc, sqlite3.Error) else exc
                results.append((future, None, error))
        return results

    async def _call(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None or self._loop is None:
            raise StoreUnavailable("store is closed")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((future, operation))
        return await future

    # -- ids -------------------------------------------------------------------------

    async def reserve_ids(self, count: int) -> int:
        def reserve(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()
            # A fresh database starts from the clock, so ids stay new even after
            # the database was deleted (unless the last one averaged >1000/s).
            first = row[0] if row else int(time.time()) * 1000
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?)", (first + count,))
            return int(first)

        return await self._call(reserve)

    # -- messages --------------------------------------------------------------------

    async def save_messages(self, messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> None:
        rows = [
            (m.id, int(m.lifecycle), m.route[0] if m.route else "", m.provider, m.done_at, _dumps(m.to_record()))
            for m in messages
        ]
        parts = [(p.message_id, m.id) for m in messages for p in m.parts if p.message_id != m.id]
        provider_ids = [(m.provider, pid, m.id) for m in messages if m.provider for pid in m.provider_ids]

        def save(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR REPLACE INTO messages (id, lifecycle, first_provider, provider, done_at, record)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            if parts:
                conn.executemany("INSERT OR IGNORE INTO part_ids (part_id, message_id) VALUES (?, ?)", parts)
            if provider_ids:
                conn.executemany(
                    "INSERT OR REPLACE INTO provider_ids (provider, provider_id, message_id) VALUES (?, ?, ?)",
                    provider_ids,
                )
            if receipts:
                _insert_receipts(conn, receipts)

        await self._call(save)

    async def get_message(self, message_id: int) -> Message | None:
        def get(conn: sqlite3.Connection) -> Message | None:
            row = conn.execute("SELECT record FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT m.record FROM part_ids p JOIN messages m ON m.id = p.message_id WHERE p.part_id = ?",
                    (message_id,),
                ).fetchone()
            return Message.from_record(json.loads(row[0])) if row else None

        return await self._call(get)

    async def find_by_provider_id(self, provider: str, provider_id: str) -> Message | None:
        def find(conn: sqlite3.Connection) -> Message | None:
            row = conn.execute(
                "SELECT m.record FROM provider_ids p JOIN messages m ON m.id = p.message_id"
                " WHERE p.provider = ? AND p.provider_id = ?",
                (provider, provider_id),
            ).fetchone()
            return Message.from_record(json.loads(row[0])) if row else None

        return await self._call(find)

    async def messages_in(
        self, lifecycles: Sequence[int], provider: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[Message]:
        marks = ",".join("?" * len(lifecycles))
        sql = f"SELECT record FROM messages WHERE lifecycle IN ({marks}) AND id > ?"
        args: list[Any] = [*lifecycles, after_id]
        if provider is not None:
            sql += " AND provider = ?"
            args.append(provider)
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)

        def select(conn: sqlite3.Connection) -> list[Message]:
            return [Message.from_record(json.loads(row[0])) for row in conn.execute(sql, args)]

        return await self._call(select)

    async def count_outbox(self) -> dict[str, int]:
        def count(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT first_provider, COUNT(*) FROM messages WHERE lifecycle IN (?, ?) GROUP BY first_provider",
                (int(Lifecycle.QUEUED), int(Lifecycle.SENDING)),
            )
            return {provider: n for provider, n in rows}

        return await self._call(count)

    async def purge(self, finished_before: float) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT id, record FROM messages WHERE done_at IS NOT NULL AND done_at < ? AND lifecycle = ?"
                " LIMIT 5000",
                (finished_before, int(Lifecycle.FINAL)),
            ).fetchall()
            for message_id, record in rows:
                message = Message.from_record(json.loads(record))
                conn.executemany(
                    "DELETE FROM provider_ids WHERE provider = ? AND provider_id = ?",
                    [(message.provider, pid) for pid in message.provider_ids],
                )
                conn.executemany(
                    "DELETE FROM part_ids WHERE part_id = ? AND message_id = ?",
                    [(p.message_id, message_id) for p in message.parts],
                )
            conn.executemany("DELETE FROM messages WHERE id = ?", [(row[0],) for row in rows])
            return len(rows)

        return await self._call(purge)

    # -- segments --------------------------------------------------------------------

    async def add_segment(self, segment: PendingSegment) -> list[PendingSegment] | None:
        record = _dumps(_segment_record(segment))

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
            return [_segment_from(json.loads(r), data) for r, data in rows]

        return await self._call(add)

    async def take_expired_segments(self, created_before: float) -> list[PendingSegment]:
        def take(conn: sqlite3.Connection) -> list[PendingSegment]:
            keys = [
                row[0]
                for row in conn.execute("SELECT DISTINCT set_key FROM segments WHERE created_at < ?", (created_before,))
            ]
            out: list[PendingSegment] = []
            for key in keys:
                rows = conn.execute("SELECT record, data FROM segments WHERE set_key = ? ORDER BY idx", (key,))
                out.extend(_segment_from(json.loads(r), data) for r, data in rows)
                conn.execute("DELETE FROM segments WHERE set_key = ?", (key,))
            return out

        return await self._call(take)

    # -- receipts --------------------------------------------------------------------

    async def add_receipts(self, receipts: Sequence[Receipt]) -> None:
        await self._call(lambda conn: _insert_receipts(conn, receipts))

    async def pending_receipts(self, system_id: str | None = None, limit: int = 10000) -> list[Receipt]:
        def select(conn: sqlite3.Connection) -> list[Receipt]:
            if system_id is None:
                rows = conn.execute("SELECT id, record FROM receipts ORDER BY id LIMIT ?", (limit,))
            else:
                rows = conn.execute(
                    "SELECT id, record FROM receipts WHERE system_id = ? ORDER BY id LIMIT ?", (system_id, limit)
                )
            out = []
            for receipt_id, record in rows:
                receipt = Receipt.from_record(json.loads(record))
                receipt.id = receipt_id
                out.append(receipt)
            return out

        return await self._call(select)

    async def delete_receipt(self, receipt_id: int) -> None:
        await self._call(lambda conn: conn.execute("DELETE FROM receipts WHERE id = ?", (receipt_id,)))

    async def update_receipt(self, receipt: Receipt) -> None:
        record = _dumps(receipt.to_record())
        await self._call(lambda conn: conn.execute("UPDATE receipts SET record = ? WHERE id = ?", (record, receipt.id)))


def _insert_receipts(conn: sqlite3.Connection, receipts: Sequence[Receipt]) -> None:
    for receipt in receipts:
        cursor = conn.execute(
            "INSERT INTO receipts (system_id, record) VALUES (?, ?)", (receipt.system_id, _dumps(receipt.to_record()))
        )
        receipt.id = int(cursor.lastrowid or 0)


def _segment_record(segment: PendingSegment) -> dict[str, Any]:
    return {
        "set_key": segment.set_key,
        "system_id": segment.system_id,
        "index": segment.index,
        "total": segment.total,
        "message_id": segment.message_id,
        "data_coding": segment.data_coding,
        "registered_delivery": segment.registered_delivery,
        "submitted_at": segment.submitted_at,
        "flash": segment.flash,
        "source": [segment.source.ton, segment.source.npi, segment.source.addr],
        "destination": [segment.destination.ton, segment.destination.npi, segment.destination.addr],
    }


def _segment_from(record: dict[str, Any], data: bytes) -> PendingSegment:
    return PendingSegment(
        set_key=record["set_key"],
        system_id=record["system_id"],
        index=record["index"],
        total=record["total"],
        message_id=record["message_id"],
        data=bytes(data),
        data_coding=record["data_coding"],
        registered_delivery=record["registered_delivery"],
        submitted_at=record["submitted_at"],
        flash=record["flash"],
        source=Address(*record["source"]),
        destination=Address(*record["destination"]),
    )


def _settle(results: list[Any]) -> None:
    for future, value, error in results:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
