"""What one submit_sm / data_sm / submit_multi says, checked as far as the PDU alone
allows (addresses, flags, times, data_coding, payload): plain functions of the PDU,
the account's default alphabet and the time, compiled with mypyc (bridge/native.py)
because they run once per message; the pipeline (bridge/core/pipeline.py) does the
rest (numbers, routes, ids, sending).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.core.message import Address
from bridge.smpp.constants import (
    ESM_CLASS_MESSAGE_TYPE_MASK,
    NPI_VALUES,
    PLAIN_PROTOCOL_IDS,
    TON_VALUES,
    Status,
    status_name,
)
from bridge.smpp.pdu import DataSm, SubmitMulti, SubmitSm
from bridge.smpp.text import Charset, coding_of
from bridge.smpp.times import parse_smpp_time
from bridge.smpp.udh import Segment, split_payload
from bridge.smpp.versions import receipt_kind_allowed

SCHEDULE_SLACK = 5.0  # seconds: a schedule_delivery_time this close to now means "now"
SOURCE_STATUSES = (Status.ESME_RINVSRCTON, Status.ESME_RINVSRCNPI)
DEST_STATUSES = (Status.ESME_RINVDSTTON, Status.ESME_RINVDSTNPI)


class Refused(Exception):
    """A request we answer with an error status (validation, routing, capacity)."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Parsed:
    """What a submit_sm / data_sm says, validated and decoded as far as one PDU allows."""

    source: Address
    data: bytes
    segment: Segment | None
    data_coding: int
    charset: Charset
    flash: bool
    registered_delivery: int

    def __init__(  # written out: see bridge/core/message.py
        self,
        source: Address,
        data: bytes,
        segment: Segment | None,
        data_coding: int,
        charset: Charset,
        flash: bool,
        registered_delivery: int,
    ) -> None:
        self.source = source
        self.data = data
        self.segment = segment
        self.data_coding = data_coding
        self.charset = charset
        self.flash = flash
        self.registered_delivery = registered_delivery


def parse_submit(
    pdu: SubmitSm | SubmitMulti | DataSm, default_charset: Charset, interface_version: int, now: float
) -> Parsed:
    """The PDU checked and its payload split; Refused with the status to answer.
    `default_charset`: the account's alphabet for data_coding 0."""
    check_addresses(pdu)
    if pdu.esm_class & ESM_CLASS_MESSAGE_TYPE_MASK:
        raise Refused(Status.ESME_RINVESMCLASS, "esm_class message type must be default")
    if not isinstance(pdu, DataSm):  # data_sm has none of these fields
        check_submit_flags(pdu)
    registered_delivery = pdu.registered_delivery
    if not receipt_kind_allowed(registered_delivery, interface_version):
        raise Refused(Status.ESME_RINVREGDLVFLG, "registered_delivery 3 (receipt on success) is v5.0 only")
    if not isinstance(pdu, DataSm):
        check_times(pdu, now)
    coding = coding_of(pdu.data_coding)
    charset = default_charset if coding.charset is Charset.DEFAULT else coding.charset
    if charset in (Charset.BINARY, Charset.UNSUPPORTED):
        raise Refused(Status.ESME_RINVDCS, f"data_coding 0x{pdu.data_coding:02X} is not text we can send")
    data, segment = split_payload(pdu)
    if not data and segment is None:
        raise Refused(Status.ESME_RINVMSGLEN, "empty message")
    flash = coding.is_flash or pdu.dest_addr_subunit == 1
    return Parsed(
        source=Address(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr),
        data=data,
        segment=segment,
        data_coding=pdu.data_coding,
        charset=charset,
        flash=flash,
        registered_delivery=registered_delivery,
    )


def check_times(pdu: SubmitSm | SubmitMulti, now: float) -> None:
    try:
        scheduled = parse_smpp_time(pdu.schedule_delivery_time, now)
    except ValueError:
        raise Refused(Status.ESME_RINVSCHED, "schedule_delivery_time malformed") from None
    if scheduled is not None and scheduled > now + SCHEDULE_SLACK:
        raise Refused(Status.ESME_RINVSCHED, "scheduled delivery is not supported")
    try:
        parse_smpp_time(pdu.validity_period, now)
    except ValueError:
        raise Refused(Status.ESME_RINVEXPIRY, "validity_period malformed") from None


def check_addresses(pdu: SubmitSm | SubmitMulti | DataSm) -> None:
    """Reserved TON / NPI values (spec 5.2.5, 5.2.6) are refused with their own status."""
    status = address_status(pdu.source_addr_ton, pdu.source_addr_npi, *SOURCE_STATUSES)
    if status is None and not isinstance(pdu, SubmitMulti):  # submit_multi: per destination, in unsuccess_smes
        status = address_status(pdu.dest_addr_ton, pdu.dest_addr_npi, *DEST_STATUSES)
    if status is not None:
        raise Refused(status, f"reserved TON/NPI ({status_name(status)})")


def address_status(ton: int, npi: int, bad_ton: Status, bad_npi: Status) -> Status | None:
    if ton not in TON_VALUES:
        return bad_ton
    if npi not in NPI_VALUES:
        return bad_npi
    return None


def check_submit_flags(pdu: SubmitSm | SubmitMulti) -> None:
    """protocol_id, priority_flag and replace_if_present_flag: what an HTTP API can honour."""
    if pdu.protocol_id not in PLAIN_PROTOCOL_IDS:
        raise Refused(
            Status.ESME_RSUBMITFAIL,
            f"protocol_id 0x{pdu.protocol_id:02X} is not an ordinary SMS (Type 0, replace, data download ...)",
        )
    if pdu.priority_flag > 4:
        raise Refused(Status.ESME_RINVPRTFLG, "priority_flag above 4")
    if pdu.replace_if_present_flag == 1:
        raise Refused(Status.ESME_RINVSUBREP, "replace_if_present: an HTTP API cannot replace a message")
    if pdu.replace_if_present_flag > 1:
        raise Refused(Status.ESME_RINVREPFLAG, "replace_if_present_flag above 1")
