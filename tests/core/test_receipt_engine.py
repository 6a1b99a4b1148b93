"""ReceiptEngine with a real SQLite store: report intake edge cases."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.core.message import Lifecycle, Message
from bridge.core.receipts import ReceiptEngine
from bridge.core.registry import SessionRegistry
from bridge.logging import get_logger
from bridge.metrics import Metrics
from bridge.providers.base import StatusReport
from bridge.smpp.constants import MessageState
from bridge.store.sqlite import SqliteStore
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
