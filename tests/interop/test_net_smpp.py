"""Net::SMPP 1.19 (Debian `libnet-smpp-perl`) against the bridge, through
tests/interop/perl/esme.pl.

The driver binds with Net::SMPP's synchronous bind, then works in the module's
asynchronous mode (submit_sm / query_sm with `async => 1`, a `read_pdu` loop that
answers deliver_sm and enquire_link) and unbinds; it prints what Net::SMPP decoded
from every PDU the bridge sent. Net::SMPP does no text encoding or splitting: the
driver sends ASCII text as data_coding 0 and cuts a long text behind a UDH itself,
as the module's documentation shows.
"""

from __future__ import annotations

from collections.abc import Callable
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
    run_json_driver,
)
from tests.support.running import RunningBridge

pytestmark = pytest.mark.interop

LONG_TEXT = "Your statement is ready. " * 8  # 200 characters: two parts of 153 + 47


def spec(bridge: RunningBridge, **scenario: Any) -> dict[str, Any]:
    return {
        "port": bridge.smpp_port,
        "system_id": SYSTEM_ID,
        "password": PASSWORD,
        "source_addr": SENDER,
        "bind": "transceiver",
        "timeout": 15,
        **scenario,
    }


def run(command: list[str], bridge: RunningBridge, **scenario: Any) -> Any:
    report = run_json_driver(command, spec(bridge, **scenario))
    assert report["errors"] == [], report
    return report


def assert_bound_and_unbound(report: Any, kind: str) -> None:
    bind = report["bind"]
    assert (bind["command"], bind["command_status"], bind["system_id"]) == (f"bind_{kind}_resp", 0, "SMPPBRIDGE")
    assert report["unbind_resp"] == {"command": "unbind_resp", "command_status": 0}


def receipt_id(deliver_sm: dict[str, Any]) -> str:
    """receipted_message_id as Net::SMPP gives it: the TLV's raw octets (C-string, NUL included)."""
    return str(deliver_sm["receipted_message_id"]).rstrip("\x00")


@pytest.mark.parametrize("kind", ["transmitter", "receiver", "transceiver"])
def test_binds_and_unbinds(net_smpp: list[str], interop_bridge: Callable[..., RunningBridge], kind: str) -> None:
    report = run(net_smpp, interop_bridge(), bind=kind)
    assert_bound_and_unbound(report, kind)


def test_wrong_password_is_refused(net_smpp: list[str], interop_bridge: Callable[..., RunningBridge]) -> None:
    report = run(net_smpp, interop_bridge(), password=WRONG_PASSWORD)
    bind = report["bind"]
    assert (bind["command"], bind["command_status"], bind["status_name"]) == (
        "bind_transceiver_resp",
        0x0E,
        "ESME_RINVPASWD",
    )
    assert bind["system_id"] == "SMPPBRIDGE"


def test_submit_with_receipt(net_smpp: list[str], interop_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    message = {"destination_addr": destination(1), "text": "Hello from Perl", "registered_delivery": 1}
    report = run(net_smpp, interop_bridge(), messages=[message], receipts=1)
    assert_bound_and_unbound(report, "transceiver")
    [resp] = report["submits"]
    assert (resp["command"], resp["command_status"]) == ("submit_sm_resp", 0)
    message_id = resp["message_id"]
    assert message_id.isdigit()

    [receipt] = report["deliver_sms"]
    assert receipt["esm_class"] == 0x04
    assert (receipt["source_addr"], receipt["destination_addr"]) == (destination(1), SENDER)
    assert (receipt["source_addr_ton"], receipt["dest_addr_ton"]) == (1, 1)
    assert receipt_id(receipt) == message_id
    assert receipt["message_state"] == 2  # DELIVERED
    fields = receipt_fields(receipt["short_message"])
    assert (fields["id"], fields["stat"], fields["err"], fields["text"]) == (
        message_id,
        "DELIVRD",
        "000",
        "Hello from Perl",
    )

    assert_provider_got(tmp_path, destination(1), "Hello from Perl")


def test_refused_submit(net_smpp: list[str], interop_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    message = {"destination_addr": REFUSED_DESTINATION, "text": "Nobody gets this", "registered_delivery": 1}
    report = run(net_smpp, interop_bridge(), messages=[message])
    [resp] = report["submits"]
    assert (resp["command"], resp["command_status"], resp["status_name"]) == (
        "submit_sm_resp",
        0x0B,
        "ESME_RINVDSTADR",
    )
    assert report["deliver_sms"] == []
    assert report["unbind_resp"]["command_status"] == 0
    assert provider_records(tmp_path) == []


def test_query_of_an_unknown_id(net_smpp: list[str], interop_bridge: Callable[..., RunningBridge]) -> None:
    report = run(net_smpp, interop_bridge(), queries=["123456789"])
    [resp] = report["queries"]
    assert (resp["command"], resp["command_status"], resp["status_name"]) == (
        "query_sm_resp",
        0x67,
        "ESME_RQUERYFAIL",
    )
    assert report["unbind_resp"]["command_status"] == 0


def test_flash_by_data_coding(
    net_smpp: list[str], interop_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    """data_coding 0xF0: GSM 7-bit default alphabet, message class 0 (flash)."""
    message = {"destination_addr": destination(2), "text": "Code 4711", "data_coding": 0xF0, "registered_delivery": 1}
    report = run(net_smpp, interop_bridge(), messages=[message], receipts=1)
    assert report["submits"][0]["command_status"] == 0
    assert receipt_id(report["deliver_sms"][0]) == report["submits"][0]["message_id"]
    assert_provider_got(tmp_path, destination(2), "Code 4711", flash=True)


def test_long_message_with_udh(
    net_smpp: list[str], interop_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    message = {"destination_addr": destination(3), "text": LONG_TEXT, "long": True, "registered_delivery": 1}
    report = run(net_smpp, interop_bridge(), messages=[message], receipts=2)
    assert [r["command_status"] for r in report["submits"]] == [0, 0]
    ids = [r["message_id"] for r in report["submits"]]
    assert len(set(ids)) == 2  # each part has its own message_id and, asked for, its own receipt
    assert sorted(receipt_id(d) for d in report["deliver_sms"]) == sorted(ids)
    assert_provider_got(tmp_path, destination(3), LONG_TEXT)


def test_transmitter_and_receiver_pair(net_smpp: list[str], interop_bridge: Callable[..., RunningBridge]) -> None:
    """The receipt of a message sent on a transmitter goes to a receiver of the same
    system_id (the bridge keeps it until one is bound), never to the transmitter."""
    bridge = interop_bridge()
    message = {"destination_addr": destination(4), "text": "Two links", "registered_delivery": 1}
    sent = run(net_smpp, bridge, bind="transmitter", messages=[message])
    assert_bound_and_unbound(sent, "transmitter")
    assert sent["deliver_sms"] == []
    received = run(net_smpp, bridge, bind="receiver", receipts=1)
    assert_bound_and_unbound(received, "receiver")
    [receipt] = received["deliver_sms"]
    assert receipt_id(receipt) == sent["submits"][0]["message_id"]
