"""libsmpp34 1.14 (Debian `libsmpp34-dev`, the osmocom C library) against the bridge,
through tests/interop/c/esme.c, compiled by the `libsmpp34_esme` fixture.

libsmpp34 is a codec: `smpp34_pack` builds each PDU the driver sends and
`smpp34_unpack` decodes each PDU the bridge sends. It is strict: a PDU that lacks a
mandatory field is refused with the library's own message ("Value length exceed
buffer length"), so these tests see what a strict ESME sees. The driver prints one
JSON line per PDU it read with what libsmpp34 decoded, or an `unpack_error` line
with the library's message and the PDU in hex.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
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
    receipt_fields,
)
from tests.support.running import RunningBridge

pytestmark = pytest.mark.interop

LONG_TEXT = "Your statement is ready. " * 8  # 200 characters: two parts of 153 + 47


@dataclass
class Run:
    """What the driver printed: one dict per event, in order."""

    events: list[dict[str, Any]]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def responses(self, command: str) -> list[dict[str, Any]]:
        return [e for e in self.of("response") if e["command"] == command]

    @property
    def bind(self) -> dict[str, Any]:
        [bind] = self.of("bind_resp")
        return bind

    def assert_clean(self) -> None:
        """Every PDU decoded, and the session ended with unbind_resp OK."""
        assert self.of("unpack_error") == [] and self.of("error") == [], self.events
        assert [e["command_status"] for e in self.responses("UNBIND_RESP")] == [0]


def run(
    esme: str, bridge: RunningBridge, *steps: str, bind: str = "trx", password: str = PASSWORD, receipts: int = 0
) -> Run:
    command = [esme, str(bridge.smpp_port), SYSTEM_ID, password, bind, SENDER, str(receipts), "15", *steps]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return Run([json.loads(line) for line in result.stdout.splitlines()])


@pytest.mark.parametrize(("kind", "command"), [("tx", "TRANSMITTER"), ("rx", "RECEIVER"), ("trx", "TRANSCEIVER")])
def test_binds_and_unbinds(
    libsmpp34_esme: str, interop_bridge: Callable[..., RunningBridge], kind: str, command: str
) -> None:
    result = run(libsmpp34_esme, interop_bridge(), bind=kind)
    result.assert_clean()
    assert (result.bind["command"], result.bind["command_status"]) == (f"BIND_{command}_RESP", 0)
    assert result.bind["system_id"] == "SMPPBRIDGE"
    assert result.bind["sc_interface_version"] == 0x34


def test_wrong_password_is_refused(libsmpp34_esme: str, interop_bridge: Callable[..., RunningBridge]) -> None:
    """bind_transceiver_resp's system_id is mandatory for libsmpp34 even on an error:
    the bridge's refusal carries it, so the library decodes the status."""
    result = run(libsmpp34_esme, interop_bridge(), password=WRONG_PASSWORD)
    assert result.of("unpack_error") == []
    assert (result.bind["command_status"], result.bind["system_id"]) == (0x0E, "SMPPBRIDGE")  # ESME_RINVPASWD


def test_submit_with_receipt(libsmpp34_esme: str, interop_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    result = run(libsmpp34_esme, interop_bridge(), f"submit:{destination(1)}:0:1:Hello from C", receipts=1)
    result.assert_clean()
    [resp] = result.responses("SUBMIT_SM_RESP")
    assert resp["command_status"] == 0
    message_id = resp["message_id"]
    assert message_id.isdigit()

    [receipt] = result.of("deliver_sm")
    assert (receipt["esm_class"], receipt["data_coding"]) == (0x04, 0x00)
    assert (receipt["source_addr"], receipt["destination_addr"]) == (destination(1), SENDER)
    assert (receipt["receipted_message_id"], receipt["message_state"]) == (message_id, 2)  # DELIVERED
    fields = receipt_fields(receipt["short_message"])
    assert (fields["id"], fields["stat"], fields["err"], fields["text"]) == (
        message_id,
        "DELIVRD",
        "000",
        "Hello from C",
    )

    assert_provider_got(tmp_path, destination(1), "Hello from C")


def test_refused_submit(libsmpp34_esme: str, interop_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    """An error submit_sm_resp has no body (SMPP 3.4 4.4.2); libsmpp34's message_id is optional."""
    result = run(libsmpp34_esme, interop_bridge(), f"submit:{REFUSED_DESTINATION}:0:1:Nobody gets this")
    result.assert_clean()
    [resp] = result.responses("SUBMIT_SM_RESP")
    assert (resp["command_status"], resp["message_id"]) == (0x0B, "")  # ESME_RINVDSTADR
    assert result.of("deliver_sm") == []
    assert provider_records(tmp_path) == []


def test_query_of_an_unknown_id(libsmpp34_esme: str, interop_bridge: Callable[..., RunningBridge]) -> None:
    """query_sm_resp's message_id, final_date, message_state and error_code are
    mandatory for libsmpp34 whatever the command_status (SMPP 3.4 4.8.2 names no
    exception): a query_sm_resp that is only a header cannot be decoded."""
    result = run(libsmpp34_esme, interop_bridge(), "query:123456789")
    result.assert_clean()
    [resp] = result.responses("QUERY_SM_RESP")
    assert resp["command_status"] == 0x67  # ESME_RQUERYFAIL
    assert {"message_id", "final_date", "message_state", "error_code"} <= resp.keys()


def test_flash_by_data_coding(
    libsmpp34_esme: str, interop_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    """data_coding 0xF0: GSM 7-bit default alphabet, message class 0 (flash)."""
    result = run(libsmpp34_esme, interop_bridge(), f"submit:{destination(2)}:0xF0:1:Code 4711", receipts=1)
    result.assert_clean()
    [resp] = result.responses("SUBMIT_SM_RESP")
    [receipt] = result.of("deliver_sm")
    assert receipt["receipted_message_id"] == resp["message_id"]
    assert_provider_got(tmp_path, destination(2), "Code 4711", flash=True)


def test_long_message_with_udh(
    libsmpp34_esme: str, interop_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    result = run(libsmpp34_esme, interop_bridge(), f"long:{destination(3)}:1:{LONG_TEXT}", receipts=2)
    result.assert_clean()
    assert [(s["esm_class"], s["data_coding"]) for s in result.of("submit_sm")] == [(0x40, 0x00)] * 2
    responses = result.responses("SUBMIT_SM_RESP")
    assert [r["command_status"] for r in responses] == [0, 0]
    ids = sorted(r["message_id"] for r in responses)
    assert len(set(ids)) == 2
    assert sorted(d["receipted_message_id"] for d in result.of("deliver_sm")) == ids
    assert_provider_got(tmp_path, destination(3), LONG_TEXT)


def test_transmitter_and_receiver_pair(libsmpp34_esme: str, interop_bridge: Callable[..., RunningBridge]) -> None:
    """The receipt of a message sent on a transmitter goes to a receiver of the same
    system_id (the bridge keeps it until one is bound), never to the transmitter."""
    bridge = interop_bridge()
    sent = run(libsmpp34_esme, bridge, f"submit:{destination(4)}:0:1:Two links", bind="tx")
    sent.assert_clean()
    assert sent.of("deliver_sm") == []
    received = run(libsmpp34_esme, bridge, bind="rx", receipts=1)
    received.assert_clean()
    [receipt] = received.of("deliver_sm")
    assert receipt["receipted_message_id"] == sent.responses("SUBMIT_SM_RESP")[0]["message_id"]
