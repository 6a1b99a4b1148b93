"""Small helpers shared by the interop tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def seed_next_id(database: Path, first: int) -> None:
    """Make a fresh SQLite store hand out message ids from `first` on (the store takes
    its next id block from meta.next_id), e.g. hex ids made only of digits."""
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?)", (first,))
    db.close()
