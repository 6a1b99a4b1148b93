"""The SQLite store's writer process (bridge/store/sqlite_writer.py): killed, it
fails every write it had not committed and is replaced; nothing it acknowledged is
lost; /readyz says when there is none; it never outlives the daemon."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
import structlog

from bridge.bench import descendants
from bridge.core.ports import StoreUnavailable
from bridge.store.sqlite import SqliteStore
from bridge.store.sqlite_writer import Frames, frame
from tests.support.daemon import Daemon
from tests.support.providers import stored_message
from tests.support.running import RunningBridge
from tests.support.waiting import until, wait_for
from tests.test_metrics import http_get
from tests.test_shutdown import CONFIG


def stored_ids(path: Path) -> set[int]:
    """The message ids in the file, read by a connection of the test's own."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM messages")}


async def test_a_killed_writer_fails_the_writes_it_owed_and_a_new_one_takes_the_next(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    await store.open()
    try:
        acknowledged = [stored_message(i) for i in range(1, 51)]
        await store.insert_messages(acknowledged)
        killed = store.writer_pid
        assert killed is not None
        with structlog.testing.capture_logs() as logged:
            owed = [store.insert_messages([stored_message(i)]) for i in range(100, 110)]
            os.kill(killed, signal.SIGKILL)  # failure injection
            for write in owed:
                with pytest.raises(StoreUnavailable, match="writer process ended"):
                    await write
            await until(lambda: store.writer_pid not in (None, killed))
        [died] = [entry for entry in logged if entry["event"] == "store_writer_died"]
        assert (died["pid"], died["cause"], died["writes_failed"]) == (killed, "killed by SIGKILL", 10)
        later = [stored_message(i) for i in range(200, 210)]
        await store.insert_messages(later)
        assert await store.reserve_ids(10) > 0
        assert await store.get_message(205) == later[5]
    finally:
        await store.close()
    assert {m.id for m in acknowledged + later} <= stored_ids(path)


def store_readiness(bridge: RunningBridge) -> tuple[int, bool, str]:
    """/readyz: its status, its store check, and the store's error."""
    status, body = http_get(f"{bridge.http_url}/readyz")
    found = json.loads(body)
    return status, found["checks"]["store"], found.get("errors", {}).get("store", "")


def test_readyz_says_when_the_store_has_no_writer_and_recovers_with_the_next(
    bridge: RunningBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bridge.bridge is not None
    store = bridge.bridge.store
    assert isinstance(store, SqliteStore) and store.writer_pid is not None
    # Failure injection: the writer is killed, and no new one can start.
    monkeypatch.setattr(SqliteStore, "writer_command", ("/nonexistent/python",))
    os.kill(store.writer_pid, signal.SIGKILL)
    cannot = "StoreUnavailable: cannot start the store's writer process"
    wait_for(lambda: store_readiness(bridge)[2].startswith(cannot))
    status, ready, _ = store_readiness(bridge)
    assert (status, ready) == (503, False)
    monkeypatch.undo()
    wait_for(lambda: store_readiness(bridge) == (200, True, ""), timeout=15)


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for whoever adopted it."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def writer_of(daemon: Daemon) -> int:
    [writer] = descendants(daemon.pid)
    with open(f"/proc/{writer}/cmdline", "rb") as handle:
        assert b"bridge.store.sqlite_writer" in handle.read()
    return writer


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_no_writer_process_outlives_the_daemon(tmp_path: Path, stop: str) -> None:
    """SIGTERM: the daemon commits what it owes, closes the writer and waits for it.
    SIGKILL: the writer's stdin closes, and it exits."""
    daemon = Daemon(tmp_path, CONFIG).start()
    try:
        writer = writer_of(daemon)
        if stop == "SIGTERM":
            assert daemon.stop() == 0
            assert gone(writer)  # reaped by the daemon before it exited
        else:
            daemon.kill()
            wait_for(lambda: gone(writer))
    finally:
        if daemon.alive:
            daemon.kill()


def test_the_writer_takes_every_whole_frame_waiting_in_one_batch_and_completes_a_cut_one() -> None:
    """Frames are read from the pipe as they come: all the whole ones waiting form the
    next batch (one transaction), a frame cut across reads waits for its end, and the
    end of the pipe ends the batches once what was whole has been taken."""
    rfd, wfd = os.pipe()
    try:
        frames = Frames(rfd)
        first = frame([{"delete_receipt": [("1:1:2",)]}])
        second = frame([("purge", (10.0, 5)), {"insert_history": [(1, 2.0, "[]")]}])
        third = frame([{"reschedule": [(3.0, 1, 7)]}])
        os.write(wfd, first + second + third[:5])
        assert frames.take() == [
            {"delete_receipt": [("1:1:2",)]},
            ("purge", (10.0, 5)),
            {"insert_history": [(1, 2.0, "[]")]},
        ]
        os.write(wfd, third[5:])
        assert frames.take() == [{"reschedule": [(3.0, 1, 7)]}]
        os.write(wfd, first + third[:3])
        os.close(wfd)
        wfd = -1
        assert frames.take() == [{"delete_receipt": [("1:1:2",)]}]
        assert frames.take() is None  # the cut frame's writer is gone: nobody waits for its answer
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
