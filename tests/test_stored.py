"""ack = "stored": answered once durably stored, then sent by the outbox."""

from __future__ import annotations

from collections.abc import Callable

from bridge.smpp.constants import Status
from bridge.smpp.pdu import SubmitSmResp
from tests.support.esme import Esme, raw_submits
from tests.support.running import RunningBridge

STORED = [{"system_id": "esme1", "password": "secret1", "route": "sim", "ack": "stored"}]


def test_stored_ack_then_delivered_receipt(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(accounts=STORED)
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_ROK
        resp = client.submit()
        assert resp.status == Status.ESME_ROK
        [receipt] = client.wait_receipts(1)
        assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")
    finally:
        client.close()


def test_stored_rejection_comes_back_as_rejectd_receipt(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(accounts=STORED)
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_ROK
        resp = client.submit(destination="9991234567")  # the simulator refuses it after our ack
        assert resp.status == Status.ESME_ROK
        [receipt] = client.wait_receipts(1)
        assert (receipt["id"], receipt["stat"], receipt["err"]) == (resp.message_id.decode(), "REJECTD", "011")
    finally:
        client.close()


def test_outbox_limit_answers_rmsgqful(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(
        accounts=STORED,
        outbox={"limit": 1, "concurrency": 1},
        providers={"sim": {"type": "simulator", "delivery_delay": 0.05}},
    )
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_ROK
        # One burst: all 30 are read before the outbox can drain, so most find it full.
        client.send_raw(raw_submits(500, 30, short_message=b"q"))
        statuses = [client.read_raw_until(500 + i).status for i in range(30)]
        assert Status.ESME_RMSGQFUL in statuses
        assert Status.ESME_ROK in statuses
    finally:
        client.close()


def test_a_burst_is_taken_in_then_drained_and_steady_traffic_after_it_is_sent(
    start_bridge: Callable[..., RunningBridge],
) -> None:
    """1,000 stored submits in reads of 50 (a burst: the outbox holds back for it, here up
    to `[outbox] burst` = 300, then sends while the rest comes in): each is answered
    ESME_ROK, then every one is sent and its receipt comes, and the outbox is empty.
    Steady traffic after it (one submit at a time) is sent too, each receipt before the
    next submit."""
    accounts = [{**STORED[0], "throughput": 0}]
    bridge = start_bridge(accounts=accounts, outbox={"concurrency": 4, "burst": 300})
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_ROK
        answered: list[bytes] = []
        for first in range(1, 1001, 50):
            client.send_raw(raw_submits(first, 50, short_message=b"burst", registered_delivery=1))
            for sequence in range(first, first + 50):
                resp = client.read_raw_until(sequence)
                assert isinstance(resp, SubmitSmResp)
                assert resp.status == Status.ESME_ROK
                answered.append(resp.message_id.encode())
        receipts = client.wait_receipts(1000, timeout=60)
        assert sorted(r["id"] for r in receipts) == sorted(m.decode() for m in answered)
        assert {r["stat"] for r in receipts} == {"DELIVRD"}
        assert bridge.run(lambda: bridge.bridge.outbox.size if bridge.bridge else None) == 0
        for n in range(1, 21):
            resp = client.submit()
            assert resp.status == Status.ESME_ROK
            assert client.wait_receipts(1000 + n)[-1]["id"] == resp.message_id.decode()
    finally:
        client.close()
