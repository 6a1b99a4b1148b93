"""`python -m tests.support.slow_receipt_disk run --config ...`: the bridge daemon on a
disk where every SQLite commit that stores receipts takes SLOW_COMMIT seconds more
(failure injection, rule 3: the store is real, only its commit is delayed). It
widens the window between a provider's report arriving and its commit, so a test can
SIGKILL the daemon inside it."""

from __future__ import annotations

import time
from typing import Any

from bridge.cli import main
from bridge.store import sqlite

SLOW_COMMIT = 1.0
_run_batch = sqlite.SqliteStore._run_batch


def _slow_run_batch(self: sqlite.SqliteStore, conn: Any, items: list[Any]) -> list[Any]:
    if any("insert_receipt" in getattr(item, "rows", {}) for item in items):
        time.sleep(SLOW_COMMIT)  # on the writer thread: the commit is late, the loop is not blocked
    return _run_batch(self, conn, items)


sqlite.SqliteStore._run_batch = _slow_run_batch  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
