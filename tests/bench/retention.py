"""Retention at full speed: does the store stop growing?

A daemon on SQLite with a short `[store] retention` is loaded as fast as it answers
by `smpp-bridge bench` (receipts on), in rounds; while each round runs, the store
is sampled from its own file: message rows, database file and WAL bytes, free pages.
Then the purge capacity alone: finished messages deleted per second by
`Store.purge_due` on a store filled beforehand (SQLite; Redis too with --redis-url).

    python -m tests.bench.retention --retention 2 --seconds 60
    python -m tests.bench.retention --capacity 200000 --redis-url redis://127.0.0.1:6379/0

tests/test_retention.py runs a few seconds of the same load and asserts the plateau.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.core.ports import PURGE_BATCH, Store
from bridge.store.sqlite import SqliteStore
from tests.bench.large_store import make
from tests.support.daemon import Daemon

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
[http]
host = "127.0.0.1"
port = {http_port}
[store]
url = "sqlite:///{workdir}/bridge.db"
retention = {retention}
[log]
level = "warning"
format = "json"
[[accounts]]
system_id = "demo"
password = "demo123"
throughput = 0
max_binds = 8
route = "sim"
[providers.sim]
type = "simulator"
delivery_delay = 0
"""


@dataclass
class Sample:
    """The store as its own file tells it."""

    rows: int
    db_bytes: int
    wal_bytes: int
    free_pages: int


def sample(db: Path) -> Sample:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (rows,) = conn.execute("SELECT COUNT(*) FROM messages").fetchone()
        (free_pages,) = conn.execute("PRAGMA freelist_count").fetchone()
    wal = db.with_name(db.name + "-wal")
    return Sample(rows, db.stat().st_size, wal.stat().st_size if wal.exists() else 0, free_pages)


@dataclass
class Phase:
    """Messages acknowledged in a phase and the store's peaks while it ran."""

    acked: int = 0
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list, repr=False)

    @property
    def peak_rows(self) -> int:
        return max(s.rows for s in self.samples)

    @property
    def peak_db_bytes(self) -> int:
        return max(s.db_bytes for s in self.samples)

    @property
    def peak_wal_bytes(self) -> int:
        return max(s.wal_bytes for s in self.samples)


class Load:
    """Rounds of `smpp-bridge bench --count N` against a daemon, the store sampled
    every `every` seconds while a round runs and once after it."""

    def __init__(self, daemon: Daemon, db: Path, every: float = 0.05, round_size: int = 2000) -> None:
        self.daemon = daemon
        self.db = db
        self.every = every
        self.round_size = round_size

    def round(self, phase: Phase) -> None:
        started = time.monotonic()
        port, count = str(self.daemon.smpp_port), str(self.round_size)
        command = [sys.executable, "-m", "bridge", "bench", "--port", port, "--system-id", "demo",
                   "--password", "demo123", "--count", count, "--json"]  # fmt: skip
        bench = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while True:
            phase.samples.append(sample(self.db))
            try:
                out, err = bench.communicate(timeout=self.every)
                break
            except subprocess.TimeoutExpired:
                continue
        if bench.returncode != 0:
            raise RuntimeError(f"bench failed: {err.decode(errors='replace')}")
        report = json.loads(out)
        if report["acked"] != self.round_size:
            raise RuntimeError(f"bench: {report['acked']} of {self.round_size} acked: {report['failed']}")
        phase.acked += report["acked"]
        phase.samples.append(sample(self.db))
        phase.seconds += time.monotonic() - started

    def until(self, done: Callable[[Phase], bool], max_messages: int) -> Phase:
        """Rounds until `done(phase)` holds or `max_messages` were acknowledged."""
        phase = Phase()
        while not done(phase) and phase.acked < max_messages:
            self.round(phase)
        return phase


def turned_over(times: int) -> Callable[[Phase], bool]:
    """Done once the phase pushed `times` the most the store ever held through it."""
    return lambda phase: bool(phase.samples) and phase.acked >= times * phase.peak_rows


# -- purge capacity -------------------------------------------------------------------


async def purge_capacity(store: Store, count: int) -> tuple[float, float]:
    """Fill `store` with `count` finished messages; (messages purged per second, the
    longest single batch in ms)."""
    await store.open()
    try:
        first = await store.reserve_ids(count)
        for start in range(0, count, 10_000):
            await store.insert_messages([make(first + i, True) for i in range(start, min(start + 10_000, count))])
        longest = 0.0
        purge = store.purge

        async def timed(finished_before: float, limit: int = PURGE_BATCH) -> int:
            nonlocal longest
            began = time.perf_counter()
            deleted = await purge(finished_before, limit)
            longest = max(longest, time.perf_counter() - began)
            return deleted

        store.purge = timed  # type: ignore[method-assign]  # a spy: the longest step
        began = time.perf_counter()
        purged = await store.purge_due(time.time() + 1)
        elapsed = time.perf_counter() - began
        assert purged == count, (purged, count)
        return purged / elapsed, longest * 1000
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--retention", type=float, default=2.0, help="[store] retention, seconds")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--capacity", type=int, default=100_000, help="finished messages for the purge capacity")
    parser.add_argument("--redis-url", default="", help="also measure the purge capacity of RedisStore there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        daemon = Daemon(workdir, CONFIG, retention=args.retention).start()
        load = Load(daemon, workdir / "bridge.db", every=1.0, round_size=5000)
        began = time.monotonic()
        acked = 0
        print("seconds  acked     rows  db MB  wal MB  free pages")
        try:
            while time.monotonic() - began < args.seconds:
                phase = Phase()
                load.round(phase)
                acked += phase.acked
                last = phase.samples[-1]
                print(f"{time.monotonic() - began:7.1f} {acked:6d} {phase.peak_rows:8d} "
                      f"{last.db_bytes / 1e6:6.2f} {last.wal_bytes / 1e6:7.2f} {last.free_pages:11d}")  # fmt: skip
        finally:
            daemon.stop()
        print(f"{acked / (time.monotonic() - began):.0f} msg/s acked (receipts on), retention {args.retention} s")
        rate, longest = asyncio.run(purge_capacity(SqliteStore(workdir / "capacity.db"), args.capacity))
        print(f"SQLite purge: {rate:,.0f} messages/s, longest batch of {PURGE_BATCH} {longest:.1f} ms")
    if args.redis_url:
        from bridge.store.redis import RedisStore

        store = RedisStore(args.redis_url, prefix=f"purge-bench-{int(time.time())}")
        rate, longest = asyncio.run(purge_capacity(store, args.capacity))
        print(f"Redis purge: {rate:,.0f} messages/s, longest batch of {PURGE_BATCH} {longest:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
