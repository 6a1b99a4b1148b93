"""The receipt path in batches (issue 16): the reports of one event-loop turn are
committed in one store write and answered only after it; the deliver_sm_resp's of one
read are settled together, with one store write for their deletions."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from bridge.core.message import Lifecycle
from bridge.core.ports import StatusReport, StoreUnavailable
from bridge.smpp.constants import MessageState
from tests.core.fakes import FakeConnection
from tests.core.smsc_rig import DELIVER_SM, ESME_ROK, SmscRig, submit_sm
from tests.support.waiting import until

DELIVER_SM_RESP = 0x80000005  # SMPP 3.4 section 5.1.2.1
ESME_RX_T_APPN = 0x64  # 5.1.3: temporary application error (retried)


def deliver_sm_resp(sequence: int, status: int = ESME_ROK) -> bytes:
    # 16-octet header, then message_id: a null C-Octet String (4.6.2)
    return struct.pack(">IIII", 17, DELIVER_SM_RESP, status, sequence) + b"\0"


def spy(store: Any, method: str, order: list[str] | None = None) -> list[tuple[Any, ...]]:
    """The calls made to `store.method`, which still does its work (and its name
    appended to `order` at each call)."""
    calls: list[tuple[Any, ...]] = []
    original = getattr(store, method)

    def recorded(*args: Any) -> Any:
        calls.append(args)
        if order is not None:
            order.append(method)
        return original(*args)

    setattr(store, method, recorded)
    return calls


async def submitted(rig: SmscRig, count: int) -> FakeConnection:
    """A bound transceiver with `count` messages accepted upstream, each asking for a receipt."""
    conn = await rig.bound()
    for sequence in range(2, 2 + count):
        await rig.answered(conn, submit_sm(sequence))
    assert len(rig.providers["p"].sent) == count
    conn.written.clear()
    return conn


def reports(rig: SmscRig, state: MessageState = MessageState.DELIVERED) -> list[StatusReport]:
    return [StatusReport("p", f"p-{m.id}", state) for m in rig.providers["p"].sent]


def deliver_sms(conn: FakeConnection) -> list[int]:
    conn.flush()
    return [sequence for command, _, sequence in conn.responses() if command == DELIVER_SM]


async def test_the_reports_of_one_turn_are_committed_in_one_write_and_answered_only_after_it() -> None:
    rig = SmscRig()
    conn = await submitted(rig, 3)
    writes = spy(rig.store, "update_messages")
    rig.store.gate = asyncio.Event()  # a slow disk
    intake = [asyncio.ensure_future(rig.receipts.on_report(r)) for r in reports(rig)]
    done, _ = await asyncio.wait(intake, timeout=0.05)
    assert done == set()  # nothing answered before the commit
    assert deliver_sms(conn) == []  # nor any receipt sent
    assert [(len(messages), len(receipts)) for messages, receipts in writes] == [(3, 3)]
    rig.store.gate.set()
    assert await asyncio.wait_for(asyncio.gather(*intake), 10) == [True, True, True]
    assert all(m.state is MessageState.DELIVERED for m in rig.store.committed.values())
    assert len(rig.store.receipts) == 3 and len(deliver_sms(conn)) == 3


async def test_a_failed_write_of_a_turn_fails_each_of_its_reports_and_undoes_each_change() -> None:
    rig = SmscRig()
    conn = await submitted(rig, 2)
    rig.store.fail = StoreUnavailable("disk full")
    intake = [asyncio.ensure_future(rig.receipts.on_report(r)) for r in reports(rig)]
    results = await asyncio.wait_for(asyncio.gather(*intake, return_exceptions=True), 10)
    assert [type(r) for r in results] == [StoreUnavailable, StoreUnavailable]
    for message in rig.providers["p"].sent:
        live = await rig.store.get_message(message.id)
        assert live is not None and (live.lifecycle, live.state) == (Lifecycle.ACCEPTED, None)
    assert rig.store.receipts == {} and deliver_sms(conn) == []
    rig.store.fail = None  # the provider's retries apply
    intake = [asyncio.ensure_future(rig.receipts.on_report(r)) for r in reports(rig)]
    assert await asyncio.wait_for(asyncio.gather(*intake), 10) == [True, True]
    assert len(deliver_sms(conn)) == 2


async def test_the_deliver_sm_resps_of_one_read_delete_their_receipts_in_one_write() -> None:
    rig = SmscRig()
    conn = await submitted(rig, 3)
    await asyncio.gather(*(rig.receipts.on_report(r) for r in reports(rig)))
    sequences = deliver_sms(conn)
    assert len(sequences) == 3 and len(rig.store.receipts) == 3
    deletes = spy(rig.store, "delete_receipts")
    rig.feed(conn, b"".join(deliver_sm_resp(s) for s in sequences))
    await until(lambda: deletes)  # at most DELETE_WAIT later, with no state change to ride with
    assert [len(ids) for (ids,) in deletes] == [3]
    await asyncio.wait_for(rig.store._after_writes(), 10)
    assert rig.store.receipts == {}
    assert rig.receipts.waiting_for("esme1") == 0
    assert (
        rig.metrics.registry.get_sample_value("smpp_bridge_receipts_total", {"system_id": "esme1", "stat": "DELIVRD"})
        == 3
    )


async def test_in_one_read_a_refused_receipt_stays_for_its_retry_and_the_accepted_ones_go() -> None:
    rig = SmscRig()
    conn = await submitted(rig, 2)
    await asyncio.gather(*(rig.receipts.on_report(r) for r in reports(rig)))
    first, second = deliver_sms(conn)
    rig.feed(conn, deliver_sm_resp(first) + deliver_sm_resp(second, ESME_RX_T_APPN))
    await until(lambda: len(rig.store.receipts) == 1)
    (kept,) = rig.store.receipts.values()
    assert kept.attempts == 1 and kept.next_attempt_at > rig.clock()
    assert rig.receipts.waiting_for("esme1") == 1  # waiting for its retry
    rig.receipts.stop()


@pytest.mark.parametrize("state", [MessageState.DELIVERED, MessageState.UNDELIVERABLE])
async def test_a_report_repeated_within_its_own_turn_changes_nothing_and_waits_for_the_commit(
    state: MessageState,
) -> None:
    rig = SmscRig()
    conn = await submitted(rig, 1)
    (report,) = reports(rig, state)
    rig.store.gate = asyncio.Event()
    first = asyncio.ensure_future(rig.receipts.on_report(report))
    again = asyncio.ensure_future(rig.receipts.on_report(report))
    done, _ = await asyncio.wait([first, again], timeout=0.05)
    assert done == set()
    rig.store.gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, again), 10) == [True, True]
    assert len(rig.store.receipts) == 1 and len(deliver_sms(conn)) == 1


async def test_the_deletions_of_delivered_receipts_ride_with_the_next_state_change_write() -> None:
    rig = SmscRig()
    conn = await submitted(rig, 2)
    first, second = reports(rig)
    assert await rig.receipts.on_report(first)
    (sequence,) = deliver_sms(conn)
    writes: list[str] = []
    spy(rig.store, "delete_receipts", writes)
    spy(rig.store, "update_messages", writes)
    rig.feed(conn, deliver_sm_resp(sequence))
    assert writes == []  # waiting for a write to ride with
    assert await rig.receipts.on_report(second)
    assert writes == ["delete_receipts", "update_messages"]  # queued together, the deletion first
    await asyncio.wait_for(rig.store._after_writes(), 10)
    assert [r.message_id for r in rig.store.receipts.values()] == [rig.providers["p"].sent[1].id]


async def test_stop_writes_the_deletions_still_waiting() -> None:
    rig = SmscRig()
    conn = await submitted(rig, 1)
    (report,) = reports(rig)
    assert await rig.receipts.on_report(report)
    (sequence,) = deliver_sms(conn)
    deletes = spy(rig.store, "delete_receipts")
    rig.feed(conn, deliver_sm_resp(sequence))
    rig.receipts.stop()
    assert [len(ids) for (ids,) in deletes] == [1]
    await asyncio.wait_for(rig.store._after_writes(), 10)
    assert rig.store.receipts == {}
