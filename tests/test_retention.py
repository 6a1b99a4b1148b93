"""Retention keeps up at full speed: a daemon with a half-second retention, loaded as
fast as it answers over real sockets, holds a bounded store.

Bounded is judged from the store's own file, by message counts, not by time: once
the store has passed three times the most it ever held (so purging keeps up), as
many messages again must leave its rows and file sizes where they were. A store
that keeps what it should delete would hold every message of the second phase on top
of the first (four times the rows, and a file that grows with them).
"""

from __future__ import annotations

from pathlib import Path

from tests.bench.retention import CONFIG, Load, turned_over
from tests.support.daemon import Daemon


def test_the_store_stops_growing_at_full_speed_with_a_short_retention(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, CONFIG, retention=0.5).start()
    try:
        load = Load(daemon, tmp_path / "bridge.db")
        filled = load.until(turned_over(3), max_messages=60_000)
        assert filled.acked >= 3 * filled.peak_rows, f"{filled.acked} messages, {filled.peak_rows} rows kept"
        again = load.until(lambda phase: phase.acked >= filled.acked, max_messages=filled.acked)
    finally:
        assert daemon.stop() == 0
    assert again.peak_rows <= 2 * filled.peak_rows
    assert again.peak_db_bytes <= 2 * filled.peak_db_bytes
    assert again.peak_wal_bytes <= 2 * filled.peak_wal_bytes
