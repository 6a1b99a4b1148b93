"""aiosmpplib 0.7.4 (PyPI) against the bridge, used as its documentation shows: an
`ESME` started as a task, messages put on its broker, everything it read handed to
a hook (`AbstractHook.received`: the message as aiosmpplib parsed it, and the PDU).

What aiosmpplib does by itself, and the tests rely on: it answers deliver_sm and
enquire_link; it encodes text as GSM 03.38 (DCS 0) or UCS-2; a long message goes
out as one `message_payload` TLV (default) or, with the UDHI flag set and
`auto_message_payload=False`, as UDH parts that each ask for a receipt; it
correlates every submit_sm_resp and receipt with the `log_id` of the SubmitSm it
came from, and reports a split message once, with its last part's response and
receipt. Its data_coding comes from the encoding name, so flash goes as the
`dest_addr_subunit` TLV (1 = MS display, class 0). Not used: its SAR splitting
(no UDHI) raises UnboundLocalError in 0.7.4 (`encoding` unset in
ESME._dequeue_messages); it has no query_sm (the test sends one on its queue as
an SmppMessage subclass and sees aiosmpplib leave the answer undecoded).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
)
from tests.support.running import RunningBridge

pytestmark = pytest.mark.interop

aiosmpplib = python_client("aiosmpplib", "aiosmpplib (PyPI)")
from aiosmpplib import (  # noqa: E402
    ESME,
    NPI,
    TON,
    AbstractHook,
    BindMode,
    DeliverSm,
    OptionalParam,
    PhoneNumber,
    SmppCommand,
    SmppCommandStatus,
    SmppError,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
)

DEST_ADDR_SUBUNIT = 0x0005
LONG_TEXT = "Your statement is ready: balance 1.234,56€ on account @main. " * 4  # 244 characters, 2 parts


@dataclass
class QuerySm(SmppMessage):
    """query_sm on aiosmpplib's SmppMessage base (aiosmpplib has none of its own)."""

    message_id: str = ""
    source: PhoneNumber = field(default_factory=lambda: PhoneNumber(SENDER, TON.INTERNATIONAL, NPI.ISDN))

    @property
    def smpp_command(self) -> SmppCommand:
        return SmppCommand.QUERY_SM

    def pdu(self) -> bytes:
        body = self.message_id.encode() + b"\x00" + struct.pack("!BB", self.source.ton, self.source.npi)
        body += self.source.number.encode() + b"\x00"
        return self.pack_header(16 + len(body)) + body


class RecordingHook(AbstractHook):
    """Keeps what aiosmpplib parsed (None when it could not) with the raw PDU."""

    def __init__(self) -> None:
        self.pdus: list[tuple[SmppMessage | None, bytes]] = []
        self.sent: list[SmppMessage] = []
        self.send_errors: list[Exception] = []
        self.changed = asyncio.Event()

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        self.sent.append(smpp_message)

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        self.pdus.append((smpp_message, pdu))
        self.changed.set()

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        self.send_errors.append(error)
        self.changed.set()

    def parsed(self, kind: type[Any]) -> list[Any]:
        return [m for m, _ in self.pdus if isinstance(m, kind)]

    def responses(self) -> dict[str, SubmitSmResp]:
        """submit_sm_resp by the log_id aiosmpplib correlated it with."""
        return {m.log_id: m for m in self.parsed(SubmitSmResp)}

    def receipts(self) -> list[DeliverSm]:
        return [m for m in self.parsed(DeliverSm) if m.is_receipt()]

    async def wait(self, condition: Callable[[], object], timeout: float = 10.0) -> None:
        async def until() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout)


@asynccontextmanager
async def bound(port: int, mode: BindMode = BindMode.TRANSCEIVER) -> AsyncIterator[tuple[ESME, RecordingHook]]:
    """An ESME started as its docs say; stopped (unbind) on the way out."""
    hook = RecordingHook()
    esme = ESME("127.0.0.1", port, SYSTEM_ID, PASSWORD, bind_mode=mode, hook=hook, log_level="WARNING")
    task = asyncio.create_task(esme.start())
    try:
        await hook.wait(lambda: esme.session_state == mode.session_state or task.done())
        yield esme, hook
    finally:
        await esme.stop()
        await asyncio.wait_for(task, 10)


def submit(to: str, text: str, log_id: str, **fields: Any) -> SubmitSm:
    return SubmitSm(
        short_message=text,
        source=PhoneNumber(SENDER, TON.INTERNATIONAL, NPI.ISDN),
        destination=PhoneNumber(to, TON.INTERNATIONAL, NPI.ISDN),
        registered_delivery=1,
        log_id=log_id,
        **fields,
    )


@pytest.mark.parametrize("mode", [BindMode.TRANSMITTER, BindMode.RECEIVER, BindMode.TRANSCEIVER], ids=lambda m: m.name)
async def test_binds_and_unbinds(interop_bridge: Callable[..., RunningBridge], mode: BindMode) -> None:
    async with bound(interop_bridge().smpp_port, mode) as (esme, hook):
        [resp] = [m for m, _ in hook.pdus if m is not None and m.smpp_command == mode.smpp_command | 0x80000000]
        assert (resp.command_status, resp.system_id, resp.sc_interface_version) == (
            SmppCommandStatus.ESME_ROK,
            "SMPPBRIDGE",
            0x34,
        )
    # stop() sends unbind and closes without reading unbind_resp (aiosmpplib's way).
    assert [type(m).__name__ for m in hook.sent][-1] == "Unbind"
    assert esme.session_state.name == "CLOSED"


async def test_wrong_password_is_refused(interop_bridge: Callable[..., RunningBridge]) -> None:
    hook = RecordingHook()
    esme = ESME("127.0.0.1", interop_bridge().smpp_port, SYSTEM_ID, WRONG_PASSWORD, hook=hook, log_level="CRITICAL")
    with pytest.raises(SmppError) as refused:
        await esme.connect()
    assert refused.value.command_status is SmppCommandStatus.ESME_RINVPASWD
    [(resp, _)] = hook.pdus
    assert resp is not None  # aiosmpplib parsed it
    assert (resp.command_status, resp.system_id) == (SmppCommandStatus.ESME_RINVPASWD, "SMPPBRIDGE")


async def test_submit_with_receipt(interop_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    text = "Price 5€ @home"
    async with bound(interop_bridge().smpp_port) as (esme, hook):
        await esme.broker.enqueue(submit(destination(1), text, "otp-1"))
        await hook.wait(lambda: hook.receipts())
    resp = hook.responses()["otp-1"]
    assert resp.command_status is SmppCommandStatus.ESME_ROK
    assert resp.message_id.isdigit()
    [receipt] = hook.receipts()
    assert receipt.log_id == "otp-1"  # aiosmpplib matched the receipt's id to the submit_sm_resp id
    assert receipt.parse_receipt()["id"] == resp.message_id
    assert receipt.parse_receipt()["stat"] == "DELIVRD"
    assert (receipt.source.number, receipt.destination.number) == (destination(1), SENDER)
    assert receipt_fields(receipt.short_message)["text"] == "Price 5? ?home"  # ASCII-safe: no € and no @ (0x00 in GSM)
    assert_provider_got(tmp_path, destination(1), text)


async def test_refused_submit(interop_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    async with bound(interop_bridge().smpp_port) as (esme, hook):
        await esme.broker.enqueue(submit(REFUSED_DESTINATION, "Nobody gets this", "refused"))
        await hook.wait(lambda: "refused" in hook.responses())
    resp = hook.responses()["refused"]
    assert (resp.command_status, resp.message_id) == (SmppCommandStatus.ESME_RINVDSTADR, "")
    assert provider_records(tmp_path) == []


def query_sm_resps(hook: RecordingHook) -> list[tuple[SmppMessage | None, bytes]]:
    return [(m, p) for m, p in hook.pdus if SmppMessage.parse_header(p).smpp_command == 0x80000003]


async def test_query_sm_answer_is_left_alone(interop_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    """aiosmpplib reads the query_sm_resp (header and body length), hands it to the hook
    undecoded and stays bound: the next message goes through."""
    async with bound(interop_bridge().smpp_port) as (esme, hook):
        await esme.broker.enqueue(QuerySm(message_id="123456789"))
        await esme.broker.enqueue(submit(destination(5), "After the query", "after"))
        # Either answer may come first (the query reads the store, the submit goes upstream).
        await hook.wait(lambda: "after" in hook.responses() and query_sm_resps(hook))
    [(parsed, pdu)] = query_sm_resps(hook)
    assert parsed is None
    assert SmppMessage.parse_header(pdu).command_status is SmppCommandStatus.ESME_RQUERYFAIL
    assert hook.responses()["after"].command_status is SmppCommandStatus.ESME_ROK


async def test_flash_by_dest_addr_subunit(interop_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    flash = [OptionalParam(DEST_ADDR_SUBUNIT, 1)]
    async with bound(interop_bridge().smpp_port) as (esme, hook):
        await esme.broker.enqueue(submit(destination(2), "Code 4711", "flash", optional_params=flash))
        await hook.wait(lambda: hook.receipts())
    assert hook.receipts()[0].log_id == "flash"
    assert_provider_got(tmp_path, destination(2), "Code 4711", flash=True)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (LONG_TEXT, {"esm_class": 0x40, "auto_message_payload": False}),  # UDH parts
        (LONG_TEXT * 2, {}),  # 488 octets: one submit_sm with message_payload
    ],
    ids=["udh", "message-payload"],
)
async def test_long_message(
    interop_bridge: Callable[..., RunningBridge], tmp_path: Path, text: str, fields: dict[str, Any]
) -> None:
    async with bound(interop_bridge().smpp_port) as (esme, hook):
        await esme.broker.enqueue(submit(destination(3), text, "long", **fields))
        await hook.wait(lambda: hook.receipts())
    assert hook.send_errors == []
    assert hook.responses()["long"].command_status is SmppCommandStatus.ESME_ROK
    [receipt] = hook.receipts()  # after the receipts of every part, if it was split
    assert receipt.log_id == "long"
    assert_provider_got(tmp_path, destination(3), text)


async def test_transmitter_and_receiver_pair(interop_bridge: Callable[..., RunningBridge]) -> None:
    port = interop_bridge().smpp_port
    async with bound(port, BindMode.RECEIVER) as (_, rx), bound(port, BindMode.TRANSMITTER) as (tx_esme, tx):
        await tx_esme.broker.enqueue(submit(destination(4), "Two links", "pair"))
        await tx.wait(lambda: "pair" in tx.responses())
        await rx.wait(lambda: rx.receipts())
    assert rx.receipts()[0].parse_receipt()["id"] == tx.responses()["pair"].message_id
    assert tx.receipts() == []
