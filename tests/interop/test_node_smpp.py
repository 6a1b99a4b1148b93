"""node-smpp 0.5.1 (npm `smpp`) against the bridge, through tests/interop/node/esme.js.

The driver binds as a transceiver (node-smpp sends interface_version 0x50), submits,
answers the receipts, leaves the bridge's enquire_link PDUs unanswered (node-smpp
answers none unless the application does), sends its own enquire_link and unbinds;
it prints what node-smpp parsed from every PDU the bridge sent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.interop.common import PASSWORD, SYSTEM_ID, WRONG_PASSWORD, run_json_driver
from tests.support.records import simulator_records
from tests.support.running import RunningBridge

pytestmark = pytest.mark.interop

SENDER = "12345"
GSM_TEXT = "Price 5€ @home $1 _x"


def run_driver(
    command: list[str],
    bridge: RunningBridge,
    messages: list[dict[str, Any]],
    allow_errors: bool = False,
    **scenario: Any,
) -> Any:
    spec = {
        "port": bridge.smpp_port,
        "system_id": SYSTEM_ID,
        "password": PASSWORD,
        "messages": [{"source_addr": SENDER, "registered_delivery": 1, **m} for m in messages],
        "receipts": len(messages),
        "timeout_ms": 15000,
        **scenario,
    }
    report = run_json_driver(command, spec)
    if not allow_errors:
        assert report["errors"] == [], report
    return report


@pytest.fixture
def start(interop_bridge: Callable[..., RunningBridge]) -> Callable[..., RunningBridge]:
    """start(**smpp) -> a bridge whose simulator records to tmp_path.

    A short enquire_link_interval and response_timeout: within a second or two the
    bridge sends enquire_link, gives up waiting for the answer, and sends the next."""

    def run(**smpp: Any) -> RunningBridge:
        return interop_bridge(**{"enquire_link_interval": 0.3, "response_timeout": 0.5, **smpp})

    return run


@pytest.fixture
def bridge(start: Callable[..., RunningBridge]) -> RunningBridge:
    return start()


def records_by_destination(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {r["to"]: r for r in simulator_records(tmp_path / "records.jsonl")}


def test_bind_submit_receipt_silent_enquire_links_unbind(
    node_smpp: list[str], bridge: RunningBridge, tmp_path: Path
) -> None:
    report = run_driver(
        node_smpp,
        bridge,
        [{"destination_addr": "4917000001", "short_message": "Hello from node"}],
        server_enquire_links=2,
    )
    assert report["bind_sent"]["interface_version"] == 0x50
    bind = report["bind"]
    assert (bind["command"], bind["command_status"], bind["system_id"]) == ("bind_transceiver_resp", 0, "SMPPBRIDGE")
    assert bind["sc_interface_version"] == 0x34  # a v5.0 bind is answered as v3.4, with the TLV

    [resp] = report["submits"]
    assert (resp["command"], resp["command_status"]) == ("submit_sm_resp", 0)
    message_id = resp["message_id"]
    assert message_id.isdigit()

    [receipt] = report["deliver_sms"]
    assert receipt["esm_class"] == 0x04
    assert receipt["receipted_message_id"] == message_id
    assert receipt["message_state"] == 2
    assert (receipt["source_addr"], receipt["destination_addr"]) == ("4917000001", SENDER)
    text = receipt["short_message"]["message"]  # decoded by node-smpp (data_coding 0)
    assert text.startswith(f"id:{message_id} sub:001 dlvrd:001 submit date:")
    assert text.endswith(" stat:DELIVRD err:000 text:Hello from node")

    # Two enquire_links left unanswered, and the session is still there to answer ours.
    assert report["server_enquire_links"] >= 2
    assert (report["closed_early"], report["server_unbinds"]) == (False, 0)
    assert report["enquire_link_resp"]["command_status"] == 0
    assert report["unbind_resp"]["command_status"] == 0
    assert records_by_destination(tmp_path)["4917000001"]["text"] == "Hello from node"


def test_wrong_password_is_refused(node_smpp: list[str], bridge: RunningBridge) -> None:
    """Our refused bind_resp keeps its system_id; node-smpp parses it, status and
    all, and the socket stays healthy."""
    report = run_driver(node_smpp, bridge, [], allow_errors=True, password=WRONG_PASSWORD)
    assert report["errors"] == ["bind refused"]
    bind = report["bind"]
    assert (bind["command"], bind["command_status"], bind["system_id"]) == ("bind_transceiver_resp", 0x0E, "SMPPBRIDGE")
    assert report["closed_early"] is False


def test_automatic_codings_reach_the_provider(node_smpp: list[str], bridge: RunningBridge, tmp_path: Path) -> None:
    """node-smpp picks the coding itself when none is given: Latin-1 (DCS 0x03) for
    what GSM 03.38 lacks, UCS-2 (DCS 0x08) beyond Latin-1."""
    messages: list[dict[str, Any]] = [
        {"destination_addr": "4917000002", "short_message": "Ça coûte 5 ¥, señor"},
        {"destination_addr": "4917000003", "short_message": "مرحبا 😀"},
        {"destination_addr": "4917000004", "short_message": GSM_TEXT, "data_coding": 0},
    ]
    report = run_driver(node_smpp, bridge, messages)
    assert [s["command_status"] for s in report["submits"]] == [0, 0, 0]
    records = records_by_destination(tmp_path)
    assert records["4917000002"]["text"] == "Ça coûte 5 ¥, señor"
    assert records["4917000003"]["text"] == "مرحبا 😀"
    # With data_coding 0 given explicitly node-smpp sends GSM 03.38 as the SMSC default: fine.
    assert records["4917000004"]["text"] == GSM_TEXT


def test_default_dcs_0x01_with_gsm_octets(node_smpp: list[str], bridge: RunningBridge, tmp_path: Path) -> None:
    """Without data_coding, node-smpp sends GSM-encodable text as DCS 0x01 ("IA5/ASCII")
    but encodes it with its GSM 03.38 table."""
    report = run_driver(node_smpp, bridge, [{"destination_addr": "4917000005", "short_message": GSM_TEXT}])
    assert report["submits"][0]["command_status"] == 0
    assert records_by_destination(tmp_path)["4917000005"]["text"] == GSM_TEXT


def test_silent_session_is_unbound_after_inactivity_timeout(
    node_smpp: list[str], start: Callable[..., RunningBridge]
) -> None:
    """Unanswered enquire_links are no activity: a node-smpp application that neither
    answers them nor sends anything is unbound after [smpp].inactivity_timeout."""
    bridge = start(inactivity_timeout=1.0)
    one = [{"destination_addr": "4917000006", "short_message": "then silence"}]
    report = run_driver(node_smpp, bridge, one, server_enquire_links=1000)
    assert report["submits"][0]["command_status"] == 0
    assert report["server_enquire_links"] >= 1
    assert report["server_unbinds"] == 1
    assert report["closed_early"] is False  # the bridge unbound first, then closed
    assert report["enquire_link_resp"] is None


def test_answering_enquire_link_keeps_the_session(node_smpp: list[str], start: Callable[..., RunningBridge]) -> None:
    """The fix for such applications: answer enquire_link (or send one periodically)."""
    bridge = start(inactivity_timeout=1.0)
    one = [{"destination_addr": "4917000007", "short_message": "then only enquire_link_resp"}]
    report = run_driver(node_smpp, bridge, one, server_enquire_links=8, answer_enquire_link=True)
    assert report["server_enquire_links"] >= 8  # well past inactivity_timeout at 0.3 s apart
    assert (report["server_unbinds"], report["closed_early"]) == (0, False)
    assert report["enquire_link_resp"]["command_status"] == 0
    assert report["unbind_resp"]["command_status"] == 0


def test_enquire_link_starts_right_after_bind(node_smpp: list[str], start: Callable[..., RunningBridge]) -> None:
    """A session that binds and then only listens gets the bridge's enquire_link after
    enquire_link_interval (0.3 s here), not only once bind_timeout (30 s) has passed."""
    bridge = start()  # bind_timeout stays 30
    report = run_driver(node_smpp, bridge, [], server_enquire_links=1, timeout_ms=3000, allow_errors=True)
    assert report["bind"]["command_status"] == 0
    assert report["errors"] == []
    assert report["server_enquire_links"] >= 1


def test_v50_bind_is_told_rinvdcs(node_smpp: list[str], bridge: RunningBridge) -> None:
    """node-smpp binds as v5.0, so an unsendable data_coding is ESME_RINVDCS (0x104)
    for it (v3.3/v3.4 binds get ESME_RSUBMITFAIL) and it decodes that."""
    messages = [{"destination_addr": "4917000001", "short_message": "x", "data_coding": 2}]
    report = run_driver(node_smpp, bridge, messages, receipts=0)
    assert [s["command_status"] for s in report["submits"]] == [0x104]
