"""Delivery receipts (testing level 1): the Appendix B text every client accepted
(INTEROP.md), its ASCII-safe `text:`, and the deliver_sm that carries it."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime
from typing import Any

import gsm0338  # noqa: F401  (registers the 'gsm03.38' codec)
import pytest

from bridge.smpp.constants import Command, MessageState, Tag
from bridge.smpp.pdu import DeliverSm, decode_pdu
from bridge.smpp.receipt import ascii_safe, format_receipt, parse_receipt, receipt_date, receipt_deliver_sm

SUBMITTED = datetime(2024, 1, 31, 23, 59, 30, tzinfo=UTC).timestamp()
DONE = datetime(2024, 2, 1, 0, 0, 5, tzinfo=UTC).timestamp()
STAT = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}


def test_delivered_receipt_text_exactly() -> None:
    text = format_receipt("4711", MessageState.DELIVERED, SUBMITTED, DONE, 0, "Your code is 123456 and more")
    assert text == (
        "id:4711 sub:001 dlvrd:001 submit date:2401312359 done date:2402010000 "
        "stat:DELIVRD err:000 text:Your code is 123456 "
    )


@pytest.mark.parametrize("state", list(MessageState), ids=lambda s: s.name)
def test_receipt_stat_and_dlvrd_for_every_state(state: MessageState) -> None:
    text = format_receipt("9", state, SUBMITTED, DONE, 0, "hi")
    delivered = "001" if state is MessageState.DELIVERED else "000"
    assert text == (
        f"id:9 sub:001 dlvrd:{delivered} submit date:2401312359 done date:2402010000 stat:{STAT[state]} err:000 text:hi"
    )


# Above 999 the field says 999, never another code (1234 was once "234"); the exact
# value travels in network_error_code.
@pytest.mark.parametrize(
    ("error", "field"), [(0, "000"), (7, "007"), (34, "034"), (999, "999"), (1000, "999"), (1234, "999")]
)
def test_err_is_three_digits(error: int, field: str) -> None:
    text = format_receipt("1", MessageState.UNDELIVERABLE, SUBMITTED, DONE, error, "")
    assert f" stat:UNDELIV err:{field} text:" in text
    assert text.endswith("text:")


def test_dates_are_ten_digits_in_utc() -> None:
    assert receipt_date(0) == "7001010000"
    assert receipt_date(SUBMITTED) == "2401312359"
    assert receipt_date(datetime(2030, 12, 9, 8, 7, 59, tzinfo=UTC).timestamp()) == "3012090807"


UNSAFE = "@$_[]{}\\^~|"


def _reads_the_same_in_ascii_and_gsm(char: str) -> bool:
    try:
        gsm = codecs.encode(char, "gsm03.38")
    except UnicodeEncodeError:
        return False
    return 0x20 <= ord(char) < 0x7F and gsm == char.encode("ascii")


@pytest.mark.parametrize("code", range(0x80), ids=lambda c: f"0x{c:02X}")
def test_ascii_safe_every_ascii_character(code: int) -> None:
    char = chr(code)
    expected = char if _reads_the_same_in_ascii_and_gsm(char) else "?"
    assert ascii_safe(char) == expected
    if char in UNSAFE:
        assert ascii_safe(char) == "?"


def test_ascii_safe_replaces_non_ascii_and_keeps_twenty_characters() -> None:
    assert ascii_safe("Olá {user}: $5 @ 10€ 👋 ok") == "Ol? ?user?: ?5 ? 10?"
    assert ascii_safe("a" * 30) == "a" * 20
    assert ascii_safe("ab", limit=1) == "a"
    assert ascii_safe("") == ""


def test_receipt_text_part_is_ascii_safe() -> None:
    text = format_receipt("1", MessageState.DELIVERED, SUBMITTED, DONE, 0, "[€] ñ_~|^\\{}@$\n")
    part = text.split(" text:", 1)[1]
    assert part == "??? ???????????"
    assert text.isascii()


def deliver_sm(*args: Any, tlvs: bool = True) -> DeliverSm:
    """The receipt's deliver_sm as a peer reads it: its bytes, numbered 7, decoded."""
    pdu = decode_pdu(receipt_deliver_sm(*args).encode(7, tlvs))
    assert isinstance(pdu, DeliverSm)
    assert pdu.sequence == 7
    return pdu


def test_receipt_deliver_sm() -> None:
    pdu = deliver_sm(
        "4711",
        MessageState.DELIVERED,
        SUBMITTED,
        DONE,
        0,
        "Your code is 123456",
        (1, 1, "5215512345678"),
        (5, 0, "BANK"),
    )
    assert (pdu.command, pdu.esm_class, pdu.data_coding, pdu.service_type) == (Command.DELIVER_SM, 0x04, 0, "")
    assert (pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr) == (1, 1, "5215512345678")
    assert (pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr) == (5, 0, "BANK")
    assert (pdu.protocol_id, pdu.priority_flag, pdu.registered_delivery, pdu.replace_if_present_flag) == (0, 0, 0, 0)
    assert (pdu.schedule_delivery_time, pdu.validity_period, pdu.sm_default_msg_id) == ("", "", 0)
    assert pdu.short_message == (
        b"id:4711 sub:001 dlvrd:001 submit date:2401312359 done date:2402010000 "
        b"stat:DELIVRD err:000 text:Your code is 123456"
    )
    assert pdu.tlvs == {Tag.RECEIPTED_MESSAGE_ID: b"4711\x00", Tag.MESSAGE_STATE: b"\x02"}


def test_receipt_deliver_sm_bytes_by_hand() -> None:
    """SMPP v3.4 4.6.1 field by field, then 5.3.2.12 / 5.3.2.35 / 5.3.2.31 (tag, length, value)."""
    text = b"id:9 sub:001 dlvrd:000 submit date:2401312359 done date:2402010000 stat:UNDELIV err:034 text:hi"
    body = (
        b"\x00"  # service_type
        + b"\x01\x01"
        + b"447700900123\x00"  # source: ton, npi, addr
        + b"\x05\x00"
        + b"BANK\x00"  # destination
        + b"\x04"  # esm_class: delivery receipt
        + b"\x00\x00"  # protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period
        + b"\x00\x00\x00\x00"  # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
        + bytes((len(text),))
        + text
    )
    optional = b"\x00\x1e\x00\x02" + b"9\x00" + b"\x04\x27\x00\x01\x05" + b"\x04\x23\x00\x03\x03\x00\x22"
    request = receipt_deliver_sm(
        "9", MessageState.UNDELIVERABLE, SUBMITTED, DONE, 34, "hi", (1, 1, "447700900123"), (5, 0, "BANK")
    )
    whole = body + optional
    header = (16 + len(whole)).to_bytes(4, "big") + b"\x00\x00\x00\x05" + bytes(4) + (3).to_bytes(4, "big")
    assert request.encode(3) == header + whole
    # a v3.3 peer gets no optional parameters
    assert request.encode(3, tlvs=False) == (16 + len(body)).to_bytes(4, "big") + header[4:] + body


@pytest.mark.parametrize(
    ("error", "value"),
    [(34, b"\x03\x00\x22"), (0x1FF, b"\x03\x01\xff"), (1234, b"\x03\x04\xd2"), (0x12345, b"\x03\xff\xff")],
)
def test_receipt_deliver_sm_network_error_code_only_on_error(error: int, value: bytes) -> None:
    tlvs = deliver_sm("a1", MessageState.UNDELIVERABLE, SUBMITTED, DONE, error, "", (1, 1, "1"), (1, 1, "2")).tlvs
    assert tlvs[Tag.NETWORK_ERROR_CODE] == value
    assert tlvs[Tag.MESSAGE_STATE] == b"\x05"


@pytest.mark.parametrize("state", list(MessageState), ids=lambda s: s.name)
def test_receipt_deliver_sm_message_state_tlv(state: MessageState) -> None:
    tlvs = deliver_sm("1", state, SUBMITTED, DONE, 0, "", (1, 1, "1"), (1, 1, "2")).tlvs
    assert tlvs[Tag.MESSAGE_STATE] == bytes((int(state),))
    assert Tag.NETWORK_ERROR_CODE not in tlvs


def test_receipt_deliver_sm_addresses_fit_their_fields() -> None:
    pdu = deliver_sm("1", MessageState.DELIVERED, 0, 0, 0, "", (1, 1, "9" * 30), (1, 1, "8" * 30))
    assert (pdu.source_addr, pdu.destination_addr) == ("9" * 20, "8" * 20)


def test_receipt_deliver_sm_esm_class_as_asked() -> None:
    pdu = deliver_sm("1", MessageState.ENROUTE, 0, 0, 0, "", (1, 1, "1"), (1, 1, "2"), 0x20)
    assert pdu.esm_class == 0x20


def test_receipt_for_a_36_character_uuid_id() -> None:
    message_id = "0b6f3b4e-2c55-4d0e-9a7c-1d2f3a4b5c6d"
    pdu = deliver_sm(message_id, MessageState.EXPIRED, 0, 0, 0, "x", (1, 1, "1"), (1, 1, "2"))
    assert pdu.short_message.startswith(f"id:{message_id} ".encode())
    assert pdu.tlvs[Tag.RECEIPTED_MESSAGE_ID] == message_id.encode() + b"\x00"


@pytest.mark.parametrize("state", list(MessageState), ids=lambda s: s.name)
def test_parse_receipt_round_trip(state: MessageState) -> None:
    text = format_receipt("ff00aa", state, SUBMITTED, DONE, 12, "code: 123 (ok)")
    assert parse_receipt(text) == {
        "id": "ff00aa",
        "sub": "001",
        "dlvrd": "001" if state is MessageState.DELIVERED else "000",
        "submit": "2401312359",
        "done": "2402010000",
        "stat": STAT[state],
        "err": "012",
        "text": "code: 123 (ok)",
    }


def test_parse_receipt_variants_and_non_receipts() -> None:
    parsed = parse_receipt("id:1 sub:001 dlvrd:000 submit date:240131235959 done date:240201000005 stat:EXPIRED err:0")
    assert parsed is not None
    assert (parsed["submit"], parsed["stat"], parsed["err"], parsed["text"]) == ("240131235959", "EXPIRED", "0", None)
    upper = parse_receipt("id:1 sub:1 dlvrd:1 submit date:2401312359 done date:2401312359 stat:DELIVRD err:0 Text:x")
    assert upper is not None and upper["text"] == "x"
    assert parse_receipt("hello") is None
    assert parse_receipt("") is None
