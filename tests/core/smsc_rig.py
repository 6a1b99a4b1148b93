"""The core wired as app.py wires it, around a fake store, fake providers and a fake
clock, fed hand-written SMPP bytes through a fake connection (for the Smsc and
Pipeline tests)."""

from __future__ import annotations

import struct
from typing import Any

from bridge.config import Config, parse_config
from bridge.core.auth import Authenticator
from bridge.core.ids import IdAllocator
from bridge.core.outbox import Outbox
from bridge.core.pipeline import Pipeline
from bridge.core.receipts import ReceiptEngine
from bridge.core.registry import SessionRegistry
from bridge.core.sender import Sender
from bridge.core.smsc import Smsc
from bridge.metrics import Metrics
from tests.core.fakes import FakeClock, FakeConnection, FakeProvider, FakeStore, RecordingLog

# Command ids (SMPP 3.4 section 5.1.2.1) and statuses (5.1.3) the tests read.
BIND_TRANSCEIVER, BIND_TRANSCEIVER_RESP = 0x00000009, 0x80000009
SUBMIT_SM, SUBMIT_SM_RESP, DELIVER_SM = 0x00000004, 0x80000004, 0x00000005
ESME_ROK, ESME_RSYSERR, ESME_RINVDSTADR = 0x00, 0x08, 0x0B
ESME_RBINDFAIL, ESME_RINVPASWD = 0x0D, 0x0E
ESME_RMSGQFUL = 0x14  # SMPP 3.4, 5.1.3: message queue full


def pdu(command_id: int, sequence: int, body: bytes) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body


def bind_transceiver(sequence: int = 1, system_id: bytes = b"esme1", password: bytes = b"secret1") -> bytes:
    # system_id, password, system_type, interface_version 0x34, addr_ton, addr_npi, address_range
    return pdu(BIND_TRANSCEIVER, sequence, system_id + b"\0" + password + b"\0" + b"\0" + b"\x34\x00\x00" + b"\0")


def submit_sm(sequence: int, destination: bytes = b"4917012345", text: bytes = b"Hello", receipt: int = 1) -> bytes:
    body = (
        b"\0"  # service_type
        + b"\x01\x01" + b"12345\0"  # source ton, npi, addr
        + b"\x01\x01" + destination + b"\0"  # destination ton, npi, addr
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\0\0"  # schedule_delivery_time, validity_period
        + bytes([receipt]) + b"\x00\x00\x00"  # registered_delivery, replace, data_coding, sm_default_msg_id
        + bytes([len(text)]) + text
    )  # fmt: skip
    return pdu(SUBMIT_SM, sequence, body)


def message_id_of(conn: FakeConnection, sequence: int) -> str:
    """The message_id (a C-Octet String body) of the submit_sm_resp to `sequence`."""
    data = bytes(conn.written)
    while data:
        length, command_id, _, seq = struct.unpack(">IIII", data[:16])
        if command_id == SUBMIT_SM_RESP and seq == sequence:
            return data[16:length].split(b"\0")[0].decode()
        data = data[length:]
    raise LookupError(sequence)


class SmscRig:
    def __init__(
        self,
        ack: str = "upstream",
        providers: list[FakeProvider] | None = None,
        account_route: str | None = "p",
        id_block: int = 1000,
        **raw: Any,
    ) -> None:
        self.clock = FakeClock()
        self.store = FakeStore()
        self.metrics = Metrics()
        self.log = RecordingLog()
        self.providers = {p.name: p for p in providers or [FakeProvider()]}
        account = {"system_id": "esme1", "password": "secret1", "throughput": 0, "ack": ack, "route": account_route}
        config = {
            "accounts": [account],
            "providers": {name: {"type": "simulator"} for name in self.providers},
            **raw,
        }
        self.config: Config = parse_config(config)
        self.registry = SessionRegistry()
        self.authenticator = Authenticator(self.config)
        self.sender = Sender(self.providers, self.metrics, self.log, clock=self.clock)
        self.receipts = ReceiptEngine(
            self.store, self.registry, self.authenticator.account, self.metrics, self.log, self.clock
        )
        self.outbox = Outbox(
            self.config.outbox, self.store, self.sender, self.receipts, self.metrics, self.log, self.clock
        )
        self.pipeline = Pipeline(
            self.config,
            self.store,
            IdAllocator(self.store, block=id_block),
            self.sender,
            self.receipts,
            self.outbox,
            self.metrics,
            self.log,
            self.clock,
        )
        self.smsc = Smsc(
            self.config, self.authenticator, self.registry, self.pipeline, self.receipts, self.metrics, self.log
        )

    def feed(self, conn: FakeConnection, data: bytes) -> None:
        now = self.clock()
        self.smsc.handle_events(conn, conn.session.receive_data(data, now), now)

    async def answered(self, conn: FakeConnection, data: bytes) -> list[tuple[int, int, int]]:
        """Feed `data`, let the Smsc answer it, and return every PDU written so far."""
        self.feed(conn, data)
        assert await self.smsc.drain(10)
        conn.flush()
        return conn.responses()

    async def bound(self) -> FakeConnection:
        conn = FakeConnection(self.clock())
        assert await self.answered(conn, bind_transceiver()) == [(BIND_TRANSCEIVER_RESP, ESME_ROK, 1)]
        return conn
