"""Concatenated messages in SMPP: UDH (IEI 0x00 / 0x08), SAR TLVs and message_payload.

A UDH holding any other information element is refused (ESME_RINVESMCLASS): the
HTTP APIs send text only, so the element would be lost and the handset would get
something else than was submitted.

`split_payload` takes a submit_sm / submit_multi / data_sm and returns the user data without its
header plus the segment's place in its set, or a `TextError` carrying the status to
answer. Reassembly itself (waiting for the other segments) is the pipeline's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.smpp.constants import ESM_CLASS_UDHI, Status, Tag
from bridge.smpp.pdu import DataSm, MessagePdu, ShortMessagePdu, SubmitMulti
from bridge.smpp.text import TextError

IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08
# Information element sizes that must hold for the elements we read (3GPP 23.040 9.2.3.24).
_CONCAT_SIZES = {IEI_CONCAT_8BIT: 3, IEI_CONCAT_16BIT: 4}


@dataclass(frozen=True, slots=True)
class Segment:
    """Where one segment sits: reference number, parts in the set, this part (1-based)."""

    reference: int
    total: int
    index: int
    scheme: str  # "udh8", "udh16" or "sar": part of the reassembly key


def split_payload(pdu: ShortMessagePdu | SubmitMulti | DataSm) -> tuple[bytes, Segment | None]:
    """(user data, segment or None for a whole message)."""
    short_message = b"" if isinstance(pdu, DataSm) else pdu.short_message  # data_sm has message_payload only
    payload = pdu.message_payload
    if payload is not None and short_message:
        raise TextError(Status.ESME_RINVOPTPARAMVAL, "both short_message and message_payload")
    data = short_message if payload is None else payload
    if pdu.esm_class & ESM_CLASS_UDHI:
        return _split_udh(data)
    return data, _sar_segment(pdu)


def _split_udh(data: bytes) -> tuple[bytes, Segment | None]:
    if not data:
        raise TextError(Status.ESME_RINVMSGLEN, "UDHI set but the message is empty")
    header_end = 1 + data[0]
    if header_end > len(data):
        raise TextError(Status.ESME_RINVMSGLEN, "UDH longer than the message")
    segment: Segment | None = None
    pos = 1
    while pos < header_end:
        if pos + 2 > header_end:
            raise TextError(Status.ESME_RINVMSGLEN, "truncated UDH information element")
        iei, size = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + size]
        if pos + 2 + size > header_end:
            raise TextError(Status.ESME_RINVMSGLEN, "UDH information element overruns the UDH")
        expected = _CONCAT_SIZES.get(iei)
        if expected is None:
            # Port addressing (0x04/0x05), national language shift tables (0x24/0x25),
            # EMS, SIM toolkit ...: an HTTP API cannot carry them, and the text
            # without them is another message (shift-table text decodes wrong).
            raise TextError(Status.ESME_RINVESMCLASS, f"UDH information element 0x{iei:02X} cannot be sent")
        if size != expected:
            raise TextError(Status.ESME_RINVESMCLASS, f"concatenation IE 0x{iei:02X} of size {size}")
        if iei == IEI_CONCAT_8BIT:
            segment = _checked(value[0], value[1], value[2], "udh8")
        else:
            segment = _checked(int.from_bytes(value[0:2], "big"), value[2], value[3], "udh16")
        pos += 2 + size
    return data[header_end:], segment


_SAR_TAGS = (Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM)


def _sar_segment(pdu: MessagePdu) -> Segment | None:
    present = [tag in pdu.tlvs for tag in _SAR_TAGS]
    if not any(present):
        return None
    if not all(present):
        raise TextError(Status.ESME_RMISSINGOPTPARAM, "SAR TLVs must come as a set of three")
    return _checked(pdu.sar_msg_ref_num or 0, pdu.sar_total_segments or 0, pdu.sar_segment_seqnum or 0, "sar")


def _checked(reference: int, total: int, index: int, scheme: str) -> Segment | None:
    if total == 0 or index == 0 or index > total:
        status = Status.ESME_RINVOPTPARAMVAL if scheme == "sar" else Status.ESME_RINVESMCLASS
        raise TextError(status, f"segment {index} of {total}")
    if total == 1:
        return None
    return Segment(reference, total, index, scheme)
