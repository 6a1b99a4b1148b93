"""ack = "stored": answered once durably stored, then sent by the outbox."""

from __future__ import annotations

from collections.abc import Callable

from bridge.smpp.constants import Status
from bridge.smpp.pdu import SubmitSm, encode_pdu
from tests.support.esme import Esme
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
        params = {"source_addr": "1", "dest_addr_ton": 1, "destination_addr": "4917012345", "short_message": b"q"}
        # One burst: all 30 are read before the outbox can drain, so most find it full.
        client.send_raw(b"".join(encode_pdu(SubmitSm(500 + i, **params)) for i in range(30)))
        statuses = [client.read_raw_until(500 + i).status for i in range(30)]
        assert Status.ESME_RMSGQFUL in statuses
        assert Status.ESME_ROK in statuses
    finally:
        client.close()
