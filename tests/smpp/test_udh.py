"""Concatenation (testing level 1): UDH (3GPP TS 23.040 9.2.3.24.1 / .8), SAR TLVs
(SMPP v3.4 5.3.2.22-24) and message_payload, with the status of every refusal."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from bridge.smpp.constants import Status, Tag
from bridge.smpp.pdu import DataSm, SubmitSm
from bridge.smpp.text import TextError
from bridge.smpp.udh import Segment, split_payload


def submit(short_message: bytes = b"", esm_class: int = 0, tlvs: Mapping[int, bytes] | None = None) -> SubmitSm:
    return SubmitSm(1, tlvs=dict(tlvs or {}), esm_class=esm_class, short_message=short_message)


def udh(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return bytes((len(body),)) + body


def refusal(pdu: SubmitSm) -> Status:
    with pytest.raises(TextError) as info:
        split_payload(pdu)
    return info.value.status


SAR: dict[int, bytes] = {
    Tag.SAR_MSG_REF_NUM: b"\x01\x2c",
    Tag.SAR_TOTAL_SEGMENTS: b"\x03",
    Tag.SAR_SEGMENT_SEQNUM: b"\x02",
}


# -- plain messages ------------------------------------------------------------------


def test_whole_message_without_udh_or_sar() -> None:
    assert split_payload(submit(b"hello")) == (b"hello", None)


def test_empty_pdu_params() -> None:
    assert split_payload(DataSm(1)) == (b"", None)


# -- UDH ---------------------------------------------------------------------------


def test_udh_8bit_reference() -> None:
    data = udh(b"\x00\x03\xa7\x03\x01") + b"first part"
    assert split_payload(submit(data, 0x40)) == (b"first part", Segment(0xA7, 3, 1, "udh8"))


def test_udh_8bit_as_kannel_sends_it() -> None:
    # Kannel: esm_class 0x43 (store and forward mode bits + UDHI), `05 00 03 ref n i`.
    data = bytes.fromhex("0500031f0202") + b"second"
    assert split_payload(submit(data, 0x43)) == (b"second", Segment(0x1F, 2, 2, "udh8"))


def test_udh_16bit_reference() -> None:
    data = udh(b"\x08\x04\xbe\xef\x05\x05") + "ú".encode("utf-16-be")
    assert split_payload(submit(data, 0x40)) == ("ú".encode("utf-16-be"), Segment(0xBEEF, 5, 5, "udh16"))


@pytest.mark.parametrize(
    "element",
    [
        b"\x05\x04\x0b\x84\x23\xf0",  # application port addressing, 16-bit (WAP push)
        b"\x04\x02\x10\x20",  # application port addressing, 8-bit
        b"\x24\x01\x01",  # national language single shift (Turkish)
        b"\x25\x01\x01",  # national language locking shift (Turkish)
        b"\x01\x02\x00\x00",  # special SMS message indication
    ],
    ids=["ports16", "ports8", "single-shift", "locking-shift", "indication"],
)
def test_information_elements_other_than_concatenation_are_refused(element: bytes) -> None:
    # Refused, not dropped: without them the handset would get another message.
    for data in (udh(element) + b"text", udh(element, b"\x00\x03\x09\x02\x02") + b"tail"):
        with pytest.raises(TextError) as info:
            split_payload(submit(data, 0x40))
        assert info.value.status is Status.ESME_RINVESMCLASS


def test_udh_with_empty_header_and_no_text() -> None:
    assert split_payload(submit(b"\x00", 0x40)) == (b"", None)


def test_udh_one_part_set_is_a_whole_message() -> None:
    data = udh(b"\x00\x03\x01\x01\x01") + b"single"
    assert split_payload(submit(data, 0x40)) == (b"single", None)


def test_udh_wins_over_sar_tlvs() -> None:
    data = udh(b"\x00\x03\x05\x02\x01") + b"x"
    assert split_payload(submit(data, 0x40, SAR)) == (b"x", Segment(5, 2, 1, "udh8"))


def test_udh_without_udhi_is_plain_text() -> None:
    data = udh(b"\x00\x03\x05\x02\x01") + b"x"
    assert split_payload(submit(data, 0x00)) == (data, None)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", Status.ESME_RINVMSGLEN),  # UDHI set, nothing at all
        (b"\x06\x00\x03\x01\x02\x01", Status.ESME_RINVMSGLEN),  # UDHL beyond the data
        (b"\xff" + b"x" * 10, Status.ESME_RINVMSGLEN),  # UDHL beyond the data
        (b"\x01\x00" + b"text", Status.ESME_RINVMSGLEN),  # IE header cut by the UDH end
        (b"\x05\x00\x04\x01\x02\x01" + b"text", Status.ESME_RINVMSGLEN),  # IE overruns the UDH
        (b"\x05\x05\x04\x0b\x84\x23\xf0", Status.ESME_RINVMSGLEN),  # other IE overruns the UDH
        (b"\x06\x00\x04\x01\x02\x01\x00" + b"text", Status.ESME_RINVESMCLASS),  # 8-bit concat of size 4
        (b"\x04\x00\x02\x01\x02" + b"text", Status.ESME_RINVESMCLASS),  # 8-bit concat of size 2
        (b"\x06\x08\x03\x00\x01\x02\x00" + b"text", Status.ESME_RINVESMCLASS),  # 16-bit concat of size 3
        (b"\x05\x00\x03\x01\x02\x00" + b"text", Status.ESME_RINVESMCLASS),  # segment 0
        (b"\x05\x00\x03\x01\x02\x03" + b"text", Status.ESME_RINVESMCLASS),  # segment > total
        (b"\x05\x00\x03\x01\x00\x00" + b"text", Status.ESME_RINVESMCLASS),  # total 0
        (b"\x06\x08\x04\x00\x01\x02\x00" + b"text", Status.ESME_RINVESMCLASS),  # 16-bit segment 0
        (b"\x06\x08\x04\x00\x01\x02\x03" + b"text", Status.ESME_RINVESMCLASS),  # 16-bit segment > total
    ],
    ids=[
        "empty",
        "udhl-beyond-data",
        "udhl-255",
        "ie-header-cut",
        "ie-overruns",
        "other-ie-overruns",
        "concat8-size4",
        "concat8-size2",
        "concat16-size3",
        "segment-0",
        "segment-gt-total",
        "total-0",
        "concat16-segment-0",
        "concat16-segment-gt-total",
    ],
)
def test_malformed_udh(data: bytes, status: Status) -> None:
    assert refusal(submit(data, 0x40)) is status


# -- SAR -----------------------------------------------------------------------------


def test_sar_complete_set() -> None:
    assert split_payload(submit(b"part two", 0, SAR)) == (b"part two", Segment(300, 3, 2, "sar"))


@pytest.mark.parametrize(
    "present",
    [set(c) for n in (1, 2) for c in itertools.combinations(SAR, n)],
    ids=lambda tags: "+".join(f"{t:04X}" for t in sorted(tags)),
)
def test_sar_partial_set_is_missing_a_parameter(present: set[int]) -> None:
    tlvs = {tag: value for tag, value in SAR.items() if tag in present}
    assert refusal(submit(b"x", 0, tlvs)) is Status.ESME_RMISSINGOPTPARAM


def test_sar_total_one_is_a_whole_message() -> None:
    tlvs = {**SAR, Tag.SAR_TOTAL_SEGMENTS: b"\x01", Tag.SAR_SEGMENT_SEQNUM: b"\x01"}
    assert split_payload(submit(b"all of it", 0, tlvs)) == (b"all of it", None)


@pytest.mark.parametrize(
    ("total", "index"),
    [(b"\x00", b"\x01"), (b"\x03", b"\x00"), (b"\x03", b"\x04"), (b"\x00", b"\x00"), (b"\x01", b"\x02")],
)
def test_sar_bad_values(total: bytes, index: bytes) -> None:
    tlvs = {**SAR, Tag.SAR_TOTAL_SEGMENTS: total, Tag.SAR_SEGMENT_SEQNUM: index}
    assert refusal(submit(b"x", 0, tlvs)) is Status.ESME_RINVOPTPARAMVAL


def test_sar_reference_uses_both_octets() -> None:
    tlvs = {**SAR, Tag.SAR_MSG_REF_NUM: b"\xff\xfe"}
    segment = split_payload(submit(b"x", 0, tlvs))[1]
    assert segment is not None and segment.reference == 0xFFFE


# -- message_payload -----------------------------------------------------------------


def test_message_payload_used_when_present() -> None:
    payload = "long text ".encode("ascii") * 40
    assert split_payload(submit(b"", 0, {Tag.MESSAGE_PAYLOAD: payload})) == (payload, None)


def test_message_payload_in_data_sm() -> None:
    pdu = DataSm(1, tlvs={Tag.MESSAGE_PAYLOAD: b"data sm text"}, esm_class=0)
    assert split_payload(pdu) == (b"data sm text", None)


def test_message_payload_with_udh() -> None:
    payload = udh(b"\x08\x04\x01\x00\x02\x01") + b"x" * 300
    assert split_payload(submit(b"", 0x40, {Tag.MESSAGE_PAYLOAD: payload})) == (b"x" * 300, Segment(256, 2, 1, "udh16"))


def test_message_payload_with_sar() -> None:
    tlvs: dict[int, Any] = {**SAR, Tag.MESSAGE_PAYLOAD: b"payload part"}
    assert split_payload(submit(b"", 0, tlvs)) == (b"payload part", Segment(300, 3, 2, "sar"))


def test_short_message_and_message_payload_together_are_refused() -> None:
    pdu = submit(b"short", 0, {Tag.MESSAGE_PAYLOAD: b"payload"})
    assert refusal(pdu) is Status.ESME_RINVOPTPARAMVAL
