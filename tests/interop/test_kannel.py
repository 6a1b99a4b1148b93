"""Kannel 1.4.5 binds to the bridge as an ESME; messages go in through smsbox's sendsms
interface and come back as dlr-url calls.

Each scenario (bind mode x message_id_format x Kannel's msg-id-type) is one Kannel
run: start the bridge (simulator provider recording what it accepts), start
bearerbox + smsbox, wait for the links to be online, send every message of
`MESSAGES` at once, wait for each one's final dlr-url call, stop Kannel (it unbinds)
and the bridge. The tests then check what each side saw: the simulator's record
(exact text, flash), Kannel's dlr-url calls (type 8 then the final type, with the
message id Kannel stored), and Kannel's own log at log-level 0 (the PDUs as Kannel
decoded them, and no "got DLR but could not find message").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.interop.common import WRONG_PASSWORD, account, seed_next_id
from tests.interop.kannel import DlrCall, DlrServer, Kannel, KannelLog, KannelSettings, wait_until
from tests.support.records import simulator_records
from tests.support.running import RunningBridge, make_config

pytestmark = pytest.mark.interop

SYSTEM_ID = "kannel"
PASSWORD = "secret"
SENDER = "12345"
# Hex ids from 0x1234567890 on are digits only: the case where Kannel has to be told
# the base (msg-id-type) or must compare ids as plain strings (msg-id-type unset).
DIGITS_ONLY_HEX = 0x12345670


@dataclass(frozen=True)
class Outgoing:
    """One sendsms request and what should come of it."""

    to: str
    text: str
    params: dict[str, Any] = field(default_factory=dict)
    flash: bool = False
    data_coding: int = 0x00
    parts: int = 1
    final: int = 1  # the final dlr-url type: 1 delivered, 2 failed, 16 refused by the SMSC

    @property
    def reaches_provider(self) -> bool:
        return self.final != 16


LONG_TEXT = (
    "Your statement is ready: balance 1.234,56€ on account @main. "
    "Next payment due on the 1st; questions? Call us any time at 0800 123 456, "
    "or write to support. This text is longer than one SMS, so Kannel splits it "
    "with a UDH and the bridge must put it together again."
)

MESSAGES: dict[str, Outgoing] = {
    "gsm": Outgoing("4917000001", "Code 4711: 5€ @Café [ok] ~ Grüße {x}"),
    "long": Outgoing("4917000002", LONG_TEXT, parts=2),
    "ucs2": Outgoing("4917000003", "مرحبا بالعالم 😀", {"coding": 2, "charset": "UTF-8"}, data_coding=0x08),
    "flash": Outgoing("4917000004", "Flash: your code is 1234", {"mclass": 0}, flash=True, data_coding=0xF0),
    "flash-ucs2": Outgoing(
        "4917000005", "Вспышка 😀", {"mclass": 0, "coding": 2, "charset": "UTF-8"}, flash=True, data_coding=0x18
    ),
    "undeliverable": Outgoing("9981234567", "This one fails", final=2),
    "refused": Outgoing("9991234567", "This one is refused", final=16),
}


@dataclass(frozen=True)
class Scenario:
    name: str
    bind: str
    id_format: str
    msg_id_type: int | None
    first_id: int | None = None

    def kannel_id(self, message_id: str) -> str:
        """The id Kannel stores for a submit_sm_resp message_id (and puts in %F):
        as it is with msg-id-type unset, else converted to decimal (smsc_smpp.c)."""
        if self.msg_id_type is None:
            return message_id
        hexadecimal = self.msg_id_type & 0x01 or not message_id.isdigit()
        return str(int(message_id, 16 if hexadecimal else 10))


SCENARIOS = [
    Scenario("trx-decimal", "transceiver", "decimal", None),
    Scenario("txrx-decimal", "tx+rx", "decimal", None),
    Scenario("trx-hex-0x03", "transceiver", "hex", 0x03, DIGITS_ONLY_HEX),
    Scenario("txrx-hex-0x03", "tx+rx", "hex", 0x03, DIGITS_ONLY_HEX),
    Scenario("trx-hex-unset", "transceiver", "hex", None, DIGITS_ONLY_HEX),
]


@dataclass
class KannelRun:
    """Everything one Kannel run left behind, for the tests to look at."""

    scenario: Scenario
    online: list[str]
    calls: dict[str, list[DlrCall]]
    records: list[dict[str, Any]]
    log: KannelLog

    def records_to(self, destination: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["to"] == destination]

    def submits_to(self, destination: str) -> list[Any]:
        return [p for p in self.log.of_type("submit_sm", "out") if p.text("destination_addr") == destination]

    def response_to(self, submit: Any) -> Any:
        [resp] = [
            p
            for p in self.log.of_type("submit_sm_resp", "in")
            if p.integer("sequence_number") == submit.integer("sequence_number")
        ]
        return resp


def bridge_config(directory: Path, scenario: Scenario) -> Any:
    kannel_account = account(SYSTEM_ID, PASSWORD, scenario.id_format)
    # delivery_delay keeps the final report clearly after the SMSC ack (type 8).
    simulator = {"type": "simulator", "delivery_delay": 0.5, "record_path": str(directory / "records.jsonl")}
    return make_config(directory, accounts=[kannel_account], providers={"sim": simulator})


def send(kannel: Kannel, dlr: DlrServer, tag: str, message: Outgoing) -> None:
    params = {"from": SENDER, "to": message.to, "text": message.text, "dlr-mask": 31, "dlr-url": dlr.url(tag)}
    status, body = kannel.sendsms(**params, **message.params)
    assert (status, body) == (202, "0: Accepted for delivery"), f"{tag}: {status} {body}"


@pytest.fixture(scope="module", params=SCENARIOS, ids=lambda s: s.name)
def run(request: pytest.FixtureRequest, kannel_installed: dict[str, str], tmp_path_factory: Any) -> Iterator[KannelRun]:
    scenario: Scenario = request.param
    directory = tmp_path_factory.mktemp(scenario.name)
    if scenario.first_id is not None:
        seed_next_id(directory / "bridge.db", scenario.first_id)
    bridge = RunningBridge(bridge_config(directory, scenario)).start()
    settings = KannelSettings(
        bind=scenario.bind, msg_id_type=scenario.msg_id_type, system_id=SYSTEM_ID, password=PASSWORD
    )
    kannel = Kannel(directory / "kannel", bridge.smpp_port, settings)
    try:
        with DlrServer() as dlr:
            kannel.start()
            online = kannel.wait_online()
            for tag, message in MESSAGES.items():
                send(kannel, dlr, tag, message)
            for tag in MESSAGES:
                dlr.wait_final(tag)
            kannel.stop()
            calls = dict(dlr.calls)
    finally:
        kannel.stop()
        bridge.stop()
    yield KannelRun(scenario, online, calls, simulator_records(directory / "records.jsonl"), KannelLog(kannel.log()))


# -- binding ---------------------------------------------------------------------------


def test_links_bind_and_come_online(run: KannelRun) -> None:
    expected = {"transceiver": ["bind_transceiver_resp"], "tx+rx": ["bind_transmitter_resp", "bind_receiver_resp"]}
    answers = [p for p in run.log.pdus if p.type_name.startswith("bind_") and p.direction == "in"]
    assert sorted(p.type_name for p in answers) == sorted(expected[run.scenario.bind])
    for answer in answers:
        assert answer.integer("command_status") == 0
        assert answer.text("system_id") == "SMPPBRIDGE"
        assert answer.integer("sc_interface_version") == 0x34
    assert len(run.online) == {"transceiver": 1, "tx+rx": 2}[run.scenario.bind]
    assert all("(online " in line for line in run.online)


def test_kannel_unbinds_cleanly_on_sigterm(run: KannelRun) -> None:
    unbinds = run.log.of_type("unbind", "out")
    answers = run.log.of_type("unbind_resp", "in")
    assert len(unbinds) == len(run.online)
    assert [p.integer("command_status") for p in answers] == [0] * len(unbinds)


# -- what reached the provider --------------------------------------------------------


@pytest.mark.parametrize("tag", [t for t, m in MESSAGES.items() if m.reaches_provider])
def test_provider_gets_the_text_once_and_whole(run: KannelRun, tag: str) -> None:
    message = MESSAGES[tag]
    [record] = run.records_to(message.to)
    assert record["text"] == message.text
    assert record["flash"] is message.flash
    assert record["from"] == SENDER


def test_refused_destination_never_reaches_the_provider(run: KannelRun) -> None:
    assert run.records_to(MESSAGES["refused"].to) == []


@pytest.mark.parametrize("tag", list(MESSAGES))
def test_kannel_sent_what_the_scenario_means(run: KannelRun, tag: str) -> None:
    """Guards the other tests: the submit_sm PDUs Kannel logged are the case we name."""
    message = MESSAGES[tag]
    submits = run.submits_to(message.to)
    assert len(submits) == message.parts
    for number, submit in enumerate(submits, start=1):
        assert submit.integer("data_coding") == message.data_coding
        if message.parts == 1:
            assert submit.integer("esm_class") == 0x03
            assert submit.integer("registered_delivery") == 0x11  # dlr-mask 31: final + intermediate
        else:
            assert submit.integer("esm_class") == 0x43  # UDH indicator
            udh = submit.octets["short_message"][:6]
            assert udh[:3] == bytes([0x05, 0x00, 0x03]) and udh[4:] == bytes([message.parts, number])
            # Kannel asks for a receipt on the first part only.
            assert submit.integer("registered_delivery") == (0x11 if number == 1 else 0x00)
    if tag == "gsm":
        # data_coding 0 carries unpacked GSM 03.38: € is 1B 65, @ is 00.
        octets = submits[0].octets["short_message"]
        assert b"\x1b\x65" in octets and b"\x00" in octets


# -- what Kannel observed: dlr-url calls -----------------------------------------------


@pytest.mark.parametrize("tag", [t for t, m in MESSAGES.items() if m.reaches_provider])
def test_dlr_url_gets_smsc_ack_then_final_report(run: KannelRun, tag: str) -> None:
    message = MESSAGES[tag]
    calls = run.calls[tag]
    assert [call.type for call in calls] == [8, message.final]
    # The id Kannel stored is that of the part that asked for the receipt (the first).
    [first, *_] = run.submits_to(message.to)
    message_id = run.response_to(first).text("message_id")
    assert message_id is not None
    if run.scenario.id_format == "decimal":
        assert message_id.isdigit()
    assert [call["fid"] for call in calls] == [run.scenario.kannel_id(message_id)] * 2
    assert calls[0]["reply"] == "ACK/"
    report = calls[1]["reply"]
    assert report.startswith(f"id:{message_id} sub:001 dlvrd:")
    assert f" stat:{'DELIVRD' if message.final == 1 else 'UNDELIV'} " in report
    assert all(call["smsc"] == "bridge" and call["to"] == message.to for call in calls)


def test_refused_destination_gives_dlr_16(run: KannelRun) -> None:
    [call] = run.calls["refused"]
    assert call.type == 16
    assert call["reply"] == "NACK/0x0000000b/Invalid Destination Address"
    [submit] = run.submits_to(MESSAGES["refused"].to)
    assert run.response_to(submit).integer("command_status") == 0x0B  # ESME_RINVDSTADR


# -- what Kannel observed: its log -----------------------------------------------------


def test_every_receipt_matched_its_submit_sm_resp(run: KannelRun) -> None:
    assert run.log.lost_dlrs() == []
    responses = {
        p.text("message_id") for p in run.log.of_type("submit_sm_resp", "in") if p.integer("command_status") == 0
    }
    receipts = run.log.of_type("deliver_sm", "in")
    wanted = [m for m in MESSAGES.values() if m.reaches_provider]
    assert len(receipts) == len(wanted)  # one per message: only the first part of the long one asked
    for receipt in receipts:
        assert receipt.integer("esm_class") == 0x04
        receipted = receipt.text("receipted_message_id")
        assert receipted in responses
        assert receipt.octets_or_text("short_message").startswith(f"id:{receipted} ".encode())
    added = run.log.dlr_lines("Adding DLR")
    looked_up = run.log.dlr_lines("Looking for DLR")
    assert len(looked_up) == len(receipts)
    assert set(looked_up) <= set(added)


def test_receipts_arrive_on_the_receiving_link(run: KannelRun) -> None:
    """Receipts go to the link bound as receiver or transceiver, never to a transmitter.
    Kannel runs one I/O thread per connection, so its log tells the links apart."""
    [receiving] = [p for p in run.log.pdus if p.type_name in ("bind_transceiver_resp", "bind_receiver_resp")]
    receipts = run.log.of_type("deliver_sm", "in")
    assert receipts
    assert {p.thread for p in receipts} == {receiving.thread}
    if run.scenario.bind == "tx+rx":
        [transmitting] = run.log.of_type("bind_transmitter_resp", "in")
        assert {p.thread for p in run.log.of_type("submit_sm", "out")} == {transmitting.thread}


# -- msg-id-type 0x01 and our hex ids ----------------------------------------------------


def test_msg_id_type_0x01_loses_receipts_of_digit_only_hex_ids(
    kannel_installed: dict[str, str], tmp_path: Path
) -> None:
    """msg-id-type 0x01 means "submit_sm_resp hex, receipt decimal": Kannel reads the
    receipt's id as decimal whenever it is all digits. Our receipts repeat the hex
    string of submit_sm_resp, so an id like 12345679 gets lost while 1234567a
    works. Hence docs/interop.md: with message_id_format = "hex" use 0x03 or unset."""
    scenario = Scenario("trx-hex-0x01", "transceiver", "hex", 0x01)
    seed_next_id(tmp_path / "bridge.db", 0x12345679)
    bridge = RunningBridge(bridge_config(tmp_path, scenario)).start()
    settings = KannelSettings(msg_id_type=0x01, system_id=SYSTEM_ID, password=PASSWORD)
    kannel = Kannel(tmp_path / "kannel", bridge.smpp_port, settings)
    try:
        with DlrServer() as dlr:
            kannel.start()
            kannel.wait_online()
            send(kannel, dlr, "digits", Outgoing("4917000011", "first"))
            dlr.wait("digits", lambda calls: len(calls) >= 1)  # acked: the next id is 0x1234567a
            send(kannel, dlr, "letters", Outgoing("4917000012", "second"))
            letters = dlr.wait_final("letters")
            wait_until(lambda: KannelLog(kannel.log()).lost_dlrs(), 10, "Kannel logging the lost receipt")
            digits = dlr.calls["digits"]
    finally:
        kannel.stop()
        bridge.stop()
    assert [c.type for c in digits] == [8]
    assert digits[0]["fid"] == str(0x12345679)
    assert [c.type for c in letters] == [8, 1]
    assert letters[1]["fid"] == str(0x1234567A)
    [lost] = KannelLog(kannel.log()).lost_dlrs()
    assert "id<12345679>" in lost  # read as decimal: not the 305419897 it stored


# -- a refused bind ----------------------------------------------------------------------


def test_wrong_password_is_refused(kannel_installed: dict[str, str], tmp_path: Path) -> None:
    """Our refused bind_resp keeps its system_id (v3.4 4.1 would allow no body on
    error; strict decoders need it). Kannel decodes it (status and system_id in its
    PDU log), logs the SMPP error name and marks the link dead."""
    scenario = Scenario("trx-refused", "transceiver", "decimal", None)
    bridge = RunningBridge(bridge_config(tmp_path, scenario)).start()
    settings = KannelSettings(system_id=SYSTEM_ID, password=WRONG_PASSWORD)
    kannel = Kannel(tmp_path / "kannel", bridge.smpp_port, settings)
    try:
        kannel.start()
        wait_until(lambda: any("(dead" in line for line in kannel.smsc_lines()), 15, "Kannel marking the link dead")
    finally:
        kannel.stop()
        bridge.stop()
    log = KannelLog(kannel.log())
    [answer] = log.of_type("bind_transceiver_resp", "in")
    assert (answer.integer("command_status"), answer.text("system_id")) == (0x0E, "SMPPBRIDGE")  # ESME_RINVPASWD
    assert "SMSC rejected login to transmit, code 0x0000000e (Invalid Password)" in log.text
    assert log.of_type("submit_sm", "out") == []
