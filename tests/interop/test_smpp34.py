"""smpp34 1.5.0 (PyPI; Rust/tokio codec and session) against the bridge, through
tests/interop/smpp34_esme.py in its own process.

smpp34's Python client offers bind (`Client.connect`), `submit_sm`, `next()` (inbound
deliver_sm, answered by the library) and `unbind`; it has no query_sm, so that step
is not run here. It does not split text: the driver sends a long text as SAR parts
(TLVs 0x020C/0x020E/0x020F) it builds itself. A refused bind is not reported as its
status: `connect()` raises `SmppError("bind timed out")` once `connect_timeout_ms` has
passed (the hand-written server below shows it is the client, not the bridge).
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.common import (
    PASSWORD,
    REFUSED_DESTINATION,
    SENDER,
    SYSTEM_ID,
    WRONG_PASSWORD,
    assert_provider_got,
    destination,
    provider_records,
    python_client,
    receipt_fields,
    run_json_driver,
)
from tests.support.running import RunningBridge

pytestmark = pytest.mark.interop

DRIVER = Path(__file__).resolve().parent / "smpp34_esme.py"
LONG_PARTS = ["Your statement is ready. " * 6, "Questions? Call us any time."]
RECEIPTED_MESSAGE_ID, MESSAGE_STATE = "30", "1063"  # TLV tags 0x001E, 0x0427 (decimal keys)


@pytest.fixture(scope="module")
def smpp34_esme() -> list[str]:
    python_client("smpp34", "smpp34 (PyPI)")
    return [sys.executable, str(DRIVER)]


def run(command: list[str], port: int, **scenario: Any) -> Any:
    spec = {"port": port, "system_id": SYSTEM_ID, "password": PASSWORD, "source_addr": SENDER, **scenario}
    report = run_json_driver(command, spec)
    assert report["errors"] == [], report
    return report


def receipt_id(deliver_sm: dict[str, Any]) -> str:
    return bytes.fromhex(deliver_sm["tlvs"][RECEIPTED_MESSAGE_ID]).rstrip(b"\x00").decode()


@pytest.mark.parametrize("kind", ["TX", "RX", "TRX"])
def test_binds_and_unbinds(smpp34_esme: list[str], interop_bridge: Callable[..., RunningBridge], kind: str) -> None:
    report = run(smpp34_esme, interop_bridge().smpp_port, bind=kind)
    assert report["bind_error"] is None
    assert report["bound"] == {"system_id": SYSTEM_ID}  # smpp34 keeps its own system_id, not ours
    assert report["unbound"] is True


def test_wrong_password_is_refused(smpp34_esme: list[str], interop_bridge: Callable[..., RunningBridge]) -> None:
    report = run(smpp34_esme, interop_bridge().smpp_port, password=WRONG_PASSWORD, connect_timeout=1)
    assert (report["bound"], report["bind_error"]) == (None, "bind timed out")


@pytest.fixture
def refusing_server() -> Iterator[int]:
    """A hand-written SMSC answering any bind with ESME_RINVPASWD and system_id "SMSC"."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[socket.socket] = []

    def serve() -> None:
        with listener:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)
            header = conn.recv(16, socket.MSG_WAITALL)
            length, command, _, sequence = struct.unpack("!IIII", header)
            conn.recv(length - 16, socket.MSG_WAITALL)
            body = b"SMSC\x00"
            conn.sendall(struct.pack("!IIII", 16 + len(body), command | 0x80000000, 0x0E, sequence) + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(5)
    for conn in connections:
        conn.close()


def test_any_refused_bind_is_a_timeout_to_smpp34(smpp34_esme: list[str], refusing_server: int) -> None:
    """The same with a server of a few lines: smpp34 1.5.0 drops a bind_resp whose
    command_status is not 0 and waits for connect_timeout_ms."""
    report = run(smpp34_esme, refusing_server, connect_timeout=1)
    assert (report["bound"], report["bind_error"]) == (None, "bind timed out")


def test_submit_with_receipt(
    smpp34_esme: list[str], interop_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    message = {"destination_addr": destination(1), "text": "Hello from smpp34", "registered_delivery": 1}
    report = run(smpp34_esme, interop_bridge().smpp_port, messages=[message], receipts=1)
    [resp] = report["submits"]
    assert (resp["command_status"], resp["is_success"]) == (0, True)
    message_id = resp["message_id"]
    assert message_id.isdigit()

    [receipt] = report["deliver_sms"]
    assert (receipt["esm_class"], receipt["data_coding"]) == (0x04, 0x00)
    assert (receipt["source_addr"], receipt["destination_addr"]) == (destination(1), SENDER)
    assert (receipt["source_addr_ton"], receipt["dest_addr_ton"]) == (1, 1)
    assert receipt_id(receipt) == message_id
    assert receipt["tlvs"][MESSAGE_STATE] == "02"  # DELIVERED
    fields = receipt_fields(receipt["short_message"])
    assert (fields["id"], fields["stat"], fields["err"], fields["text"]) == (
        message_id,
        "DELIVRD",
        "000",
        "Hello from smpp34",
    )
    assert report["unbound"] is True
    assert_provider_got(tmp_path, destination(1), "Hello from smpp34")


def test_refused_submit(smpp34_esme: list[str], interop_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    message = {"destination_addr": REFUSED_DESTINATION, "text": "Nobody gets this", "registered_delivery": 1}
    report = run(smpp34_esme, interop_bridge().smpp_port, messages=[message])
    assert report["submits"] == [{"message_id": None, "command_status": 0x0B, "is_success": False}]  # ESME_RINVDSTADR
    assert report["unbound"] is True
    assert provider_records(tmp_path) == []


def test_flash_by_data_coding(
    smpp34_esme: list[str], interop_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    """data_coding 0xF0: GSM 7-bit default alphabet, message class 0 (flash)."""
    message = {"destination_addr": destination(2), "text": "Code 4711", "data_coding": 0xF0, "registered_delivery": 1}
    report = run(smpp34_esme, interop_bridge().smpp_port, messages=[message], receipts=1)
    assert receipt_id(report["deliver_sms"][0]) == report["submits"][0]["message_id"]
    assert_provider_got(tmp_path, destination(2), "Code 4711", flash=True)


def test_long_message_with_sar(
    smpp34_esme: list[str], interop_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    messages = [
        {"destination_addr": destination(3), "text": part, "registered_delivery": 1, "sar": [0x1234, 2, n]}
        for n, part in enumerate(LONG_PARTS, start=1)
    ]
    report = run(smpp34_esme, interop_bridge().smpp_port, messages=messages, receipts=2)
    assert [s["command_status"] for s in report["submits"]] == [0, 0]
    ids = sorted(s["message_id"] for s in report["submits"])
    assert len(set(ids)) == 2
    assert sorted(receipt_id(d) for d in report["deliver_sms"]) == ids
    assert_provider_got(tmp_path, destination(3), "".join(LONG_PARTS))


def test_transmitter_and_receiver_pair(smpp34_esme: list[str], interop_bridge: Callable[..., RunningBridge]) -> None:
    """The receipt of a message sent on a transmitter goes to a receiver of the same
    system_id (the bridge keeps it until one is bound)."""
    port = interop_bridge().smpp_port
    message = {"destination_addr": destination(4), "text": "Two links", "registered_delivery": 1}
    sent = run(smpp34_esme, port, bind="TX", messages=[message])
    received = run(smpp34_esme, port, bind="RX", receipts=1)
    [receipt] = received["deliver_sms"]
    assert receipt_id(receipt) == sent["submits"][0]["message_id"]
