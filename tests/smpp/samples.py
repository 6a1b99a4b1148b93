"""Test-side SMPP material written from the v3.4 specification, not from our codec.

`SPEC_BODIES` is the body layout of every PDU (spec section 4) as a plain list per
command; `spec_encode` builds bodies from it byte by byte, so the codec's output and
its field table can both be checked against something that does not share its code.
`SAMPLES` holds realistic parameters for every command.
"""

from __future__ import annotations

import struct
from typing import Any

from bridge.smpp.constants import Command, Status, Tag
from bridge.smpp.pdu import PDU_CLASSES, DistributionList, Pdu, SmeAddress, UnsuccessSme, encode_pdu

# (name, kind, max size including the NUL for C-strings). Kinds as in the spec:
# "c" C-Octet String, "u8" 1-octet Integer, "sm" sm_length + short_message,
# "dests" number_of_dests + dest_address list, "unsuccess" no_unsuccess + unsuccess_sme list.
Field = tuple[str, str, int]

_SOURCE: list[Field] = [("source_addr_ton", "u8", 1), ("source_addr_npi", "u8", 1), ("source_addr", "c", 21)]
_DEST: list[Field] = [("dest_addr_ton", "u8", 1), ("dest_addr_npi", "u8", 1), ("destination_addr", "c", 21)]
_BIND: list[Field] = [
    ("system_id", "c", 16),
    ("password", "c", 9),
    ("system_type", "c", 13),
    ("interface_version", "u8", 1),
    ("addr_ton", "u8", 1),
    ("addr_npi", "u8", 1),
    ("address_range", "c", 41),
]
_SUBMIT_TAIL: list[Field] = [
    ("esm_class", "u8", 1),
    ("protocol_id", "u8", 1),
    ("priority_flag", "u8", 1),
    ("schedule_delivery_time", "c", 17),
    ("validity_period", "c", 17),
    ("registered_delivery", "u8", 1),
    ("replace_if_present_flag", "u8", 1),
    ("data_coding", "u8", 1),
    ("sm_default_msg_id", "u8", 1),
    ("short_message", "sm", 254),
]
_SUBMIT: list[Field] = [("service_type", "c", 6), *_SOURCE, *_DEST, *_SUBMIT_TAIL]
_MESSAGE_ID: list[Field] = [("message_id", "c", 65)]
_BIND_RESP: list[Field] = [("system_id", "c", 16)]

SPEC_BODIES: dict[Command, list[Field]] = {
    Command.GENERIC_NACK: [],  # 4.3
    Command.BIND_TRANSMITTER: _BIND,  # 4.1.1
    Command.BIND_TRANSMITTER_RESP: _BIND_RESP,  # 4.1.2
    Command.BIND_RECEIVER: _BIND,  # 4.1.3
    Command.BIND_RECEIVER_RESP: _BIND_RESP,  # 4.1.4
    Command.BIND_TRANSCEIVER: _BIND,  # 4.1.5
    Command.BIND_TRANSCEIVER_RESP: _BIND_RESP,  # 4.1.6
    Command.OUTBIND: [("system_id", "c", 16), ("password", "c", 9)],  # 4.1.7
    Command.UNBIND: [],  # 4.2.1
    Command.UNBIND_RESP: [],  # 4.2.2
    Command.SUBMIT_SM: _SUBMIT,  # 4.4.1
    Command.SUBMIT_SM_RESP: _MESSAGE_ID,  # 4.4.2
    Command.SUBMIT_MULTI: [  # 4.5.1
        ("service_type", "c", 6),
        *_SOURCE,
        ("dest_addresses", "dests", 254),
        *_SUBMIT_TAIL,
    ],
    Command.SUBMIT_MULTI_RESP: [("message_id", "c", 65), ("unsuccess_smes", "unsuccess", 254)],  # 4.5.2
    Command.DELIVER_SM: _SUBMIT,  # 4.6.1
    Command.DELIVER_SM_RESP: _MESSAGE_ID,  # 4.6.2
    Command.DATA_SM: [  # 4.7.1
        ("service_type", "c", 6),
        ("source_addr_ton", "u8", 1),
        ("source_addr_npi", "u8", 1),
        ("source_addr", "c", 65),
        ("dest_addr_ton", "u8", 1),
        ("dest_addr_npi", "u8", 1),
        ("destination_addr", "c", 65),
        ("esm_class", "u8", 1),
        ("registered_delivery", "u8", 1),
        ("data_coding", "u8", 1),
    ],
    Command.DATA_SM_RESP: _MESSAGE_ID,  # 4.7.2
    Command.QUERY_SM: [("message_id", "c", 65), *_SOURCE],  # 4.8.1
    Command.QUERY_SM_RESP: [  # 4.8.2
        ("message_id", "c", 65),
        ("final_date", "c", 17),
        ("message_state", "u8", 1),
        ("error_code", "u8", 1),
    ],
    Command.CANCEL_SM: [("service_type", "c", 6), ("message_id", "c", 65), *_SOURCE, *_DEST],  # 4.9.1
    Command.CANCEL_SM_RESP: [],  # 4.9.2
    Command.REPLACE_SM: [  # 4.10.1
        ("message_id", "c", 65),
        *_SOURCE,
        ("schedule_delivery_time", "c", 17),
        ("validity_period", "c", 17),
        ("registered_delivery", "u8", 1),
        ("sm_default_msg_id", "u8", 1),
        ("short_message", "sm", 254),
    ],
    Command.REPLACE_SM_RESP: [],  # 4.10.2
    Command.ENQUIRE_LINK: [],  # 4.11.1
    Command.ENQUIRE_LINK_RESP: [],  # 4.11.2
    Command.ALERT_NOTIFICATION: [  # 4.12.1
        ("source_addr_ton", "u8", 1),
        ("source_addr_npi", "u8", 1),
        ("source_addr", "c", 65),
        ("esme_addr_ton", "u8", 1),
        ("esme_addr_npi", "u8", 1),
        ("esme_addr", "c", 65),
    ],
}

SME_ADDRESS: list[Field] = [("dest_addr_ton", "u8", 1), ("dest_addr_npi", "u8", 1), ("destination_addr", "c", 21)]
DL_NAME: list[Field] = [("dl_name", "c", 21)]

# The status a too-long value of each C-string field is answered with (spec 5.1.3).
# Fields without a dedicated error code are answered with ESME_RINVPARLEN.
FIELD_STATUS: dict[str, Status] = {
    "system_id": Status.ESME_RINVSYSID,
    "password": Status.ESME_RINVPASWD,
    "system_type": Status.ESME_RINVSYSTYP,
    "source_addr": Status.ESME_RINVSRCADR,
    "destination_addr": Status.ESME_RINVDSTADR,
    "service_type": Status.ESME_RINVSERTYP,
    "schedule_delivery_time": Status.ESME_RINVSCHED,
    "validity_period": Status.ESME_RINVEXPIRY,
    "message_id": Status.ESME_RINVMSGID,
    "dl_name": Status.ESME_RINVDLNAME,
    "address_range": Status.ESME_RINVPARLEN,
    "final_date": Status.ESME_RINVPARLEN,
    "esme_addr": Status.ESME_RINVPARLEN,
}

UNKNOWN_TAG = 0x1400  # vendor-specific range (spec 5.3.2): unknown to us, kept raw

_SUBMIT_PARAMS: dict[str, Any] = {
    "service_type": "CMT",
    "source_addr_ton": 5,
    "source_addr_npi": 0,
    "source_addr": "BANK",
    "dest_addr_ton": 1,
    "dest_addr_npi": 1,
    "destination_addr": "5215512345678",
    "esm_class": 0,
    "protocol_id": 0,
    "priority_flag": 1,
    "schedule_delivery_time": "",
    "validity_period": "000001000000000R",
    "registered_delivery": 1,
    "replace_if_present_flag": 0,
    "data_coding": 0,
    "sm_default_msg_id": 0,
    "short_message": b"Your code is 123456",
}
_BIND_PARAMS: dict[str, Any] = {
    "system_id": "esme1",
    "password": "secret1",
    "system_type": "OTP",
    "interface_version": 0x34,
    "addr_ton": 1,
    "addr_npi": 1,
    "address_range": "^52",
}

SAMPLES: dict[Command, tuple[dict[str, Any], dict[int, bytes]]] = {
    Command.GENERIC_NACK: ({}, {}),
    Command.BIND_TRANSMITTER: (_BIND_PARAMS, {}),
    Command.BIND_RECEIVER: ({**_BIND_PARAMS, "system_type": ""}, {}),
    Command.BIND_TRANSCEIVER: ({**_BIND_PARAMS, "address_range": ""}, {}),
    Command.BIND_TRANSMITTER_RESP: ({"system_id": "SMPPBRIDGE"}, {Tag.SC_INTERFACE_VERSION: b"\x34"}),
    Command.BIND_RECEIVER_RESP: ({"system_id": "SMPPBRIDGE"}, {Tag.SC_INTERFACE_VERSION: b"\x34"}),
    Command.BIND_TRANSCEIVER_RESP: ({"system_id": "SMPPBRIDGE"}, {}),
    Command.OUTBIND: ({"system_id": "SMPPBRIDGE", "password": "pw"}, {}),
    Command.UNBIND: ({}, {}),
    Command.UNBIND_RESP: ({}, {}),
    Command.ENQUIRE_LINK: ({}, {}),
    Command.ENQUIRE_LINK_RESP: ({}, {}),
    Command.SUBMIT_SM: (
        _SUBMIT_PARAMS,
        {
            Tag.USER_MESSAGE_REFERENCE: b"\x00\x07",
            Tag.SAR_MSG_REF_NUM: b"\x12\x34",
            Tag.SAR_TOTAL_SEGMENTS: b"\x02",
            Tag.SAR_SEGMENT_SEQNUM: b"\x01",
            UNKNOWN_TAG: b"\xde\xad",
        },
    ),
    Command.SUBMIT_SM_RESP: ({"message_id": "4711"}, {}),
    Command.DELIVER_SM: (
        {**_SUBMIT_PARAMS, "esm_class": 0x04, "short_message": b"id:4711 sub:001 dlvrd:001"},
        {Tag.RECEIPTED_MESSAGE_ID: b"4711\x00", Tag.MESSAGE_STATE: b"\x02", Tag.NETWORK_ERROR_CODE: b"\x03\x00\x01"},
    ),
    Command.DELIVER_SM_RESP: ({"message_id": ""}, {}),
    Command.SUBMIT_MULTI: (
        {
            **{k: v for k, v in _SUBMIT_PARAMS.items() if not k.startswith(("dest_addr", "destination"))},
            "dest_addresses": [
                {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "5215500000001"},
                {"dest_flag": 2, "dl_name": "customers"},
                {"dest_flag": 1, "dest_addr_ton": 0, "dest_addr_npi": 0, "destination_addr": "447700900123"},
            ],
        },
        {Tag.PAYLOAD_TYPE: b"\x00"},
    ),
    Command.SUBMIT_MULTI_RESP: (
        {
            "message_id": "4712",
            "unsuccess_smes": [
                {
                    "dest_addr_ton": 1,
                    "dest_addr_npi": 1,
                    "destination_addr": "5215500000001",
                    "error_status_code": Status.ESME_RINVDSTADR,
                },
                {"dest_addr_ton": 0, "dest_addr_npi": 0, "destination_addr": "999", "error_status_code": 0x45},
            ],
        },
        {},
    ),
    Command.DATA_SM: (
        {
            "service_type": "",
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": "4" * 64,
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": "5215512345678",
            "esm_class": 0,
            "registered_delivery": 0,
            "data_coding": 8,
        },
        {Tag.MESSAGE_PAYLOAD: "Hola 👋".encode("utf-16-be"), Tag.QOS_TIME_TO_LIVE: b"\x00\x00\x0e\x10"},
    ),
    Command.DATA_SM_RESP: ({"message_id": "ff01"}, {Tag.ADDITIONAL_STATUS_INFO_TEXT: b"ok\x00"}),
    Command.QUERY_SM: (
        {"message_id": "4711", "source_addr_ton": 5, "source_addr_npi": 0, "source_addr": "BANK"},
        {},
    ),
    Command.QUERY_SM_RESP: (
        {"message_id": "4711", "final_date": "240131235959000+", "message_state": 2, "error_code": 0},
        {},
    ),
    Command.CANCEL_SM: (
        {
            "service_type": "",
            "message_id": "4711",
            "source_addr_ton": 5,
            "source_addr_npi": 0,
            "source_addr": "BANK",
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": "5215512345678",
        },
        {},
    ),
    Command.CANCEL_SM_RESP: ({}, {}),
    Command.REPLACE_SM: (
        {
            "message_id": "4711",
            "source_addr_ton": 5,
            "source_addr_npi": 0,
            "source_addr": "BANK",
            "schedule_delivery_time": "",
            "validity_period": "240131235959004-",
            "registered_delivery": 0,
            "sm_default_msg_id": 0,
            "short_message": b"x" * 254,
        },
        {},
    ),
    Command.REPLACE_SM_RESP: ({}, {}),
    Command.ALERT_NOTIFICATION: (
        {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": "5215512345678",
            "esme_addr_ton": 0,
            "esme_addr_npi": 0,
            "esme_addr": "SMPPBRIDGE",
        },
        {Tag.MS_AVAILABILITY_STATUS: b"\x00"},
    ),
}

REQUESTS = tuple(c for c in Command if not c.is_response)


# -- independent byte builders ---------------------------------------------------


def header(length: int, command_id: int, status: int = 0, sequence: int = 1) -> bytes:
    return struct.pack(">IIII", length, command_id, status, sequence)


def frame(command_id: int, body: bytes = b"", sequence: int = 1, status: int = 0) -> bytes:
    """A whole PDU with a correct command_length."""
    return header(16 + len(body), command_id, status, sequence) + body


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


def cstr(value: str) -> bytes:
    return value.encode("latin-1") + b"\x00"


def spec_fields(fields: list[Field], values: dict[str, Any], raw: dict[str, bytes] | None = None) -> bytes:
    """Body bytes for `fields` from `values`; `raw` replaces a field's encoding as is."""
    raw = raw or {}
    out = bytearray()
    for name, kind, _size in fields:
        if name in raw:
            out += raw[name]
            continue
        value = values.get(name)
        if kind == "c":
            out += cstr(value or "")
        elif kind == "u8":
            out.append(value or 0)
        elif kind == "sm":
            data = value or b""
            out.append(len(data))
            out += data
        elif kind == "dests":
            dests = value or []
            out.append(len(dests))
            for dest in dests:
                out.append(dest["dest_flag"])
                out += spec_fields(SME_ADDRESS if dest["dest_flag"] == 1 else DL_NAME, dest)
        else:  # unsuccess
            items = value or []
            out.append(len(items))
            for item in items:
                out += spec_fields(SME_ADDRESS, item)
                out += struct.pack(">I", item["error_status_code"])
    return bytes(out)


def spec_pdu(
    command: Command,
    values: dict[str, Any] | None = None,
    tlvs: dict[int, bytes] | None = None,
    sequence: int = 1,
    status: int = 0,
    raw: dict[str, bytes] | None = None,
) -> bytes:
    """A PDU built from `SPEC_BODIES` (defaults: the command's sample)."""
    sample_values, sample_tlvs = SAMPLES[command]
    values = sample_values if values is None else values
    tlvs = sample_tlvs if tlvs is None else tlvs
    body = spec_fields(SPEC_BODIES[command], values, raw) + b"".join(tlv(t, v) for t, v in tlvs.items())
    return frame(command, body, sequence, status)


def request_bytes(command: Command, sequence: int, **overrides: Any) -> bytes:
    """A valid request of `command` (its sample) through our encoder."""
    params, tlvs = SAMPLES[command]
    return encode_pdu(build(command, {**params, **overrides}, tlvs, sequence))


# -- between the plain values above and our typed PDUs ---------------------------------


def build(
    command: Command,
    values: dict[str, Any] | None = None,
    tlvs: dict[int, bytes] | None = None,
    sequence: int = 1,
    status: int = 0,
) -> Pdu:
    """Our PDU of `command` holding `values` (submit_multi lists as plain dicts too)."""
    fields = dict(values or {})
    if "dest_addresses" in fields:
        fields["dest_addresses"] = [
            SmeAddress(d["dest_addr_ton"], d["dest_addr_npi"], d["destination_addr"])
            if d["dest_flag"] == 1
            else DistributionList(d["dl_name"])
            for d in fields["dest_addresses"]
        ]
    if "unsuccess_smes" in fields:
        fields["unsuccess_smes"] = [UnsuccessSme(**u) for u in fields["unsuccess_smes"]]
    return PDU_CLASSES[command](sequence, status, dict(tlvs or {}), **fields)


def values_of(pdu: Pdu) -> dict[str, Any]:
    """The mandatory fields of `pdu` by spec name, as plain values (the inverse of `build`)."""
    out: dict[str, Any] = {}
    for name, _kind, _size in SPEC_BODIES[pdu.command]:
        value = getattr(pdu, name)
        if name == "dest_addresses":
            value = [
                {
                    "dest_flag": 1,
                    "dest_addr_ton": d.dest_addr_ton,
                    "dest_addr_npi": d.dest_addr_npi,
                    "destination_addr": d.destination_addr,
                }
                if isinstance(d, SmeAddress)
                else {"dest_flag": 2, "dl_name": d.dl_name}
                for d in value
            ]
        elif name == "unsuccess_smes":
            value = [
                {
                    "dest_addr_ton": u.dest_addr_ton,
                    "dest_addr_npi": u.dest_addr_npi,
                    "destination_addr": u.destination_addr,
                    "error_status_code": u.error_status_code,
                }
                for u in value
            ]
        out[name] = value
    return out


def split_frames(data: bytes) -> list[bytes]:
    """Cut a stream of whole PDUs at their command_length; fails on a partial PDU."""
    frames = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 16, "partial header in output"
        (length,) = struct.unpack_from(">I", data, pos)
        assert 16 <= length <= len(data) - pos, f"bad command_length {length} in output"
        frames.append(data[pos : pos + length])
        pos += length
    return frames


def answer_body(response: Command, message_id: str = "42") -> Pdu:
    """A `response` body, with `message_id` if it has one."""
    has_id = any(name == "message_id" for name, _kind, _size in SPEC_BODIES[response])
    return build(response, {"message_id": message_id} if has_id else {})
