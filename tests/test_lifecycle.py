"""Start-up and shutdown are exception-safe (issue 13, item 4): every part is started
and stopped through one AsyncExitStack, so a start that fails halfway and a stop step
that fails leave nothing running, and the store is always closed with its queued
writes flushed."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.core.cluster import LocalCluster
from bridge.core.message import Lifecycle
from bridge.store.sqlite import SqliteStore
from tests.support.providers import stored_message
from tests.support.running import make_config

# A provider with background work of its own (its status poller runs from start()).
POLLING = {
    "type": "kaleyra",
    "base_url": "http://127.0.0.1:9",
    "sid": "HXAP1",
    "api_key": "k",
    "sender": "KLRHXA",
    "sms_type": "TXN",
    "callback_token": "t",
    "poll_interval": 30,
}


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sqlite-store"]


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


@pytest.mark.parametrize("listener", ["smpp", "http"])
async def test_a_listener_that_cannot_bind_leaves_nothing_running(
    tmp_path: Path, taken_port: int, listener: str
) -> None:
    config = make_config(tmp_path, providers={"k": POLLING}, accounts=[], **{listener: {"port": taken_port}})
    bridge = Bridge(config)
    with pytest.raises(OSError):
        await bridge.start()
    assert store_threads() == []  # the store was closed again
    assert other_tasks() == set()  # the provider's poller, the outbox workers: all gone
    with socket.socket() as sock:  # and the listener that did bind is closed
        other = bridge.ports.get("http" if listener == "smpp" else "smpp")
        if other:
            sock.bind(("127.0.0.1", other))


async def test_a_failing_stop_step_still_closes_the_store_with_its_queued_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("a bug in a stop step")

    monkeypatch.setattr(LocalCluster, "stop", broken)  # a whole step fails: raised after the others ran
    config = make_config(tmp_path, providers={"k": POLLING}, accounts=[])
    bridge = Bridge(config)
    await bridge.start()
    bridge.store.insert_messages([stored_message(77, Lifecycle.ACCEPTED)])  # queued, not awaited
    with pytest.raises(RuntimeError):
        await bridge.stop()
    assert store_threads() == []
    assert other_tasks() == set()
    reopened = SqliteStore(tmp_path / "bridge.db")
    await reopened.open()
    try:
        assert await reopened.get_message(77) is not None  # the queued write was flushed
    finally:
        await reopened.close()


async def test_stop_awaits_every_task_it_cancels(tmp_path: Path) -> None:
    bridge = Bridge(make_config(tmp_path, providers={"k": POLLING}, accounts=[]))
    await bridge.start()
    assert other_tasks()  # workers, poller, maintenance ...
    await bridge.stop()
    assert other_tasks() == set()  # ... each cancelled and awaited, none left pending
