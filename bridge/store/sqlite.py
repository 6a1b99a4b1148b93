"""Embedded store on SQLite (WAL), with group commit, written by a process of its own.

Writes are queued as rows; the writer takes everything that is waiting, runs each
kind of write as one `executemany` in a fixed order, and commits once: N concurrent
submits cost one fsync and a handful of statements, not N of each. `synchronous=FULL`
makes a completed write survive a power cut; a process crash (kill -9) loses nothing
either way.

The writer is a child process (bridge/store/sqlite_writer.py), not a thread: the
daemon's process is bound to one core by the GIL, and the writes took a quarter of
it. The event loop sends each batch over a pipe and resolves its futures when the
writer answers, after COMMIT; operations that write besides the hot rows (ids,
purges, segments) are named operations of the writer, run in order with the rows.
Reads run on a thread of the daemon with a read connection of their own (WAL: they
never wait for the writer); a read waits for the writes queued before it, so it sees
them. If the writer dies, every write not yet answered fails (StoreUnavailable:
nothing uncommitted was acknowledged), and a new writer is started.

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
stopped daemon's file for the operator's CLI without ever writing to it (no writer:
the reading thread alone).
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import contextlib
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import bridge
from bridge.core.history import HistoryEvent, receipt_owner, with_received
from bridge.core.message import Lifecycle, Message, PendingSegment, Receipt
from bridge.core.ports import MAX_MESSAGE_ID, PURGE_BATCH, Store, StoreUnavailable
from bridge.logging import get_logger
from bridge.store.ids import MAX_ID_PROBES, id_seed
from bridge.store.records import (
    MESSAGE_COLUMNS,
    due_columns,
    dump_receipt,
    dump_segment,
    history_rows,
    insert_rows,
    load_events,
    load_message,
    load_receipt,
    load_segment,
    row_message,
    state_row,
)
from bridge.store.sqlite_writer import (
    HISTORY_PURGE_BATCH,
    INCOMPLETE,
    SCHEMA,
    UNFINISHED,
    WRITES,
    Item,
    Result,
    frame,
    take_frame,
)

__all__ = ["SCHEMA", "WRITES", "SqliteStore"]

T = TypeVar("T")
Rows = dict[str, list[tuple[Any, ...]]]

_STOP = object()
_LIVE_LIMIT = 500_000  # messages kept in memory for report lookups; beyond, the disk answers
_RESTART_DELAYS = (0.0, 0.1, 0.5, 1.0, 5.0)  # between attempts to start a writer again
_IN_FLIGHT = 2  # frames sent and not answered at most: one running, the next waiting
_STOP_TIMEOUT = 30.0  # for the writer to exit once its pipe is closed (it commits nothing more)


class _Frames(asyncio.Protocol):
    """The writer's answers, as they arrive on its stdout."""

    def __init__(self, store: SqliteStore, process: subprocess.Popen[bytes]) -> None:
        self.store = store
        self.process = process
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (answer := take_frame(self.buffer)) is not INCOMPLETE:
            self.store._answered(self.process, answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.store._writer_lost(self.process)


class SqliteStore(Store):
    # What starts a writer (its arguments follow): this interpreter, this package.
    writer_command: tuple[str, ...] = (sys.executable, "-m", "bridge.store.sqlite_writer")

    def __init__(
        self,
        path: Path | str,
        synchronous: str = "FULL",
        read_only: bool = False,
        trace: Callable[[str], object] | None = None,
    ) -> None:
        """`trace` is given every SQL statement the store runs, with its values
        (sqlite3's trace callback: what a test counts). The writer's are given on the
        event loop with its answer, before the futures it resolves; the reads' on the
        reading thread."""
        super().__init__()
        self.path = Path(path)
        self.synchronous = synchronous
        self.read_only = read_only
        self.trace = trace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = get_logger("store")
        self._live: dict[int, Message] = {}
        self._by_provider: dict[tuple[str, str], int] = {}
        self._receipt_seq = 0
        self._select, self._select_m = _SELECT, _SELECT_M
        # The reading thread.
        self._reads: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._reader: threading.Thread | None = None
        # The writer process: the items queued and not sent, the batch it is running.
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: asyncio.WriteTransport | None = None
        self._queued: list[Item] = []
        self._queued_futures: list[asyncio.Future[Any]] = []
        self._sent: collections.deque[asyncio.Future[Any]] = collections.deque()  # in the pipe or running
        self._frames: collections.deque[int] = collections.deque()  # items of each frame not answered
        self._send_soon = False
        self._last: asyncio.Future[Any] | None = None  # the last item queued: what a read waits for
        self._down = "store is closed"  # why writes fail while there is no writer
        self._restart: asyncio.Task[None] | None = None
        self._serving = False  # the writer answered that it is ready
        self._closing = False

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid while one runs (what a failure-injection test kills)."""
        return self._process.pid if self._process is not None and self._pipe is not None else None

    # -- opening and closing -----------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = False
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._receipt_seq = await self._start_writer()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._reader = threading.Thread(target=self._serve_reads, args=(ready,), name="sqlite-store", daemon=True)
        self._reader.start()
        try:
            await ready
        except BaseException:
            self._reader = None
            await self._stop_writer()
            raise

    async def close(self) -> None:
        """Let the queued writes commit, then close the writer's pipe (it exits) and
        stop the reading thread."""
        if self._reader is None and self._process is None:
            return
        self._closing = True
        while self._last is not None and not self._last.done():
            await asyncio.wait([self._last])
        restart, self._restart = self._restart, None
        if restart is not None:
            restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await restart
        self._down = "store is closed"
        await self._stop_writer()
        if self._reader is not None:
            self._reads.put(_STOP)
            await asyncio.get_running_loop().run_in_executor(None, self._reader.join)
            self._reader = None

    # -- the writer process -------------------------------------------------------------

    async def _start_writer(self) -> int:
        """Start a writer and wait for its first answer: the schema is up to date (an
        older store migrated), and the highest receipt sequence number."""
        loop = self._loop
        assert loop is not None
        # The child imports the same `bridge` as this process, wherever it runs from.
        root = str(Path(bridge.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
        args = [*self.writer_command, str(self.path), self.synchronous, "trace" if self.trace else "-"]
        try:
            # Its own process group: a terminal's Ctrl-C is the daemon's to handle (it
            # ignores SIGINT and SIGTERM too, once started: bridge/store/sqlite_writer.py).
            process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, process_group=0)
        except OSError as exc:
            raise StoreUnavailable(f"cannot start the store's writer process: {exc}") from exc
        assert process.stdin is not None and process.stdout is not None
        ready: asyncio.Future[int] = loop.create_future()
        self._process, self._sent, self._serving = process, collections.deque([ready]), False
        self._frames = collections.deque([1])
        pipe: asyncio.WriteTransport | None = None
        try:
            await loop.connect_read_pipe(lambda: _Frames(self, process), process.stdout)
            pipe, _ = await loop.connect_write_pipe(asyncio.Protocol, process.stdin)
            if self._process is process:  # (not lost meanwhile)
                self._pipe = pipe
            seq = await ready
        except BaseException:
            if self._process is process:
                self._process = self._pipe = None
            await _end(process, pipe)
            raise
        self._serving = True
        self._log.info("store_writer_started", pid=process.pid)
        return int(seq)

    async def _stop_writer(self) -> None:
        """Close the writer's pipe and wait for it to exit."""
        process, pipe = self._process, self._pipe
        self._process = self._pipe = None
        if process is not None:
            await _end(process, pipe)

    def _send(self) -> None:
        """Send what is queued as one frame, unless two are unanswered already: one
        the writer runs, the next waiting for it (no idle writer between them; what
        comes meanwhile waits in `_queued` and goes as one frame with the answer).
        The writer, once free, takes every frame waiting into one transaction."""
        self._send_soon = False
        if not self._queued or self._pipe is None or len(self._frames) >= _IN_FLIGHT:
            return
        items, futures = self._queued, self._queued_futures
        self._queued, self._queued_futures = [], []
        self._sent.extend(futures)
        self._frames.append(len(items))
        self._pipe.write(frame(items))

    def _answered(self, process: subprocess.Popen[bytes], answer: tuple[list[Result], list[str]]) -> None:
        if process is not self._process:
            return
        results, statements = answer
        if self.trace is not None:
            for statement in statements:
                self.trace(statement)
        answered = len(results)
        while answered > 0:
            answered -= self._frames.popleft()
        sent = self._sent
        for kind, value in results:
            future = sent.popleft()
            if future.done():
                continue
            if kind is None:
                future.set_result(value)
            else:
                future.set_exception(_failed(kind, value))
        if self._queued:
            self._send()

    def _writer_lost(self, process: subprocess.Popen[bytes]) -> None:
        """The writer's stdout closed: it exited. At a stop, with nothing owed, that is
        the end; otherwise every write not answered fails and a new writer starts."""
        if process is not self._process:
            return
        owed = [*self._sent, *self._queued_futures]
        if self._closing and not owed:
            return
        cause = _exit_cause(process.poll())
        self._down = f"the store's writer process ended ({cause}); a new one is starting"
        failed = StoreUnavailable(f"the store's writer process ended ({cause}) before it committed this write")
        self._sent, self._queued, self._queued_futures = collections.deque(), [], []
        self._frames = collections.deque()
        if self._pipe is not None:
            self._pipe.close()
        self._process = self._pipe = None
        for future in owed:
            if not future.done():
                future.set_exception(failed)
        if self._serving and self._restart is None:  # (one that never got ready: its starter says why)
            self._restart = asyncio.get_running_loop().create_task(self._after_death(process, len(owed)))

    async def _after_death(self, dead: subprocess.Popen[bytes], failed: int) -> None:
        """Log why the writer ended (once reaped: no zombie), then start a new one."""
        loop = asyncio.get_running_loop()
        try:
            cause = _exit_cause(await loop.run_in_executor(None, dead.wait))
            self._log.error("store_writer_died", pid=dead.pid, cause=cause, writes_failed=failed)
            attempt = 0
            while not self._closing:
                await asyncio.sleep(_RESTART_DELAYS[min(attempt, len(_RESTART_DELAYS) - 1)])
                attempt += 1
                try:
                    await self._start_writer()
                except Exception as exc:
                    self._down = str(exc)
                    self._log.error("store_writer_start_failed", error=str(exc), attempt=attempt)
                    continue
                self._down = ""
                return
        finally:
            self._restart = None

    def _queue(self, item: Item) -> asyncio.Future[Any]:
        """Queue an item for the writer (sent at the loop's next turn with whatever
        else is queued by then, or when the writer answers the batch it is running)."""
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[Any] = loop.create_future()
        if self._pipe is None:
            future.set_exception(StoreUnavailable(self._down))
            return future
        self._queued.append(item)
        self._queued_futures.append(future)
        self._last = future
        if not self._send_soon:
            self._send_soon = True
            loop.call_soon(self._send)
        return future

    def _write(self, rows: Rows, owners: Iterable[int] = ()) -> asyncio.Future[None]:
        """Queue `rows`, with the history events pending for the messages `owners`."""
        if self._loop is None or self._reader is None:
            raise StoreUnavailable("store is closed")
        if self.read_only:
            raise StoreUnavailable(f"{self.path} is open read-only")
        events = self.journal.take(owners)
        if events:
            rows["insert_history"] = history_rows(events)
        if not rows:
            future: asyncio.Future[None] = self._loop.create_future()
            future.set_result(None)
            return future
        future = self._queue(rows)
        future.add_done_callback(self._log_failure)
        return future

    def _log_failure(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._log.error("store_write_failed", error=str(future.exception()))

    async def _operate(self, name: str, *args: Any) -> Any:
        """Run the writer's operation `name` (bridge/store/sqlite_writer.py, OPERATIONS)
        in order with the queued writes and inside their transaction."""
        if self._loop is None or self._reader is None:
            raise StoreUnavailable("store is closed")
        if self.read_only:
            raise StoreUnavailable(f"{self.path} is open read-only")
        return await self._queue((name, args))

    # -- the reading thread --------------------------------------------------------------

    def _serve_reads(self, ready: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            if self.read_only:
                conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False)
                conn.execute("SELECT COUNT(*) FROM messages")
                self._select, self._select_m = _selects({row[1] for row in conn.execute("PRAGMA table_info(messages)")})
            else:
                conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA query_only=1")
            conn.set_trace_callback(self.trace)
        except Exception as exc:
            loop.call_soon_threadsafe(_settle, [(ready, None, StoreUnavailable(f"cannot open {self.path}: {exc}"))])
            return
        loop.call_soon_threadsafe(_settle, [(ready, None, None)])
        while (item := self._reads.get()) is not _STOP:
            fn, future = item
            result: tuple[asyncio.Future[Any], Any, Exception | None]
            try:
                result = (future, fn(conn), None)
            except Exception as exc:
                result = (future, None, StoreUnavailable(str(exc)) if isinstance(exc, sqlite3.Error) else exc)
            loop.call_soon_threadsafe(_settle, [result])
        conn.close()

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on the reading thread's connection, once the writes queued before
        it are committed (so it sees them)."""
        if self._loop is None or self._reader is None:
            raise StoreUnavailable("store is closed")
        last = self._last
        if last is not None and not last.done():
            await asyncio.wait([last])  # its outcome is its writer's to hear
        future: asyncio.Future[T] = self._loop.create_future()
        self._reads.put((fn, future))
        return await future

    # -- ids -------------------------------------------------------------------------

    async def reserve_ids(self, count: int) -> int:
        return int(await self._operate("reserve_ids", count, id_seed(time.time()), MAX_MESSAGE_ID, MAX_ID_PROBES))

    # -- messages --------------------------------------------------------------------

    def insert_messages(self, messages: Sequence[Message]) -> Awaitable[None]:
        rows: dict[str, list[tuple[Any, ...]]] = {"insert_message": insert_rows(messages)}
        for m in messages:
            if len(m.parts) > 1 or m.parts[0].message_id != m.id:
                rows.setdefault("insert_part", []).extend((p.message_id, m.id) for p in m.parts if p.message_id != m.id)
            if len(m.provider_ids) > 1:
                rows.setdefault("insert_provider_id", []).extend(_more_ids(m))
            self._remember(m)
        return self._write(rows, [m.id for m in messages])

    def update_messages(self, messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> Awaitable[None]:
        rows: dict[str, list[tuple[Any, ...]]] = {"update_message": []}
        for m in messages:
            rows["update_message"].append((*state_row(m), *due_columns(m), m.id))
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

        found = await self._read(get)
        if found is not None and found.lifecycle is not Lifecycle.FINAL:
            found = self._live.setdefault(found.id, found)  # one object per unfinished message
        return found

    async def find_by_provider_id(self, provider: str, provider_id: str) -> Message | None:
        message_id = self._by_provider.get((provider, provider_id))
        if message_id is not None and message_id in self._live:
            return self._live[message_id]

        def find(conn: sqlite3.Connection) -> Message | None:
            row = None
            if self._select is not _SELECT_RECORDS:
                row = conn.execute(
                    f"SELECT {self._select} FROM messages WHERE provider = ? AND provider_id = ?"
                    " ORDER BY id DESC LIMIT 1",
                    (provider, provider_id),
                ).fetchone()
            if row is None:  # a further id, or one stored before ids were columns
                row = conn.execute(
                    f"SELECT {self._select_m} FROM provider_ids p JOIN messages m ON m.id = p.message_id"
                    " WHERE p.provider = ? AND p.provider_id = ?",
                    (provider, provider_id),
                ).fetchone()
            return _load(row) if row else None

        found = await self._read(find)
        if found is not None and found.lifecycle is not Lifecycle.FINAL:
            found = self._live.setdefault(found.id, found)  # one object per message, whoever read it first
        return found

    async def messages_in(
        self, lifecycles: Sequence[int], provider: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[Message]:
        marks = ",".join("?" * len(lifecycles))
        sql = f"SELECT {self._select} FROM messages WHERE lifecycle IN ({marks}) AND id > ?"
        if Lifecycle.FINAL not in lifecycles:
            sql += f" AND {UNFINISHED}"  # what lets the planner use the index of unfinished messages
        args: list[Any] = [*lifecycles, after_id]
        if provider is not None:
            sql += " AND provider = ?"
            args.append(provider)
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)

        def select(conn: sqlite3.Connection) -> list[Message]:
            return [_load(row) for row in conn.execute(sql, args)]

        found = await self._read(select)
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
        for row in await self._read(select):
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

        return await self._read(select)

    def reschedule(self, messages: Sequence[Message]) -> Awaitable[None]:
        return self._write({"reschedule": [(m.due_at, m.polls, m.id) for m in messages]})

    async def purge(self, finished_before: float, limit: int = PURGE_BATCH) -> int:
        return int(await self._operate("purge", finished_before, limit))

    # -- segments --------------------------------------------------------------------

    async def add_segment(self, segment: PendingSegment) -> list[PendingSegment] | None:
        rows = await self._operate(
            "add_segment",
            segment.set_key,
            segment.index,
            segment.submitted_at,
            dump_segment(segment),
            segment.data,
            segment.total,
        )
        return None if rows is None else [load_segment(record, data) for record, data in rows]

    async def take_expired_segments(self, created_before: float) -> list[PendingSegment]:
        rows = await self._operate("take_expired_segments", created_before)
        return [load_segment(record, data) for record, data in rows]

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

        return await self._read(select)

    # -- history and the operator's queries -------------------------------------------

    def flush_history(self, message_ids: Sequence[int]) -> Awaitable[None]:
        return self._write({}, message_ids)

    async def history(self, message_id: int) -> list[HistoryEvent]:
        def select(conn: sqlite3.Connection) -> tuple[Message | None, list[HistoryEvent]]:
            row = conn.execute(f"SELECT {self._select} FROM messages WHERE id = ?", (message_id,)).fetchone()
            rows = conn.execute("SELECT record FROM history WHERE message_id = ? ORDER BY seq", (message_id,))
            return (_load(row) if row else None), [e for r in rows for e in load_events(message_id, r[0])]

        message, written = await self._read(select)
        return with_received(message, written)

    async def find_by_destination(self, destination: str, since: float, until: float, limit: int) -> list[Message]:
        def select(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(
                f"SELECT {self._select} FROM messages WHERE destination = ? AND created_at >= ? AND created_at < ?"
                " ORDER BY created_at LIMIT ?",
                (destination, since, until, limit),
            )
            return [_load(row) for row in rows]

        return [self._live.get(m.id, m) for m in await self._read(select)]

    async def purge_history(self, before: float) -> int:
        total = 0
        while True:
            deleted = int(await self._operate("purge_history", before))
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

        return await self._read(select)


def _more_ids(m: Message) -> list[tuple[str | None, str, int]]:
    """The provider-id index rows of a message's ids beyond the first (its column)."""
    return [(m.provider, pid, m.id) for pid in m.provider_ids[1:]]


# What a read of a message selects, and `_load` makes a Message of: the JSON record of
# a row from an older store, or else the columns. An older store opened read-only (the
# operator's CLI on a stopped daemon's file: never migrated) may lack columns: it reads
# NULL for them (`_selects`), and one from before the columns has only records.
_COLUMNS = [c.strip() for c in MESSAGE_COLUMNS.split(",")]
_SELECT = f"record, {MESSAGE_COLUMNS}"
_SELECT_M = "m.record, " + ", ".join(f"m.{c}" for c in _COLUMNS)
_SELECT_RECORDS = "record" + ", NULL" * len(_COLUMNS)
_SELECT_RECORDS_M = "m." + _SELECT_RECORDS


def _selects(present: set[str]) -> tuple[str, str]:
    """`_SELECT` and `_SELECT_M` for a store with the columns `present` (read-only:
    never migrated): NULL for a column it lacks; a store without the provider id
    column keeps records only (`_SELECT_RECORDS`)."""
    if "provider_id" not in present:
        return _SELECT_RECORDS, _SELECT_RECORDS_M
    if present.issuperset(_COLUMNS):
        return _SELECT, _SELECT_M
    columns = [c if c in present else "NULL" for c in _COLUMNS]
    return ", ".join(["record", *columns]), ", ".join(["m.record", *(c if c == "NULL" else f"m.{c}" for c in columns)])


def _load(row: Sequence[Any]) -> Message:
    return load_message(row[0]) if row[0] else row_message(row[1:])


async def _end(process: subprocess.Popen[bytes], pipe: asyncio.WriteTransport | None) -> None:
    """Close a writer's stdin (it exits at the end of its input) and wait for it
    (killed if it does not exit: it has nothing more to commit)."""
    if pipe is not None:
        pipe.close()
    elif process.stdin is not None:
        process.stdin.close()
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, process.wait, _STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        get_logger("store").error("store_writer_stuck", pid=process.pid)
        process.kill()
        await loop.run_in_executor(None, process.wait)


def _failed(kind: str, text: str) -> Exception:
    """The exception of an item the writer failed (`sqlite_writer.failure`)."""
    if kind == "StoreUnavailable":
        return StoreUnavailable(text)
    cls = getattr(builtins, kind, None)
    return cls(text) if isinstance(cls, type) and issubclass(cls, Exception) else RuntimeError(f"{kind}: {text}")


def _exit_cause(returncode: int | None) -> str:
    if returncode is None:
        return "its pipe closed"
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _settle(results: list[Any]) -> None:
    for future, value, failure in results:
        if future.done():
            continue
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(value)
