"""Issue 14: answers a strict SMPP decoder (cloudhopper, jSMPP, Net::SMPP, libsmpp34)
reads without dropping the response or the connection, over real sockets.

Every expected PDU is written out here byte by byte from SMPP v3.4 (and v3.3 / v5.0
where the bind's version matters); none comes from the bridge's own tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from bridge.smpp.constants import Command, Status
from bridge.smpp.pdu import (
    BindTransceiver,
    DataSm,
    Pdu,
    QuerySm,
    QuerySmResp,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    encode_pdu,
)
from tests.support.esme import Esme
from tests.support.running import RunningBridge
from tests.support.waiting import wait_for

DESTINATION = "4917012345"  # the simulator delivers it
FAILING = "9981234567"  # the simulator accepts it, then reports UNDELIV


def submit_sm(sequence: int, **overrides: Any) -> Pdu:
    params: dict[str, Any] = {
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": "12345",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": DESTINATION,
        "short_message": b"Hello",
    }
    tlvs = overrides.pop("tlvs", {})
    params.update(overrides)
    return SubmitSm(sequence, 0, tlvs, **params)


def submit_multi(sequence: int, destinations: list[tuple[int, int, str]], **overrides: Any) -> Pdu:
    return SubmitMulti(
        sequence,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="12345",
        dest_addresses=[SmeAddress(ton, npi, addr) for ton, npi, addr in destinations],
        short_message=b"Hello",
        **overrides,
    )


def query_answer(client: Esme, query: QuerySm) -> QuerySmResp:
    answer = client.exchange(query)
    assert isinstance(answer, QuerySmResp)
    return answer


def header(length: int, command_id: int, status: int, sequence: int) -> bytes:
    return b"".join(value.to_bytes(4, "big") for value in (length, command_id, status, sequence))


def bound(bridge: RunningBridge, interface_version: int = 0x34, kind: str = "transceiver") -> Esme:
    client = Esme(bridge.smpp_port)
    assert client.bind(kind, interface_version=interface_version).status == Status.ESME_ROK
    return client


@pytest.fixture
def v50(bridge: RunningBridge) -> Any:
    client = bound(bridge, 0x50)
    yield client
    client.close()


# -- 1. error responses keep their mandatory fields -------------------------------------


def test_query_sm_for_an_unknown_id(esme: Esme) -> None:
    query = QuerySm(501, message_id="999", source_addr_ton=1, source_addr_npi=1)
    # message_id NULL, final_date NULL, message_state 7 (UNKNOWN), error_code 0
    assert esme.exchange_bytes(query) == header(20, 0x80000003, 0x67, 501) + b"\x00\x00\x07\x00"


def test_submit_multi_resp_with_an_error_keeps_message_id_and_no_unsuccess(esme: Esme) -> None:
    multi = submit_multi(502, [(1, 1, "49170")], protocol_id=0x40)
    assert esme.exchange_bytes(multi) == header(18, 0x80000021, 0x45, 502) + b"\x00\x00"


def test_data_sm_resp_with_an_error_keeps_message_id(esme: Esme) -> None:
    data_sm = DataSm(
        503,
        tlvs={0x0424: b"Hello"},
        source_addr="12345",
        dest_addr_ton=9,
        dest_addr_npi=1,
        destination_addr=DESTINATION,
    )
    assert esme.exchange_bytes(data_sm) == header(17, 0x80000103, 0x50, 503) + b"\x00"


def test_submit_sm_resp_with_an_error_is_16_octets(esme: Esme) -> None:
    assert esme.exchange_bytes(submit_sm(504, destination_addr="not-a-number")) == header(16, 0x80000004, 0x0B, 504)


# -- 2. a refused bind keeps our system_id -------------------------------------------


def test_refused_bind_bytes(bridge: RunningBridge) -> None:
    client = Esme(bridge.smpp_port)
    try:
        bind = BindTransceiver(7, system_id="esme1", password="wrong", interface_version=0x34)
        assert client.exchange_bytes(bind) == header(27, 0x80000009, 0x0E, 7) + b"SMPPBRIDGE\x00"
    finally:
        client.close()


# -- 3. ESME_RINVDCS only to v5.0 binds -------------------------------------------------


@pytest.mark.parametrize("data_coding", [0x14, 0xF4, 0x15, 0x54])  # 8-bit data in the GSM coding groups
def test_8bit_data_in_the_gsm_coding_groups_is_refused(esme: Esme, v50: Esme, data_coding: int) -> None:
    # 9. never sent on as Latin-1 text; 3. a v3.4 bind is told 0x45, a v5.0 bind 0x104.
    assert esme.exchange_bytes(submit_sm(510, data_coding=data_coding)) == header(16, 0x80000004, 0x45, 510)
    assert v50.exchange_bytes(submit_sm(511, data_coding=data_coding)) == header(16, 0x80000004, 0x104, 511)


# -- 5. reserved TON / NPI ----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"source_addr_ton": 7}, 0x48),  # ESME_RINVSRCTON
        ({"source_addr_npi": 2}, 0x49),  # ESME_RINVSRCNPI
        ({"dest_addr_ton": 9}, 0x50),  # ESME_RINVDSTTON
        ({"dest_addr_npi": 7}, 0x51),  # ESME_RINVDSTNPI
        ({"dest_addr_npi": 19}, 0x51),
    ],
)
def test_reserved_ton_and_npi(esme: Esme, overrides: dict[str, int], status: int) -> None:
    assert esme.exchange_bytes(submit_sm(520, **overrides)) == header(16, 0x80000004, status, 520)


def test_reserved_ton_of_one_submit_multi_destination(esme: Esme) -> None:
    multi = submit_multi(521, [(9, 1, "4917000001"), (1, 1, DESTINATION)])
    frame = esme.exchange_bytes(multi)
    assert frame[4:16] == bytes.fromhex("80000021 00000000 00000209")
    end = frame.index(b"\x00", 16)
    assert re.fullmatch(rb"[1-9][0-9]{0,9}", frame[16:end])
    # no_unsuccess 1: TON 9, NPI 1, the address, error_status_code 0x50
    assert frame[end + 1 :] == b"\x01\x09\x014917000001\x00" + (0x50).to_bytes(4, "big")


# -- 9. UDH elements other than concatenation -------------------------------------------


@pytest.mark.parametrize(
    "udh",
    [
        b"\x06\x05\x04\x0b\x84\x23\xf0",  # application port addressing 16-bit
        b"\x04\x04\x02\x10\x20",  # application port addressing 8-bit
        b"\x03\x24\x01\x01",  # national language single shift
        b"\x08\x25\x01\x01\x00\x03\x01\x02\x01",  # locking shift + concatenation
    ],
    ids=["ports16", "ports8", "single-shift", "locking-shift"],
)
def test_udh_elements_that_cannot_be_sent_are_refused(esme: Esme, udh: bytes) -> None:
    pdu = submit_sm(530, esm_class=0x40, short_message=udh + b"text")
    assert esme.exchange_bytes(pdu) == header(16, 0x80000004, 0x43, 530)  # ESME_RINVESMCLASS


# -- 10. registered_delivery 3, replace_if_present_flag 1 ---------------------------


def test_registered_delivery_3_is_refused_to_v34(esme: Esme) -> None:
    pdu = submit_sm(540, registered_delivery=3)
    assert esme.exchange_bytes(pdu) == header(16, 0x80000004, 0x07, 540)  # ESME_RINVREGDLVFLG


def test_registered_delivery_3_is_success_only_for_v50(bridge: RunningBridge, v50: Esme) -> None:
    failed = v50.submit(destination=FAILING, registered_delivery=3)
    delivered = v50.submit(destination=DESTINATION, registered_delivery=3)
    assert failed.status == delivered.status == Status.ESME_ROK
    [receipt] = v50.wait_receipts(1)
    assert receipt["id"] == delivered.message_id.decode()
    assert receipt["stat"] == "DELIVRD"
    # The failed one is final too (query_sm says so) and nothing waits to be sent.
    query = QuerySm(541, message_id=failed.message_id.decode(), source_addr_ton=1, source_addr_npi=1)
    wait_for(lambda: query_answer(v50, query).message_state == 5)

    async def waiting() -> float:
        assert bridge.bridge is not None
        return sum(n for _, n in bridge.bridge.receipts.waiting())

    assert bridge.call(waiting()) == 0
    assert [r["id"] for r in v50.receipts()] == [delivered.message_id.decode()]


def test_replace_if_present_is_rinvsubrep(esme: Esme) -> None:
    pdu = submit_sm(542, replace_if_present_flag=1)
    assert esme.exchange_bytes(pdu) == header(16, 0x80000004, 0x42, 542)


# -- 12. protocol_id ------------------------------------------------------------------


@pytest.mark.parametrize("protocol_id", [0x40, 0x41, 0x47, 0x7F, 0x20, 0xC0])
def test_protocol_ids_an_http_api_cannot_honour_are_refused(esme: Esme, protocol_id: int) -> None:
    pdu = submit_sm(550, protocol_id=protocol_id)
    assert esme.exchange_bytes(pdu) == header(16, 0x80000004, 0x45, 550)  # ESME_RSUBMITFAIL


def test_ordinary_protocol_id_is_sent(esme: Esme) -> None:
    assert esme.submit(protocol_id=0x00).status == Status.ESME_ROK


# -- 8. TLVs the bridge does not read ---------------------------------------------------


def test_bad_length_tlv_we_do_not_read_is_dropped_and_the_message_sent(esme: Esme) -> None:
    pdu = submit_sm(560, tlvs={0x0204: b"\x01\x02\x03"})  # user_message_reference is 2 octets
    answer = esme.exchange(pdu)
    assert (answer.command, answer.status) == (Command.SUBMIT_SM_RESP, Status.ESME_ROK)


def test_trailing_fragment_after_the_mandatory_fields_is_ignored(esme: Esme) -> None:
    data = bytearray(encode_pdu(submit_sm(561)) + b"\x00\x00")
    data[0:4] = len(data).to_bytes(4, "big")
    esme.send_raw(bytes(data))
    answer = esme.read_raw_until(561)
    assert (answer.command, answer.status) == (Command.SUBMIT_SM_RESP, Status.ESME_ROK)


def test_bad_length_sar_tlv_is_still_refused(esme: Esme) -> None:
    pdu = submit_sm(562, tlvs={0x020C: b"\x01\x02", 0x020E: b"\x00\x02", 0x020F: b"\x01"})
    assert esme.exchange_bytes(pdu) == header(16, 0x80000004, 0xC2, 562)  # ESME_RINVPARLEN


# -- 4. how a deliver_sm is answered ----------------------------------------------------


def test_permanent_refusal_of_a_receipt_is_not_retried(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(smpp={"receipt_retry_base": 0.05})
    client = bound(bridge)
    try:
        client.deliver_sm_status = lambda pdu: Status.ESME_RX_P_APPN
        client.submit()
        client.wait_until(lambda: len(client.delivered) >= 1)

        async def waiting() -> float:
            assert bridge.bridge is not None
            return sum(n for _, n in bridge.bridge.receipts.waiting())

        wait_for(lambda: bridge.call(waiting()) == 0)  # dropped, not waiting for a retry
        client.deliver_sm_status = lambda pdu: Status.ESME_ROK
        second = client.submit()
        client.wait_until(lambda: len(client.delivered) >= 2)
        # The second deliver_sm is the second message's receipt, not the first one again.
        assert [r["id"] for r in client.receipts()][1] == second.message_id.decode()
        assert len(client.delivered) == 2
    finally:
        client.close()


@pytest.mark.parametrize(
    "answer",
    [
        "00000010 80000000 00000000",  # generic_nack with status 0
        "00000010 80000015 00000000",  # enquire_link_resp carrying the deliver_sm's sequence
    ],
    ids=["generic-nack-ok", "enquire-link-resp"],
)
def test_only_an_ok_deliver_sm_resp_delivers_a_receipt(start_bridge: Callable[..., RunningBridge], answer: str) -> None:
    bridge = start_bridge(smpp={"receipt_retry_base": 0.05, "response_timeout": 1})
    client = bound(bridge)
    try:
        client.deliver_sm_answer = lambda sequence: bytes.fromhex(answer) + sequence.to_bytes(4, "big")
        resp = client.submit()
        client.wait_until(lambda: len(client.delivered) >= 1)
        client.deliver_sm_answer = None  # answer properly from now on
        client.wait_until(lambda: len(client.delivered) >= 2)
        assert [r["id"] for r in client.receipts()] == [resp.message_id.decode()] * 2  # sent again
    finally:
        client.close()


# -- 6. message_id width -------------------------------------------------------------


def test_v34_bind_gets_decimal_ids_of_at_most_10_digits(esme: Esme) -> None:
    message_id = esme.submit().message_id.decode()
    assert re.fullmatch(r"[1-9][0-9]{0,9}", message_id) and int(message_id) < 2**32


def test_v33_bind_of_a_decimal_account_gets_hex_ids_of_at_most_8_digits(bridge: RunningBridge) -> None:
    client = bound(bridge, 0x33)
    try:
        resp = client.submit()
        message_id = resp.message_id.decode()
        assert re.fullmatch(r"[0-9a-f]{1,8}", message_id)
        [receipt] = client.wait_receipts(1)
        assert receipt["id"] == message_id  # the receipt repeats it (v3.3: no TLVs)
        query = QuerySm(570, message_id=message_id, source_addr_ton=1, source_addr_npi=1)
        answer = query_answer(client, query)
        assert (answer.status, answer.message_id, answer.message_state) == (0, message_id, 2)
    finally:
        client.close()


# -- 7. ACCEPTD is final; intermediate notifications ----------------------------------


@pytest.mark.parametrize("esm_class", [0x04, 0x20])
def test_intermediate_notification_esm_class_per_account(
    start_bridge: Callable[..., RunningBridge], esm_class: int
) -> None:
    bridge = start_bridge(
        accounts=[
            {"system_id": "esme1", "password": "secret1", "route": "sim", "intermediate_esm_class": esm_class},
        ],
        providers={"sim": {"type": "simulator", "delivery_delay": 0.2, "intermediate": True}},
    )
    client = bound(bridge)
    try:
        resp = client.submit(registered_delivery=0x11)
        client.wait_until(lambda: len(client.delivered) >= 2)
        first, final = client.delivered
        assert (first.esm_class, first.message_state) == (esm_class, 1)  # ENROUTE
        assert (final.esm_class, final.message_state) == (0x04, 2)  # DELIVRD
        assert first.receipted_message_id.decode() == final.receipted_message_id.decode() == resp.message_id.decode()
    finally:
        client.close()


def test_query_sm_reports_a_final_state_with_its_final_date(esme: Esme) -> None:
    message_id = esme.submit().message_id.decode()
    esme.wait_receipts(1)
    query = QuerySm(580, message_id=message_id, source_addr_ton=1, source_addr_npi=1)
    answer = query_answer(esme, query)
    assert answer.message_state == 2
    assert re.fullmatch(r"\d{13}00\+", answer.final_date)  # YYMMDDhhmmss t 00 +


# -- 13. our unbind while answers are owed ------------------------------------------------


def test_answers_owed_when_we_unbind_still_arrive(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(providers={"sim": {"type": "simulator", "delivery_delay": 0.05, "latency": 1.0}})
    assert bridge.bridge is not None
    smsc, server = bridge.bridge.smsc, bridge.bridge.server
    client = bound(bridge)
    try:
        client.send_raw(encode_pdu(submit_sm(590)))
        wait_for(lambda: bridge.run(lambda: smsc.in_flight) == 1)  # the HTTP call is under way
        bridge.run(server.unbind_all)  # what shutdown does
        # The client answers our unbind while it waits; the submit_sm_resp still comes.
        answer = client.read_raw_until(590)
        assert client.unbinds == 1
        assert (answer.command, answer.status) == (Command.SUBMIT_SM_RESP, Status.ESME_ROK)
        assert client.closed_by_peer()
    finally:
        client.close()
