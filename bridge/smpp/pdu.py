"""SMPP v3.4 PDU codec: bytes <-> typed PDUs, bounds-checked, one class per command.

Each command is a slotted class (`SubmitSm`, `DeliverSmResp` ...) whose fields are
named as in the spec and declared once, each with its wire format (`FieldSpec`: kind,
maximum size, the status a bad value is answered with). `BODIES`, the table the codec
runs on, is read off those declarations, so the classes and the table cannot disagree.
Optional parameters stay raw in `tlvs` (unknown tags included); the ones the bridge
reads have typed accessors.

Why our own codec rather than smpplib's: smpplib's decoder is 6-60x slower on the
hot path, has no submit_multi / cancel_sm / replace_sm bodies, and accepts malformed
input it should refuse. Here every read is bounds-checked and every refusal is a
`PduError` that carries the `command_status` the peer should be told.

This module knows the wire format only: no sessions, no sockets, no clocks.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, ClassVar, Final

from bridge.smpp.constants import Command, Status, Tag

HEADER = struct.Struct(">IIII")
HEADER_SIZE: Final = 16
_TLV_HEAD = struct.Struct(">HH")
_U32 = struct.Struct(">I")
MAX_DESTS: Final = 254  # number_of_dests (spec 4.5.1)


class PduError(Exception):
    """A PDU that cannot be accepted; `status` is the answer owed to the peer.

    `command_id` and `sequence` are those of the offending PDU (when known), so the
    session can answer with the matching *_resp or a generic_nack.
    """

    def __init__(self, status: Status, reason: str, command_id: int = 0, sequence: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.command_id = command_id
        self.sequence = sequence


# -- field declarations -----------------------------------------------------------------
#
# Kinds: "c" C-octet string (size: the maximum including the NUL), "u8" one octet,
# "u32" four octets, "sm" sm_length + short_message, "dests" the submit_multi
# destination list, "unsuccess" the submit_multi_resp failure list. `status` is what
# a bad value of that field is answered with.


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: str
    size: int = 0
    status: Status = Status.ESME_RINVCMDLEN


_WIRE: Final = "smpp"  # the dataclass field metadata key holding (kind, size, status)


def _wire(kind: str, size: int, status: Status) -> dict[str, tuple[str, int, Status]]:
    return {_WIRE: (kind, size, status)}


def _c(size: int, status: Status = Status.ESME_RINVPARLEN) -> Any:
    return field(default="", metadata=_wire("c", size, status))


def _u8() -> Any:
    return field(default=0, metadata=_wire("u8", 1, Status.ESME_RINVCMDLEN))


def _u32() -> Any:
    return field(default=0, metadata=_wire("u32", 4, Status.ESME_RINVCMDLEN))


def _sm() -> Any:
    return field(default=b"", metadata=_wire("sm", 254, Status.ESME_RINVMSGLEN))


def body_of(cls: type) -> tuple[FieldSpec, ...]:
    """The wire layout a class declares: its fields with wire metadata, in order."""
    return tuple(FieldSpec(f.name, *f.metadata[_WIRE]) for f in fields(cls) if _WIRE in f.metadata)


# -- PDUs -------------------------------------------------------------------------------


class CommandOf:
    """Where `command` is declared: outside the dataclasses, and set from
    `PDU_CLASSES`, because mypyc turns a ClassVar in a dataclass body into a field
    (mypyc/mypyc#740, #1122) and this module is compiled (README, Development)."""

    __slots__ = ()
    command: ClassVar[Command]


@dataclass(slots=True, repr=False)
class Pdu(CommandOf):
    """One PDU: the header's sequence and status, the command's mandatory fields (in
    the subclass) and every optional parameter as raw bytes by tag."""

    sequence: int = 0
    status: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def tlv_int(self, tag: int, default: int | None = None) -> int | None:
        """An integer TLV (1-4 octets), or `default` when absent or of another size."""
        raw = self.tlvs.get(tag)
        if raw is None or not 1 <= len(raw) <= 4:
            return default
        return int.from_bytes(raw, "big")

    def __repr__(self) -> str:  # short_message stays out of reprs (it may be an OTP)
        return f"{type(self).__name__}(seq={self.sequence}, status=0x{self.status:X})"


@dataclass(slots=True, repr=False)
class MessagePdu(Pdu):
    """A PDU that carries a message (submit_sm, submit_multi, data_sm, deliver_sm),
    with typed accessors for the optional parameters the bridge reads (None: absent)."""

    @property
    def message_payload(self) -> bytes | None:
        return self.tlvs.get(Tag.MESSAGE_PAYLOAD)

    @property
    def sar_msg_ref_num(self) -> int | None:
        return self.tlv_int(Tag.SAR_MSG_REF_NUM)

    @property
    def sar_total_segments(self) -> int | None:
        return self.tlv_int(Tag.SAR_TOTAL_SEGMENTS)

    @property
    def sar_segment_seqnum(self) -> int | None:
        return self.tlv_int(Tag.SAR_SEGMENT_SEQNUM)

    @property
    def dest_addr_subunit(self) -> int | None:
        return self.tlv_int(Tag.DEST_ADDR_SUBUNIT)


@dataclass(slots=True, repr=False)
class GenericNack(Pdu):  # 4.3
    pass


@dataclass(slots=True, repr=False)
class Bind(Pdu):  # 4.1.1, 4.1.3, 4.1.5: one body for the three binds
    system_id: str = _c(16, Status.ESME_RINVSYSID)
    password: str = _c(9, Status.ESME_RINVPASWD)
    system_type: str = _c(13, Status.ESME_RINVSYSTYP)
    interface_version: int = _u8()
    addr_ton: int = _u8()
    addr_npi: int = _u8()
    address_range: str = _c(41)


@dataclass(slots=True, repr=False)
class BindTransmitter(Bind):
    pass


@dataclass(slots=True, repr=False)
class BindReceiver(Bind):
    pass


@dataclass(slots=True, repr=False)
class BindTransceiver(Bind):
    pass


@dataclass(slots=True, repr=False)
class BindResp(Pdu):  # 4.1.2, 4.1.4, 4.1.6
    system_id: str = _c(16, Status.ESME_RINVSYSID)


@dataclass(slots=True, repr=False)
class BindTransmitterResp(BindResp):
    pass


@dataclass(slots=True, repr=False)
class BindReceiverResp(BindResp):
    pass


@dataclass(slots=True, repr=False)
class BindTransceiverResp(BindResp):
    pass


@dataclass(slots=True, repr=False)
class Outbind(Pdu):  # 4.1.7
    system_id: str = _c(16, Status.ESME_RINVSYSID)
    password: str = _c(9, Status.ESME_RINVPASWD)


@dataclass(slots=True, repr=False)
class Unbind(Pdu):  # 4.2.1
    pass


@dataclass(slots=True, repr=False)
class UnbindResp(Pdu):  # 4.2.2
    pass


@dataclass(slots=True, repr=False)
class EnquireLink(Pdu):  # 4.11.1
    pass


@dataclass(slots=True, repr=False)
class EnquireLinkResp(Pdu):  # 4.11.2
    pass


@dataclass(slots=True, repr=False)
class ShortMessagePdu(MessagePdu):  # 4.4.1, 4.6.1: one body for submit_sm and deliver_sm
    service_type: str = _c(6, Status.ESME_RINVSERTYP)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _c(21, Status.ESME_RINVSRCADR)
    dest_addr_ton: int = _u8()
    dest_addr_npi: int = _u8()
    destination_addr: str = _c(21, Status.ESME_RINVDSTADR)
    esm_class: int = _u8()
    protocol_id: int = _u8()
    priority_flag: int = _u8()
    schedule_delivery_time: str = _c(17, Status.ESME_RINVSCHED)
    validity_period: str = _c(17, Status.ESME_RINVEXPIRY)
    registered_delivery: int = _u8()
    replace_if_present_flag: int = _u8()
    data_coding: int = _u8()
    sm_default_msg_id: int = _u8()
    short_message: bytes = _sm()

    # Written out, not generated: compiled, a generated __init__ stays interpreted and
    # builds each submit_sm decoded at twice the cost (see bridge/core/message.py).
    def __init__(
        self,
        sequence: int = 0,
        status: int = 0,
        tlvs: dict[int, bytes] | None = None,
        service_type: str = "",
        source_addr_ton: int = 0,
        source_addr_npi: int = 0,
        source_addr: str = "",
        dest_addr_ton: int = 0,
        dest_addr_npi: int = 0,
        destination_addr: str = "",
        esm_class: int = 0,
        protocol_id: int = 0,
        priority_flag: int = 0,
        schedule_delivery_time: str = "",
        validity_period: str = "",
        registered_delivery: int = 0,
        replace_if_present_flag: int = 0,
        data_coding: int = 0,
        sm_default_msg_id: int = 0,
        short_message: bytes = b"",
    ) -> None:
        self.sequence = sequence
        self.status = status
        self.tlvs = {} if tlvs is None else tlvs
        self.service_type = service_type
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.dest_addr_ton = dest_addr_ton
        self.dest_addr_npi = dest_addr_npi
        self.destination_addr = destination_addr
        self.esm_class = esm_class
        self.protocol_id = protocol_id
        self.priority_flag = priority_flag
        self.schedule_delivery_time = schedule_delivery_time
        self.validity_period = validity_period
        self.registered_delivery = registered_delivery
        self.replace_if_present_flag = replace_if_present_flag
        self.data_coding = data_coding
        self.sm_default_msg_id = sm_default_msg_id
        self.short_message = short_message


@dataclass(slots=True, repr=False, init=False)
class SubmitSm(ShortMessagePdu):
    pass


@dataclass(slots=True, repr=False, init=False)
class DeliverSm(ShortMessagePdu):
    pass


@dataclass(slots=True, repr=False)
class MessageIdResp(Pdu):  # 4.4.2, 4.6.2, 4.7.2: a message_id only
    message_id: str = _c(65, Status.ESME_RINVMSGID)

    def __init__(  # written out: see ShortMessagePdu
        self, sequence: int = 0, status: int = 0, tlvs: dict[int, bytes] | None = None, message_id: str = ""
    ) -> None:
        self.sequence = sequence
        self.status = status
        self.tlvs = {} if tlvs is None else tlvs
        self.message_id = message_id


@dataclass(slots=True, repr=False, init=False)
class SubmitSmResp(MessageIdResp):
    pass


@dataclass(slots=True, repr=False, init=False)
class DeliverSmResp(MessageIdResp):
    pass


@dataclass(slots=True, repr=False, init=False)
class DataSmResp(MessageIdResp):
    pass


class DestFlagOf:
    """Where `dest_flag` is declared, outside the dataclasses (as `CommandOf`)."""

    __slots__ = ()
    dest_flag: ClassVar[int]


@dataclass(slots=True)
class SmeAddress(DestFlagOf):
    """A submit_multi destination with dest_flag 1 (an SME address)."""

    dest_addr_ton: int = _u8()
    dest_addr_npi: int = _u8()
    destination_addr: str = _c(21, Status.ESME_RINVDSTADR)


@dataclass(slots=True)
class DistributionList(DestFlagOf):
    """A submit_multi destination with dest_flag 2 (a distribution list name)."""

    dl_name: str = _c(21, Status.ESME_RINVDLNAME)


SmeAddress.dest_flag = 1
DistributionList.dest_flag = 2


@dataclass(slots=True)
class UnsuccessSme:
    """One destination submit_multi could not take (4.5.2), with why."""

    dest_addr_ton: int = _u8()
    dest_addr_npi: int = _u8()
    destination_addr: str = _c(21, Status.ESME_RINVDSTADR)
    error_status_code: int = _u32()


@dataclass(slots=True, repr=False)
class SubmitMulti(MessagePdu):  # 4.5.1
    service_type: str = _c(6, Status.ESME_RINVSERTYP)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _c(21, Status.ESME_RINVSRCADR)
    dest_addresses: list[SmeAddress | DistributionList] = field(
        default_factory=list, metadata=_wire("dests", MAX_DESTS, Status.ESME_RINVNUMDESTS)
    )
    esm_class: int = _u8()
    protocol_id: int = _u8()
    priority_flag: int = _u8()
    schedule_delivery_time: str = _c(17, Status.ESME_RINVSCHED)
    validity_period: str = _c(17, Status.ESME_RINVEXPIRY)
    registered_delivery: int = _u8()
    replace_if_present_flag: int = _u8()
    data_coding: int = _u8()
    sm_default_msg_id: int = _u8()
    short_message: bytes = _sm()


@dataclass(slots=True, repr=False)
class SubmitMultiResp(Pdu):  # 4.5.2
    message_id: str = _c(65, Status.ESME_RINVMSGID)
    unsuccess_smes: list[UnsuccessSme] = field(
        default_factory=list, metadata=_wire("unsuccess", MAX_DESTS, Status.ESME_RINVNUMDESTS)
    )


@dataclass(slots=True, repr=False)
class DataSm(MessagePdu):  # 4.7.1: no short_message; the text is in message_payload
    service_type: str = _c(6, Status.ESME_RINVSERTYP)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _c(65, Status.ESME_RINVSRCADR)
    dest_addr_ton: int = _u8()
    dest_addr_npi: int = _u8()
    destination_addr: str = _c(65, Status.ESME_RINVDSTADR)
    esm_class: int = _u8()
    registered_delivery: int = _u8()
    data_coding: int = _u8()


@dataclass(slots=True, repr=False)
class QuerySm(Pdu):  # 4.8.1
    message_id: str = _c(65, Status.ESME_RINVMSGID)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _c(21, Status.ESME_RINVSRCADR)


@dataclass(slots=True, repr=False)
class QuerySmResp(Pdu):  # 4.8.2
    message_id: str = _c(65, Status.ESME_RINVMSGID)
    final_date: str = _c(17)
    message_state: int = _u8()
    error_code: int = _u8()


@dataclass(slots=True, repr=False)
class CancelSm(Pdu):  # 4.9.1
    service_type: str = _c(6, Status.ESME_RINVSERTYP)
    message_id: str = _c(65, Status.ESME_RINVMSGID)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _c(21, Status.ESME_RINVSRCADR)
    dest_addr_ton: int = _u8()
    dest_addr_npi: int = _u8()
    destination_addr: str = _c(21, Status.ESME_RINVDSTADR)


@dataclass(slots=True, repr=False)
class CancelSmResp(Pdu):  # 4.9.2
    pass


@dataclass(slots=True, repr=False)
class ReplaceSm(Pdu):  # 4.10.1
    message_id: str = _c(65, Status.ESME_RINVMSGID)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _c(21, Status.ESME_RINVSRCADR)
    schedule_delivery_time: str = _c(17, Status.ESME_RINVSCHED)
    validity_period: str = _c(17, Status.ESME_RINVEXPIRY)
    registered_delivery: int = _u8()
    sm_default_msg_id: int = _u8()
    short_message: bytes = _sm()


@dataclass(slots=True, repr=False)
class ReplaceSmResp(Pdu):  # 4.10.2
    pass


@dataclass(slots=True, repr=False)
class AlertNotification(Pdu):  # 4.12.1
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _c(65, Status.ESME_RINVSRCADR)
    esme_addr_ton: int = _u8()
    esme_addr_npi: int = _u8()
    esme_addr: str = _c(65)


# Each command's class; `command` is set on the class from here (see `CommandOf`).
PDU_CLASSES: dict[Command, type[Pdu]] = {
    Command.GENERIC_NACK: GenericNack,
    Command.BIND_TRANSMITTER: BindTransmitter,
    Command.BIND_RECEIVER: BindReceiver,
    Command.BIND_TRANSCEIVER: BindTransceiver,
    Command.BIND_TRANSMITTER_RESP: BindTransmitterResp,
    Command.BIND_RECEIVER_RESP: BindReceiverResp,
    Command.BIND_TRANSCEIVER_RESP: BindTransceiverResp,
    Command.OUTBIND: Outbind,
    Command.UNBIND: Unbind,
    Command.UNBIND_RESP: UnbindResp,
    Command.ENQUIRE_LINK: EnquireLink,
    Command.ENQUIRE_LINK_RESP: EnquireLinkResp,
    Command.SUBMIT_SM: SubmitSm,
    Command.SUBMIT_SM_RESP: SubmitSmResp,
    Command.DELIVER_SM: DeliverSm,
    Command.DELIVER_SM_RESP: DeliverSmResp,
    Command.SUBMIT_MULTI: SubmitMulti,
    Command.SUBMIT_MULTI_RESP: SubmitMultiResp,
    Command.DATA_SM: DataSm,
    Command.DATA_SM_RESP: DataSmResp,
    Command.QUERY_SM: QuerySm,
    Command.QUERY_SM_RESP: QuerySmResp,
    Command.CANCEL_SM: CancelSm,
    Command.CANCEL_SM_RESP: CancelSmResp,
    Command.REPLACE_SM: ReplaceSm,
    Command.REPLACE_SM_RESP: ReplaceSmResp,
    Command.ALERT_NOTIFICATION: AlertNotification,
}
for _command, _cls in PDU_CLASSES.items():
    _cls.command = _command

# The codec table, read off the classes: the single description of each body.
BODIES: dict[Command, tuple[FieldSpec, ...]] = {command: body_of(cls) for command, cls in PDU_CLASSES.items()}
_SME_ADDRESS = body_of(SmeAddress)
_DL_NAME = body_of(DistributionList)
_UNSUCCESS = body_of(UnsuccessSme)


def _getter(body: tuple[FieldSpec, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """Reads a body's field values off an object in wire order, in one call."""
    names = [spec.name for spec in body]
    if not names:
        return lambda _obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)


# command_id -> (class, body, values getter): one lookup per PDU on the hot path.
_CODEC: dict[int, tuple[type[Pdu], tuple[FieldSpec, ...], Callable[[Any], tuple[Any, ...]]]] = {
    int(command): (cls, BODIES[command], _getter(BODIES[command])) for command, cls in PDU_CLASSES.items()
}
_GET_SME_ADDRESS = _getter(_SME_ADDRESS)
_GET_DL_NAME = _getter(_DL_NAME)
_GET_UNSUCCESS = _getter(_UNSUCCESS)

# What an error response carries (command_status not 0). v3.4 says "not returned on
# error" only for the bind responses and submit_sm_resp: submit_sm_resp is then always
# the 16-octet header; a refused bind keeps the system_id it is given (see README: a
# client needs it to report the refusal cleanly). Every other response keeps all its
# mandatory fields, because strict decoders (cloudhopper QuerySmResp, SubmitMultiResp)
# read them unconditionally: NULL strings, zero counts, and the values below.
NO_BODY_ON_ERROR = frozenset({Command.SUBMIT_SM_RESP})
BODY_IF_GIVEN_ON_ERROR = frozenset(
    {Command.BIND_RECEIVER_RESP, Command.BIND_TRANSMITTER_RESP, Command.BIND_TRANSCEIVER_RESP}
)
# message_state 0 is not a state (strict decoders refuse it): 7 = UNKNOWN (spec 5.2.28).
ERROR_BODY_DEFAULTS: dict[Command, dict[str, Any]] = {Command.QUERY_SM_RESP: {"message_state": 7}}
# The body of a response given none: every field empty; on error, with the defaults above.
_EMPTY_BODIES: dict[Command, Pdu] = {command: cls() for command, cls in PDU_CLASSES.items()}
_ERROR_BODIES: dict[Command, Pdu] = {
    command: PDU_CLASSES[command](**values) for command, values in ERROR_BODY_DEFAULTS.items()
}

# Known TLVs with a fixed value size, and limits of variable ones (spec 5.3.2). A bad
# length is ESME_RINVPARLEN only on the TLVs the bridge reads (`STRICT_TLVS`); on any
# other it is dropped, as Kannel does, rather than refusing the whole submit.
TLV_SIZES: dict[int, int] = {
    Tag.DEST_ADDR_SUBUNIT: 1,
    Tag.SOURCE_ADDR_SUBUNIT: 1,
    Tag.PAYLOAD_TYPE: 1,
    Tag.SAR_MSG_REF_NUM: 2,
    Tag.SAR_TOTAL_SEGMENTS: 1,
    Tag.SAR_SEGMENT_SEQNUM: 1,
    Tag.SC_INTERFACE_VERSION: 1,
    Tag.MESSAGE_STATE: 1,
    Tag.MORE_MESSAGES_TO_SEND: 1,
    Tag.NETWORK_ERROR_CODE: 3,
    Tag.USER_MESSAGE_REFERENCE: 2,
    Tag.SOURCE_PORT: 2,
    Tag.DESTINATION_PORT: 2,
    Tag.PRIVACY_INDICATOR: 1,
    Tag.LANGUAGE_INDICATOR: 1,
    Tag.MS_AVAILABILITY_STATUS: 1,
    Tag.QOS_TIME_TO_LIVE: 4,
}
TLV_MAX_SIZES: dict[int, int] = {
    Tag.RECEIPTED_MESSAGE_ID: 65,
    Tag.MESSAGE_PAYLOAD: 65535,
    Tag.ADDITIONAL_STATUS_INFO_TEXT: 256,
}
STRICT_TLVS = frozenset(
    {
        Tag.SAR_MSG_REF_NUM,
        Tag.SAR_TOTAL_SEGMENTS,
        Tag.SAR_SEGMENT_SEQNUM,
        Tag.MESSAGE_PAYLOAD,
        Tag.DEST_ADDR_SUBUNIT,
    }
)


# -- decoding ------------------------------------------------------------------------


def decode_pdu(frame: bytes) -> Pdu:
    """Decode one complete PDU (header included). Raises `PduError`, nothing else.

    The caller has already checked command_length against the frame size; an unknown
    command_id is ESME_RINVCMDID, a malformed body gets the status of the bad field.
    """
    if len(frame) < HEADER_SIZE:
        raise PduError(Status.ESME_RINVCMDLEN, "PDU shorter than its header")
    length, command_id, status, sequence = HEADER.unpack_from(frame, 0)
    if length != len(frame):
        raise PduError(Status.ESME_RINVCMDLEN, "command_length does not match", command_id, sequence)
    codec = _CODEC.get(command_id)
    if codec is None:
        raise PduError(Status.ESME_RINVCMDID, "unknown command_id", command_id, sequence)
    cls, body, _ = codec
    if length == HEADER_SIZE and command_id & 0x80000000:
        # Responses with no body at all are common from real ESMEs (an empty
        # deliver_sm_resp instead of one NUL); nothing in them is needed.
        return cls(sequence, status)
    values: list[Any] = []
    tlvs: dict[int, bytes] = {}
    try:
        pos = _decode_fields(frame, HEADER_SIZE, body, values)
        if pos < length:
            _decode_tlvs(frame, pos, tlvs)
    except PduError as exc:
        exc.command_id, exc.sequence = command_id, sequence
        raise
    return cls(sequence, status, tlvs, *values)


def _decode_fields(data: bytes, pos: int, body: tuple[FieldSpec, ...], out: list[Any]) -> int:
    end = len(data)
    find = data.find
    append = out.append
    for spec in body:
        kind = spec.kind
        if kind == "c":
            limit = pos + spec.size
            nul = find(b"\x00", pos, limit if limit < end else end)
            if nul < 0:
                if limit > end and find(b"\x00", pos) < 0:
                    raise PduError(Status.ESME_RINVCMDLEN, f"{spec.name}: body ends inside it")
                raise PduError(spec.status, f"{spec.name}: longer than {spec.size - 1} octets")
            append(data[pos:nul].decode("latin-1"))
            pos = nul + 1
        elif kind == "u8":
            if pos >= end:
                raise PduError(Status.ESME_RINVCMDLEN, f"{spec.name}: body ends before it")
            append(data[pos])
            pos += 1
        elif kind == "sm":
            if pos >= end:
                raise PduError(Status.ESME_RINVCMDLEN, "sm_length: body ends before it")
            sm_length = data[pos]
            pos += 1
            if sm_length > spec.size or pos + sm_length > end:
                raise PduError(Status.ESME_RINVMSGLEN, "sm_length runs past the body")
            append(data[pos : pos + sm_length])
            pos += sm_length
        elif kind == "u32":
            if pos + 4 > end:
                raise PduError(Status.ESME_RINVCMDLEN, f"{spec.name}: body ends inside it")
            append(_U32.unpack_from(data, pos)[0])
            pos += 4
        elif kind == "dests":
            pos = _decode_dests(data, pos, out)
        else:  # "unsuccess"
            pos = _decode_unsuccess(data, pos, out)
    return pos


def _decode_dests(data: bytes, pos: int, out: list[Any]) -> int:
    if pos >= len(data):
        raise PduError(Status.ESME_RINVCMDLEN, "number_of_dests: body ends before it")
    count = data[pos]
    pos += 1
    if not 1 <= count <= MAX_DESTS:
        raise PduError(Status.ESME_RINVNUMDESTS, f"number_of_dests is {count}")
    dests: list[SmeAddress | DistributionList] = []
    for _ in range(count):
        if pos >= len(data):
            raise PduError(Status.ESME_RINVCMDLEN, "dest_address list ends early")
        flag = data[pos]
        pos += 1
        values: list[Any] = []
        if flag == SmeAddress.dest_flag:
            pos = _decode_fields(data, pos, _SME_ADDRESS, values)
            dests.append(SmeAddress(*values))
        elif flag == DistributionList.dest_flag:
            pos = _decode_fields(data, pos, _DL_NAME, values)
            dests.append(DistributionList(*values))
        else:
            raise PduError(Status.ESME_RINVDESTFLAG, f"dest_flag {flag}")
    out.append(dests)
    return pos


def _decode_unsuccess(data: bytes, pos: int, out: list[Any]) -> int:
    if pos >= len(data):
        raise PduError(Status.ESME_RINVCMDLEN, "no_unsuccess: body ends before it")
    count = data[pos]
    pos += 1
    items: list[UnsuccessSme] = []
    for _ in range(count):
        values: list[Any] = []
        pos = _decode_fields(data, pos, _UNSUCCESS, values)
        items.append(UnsuccessSme(*values))
    out.append(items)
    return pos


def _decode_tlvs(data: bytes, pos: int, out: dict[int, bytes]) -> None:
    end = len(data)
    # Fewer than 4 octets left cannot be a TLV: ignored (padding some ESMEs send).
    while pos + 4 <= end:
        tag, size = _TLV_HEAD.unpack_from(data, pos)
        pos += 4
        if pos + size > end:
            raise PduError(Status.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04X} runs past the body")
        fixed = TLV_SIZES.get(tag)
        if (fixed is not None and size != fixed) or size > TLV_MAX_SIZES.get(tag, 65535):
            if tag in STRICT_TLVS:
                raise PduError(Status.ESME_RINVPARLEN, f"TLV 0x{tag:04X} has length {size}")
        else:
            out[tag] = data[pos : pos + size]
        pos += size


# -- encoding ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    """A request of ours whose body and TLVs are encoded already: for the one a
    caller makes many of in a fixed shape (a receipt's deliver_sm, `smpp/receipt.py`),
    writing the body's bytes directly costs a fraction of building a Pdu for
    `encode_pdu` to walk. The session numbers it; `tlvs` are left out for a v3.3 peer."""

    command: Command
    body: bytes
    tlvs: bytes = b""

    def encode(self, sequence: int, tlvs: bool = True) -> bytes:
        data = self.body + self.tlvs if tlvs else self.body
        return HEADER.pack(HEADER_SIZE + len(data), self.command, 0, sequence) + data


def tlv(tag: int, value: bytes) -> bytes:
    """One optional parameter's bytes (tag, length, value)."""
    if len(value) > 0xFFFF:
        raise ValueError(f"TLV 0x{tag:04X} longer than 65535 octets")
    return _TLV_HEAD.pack(tag, len(value)) + value


def encode_pdu(pdu: Pdu, *, sequence: int | None = None, status: int | None = None, tlvs: bool = True) -> bytes:
    """Bytes for `pdu`; `sequence` and `status` replace its header's, and `tlvs=False`
    leaves its optional parameters out (a v3.3 peer has none). Raises `ValueError` for
    values that do not fit their field: encoding is our own output, so a misfit is a
    bug here, not the peer's fault."""
    command = pdu.command
    if sequence is None:
        sequence = pdu.sequence
    if status is None:
        status = pdu.status
    _, body, values = _CODEC[command]
    parts: list[bytes] = []
    if not (status and command in NO_BODY_ON_ERROR):
        _encode_fields(body, values(pdu), parts)
    if tlvs:
        for tag, value in pdu.tlvs.items():
            parts.append(tlv(tag, value))
    data = b"".join(parts)
    return HEADER.pack(HEADER_SIZE + len(data), command, status, sequence) + data


# One-octet values as bytes, looked up rather than built (bytes((n,)) is the slowest
# step of an encode); a value that is not a key does not fit an octet.
_OCTET: dict[int, bytes] = {n: bytes((n,)) for n in range(256)}


def _encode_fields(body: tuple[FieldSpec, ...], values: tuple[Any, ...], parts: list[bytes]) -> None:
    append = parts.append
    for spec, value in zip(body, values, strict=True):
        kind = spec.kind
        if kind == "c":
            raw = value.encode("latin-1")
            if len(raw) >= spec.size:
                raise ValueError(f"{spec.name} longer than {spec.size - 1} octets")
            append(raw)
            append(b"\x00")
        elif kind == "u8":
            try:
                append(_OCTET[value])
            except KeyError:
                raise ValueError(f"{spec.name} {value!r} does not fit one octet") from None
        elif kind == "sm":
            if len(value) > spec.size:
                raise ValueError("short_message longer than 254 octets; use message_payload")
            append(_OCTET[len(value)])
            append(value)
        elif kind == "u32":
            append(_U32.pack(value))
        elif kind == "dests":
            if len(value) > MAX_DESTS:
                raise ValueError(f"more than {MAX_DESTS} destinations")
            append(_OCTET[len(value)])
            for dest in value:
                append(_OCTET[dest.dest_flag])
                if isinstance(dest, SmeAddress):
                    _encode_fields(_SME_ADDRESS, _GET_SME_ADDRESS(dest), parts)
                else:
                    _encode_fields(_DL_NAME, _GET_DL_NAME(dest), parts)
        else:  # "unsuccess"
            if len(value) > MAX_DESTS:
                raise ValueError(f"more than {MAX_DESTS} unsuccess_smes")
            append(_OCTET[len(value)])
            for item in value:
                _encode_fields(_UNSUCCESS, _GET_UNSUCCESS(item), parts)


def encode_response(
    request_command: Command, sequence: int, status: int = 0, body: Pdu | None = None, *, tlvs: bool = True
) -> bytes:
    """The *_resp to a request (a generic_nack for commands that have none). `body`
    is the response's fields and TLVs (its header is ignored); without one, every
    field is empty, or on error what `ERROR_BODY_DEFAULTS` says, and a bind response
    or submit_sm_resp with an error is the bare header."""
    command = request_command.response or Command.GENERIC_NACK
    if body is None:
        if status and (command in NO_BODY_ON_ERROR or command in BODY_IF_GIVEN_ON_ERROR):
            return HEADER.pack(HEADER_SIZE, command, status, sequence)
        body = _ERROR_BODIES.get(command, _EMPTY_BODIES[command]) if status else _EMPTY_BODIES[command]
    elif body.command is not command:
        raise ValueError(f"a {body.command.label} does not answer a {request_command.label}")
    return encode_pdu(body, sequence=sequence, status=status, tlvs=tlvs)


def generic_nack(sequence: int, status: int) -> bytes:
    return HEADER.pack(HEADER_SIZE, Command.GENERIC_NACK, status, sequence)
