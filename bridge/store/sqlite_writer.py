"""The SQLite store's writer process: it owns the write connection (issue 16).

The daemon's process is bound to one core by the GIL, and running the writes there
(executemany, the commit, the thread hand-offs around them) took about a quarter of
it. So one process of its own runs them, on the other core: `SqliteStore` sends what
is queued as one frame on this process's stdin (two frames unanswered at most: one
running, the next waiting), and resolves the futures when the answer comes back on
its stdout, after COMMIT (a write acknowledged is a write committed). The writer,
once free, takes every frame waiting into one transaction, as the writer thread
took everything queued: hot writes (rows
by kind, run as one `executemany` per kind in WRITES order) and named operations
that write too (OPERATIONS: ids, purges, segments), in queue order.

Frames: a 4-byte big-endian length, then a tag byte and the payload, marshal (the
rows are tuples of str/int/float/None/bytes: marshal is the cheapest codec for them,
and both ends are the same interpreter) or pickle for anything marshal refuses.

The process exits when its stdin closes: a daemon killed with SIGKILL leaves no
writer behind. It ignores SIGINT and SIGTERM (a stop signals the whole process group
or cgroup): the daemon finishes its writes, then closes the pipe.
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import operator
import os
import pickle
import signal
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

from bridge.core.message import UPGRADE_DUE, Lifecycle
from bridge.store.records import MESSAGE_COLUMNS, load_message, message_row

# Not bridge.core.ports here (nor bridge.store.ids, which imports it): it brings the
# config and its libraries, a fifth of a second at every start of a writer (every
# store a test opens).


class Unavailable(Exception):
    """The store cannot do this (StoreUnavailable, as the daemon raises it)."""


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
# The unfinished messages by lifecycle (the outbox at start, the operator's queues): a
# final message leaves the index and never enters it again, so finishing a message is
# one deletion from a small index, not a move to the end of one that holds every row
# kept for retention. `messages_in` names the condition so the planner may use it.
# Stores made before it had `messages_by_lifecycle` over every row: dropped at open.
UNFINISHED = f"lifecycle != {_FINAL}"
UNFINISHED_INDEX = f"CREATE INDEX IF NOT EXISTS messages_unfinished ON messages (lifecycle, id) WHERE {UNFINISHED}"
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
    ("session", "TEXT"),  # the history's `received` event is read from the row (bridge/core/history.py)
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

# The columns of an inserted message row: `insert_rows` (records.py) gives them in this order.
INSERT_FIELDS = [c.strip() for c in MESSAGE_COLUMNS.split(",")] + ["due_at", "polls"]
# Each kind of write, in the order a batch runs them: a row inserted and then
# updated or deleted in the same batch ends up right.
WRITES: tuple[tuple[str, str], ...] = (
    (
        "insert_message",
        f"INSERT OR REPLACE INTO messages ({', '.join(INSERT_FIELDS)}) VALUES ({', '.join('?' * len(INSERT_FIELDS))})",
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


def connect(path: str, synchronous: str, trace: Callable[[str], object] | None = None) -> sqlite3.Connection:
    """The write connection: WAL, the schema brought up to date (an older store migrated)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.set_trace_callback(trace)
    conn.executescript(SCHEMA)
    _add_history(conn)
    _migrate(conn)
    return conn


def _add_history(conn: sqlite3.Connection) -> None:
    """The history table and the destination index (columns added to older stores)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    for column, kind in (("destination", "TEXT"), ("created_at", "REAL")):
        if column not in columns:
            conn.execute(f"ALTER TABLE messages ADD COLUMN {column} {kind}")
    conn.executescript(HISTORY_SCHEMA)


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
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_by_lifecycle'").fetchone():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(UNFINISHED_INDEX)
        conn.execute("DROP INDEX messages_by_lifecycle")
        conn.execute("COMMIT")
    conn.execute(UNFINISHED_INDEX)


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


# A message as the intake makes it has seven columns NULL (no provider, ids, state,
# due time or parts of their own yet). Python's sqlite3 passes every bound None
# through its adapter lookup (pysqlite_microprotocols_adapt: a key tuple, a registry
# lookup, two attribute lookups), which was a fifth of this process's CPU in a
# stored burst; so such rows are inserted by a statement that leaves those columns
# out (their default is NULL), the others as they come.
_FRESH_NULLS = tuple(
    INSERT_FIELDS.index(c) for c in ("provider", "done_at", "parts", "provider_id", "more_ids", "state", "due_at")
)
_FRESH_KEPT = [i for i in range(len(INSERT_FIELDS)) if i not in _FRESH_NULLS]
_fresh_values = operator.itemgetter(*_FRESH_KEPT)
_fresh_nulls = operator.itemgetter(*_FRESH_NULLS)
_ALL_NULL = (None,) * len(_FRESH_NULLS)
INSERT_FRESH = (
    f"INSERT OR REPLACE INTO messages ({', '.join(INSERT_FIELDS[i] for i in _FRESH_KEPT)})"
    f" VALUES ({', '.join('?' * len(_FRESH_KEPT))})"
)


def _is_fresh(row: tuple[Any, ...]) -> bool:
    return bool(_fresh_nulls(row) == _ALL_NULL)


def _execute_writes(conn: sqlite3.Connection, pending: dict[str, list[tuple[Any, ...]]]) -> None:
    if not pending:
        return
    for kind, sql in WRITES:
        rows = pending.get(kind)
        if not rows:
            continue
        if kind != "insert_message":
            conn.executemany(sql, rows)
            continue
        for fresh, run in itertools.groupby(rows, _is_fresh):  # in their order: a message may come twice
            if fresh:
                conn.executemany(INSERT_FRESH, map(_fresh_values, run))
            else:
                conn.executemany(sql, run)


# -- the operations that write, besides the hot rows ----------------------------------
# Named, with plain arguments and plain results (they cross the pipe): the daemon
# makes its objects of what they return.


def reserve_ids(conn: sqlite3.Connection, count: int, seed: int, highest: int, probes: int) -> int:
    """`seed` (bridge/store/ids.py's `id_seed` of now), `highest` (MAX_MESSAGE_ID) and
    `probes` (MAX_ID_PROBES) come from the daemon: that module imports the config."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()
    # A fresh database, or one whose counter is from before ids were bounded
    # (clock x 1000: its ids are all above the range), starts from the clock.
    first = row[0] if row and 1 <= row[0] <= highest + 1 else seed
    for _ in range(probes):
        first = first if first >= 1 and first + count - 1 <= highest else 1  # ids.wrapped
        last = first + count - 1
        taken = conn.execute(_HIGHEST_TAKEN, (first, last, first, last)).fetchone()[0]
        if taken is None:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?)", (first + count,))
            return int(first)
        first = taken + 1  # after the stored ids (after a wrap: still in retention)
    raise Unavailable("no free message ids: the store holds too many messages")


def purge(conn: sqlite3.Connection, finished_before: float, limit: int) -> int:
    # By id, through the indexes on message_id: no record is decoded. One batch is
    # one short step of the writer, between the group commits of submits.
    ids = conn.execute(
        "SELECT id FROM messages WHERE done_at IS NOT NULL AND done_at < ? AND lifecycle = ? LIMIT ?",
        (finished_before, _FINAL, limit),
    ).fetchall()
    conn.executemany("DELETE FROM provider_ids WHERE message_id = ?", ids)
    conn.executemany("DELETE FROM part_ids WHERE message_id = ?", ids)
    conn.executemany("DELETE FROM messages WHERE id = ?", ids)
    return len(ids)


def add_segment(
    conn: sqlite3.Connection, set_key: str, index: int, created_at: float, record: str, data: bytes, total: int
) -> list[tuple[str, bytes]] | None:
    """Store a segment; once its set is complete, take the whole set (record, data)."""
    conn.execute(
        "INSERT OR REPLACE INTO segments (set_key, idx, created_at, record, data) VALUES (?, ?, ?, ?, ?)",
        (set_key, index, created_at, record, data),
    )
    (count,) = conn.execute("SELECT COUNT(*) FROM segments WHERE set_key = ?", (set_key,)).fetchone()
    if count < total:
        return None
    rows = conn.execute("SELECT record, data FROM segments WHERE set_key = ? ORDER BY idx", (set_key,)).fetchall()
    conn.execute("DELETE FROM segments WHERE set_key = ?", (set_key,))
    return rows


def take_expired_segments(conn: sqlite3.Connection, created_before: float) -> list[tuple[str, bytes]]:
    keys = [
        row[0] for row in conn.execute("SELECT DISTINCT set_key FROM segments WHERE created_at < ?", (created_before,))
    ]
    out: list[tuple[str, bytes]] = []
    for key in keys:
        out.extend(conn.execute("SELECT record, data FROM segments WHERE set_key = ? ORDER BY idx", (key,)))
        conn.execute("DELETE FROM segments WHERE set_key = ?", (key,))
    return out


def purge_history(conn: sqlite3.Connection, before: float) -> int:
    """One batch (HISTORY_PURGE_BATCH) of the history rows older than `before`."""
    # Rows are appended in time order: everything before the first young row is
    # old, found without an index on `at` by reading only the rows to delete.
    young = conn.execute("SELECT seq FROM history WHERE at >= ? ORDER BY seq LIMIT 1", (before,)).fetchone()
    bound = young[0] if young else conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM history").fetchone()[0]
    cursor = conn.execute(
        "DELETE FROM history WHERE seq IN (SELECT seq FROM history WHERE seq < ? ORDER BY seq LIMIT ?)",
        (bound, HISTORY_PURGE_BATCH),
    )
    return int(cursor.rowcount)


OPERATIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (reserve_ids, purge, add_segment, take_expired_segments, purge_history)
}


# -- a batch: one transaction ----------------------------------------------------------
# An item is a dict (hot rows by kind) or a tuple (operation name, arguments). Its
# result is (None, value), or (error class name, text) when it failed.
Item = dict[str, list[tuple[Any, ...]]] | tuple[str, tuple[Any, ...]]
Result = tuple[str | None, Any]
_DONE: Result = (None, None)
MAX_ITEMS = 5000  # items in one transaction at most (frames are not split)


def run_batch(conn: sqlite3.Connection, items: list[Item]) -> list[Result]:
    try:
        conn.execute("BEGIN IMMEDIATE")
        results = _run_items(conn, items)
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
            results.extend(_run_items(conn, [item]))
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results.append(failure(exc))
    return results


def _run_items(conn: sqlite3.Connection, items: list[Item]) -> list[Result]:
    results: list[Result] = []
    pending: dict[str, list[tuple[Any, ...]]] = {}
    for item in items:
        if isinstance(item, dict):
            for kind, rows in item.items():
                pending.setdefault(kind, []).extend(rows)
            results.append(_DONE)
        else:
            _execute_writes(conn, pending)
            pending = {}
            name, args = item
            results.append((None, OPERATIONS[name](conn, *args)))
    _execute_writes(conn, pending)
    return results


def failure(exc: BaseException) -> Result:
    """What crosses the pipe of an exception: a database error is StoreUnavailable."""
    if isinstance(exc, sqlite3.Error | Unavailable):
        return ("StoreUnavailable", str(exc))
    return (type(exc).__name__, str(exc))


# -- frames ------------------------------------------------------------------------


def frame(payload: Any) -> bytes:
    try:
        body = b"M" + marshal.dumps(payload)
    except ValueError:  # an int or str subclass (an enum): pickle knows it
        body = b"P" + pickle.dumps(payload, protocol=5)
    return len(body).to_bytes(4, "big") + body


def unframe(body: bytes | memoryview) -> Any:
    return marshal.loads(body[1:]) if body[0] == 0x4D else pickle.loads(body[1:])  # our own child's frames


INCOMPLETE = object()  # what `take_frame` gives while the next frame has not all come


def take_frame(buffer: bytearray) -> Any:
    """The payload of the frame at the start of `buffer`, taken out of it (either end
    of the pipe reads frames so), or INCOMPLETE."""
    if len(buffer) < 4:
        return INCOMPLETE
    end = 4 + int.from_bytes(buffer[:4], "big")
    if len(buffer) < end:
        return INCOMPLETE
    payload = unframe(bytes(buffer[4:end]))
    del buffer[:end]  # (from the front of a bytearray: no copy of the rest)
    return payload


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve(path: str, synchronous: str, trace: bool, rfd: int, wfd: int) -> None:
    """Answer the daemon's batches until it closes the pipe. Each answer carries the
    statements run for it when `trace` (what the store's trace callback is given)."""
    statements: list[str] = []
    try:
        conn = connect(path, synchronous, statements.append if trace else None)
        (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM receipts").fetchone()
    except Exception as exc:  # a failed migration too: the open fails
        _write_all(wfd, frame(([("StoreUnavailable", f"cannot open {path}: {exc}")], statements)))
        return
    _write_all(wfd, frame(([(None, int(seq))], statements)))
    statements.clear()
    frames = Frames(rfd)
    while (items := frames.take()) is not None:
        results = run_batch(conn, items)
        _write_all(wfd, frame((results, statements)))
        statements.clear()
    conn.close()


# A pipe holds 64 KiB: one read of that size takes all that is waiting. (A read of 1 MiB
# made and shrank a buffer of its own size every time: an mmap and an munmap per batch.)
READ_SIZE = 1 << 16


class Frames:
    """The daemon's frames as they come through the pipe. One read takes all that is
    waiting, and every whole frame in it goes into the next transaction: one system
    call per batch instead of a read of the length, a read of the body and a poll for
    more per frame (a batch of receipts is a few frames and a commit of well under a
    millisecond: those calls were a share of it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def take(self) -> list[Item] | None:
        """The items of the whole frames waiting (MAX_ITEMS or so at most), waiting for
        one if none is; None once the daemon closed the pipe and all was taken."""
        items: list[Item] = []
        while True:
            while len(items) < MAX_ITEMS and (more := take_frame(self.buffer)) is not INCOMPLETE:
                items.extend(more)
            if items:
                return items
            chunk = os.read(self.fd, READ_SIZE)
            if not chunk:
                return None  # (a frame cut short by the end: the daemon is gone, nobody waits for it)
            self.buffer += chunk


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path, synchronous, trace = sys.argv[1], sys.argv[2], sys.argv[3] == "trace"
    # The pipes are fds 0 and 1; anything printed goes to stderr, never into a frame.
    rfd, wfd = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    with contextlib.suppress(BrokenPipeError):  # the daemon is gone (killed): nobody waits for an answer
        serve(path, synchronous, trace, rfd, wfd)
    # Committed and closed: nothing left that the interpreter's teardown would do.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
