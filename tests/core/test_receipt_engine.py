"""ReceiptEngine: report intake edge cases, with a real SQLite store and with a fake one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.core.message import Lifecycle, Message
from bridge.core.ports import StatusReport, StoreUnavailable
from bridge.core.receipts import ReceiptEngine
from bridge.core.registry import SessionRegistry
from bridge.logging import get_logger
from bridge.metrics import Metrics
from bridge.smpp.constants import MessageState
from bridge.store.sqlite import SqliteStore
from tests.core.fakes import FakeStore
from tests.support.providers import stored_message


def accepted(message_id: int, provider_id: str) -> Message:
    return stored_message(message_id, Lifecycle.ACCEPTED, provider_id)


async def test_a_report_that_beats_its_store_write_waits_for_it_within_the_request(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    engine = ReceiptEngine(store, SessionRegistry(), lambda _: None, Metrics(), get_logger("test"))
    try:
        report = asyncio.ensure_future(engine.on_report(StatusReport("p", "early-1", MessageState.DELIVERED)))
        await asyncio.sleep(0)  # the report's first lookup misses
        assert not report.done()
        await store.insert_messages([accepted(42, "early-1")])  # the send's own write, late
        assert await asyncio.wait_for(report, 10) is True  # answered only once applied and committed
        message = await store.get_message(42)
        assert message is not None and message.state is MessageState.DELIVERED
        assert [r.message_id for r in await store.pending_receipts()] == [42]
    finally:
        engine.stop()
        await store.close()


async def test_a_replayed_final_report_changes_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    engine = ReceiptEngine(store, SessionRegistry(), lambda _: None, Metrics(), get_logger("test"))
    try:
        await store.insert_messages([accepted(7, "x")])
        assert await engine.on_report(StatusReport("p", "x", MessageState.DELIVERED))
        assert await engine.on_report(StatusReport("p", "x", MessageState.UNDELIVERABLE))
        message = await store.get_message(7)
        assert message is not None and message.state is MessageState.DELIVERED
        assert len(await store.pending_receipts()) == 1
    finally:
        engine.stop()
        await store.close()


# -- durability of the intake (fake store: writes held or failed on purpose) ------------


def fake_engine() -> tuple[ReceiptEngine, FakeStore]:
    store = FakeStore()
    return ReceiptEngine(store, SessionRegistry(), lambda _: None, Metrics(), get_logger("test")), store


async def test_a_report_returns_only_once_its_state_and_receipts_are_committed() -> None:
    engine, store = fake_engine()
    await store.insert_messages([accepted(7, "x")])
    store.gate = asyncio.Event()  # a slow disk
    report = asyncio.ensure_future(engine.on_report(StatusReport("p", "x", MessageState.DELIVERED)))
    replay = asyncio.ensure_future(engine.on_report(StatusReport("p", "x", MessageState.DELIVERED)))
    done, _ = await asyncio.wait([report, replay], timeout=0.05)
    assert done == set()  # neither may be answered before the commit (the replay waits for it too)
    assert store.committed[7].lifecycle is Lifecycle.ACCEPTED and store.receipts == {}
    store.gate.set()
    assert await asyncio.wait_for(report, 10) and await asyncio.wait_for(replay, 10)
    assert store.committed[7].state is MessageState.DELIVERED
    assert [r.message_id for r in store.receipts.values()] == [7]


async def test_a_failed_write_raises_and_undoes_the_change_so_the_provider_retry_applies() -> None:
    engine, store = fake_engine()
    await store.insert_messages([accepted(7, "x")])
    store.fail = StoreUnavailable("disk full")
    with pytest.raises(StoreUnavailable):
        await engine.on_report(StatusReport("p", "x", MessageState.DELIVERED))
    message = await store.get_message(7)
    assert message is not None and (message.lifecycle, message.state) == (Lifecycle.ACCEPTED, None)
    store.fail = None
    assert await engine.on_report(StatusReport("p", "x", MessageState.DELIVERED))  # the provider's retry
    assert store.committed[7].state is MessageState.DELIVERED and len(store.receipts) == 1
