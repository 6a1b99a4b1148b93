"""`python -m tests.support.slow_receipt_disk run --config ...`: the bridge daemon on a
disk where every SQLite commit that stores receipts takes SLOW_COMMIT seconds more
(failure injection, rule 3: the store is real, only its commit is delayed). It
widens the window between a provider's report arriving and its commit, so a test can
SIGKILL the daemon inside it.

The commits happen in the store's writer process: the daemon started this way starts
its writer as `python -m tests.support.slow_receipt_disk writer ...`, which delays the
batches and then runs the same `bridge.store.sqlite_writer.main`."""

from __future__ import annotations

import sqlite3
import sys
import time
from typing import Any

from bridge.cli import main
from bridge.store import sqlite_writer
from bridge.store.sqlite import SqliteStore

SLOW_COMMIT = 1.0
_run_batch = sqlite_writer.run_batch


def _slow_run_batch(conn: sqlite3.Connection, items: list[Any]) -> list[Any]:
    if any(isinstance(item, dict) and "insert_receipt" in item for item in items):
        time.sleep(SLOW_COMMIT)  # in the writer process: the commit is late, the daemon is not blocked
    return _run_batch(conn, items)


if __name__ == "__main__":
    if sys.argv[1:2] == ["writer"]:
        del sys.argv[1]
        sqlite_writer.run_batch = _slow_run_batch
        sqlite_writer.main()
    else:
        SqliteStore.writer_command = (sys.executable, "-m", "tests.support.slow_receipt_disk", "writer")
        raise SystemExit(main())
