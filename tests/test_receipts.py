"""Receipts end to end: formats, registered_delivery, queueing, retries, bind types."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bridge.smpp.constants import Status
from tests.support.esme import Esme
from tests.support.running import RunningBridge
from tests.support.waiting import wait_for


def bound(bridge: RunningBridge, kind: str = "transceiver") -> Esme:
    client = Esme(bridge.smpp_port)
    assert client.bind(kind).status == Status.ESME_ROK
    return client


@pytest.mark.parametrize(
    ("destination", "stat", "state", "err"),
    [
        ("4917012345", "DELIVRD", 2, "000"),
        ("9981234567", "UNDELIV", 5, "001"),
        ("9971234567", "EXPIRED", 3, "000"),
    ],
)
def test_simulator_outcomes_become_receipts(esme: Esme, destination: str, stat: str, state: int, err: str) -> None:
    resp = esme.submit(destination=destination, text=b"Your code is 123456, do not share it")
    [receipt] = esme.wait_receipts(1)
    assert receipt["id"] == resp.message_id.decode()
    assert (receipt["stat"], receipt["message_state"], receipt["err"]) == (stat, state, err)
    assert receipt["dlvrd"] == ("001" if stat == "DELIVRD" else "000")
    assert receipt["sub"] == "001"
    assert receipt["esm_class"] == 0x04
    assert len(receipt["submit"]) == 10 and len(receipt["done"]) == 10
    assert receipt["text"] == "Your code is 123456,"
    assert receipt["source_addr"] == destination.encode()
    assert receipt["destination_addr"] == b"12345"


def test_receipt_text_matches_appendix_b_exactly(esme: Esme) -> None:
    resp = esme.submit(text=b"Hi [there] {x} ~ |\x1b<")  # brackets via escapes; all unsafe in receipt text
    [receipt] = esme.wait_receipts(1)
    text = receipt["raw"].decode("ascii")
    prefix = f"id:{resp.message_id.decode()} sub:001 dlvrd:001 submit date:"
    assert text.startswith(prefix)
    assert text.endswith(" stat:DELIVRD err:000 text:Hi ?there? ?x? ? ??")


def test_silent_destination_never_reports(esme: Esme) -> None:
    esme.submit(destination="9961234567")
    delivered = esme.submit(destination="4917012345")
    [receipt] = esme.wait_receipts(1)
    assert receipt["id"] == delivered.message_id.decode()


@pytest.mark.parametrize(
    ("registered_delivery", "destination", "expected"),
    [
        (0x00, "4917012345", []),
        (0x01, "4917012345", ["DELIVRD"]),
        (0x02, "4917012345", []),
        (0x02, "9981234567", ["UNDELIV"]),
        (0x11, "4917012345", ["ENROUTE", "DELIVRD"]),
        (0x10, "4917012345", ["ENROUTE"]),
    ],
    ids=["none", "always", "failure-only-ok", "failure-only-failed", "intermediate+final", "intermediate-only"],
)
def test_registered_delivery_is_honoured(
    start_bridge: Callable[..., RunningBridge], registered_delivery: int, destination: str, expected: list[str]
) -> None:
    bridge = start_bridge(providers={"sim": {"type": "simulator", "delivery_delay": 0.1, "intermediate": True}})
    client = bound(bridge)
    try:
        client.submit(destination=destination, registered_delivery=registered_delivery)
        # A marker message with a receipt always follows: once its receipt is here,
        # everything owed for the first message has been sent before it.
        marker = client.submit(destination="4917099999", registered_delivery=0x01).message_id.decode()
        client.wait_until(lambda: any(r["id"] == marker and r["stat"] == "DELIVRD" for r in client.receipts()))
        stats = [r["stat"] for r in client.receipts() if r["id"] != marker]
        assert stats == expected
    finally:
        client.close()


def test_transmitter_and_receiver_pair(bridge: RunningBridge) -> None:
    tx, rx = bound(bridge, "transmitter"), bound(bridge, "receiver")
    try:
        resp = tx.submit()
        [receipt] = rx.wait_receipts(1)
        assert receipt["id"] == resp.message_id.decode()
        tx.assert_no_deliver_sm()  # never a deliver_sm on a transmitter (smpplib would crash)
    finally:
        tx.close()
        rx.close()


def test_receipts_wait_for_a_receiver_and_go_out_on_bind(bridge: RunningBridge) -> None:
    tx = bound(bridge, "transmitter")
    ids = [tx.submit().message_id.decode() for _ in range(3)]

    async def waiting() -> float:
        assert bridge.bridge is not None
        return sum(n for _, n in bridge.bridge.receipts.waiting())

    wait_for(lambda: bridge.call(waiting()) >= 3)
    rx = bound(bridge, "receiver")
    try:
        receipts = rx.wait_receipts(3)
        assert sorted(r["id"] for r in receipts) == sorted(ids)
    finally:
        tx.close()
        rx.close()


def test_receipts_survive_a_restart(start_bridge: Callable[..., RunningBridge]) -> None:
    first = start_bridge()
    tx = bound(first, "transmitter")
    message_id = tx.submit().message_id.decode()

    async def waiting() -> float:
        assert first.bridge is not None
        return sum(n for _, n in first.bridge.receipts.waiting())

    wait_for(lambda: first.call(waiting()) >= 1)
    tx.close()
    first.stop()
    second = start_bridge()
    rx = bound(second, "receiver")
    try:
        [receipt] = rx.wait_receipts(1)
        assert receipt["id"] == message_id
    finally:
        rx.close()


def test_refused_receipt_is_retried(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(smpp={"receipt_retry_base": 0.1})
    client = bound(bridge)
    refusals: list[object] = []

    def answer(pdu: object) -> int:
        if not refusals:
            refusals.append(pdu)
            return Status.ESME_RX_T_APPN
        return Status.ESME_ROK

    client.deliver_sm_status = answer
    try:
        resp = client.submit()
        receipts = client.wait_receipts(2)
        assert [r["id"] for r in receipts] == [resp.message_id.decode()] * 2
    finally:
        client.close()


def test_receipts_spread_over_several_receivers(bridge: RunningBridge) -> None:
    tx = bound(bridge, "transmitter")
    receivers = [bound(bridge, "receiver") for _ in range(2)]
    try:
        ids = {tx.submit().message_id.decode() for _ in range(6)}
        got: set[str] = set()
        deadline = time.monotonic() + 10
        while got != ids and time.monotonic() < deadline:
            for rx in receivers:
                rx.read_one(time.monotonic() + 0.05)
            got = {r["id"] for rx in receivers for r in rx.receipts()}
        assert got == ids
        assert all(rx.receipts() for rx in receivers)
    finally:
        tx.close()
        for rx in receivers:
            rx.close()


def test_deliver_sm_resp_sent_after_unbind_still_answers_the_receipt(bridge: RunningBridge) -> None:
    # Net::SMPP and libsmpp34 unbind, then answer the receipt that arrived meanwhile
    # (the exact bytes they sent, in one write). The answer counts: unbind_resp comes
    # after it, and the next receiver does not get the same receipt again.
    tx = bound(bridge, "transmitter")
    message_id = tx.submit().message_id.decode()
    rx = bound(bridge, "receiver")
    unbind = bytes.fromhex("00000010 00000006 00000000 00000003")
    rx.deliver_sm_answer = lambda sequence: (
        unbind + bytes.fromhex("00000011 80000005 00000000") + (sequence.to_bytes(4, "big") + b"\x00")
    )
    again = None
    try:
        [receipt] = rx.wait_receipts(1)
        assert receipt["id"] == message_id
        assert rx.read_frame_until(3) == bytes.fromhex("00000010 80000006 00000000 00000003")
        assert rx.closed_by_peer()
        again = bound(bridge, "receiver")
        again.assert_no_deliver_sm(settle=1.0)
    finally:
        for client in (tx, rx, again):
            if client is not None:
                client.close()
