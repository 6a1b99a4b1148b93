"""smpplib 2.2.4 against the bridge, used the way an application uses it.

`SmpplibApp` is a small ESME on smpplib's public API only: `Client.bind_*`,
`smpplib.gsm.make_parts`, `send_message`, the sent/received handlers and `read_once`
(which answers our enquire_link and deliver_sm itself). The tests assert what
smpplib parsed from the bridge's PDUs (every PDU the client read is kept), plus what
the simulator provider recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

from tests.interop.common import PASSWORD, SYSTEM_ID, WRONG_PASSWORD
from tests.support.records import simulator_records
from tests.support.running import RunningBridge

pytestmark = pytest.mark.interop

SENDER = "12345"
RECEIPT_ESM_CLASS = 0x04  # SMSC delivery receipt (smpplib has no name for it)


class RecordingClient(smpplib.client.Client):
    """smpplib's Client, keeping every PDU it read and parsed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: list[Any] = []

    def read_pdu(self) -> Any:
        pdu = super().read_pdu()
        self.read.append(pdu)
        return pdu


class SmpplibApp:
    def __init__(self, port: int) -> None:
        self.client = RecordingClient("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
        self.sent: list[Any] = []  # submit_sm_resp, through message_sent_handler
        self.received: list[Any] = []  # deliver_sm, through message_received_handler
        self.client.set_message_sent_handler(lambda pdu, **_: self.sent.append(pdu))
        self.client.set_message_received_handler(lambda pdu, **_: self.received.append(pdu))
        self.client.connect()

    def bind(self, kind: str = "transceiver", password: str = PASSWORD) -> Any:
        return getattr(self.client, f"bind_{kind}")(system_id=SYSTEM_ID, password=password)

    def send_text(self, destination: str, text: str, **overrides: Any) -> list[Any]:
        """make_parts + send_message per part, every part asking for a receipt."""
        parts, data_coding, esm_class = smpplib.gsm.make_parts(text)
        pdus = []
        for part in parts:
            params = {
                "source_addr_ton": smpplib.consts.SMPP_TON_INTL,
                "source_addr_npi": smpplib.consts.SMPP_NPI_ISDN,
                "source_addr": SENDER,
                "dest_addr_ton": smpplib.consts.SMPP_TON_INTL,
                "dest_addr_npi": smpplib.consts.SMPP_NPI_ISDN,
                "destination_addr": destination,
                "short_message": part,
                "data_coding": data_coding,
                "esm_class": esm_class,
                "registered_delivery": 1,
                **overrides,
            }
            pdus.append(self.client.send_message(**params))
        return pdus

    def request(self, command: str) -> Any:
        """Send enquire_link / unbind and return smpplib's parsed answer."""
        pdu = smpplib.smpp.make_pdu(command, client=self.client)
        self.client.send_pdu(pdu)
        self.pump(lambda: any(p.sequence == pdu.sequence and p.command == f"{command}_resp" for p in self.client.read))
        return next(p for p in self.client.read if p.sequence == pdu.sequence and p.command == f"{command}_resp")

    def pump(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """read_once until `condition` holds (smpplib answers deliver_sm and enquire_link)."""
        deadline = time.monotonic() + timeout
        sock = self.client._socket
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"smpplib read {[p.command for p in self.client.read]}")
            sock.settimeout(min(remaining, 1.0))
            try:
                self.client.read_once(auto_send_enquire_link=False)
            except TimeoutError:  # socket.timeout
                continue
            finally:
                sock.settimeout(5)

    def receipts(self) -> list[Any]:
        return [p for p in self.received if p.esm_class & RECEIPT_ESM_CLASS]

    def commands_read(self) -> list[str]:
        return [p.command for p in self.client.read]

    def close(self) -> None:
        sock = self.client._socket
        if sock is not None:
            sock.close()
        self.client._socket = None
        self.client.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED


@pytest.fixture
def start(interop_bridge: Callable[..., RunningBridge]) -> Callable[..., RunningBridge]:
    """start(message_id_format=..., **smpp) -> a bridge whose simulator records to tmp_path."""
    return interop_bridge


@pytest.fixture
def apps() -> Iterator[Callable[[int], SmpplibApp]]:
    opened: list[SmpplibApp] = []

    def connect(port: int) -> SmpplibApp:
        app = SmpplibApp(port)
        opened.append(app)
        return app

    yield connect
    for app in opened:
        app.close()


@pytest.mark.parametrize("message_id_format", ["decimal", "hex"])
def test_bind_submit_receipt_enquire_link_unbind(
    start: Callable[..., RunningBridge], apps: Callable[[int], SmpplibApp], tmp_path: Path, message_id_format: str
) -> None:
    bridge = start(message_id_format, enquire_link_interval=0.3)
    app = apps(bridge.smpp_port)

    bind = app.bind("transceiver")
    assert (bind.command, bind.status, bind.system_id) == ("bind_transceiver_resp", 0, b"SMPPBRIDGE")
    assert bind.sc_interface_version == 0x34
    assert app.client.state == smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX

    text = "Price 5€ @home {ok}"
    [submit] = app.send_text("4917000001", text)
    app.pump(lambda: len(app.sent) == 1 and len(app.receipts()) == 1)
    [resp] = app.sent
    assert (resp.status, resp.sequence) == (0, submit.sequence)
    message_id = resp.message_id.decode()
    assert message_id.isdigit() if message_id_format == "decimal" else int(message_id, 16) > 0

    [receipt] = app.receipts()
    assert receipt.esm_class == 0x04
    assert receipt.receipted_message_id.decode() == message_id
    assert receipt.message_state == smpplib.consts.SMPP_MESSAGE_STATE_DELIVERED
    assert (receipt.source_addr, receipt.destination_addr) == (b"4917000001", SENDER.encode())
    assert receipt.short_message.startswith(f"id:{message_id} sub:001 dlvrd:001 ".encode())
    assert b" stat:DELIVRD err:000 text:" in receipt.short_message

    [record] = simulator_records(tmp_path / "records.jsonl")
    assert (record["text"], record["flash"], record["to"]) == (text, False, "4917000001")

    # Idle past enquire_link_interval: smpplib answers the bridge's enquire_link itself.
    app.pump(lambda: "enquire_link" in app.commands_read())
    ours = app.request("enquire_link")
    assert ours.status == 0

    unbind = app.request("unbind")
    assert unbind.status == 0
    assert app.client.state == smpplib.consts.SMPP_CLIENT_STATE_OPEN
    assert [c for c in app.commands_read() if c.startswith(("generic_nack", "unbind"))] == ["unbind_resp"]


def test_wrong_password_is_refused(start: Callable[..., RunningBridge], apps: Callable[[int], SmpplibApp]) -> None:
    """smpplib raises PDUError with the status it read; the answer carries our
    system_id, and the connection stays usable for a bind with the right password."""
    app = apps(start().smpp_port)
    with pytest.raises(smpplib.exceptions.PDUError) as refused:
        app.bind(password=WRONG_PASSWORD)
    assert refused.value.args[1] == smpplib.consts.SMPP_ESME_RINVPASWD
    [answer] = app.client.read
    assert (answer.command, answer.status, answer.system_id) == ("bind_transceiver_resp", 0x0E, b"SMPPBRIDGE")
    assert app.client.state == smpplib.consts.SMPP_CLIENT_STATE_OPEN
    assert app.bind().status == 0


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [
        # make_parts cuts GSM text at 153 octets: here between the two octets of € (1B 65).
        ("a" * 152 + "€" + "b" * 10, 0x00),
        # ... and UCS-2 at 134 octets: here between the two halves of the emoji's surrogate pair.
        ("ب" * 66 + "😀" + "ب" * 10, 0x08),
    ],
    ids=["gsm-escape-split", "ucs2-surrogate-split"],
)
def test_make_parts_message_is_reassembled(
    start: Callable[..., RunningBridge], apps: Callable[[int], SmpplibApp], tmp_path: Path, text: str, data_coding: int
) -> None:
    bridge = start()
    app = apps(bridge.smpp_port)
    app.bind()
    submits = app.send_text("4917000002", text)
    assert len(submits) == 2 and all(s.data_coding == data_coding and s.esm_class == 0x40 for s in submits)
    app.pump(lambda: len(app.sent) == 2 and len(app.receipts()) == 2)
    assert [r.status for r in app.sent] == [0, 0]
    ids = [r.message_id for r in app.sent]
    assert len(set(ids)) == 2  # every segment has its own message_id ...
    assert sorted(r.receipted_message_id for r in app.receipts()) == sorted(ids)  # ... and its own receipt
    [record] = simulator_records(tmp_path / "records.jsonl")
    assert record["text"] == text


def test_flash_by_data_coding(
    start: Callable[..., RunningBridge], apps: Callable[[int], SmpplibApp], tmp_path: Path
) -> None:
    bridge = start()
    app = apps(bridge.smpp_port)
    app.bind()
    app.send_text("4917000003", "Flash code 9876", data_coding=0x10)  # GSM 7-bit, message class 0
    app.pump(lambda: len(app.receipts()) == 1)
    [record] = simulator_records(tmp_path / "records.jsonl")
    assert (record["text"], record["flash"]) == ("Flash code 9876", True)


def test_transmitter_and_receiver_pair(
    start: Callable[..., RunningBridge], apps: Callable[[int], SmpplibApp], tmp_path: Path
) -> None:
    """A deliver_sm on a transmitter would break smpplib (no deliver_sm_resp allowed in BOUND_TX)."""
    bridge = start()
    tx, rx = apps(bridge.smpp_port), apps(bridge.smpp_port)
    assert tx.bind("transmitter").status == 0
    assert rx.bind("receiver").status == 0
    tx.send_text("4917000004", "Two links")
    tx.pump(lambda: len(tx.sent) == 1)
    rx.pump(lambda: len(rx.receipts()) == 1)
    assert rx.receipts()[0].receipted_message_id == tx.sent[0].message_id
    assert tx.request("unbind").status == 0
    assert "deliver_sm" not in tx.commands_read()
    assert rx.request("unbind").status == 0
