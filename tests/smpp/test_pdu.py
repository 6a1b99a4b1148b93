"""PDU codec (testing level 1): round trips, the field table against the spec, and
every branch of decode_pdu that refuses input, with the status it must carry."""

from __future__ import annotations

import struct

import pytest

from bridge.smpp.constants import Command, Status, Tag
from bridge.smpp.pdu import (
    BODIES,
    HEADER_SIZE,
    PDU_CLASSES,
    TLV_MAX_SIZES,
    TLV_SIZES,
    BindTransmitter,
    BindTransmitterResp,
    DataSm,
    DistributionList,
    PduError,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    decode_pdu,
    encode_pdu,
    encode_response,
    generic_nack,
)
from tests.smpp.samples import (
    DL_NAME,
    FIELD_STATUS,
    SAMPLES,
    SME_ADDRESS,
    SPEC_BODIES,
    UNKNOWN_TAG,
    build,
    cstr,
    frame,
    header,
    spec_fields,
    spec_pdu,
    tlv,
    values_of,
)

ALL_COMMANDS = sorted(BODIES, key=int)


def _decode_error(data: bytes) -> PduError:
    with pytest.raises(PduError) as info:
        decode_pdu(data)
    return info.value


# -- the field table ----------------------------------------------------------------


def test_bodies_cover_every_command() -> None:
    assert set(BODIES) == set(Command) == set(SPEC_BODIES) == set(PDU_CLASSES)


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c.label)
def test_each_class_is_its_commands_body(command: Command) -> None:
    # The table is read off the classes: a class's attributes are its body's fields.
    cls = PDU_CLASSES[command]
    assert cls.command is command
    names = [name for name, _kind, _size in SPEC_BODIES[command]]
    pdu = cls()
    assert [name for name in names if hasattr(pdu, name)] == names
    assert not hasattr(pdu, "__dict__")  # slotted: a misspelt field cannot be set
    with pytest.raises(AttributeError):
        pdu.misspelt = 1  # type: ignore[attr-defined]  # the point: a field the class lacks


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c.label)
def test_bodies_row_matches_spec_layout(command: Command) -> None:
    row = [(spec.name, spec.kind, spec.size if spec.kind != "u8" else 1) for spec in BODIES[command]]
    assert row == SPEC_BODIES[command]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c.label)
def test_bodies_row_c_string_statuses_match_spec(command: Command) -> None:
    for spec in BODIES[command]:
        if spec.kind == "c":
            assert spec.status == FIELD_STATUS[spec.name], spec.name


# -- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c.label)
def test_round_trip_every_command(command: Command) -> None:
    params, tlvs = SAMPLES[command]
    pdu = build(command, params, tlvs, 0x12345678)
    decoded = decode_pdu(encode_pdu(pdu))
    assert type(decoded) is PDU_CLASSES[command]
    assert decoded.command is command
    assert decoded.sequence == 0x12345678
    assert decoded.status == 0
    assert values_of(decoded) == params
    assert decoded.tlvs == tlvs
    assert decoded == pdu


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c.label)
def test_encode_matches_spec_built_bytes(command: Command) -> None:
    params, tlvs = SAMPLES[command]
    assert encode_pdu(build(command, params, tlvs, 7)) == spec_pdu(command, sequence=7)


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c.label)
def test_decode_spec_built_bytes(command: Command) -> None:
    params, tlvs = SAMPLES[command]
    pdu = decode_pdu(spec_pdu(command, sequence=9))
    assert (pdu.command, pdu.sequence, values_of(pdu), pdu.tlvs) == (command, 9, params, tlvs)


def test_submit_sm_golden_bytes() -> None:
    body = (
        b"\x00"  # service_type
        b"\x01\x01" + b"12345\x00"  # source
        b"\x01\x01" + b"5215512345678\x00"  # destination
        b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        b"\x00\x00"  # schedule, validity
        b"\x01\x00\x00\x00"  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
        b"\x05hello"
        b"\x02\x04\x00\x02\x00\x2a"  # user_message_reference = 42
    )
    data = struct.pack(">IIII", 16 + len(body), 4, 0, 3) + body
    pdu = decode_pdu(data)
    assert isinstance(pdu, SubmitSm)
    assert pdu.sequence == 3
    assert pdu.source_addr == "12345"
    assert pdu.destination_addr == "5215512345678"
    assert pdu.registered_delivery == 1
    assert pdu.short_message == b"hello"
    assert pdu.tlvs == {Tag.USER_MESSAGE_REFERENCE: b"\x00\x2a"}
    assert pdu.tlv_int(Tag.USER_MESSAGE_REFERENCE) == 42
    assert encode_pdu(pdu) == data


def test_unknown_tlvs_are_kept_as_raw_bytes() -> None:
    tlvs = {UNKNOWN_TAG: b"\x00\x01\x02", 0x1401: b"", 0x2150: b"vendor\x00"}
    data = spec_pdu(Command.SUBMIT_SM, tlvs=tlvs)
    assert decode_pdu(data).tlvs == tlvs


def test_header_fields_round_trip() -> None:
    data = encode_pdu(SubmitSmResp(0x7FFFFFFF, Status.ESME_RTHROTTLED, message_id="1"))
    assert struct.unpack_from(">IIII", data) == (len(data), 0x80000004, 0x58, 0x7FFFFFFF)
    pdu = decode_pdu(data)
    assert pdu.status == Status.ESME_RTHROTTLED
    assert pdu.sequence == 0x7FFFFFFF


def test_latin1_c_strings_round_trip() -> None:
    pdu = decode_pdu(encode_pdu(SubmitSm(1, source_addr="Café ÿ")))
    assert isinstance(pdu, SubmitSm)
    assert pdu.source_addr == "Café ÿ"


def test_short_message_of_254_octets_is_accepted() -> None:
    data = spec_pdu(Command.SUBMIT_SM, {**SAMPLES[Command.SUBMIT_SM][0], "short_message": b"\xff" * 254}, {})
    assert values_of(decode_pdu(data))["short_message"] == b"\xff" * 254


def test_c_string_of_maximum_length_is_accepted() -> None:
    params = {**SAMPLES[Command.BIND_TRANSMITTER][0], "system_id": "s" * 15, "password": "p" * 8}
    pdu = decode_pdu(spec_pdu(Command.BIND_TRANSMITTER, params, {}))
    assert isinstance(pdu, BindTransmitter)
    assert (pdu.system_id, pdu.password) == ("s" * 15, "p" * 8)


def test_submit_multi_destinations_sme_and_distribution_list() -> None:
    pdu = decode_pdu(spec_pdu(Command.SUBMIT_MULTI))
    assert isinstance(pdu, SubmitMulti)
    assert pdu.dest_addresses == [
        SmeAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="5215500000001"),
        DistributionList(dl_name="customers"),
        SmeAddress(dest_addr_ton=0, dest_addr_npi=0, destination_addr="447700900123"),
    ]
    assert pdu.short_message == SAMPLES[Command.SUBMIT_SM][0]["short_message"]


def test_submit_multi_254_destinations_is_the_maximum() -> None:
    dests = [
        {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": f"52{i:08d}"} for i in range(254)
    ]
    params = {**SAMPLES[Command.SUBMIT_MULTI][0], "dest_addresses": dests}
    assert len(values_of(decode_pdu(spec_pdu(Command.SUBMIT_MULTI, params, {})))["dest_addresses"]) == 254
    assert values_of(decode_pdu(encode_pdu(build(Command.SUBMIT_MULTI, params))))["dest_addresses"] == dests


def test_submit_multi_resp_unsuccess_list() -> None:
    pdu = decode_pdu(spec_pdu(Command.SUBMIT_MULTI_RESP))
    assert isinstance(pdu, SubmitMultiResp)
    assert pdu.message_id == "4712"
    assert values_of(pdu)["unsuccess_smes"] == SAMPLES[Command.SUBMIT_MULTI_RESP][0]["unsuccess_smes"]
    assert pdu.unsuccess_smes[0].error_status_code == Status.ESME_RINVDSTADR


def test_submit_multi_resp_with_no_unsuccess() -> None:
    pdu = decode_pdu(spec_pdu(Command.SUBMIT_MULTI_RESP, {"message_id": "1", "unsuccess_smes": []}, {}))
    assert values_of(pdu) == {"message_id": "1", "unsuccess_smes": []}


@pytest.mark.parametrize("command", sorted(c for c in Command if c.is_response), ids=lambda c: c.label)
def test_response_with_empty_body_decodes(command: Command) -> None:
    pdu = decode_pdu(header(16, command, Status.ESME_RSYSERR, 5))
    assert (pdu.command, pdu.status, pdu.sequence, pdu.tlvs) == (command, Status.ESME_RSYSERR, 5, {})
    assert all(value in ("", 0, []) for value in values_of(pdu).values())  # every field empty


def test_deliver_sm_resp_with_ok_status_and_no_body_decodes() -> None:
    assert values_of(decode_pdu(header(16, Command.DELIVER_SM_RESP, 0, 8))) == {"message_id": ""}


# Error responses as a strict decoder (cloudhopper, jSMPP) reads them, written out
# byte by byte. v3.4 4.1.2/4.1.4/4.1.6 and 4.4.2 leave the body out on error; 4.5.2,
# 4.6.2, 4.7.2 and 4.8.2 do not, so every mandatory field is there.
ERROR_RESPONSES = {
    # submit_sm_resp: the 16-octet header only.
    Command.SUBMIT_SM_RESP: bytes.fromhex("00000010 80000004 00000008 00000003"),
    # bind_*_resp without a system_id to give: header only.
    Command.BIND_TRANSMITTER_RESP: bytes.fromhex("00000010 80000002 00000008 00000003"),
    Command.BIND_RECEIVER_RESP: bytes.fromhex("00000010 80000001 00000008 00000003"),
    Command.BIND_TRANSCEIVER_RESP: bytes.fromhex("00000010 80000009 00000008 00000003"),
    # submit_multi_resp: message_id NULL, no_unsuccess 0.
    Command.SUBMIT_MULTI_RESP: bytes.fromhex("00000012 80000021 00000008 00000003 00 00"),
    # data_sm_resp / deliver_sm_resp: message_id NULL.
    Command.DATA_SM_RESP: bytes.fromhex("00000011 80000103 00000008 00000003 00"),
    Command.DELIVER_SM_RESP: bytes.fromhex("00000011 80000005 00000008 00000003 00"),
    # query_sm_resp: message_id NULL, final_date NULL, message_state 7 (UNKNOWN: 0 is
    # not a state), error_code 0.
    Command.QUERY_SM_RESP: bytes.fromhex("00000014 80000003 00000008 00000003 00 00 07 00"),
}


@pytest.mark.parametrize("command", sorted(ERROR_RESPONSES), ids=lambda c: c.label)
def test_error_response_bytes_a_strict_decoder_expects(command: Command) -> None:
    request = Command(command & ~0x80000000)  # a request's id is its response's without bit 31
    assert encode_response(request, 3, Status.ESME_RSYSERR) == ERROR_RESPONSES[command]


def test_submit_sm_resp_error_stays_16_octets_even_when_given_a_message_id() -> None:
    data = encode_pdu(SubmitSmResp(3, Status.ESME_RSYSERR, message_id="12"))
    assert data == ERROR_RESPONSES[Command.SUBMIT_SM_RESP]
    answer = SubmitSmResp(message_id="12")
    assert encode_response(Command.SUBMIT_SM, 3, Status.ESME_RSYSERR, answer) == ERROR_RESPONSES[Command.SUBMIT_SM_RESP]


def test_query_sm_resp_error_for_an_unknown_id() -> None:
    # ESME_RQUERYFAIL (0x67) to query_sm sequence 9.
    assert encode_response(Command.QUERY_SM, 9, Status.ESME_RQUERYFAIL) == bytes.fromhex(
        "00000014 80000003 00000067 00000009 00 00 07 00"
    )


def test_error_response_with_params_keeps_its_body() -> None:
    data = encode_pdu(BindTransmitterResp(1, Status.ESME_RBINDFAIL, system_id="SMSC"))
    assert data == header(21, Command.BIND_TRANSMITTER_RESP, Status.ESME_RBINDFAIL, 1) + b"SMSC\x00"
    answer = BindTransmitterResp(system_id="SMSC")
    assert encode_response(Command.BIND_TRANSMITTER, 1, Status.ESME_RBINDFAIL, answer) == data


def test_encode_response_and_generic_nack() -> None:
    assert encode_response(Command.ENQUIRE_LINK, 9) == header(16, Command.ENQUIRE_LINK_RESP, 0, 9)
    answer = SubmitSmResp(1234, 5, message_id="77")  # its header is the request's business
    assert encode_response(Command.SUBMIT_SM, 9, 0, answer) == frame(Command.SUBMIT_SM_RESP, b"77\x00", 9)
    with pytest.raises(ValueError):
        encode_response(Command.DATA_SM, 9, 0, answer)  # not a data_sm_resp
    # Commands with no response of their own are answered with a generic_nack.
    assert encode_response(Command.OUTBIND, 4, Status.ESME_RINVBNDSTS) == header(
        16, Command.GENERIC_NACK, Status.ESME_RINVBNDSTS, 4
    )
    assert encode_response(Command.ALERT_NOTIFICATION, 4, 3) == header(16, Command.GENERIC_NACK, 3, 4)
    assert generic_nack(0x11, Status.ESME_RINVCMDID) == header(16, 0x80000000, 3, 0x11)


def test_tlv_int() -> None:
    pdu = SubmitSm(1, tlvs={1: b"\x01", 2: b"\x01\x02", 3: b"", 4: b"\x00" * 5, 5: b"\x00\x00\x01\x00"})
    assert pdu.tlv_int(1) == 1
    assert pdu.tlv_int(2) == 0x0102
    assert pdu.tlv_int(5) == 256
    assert pdu.tlv_int(3) is None
    assert pdu.tlv_int(4, -1) == -1
    assert pdu.tlv_int(9, 7) == 7


def test_typed_accessors_of_the_tlvs_the_bridge_reads() -> None:
    submit = decode_pdu(spec_pdu(Command.SUBMIT_SM))
    assert isinstance(submit, SubmitSm)
    # the sample's SAR TLVs: reference 0x1234, part 1 of 2
    assert (submit.sar_msg_ref_num, submit.sar_total_segments, submit.sar_segment_seqnum) == (0x1234, 2, 1)
    assert (submit.message_payload, submit.dest_addr_subunit) == (None, None)
    data_sm = decode_pdu(spec_pdu(Command.DATA_SM, tlvs={Tag.MESSAGE_PAYLOAD: b"hi", Tag.DEST_ADDR_SUBUNIT: b"\x01"}))
    assert isinstance(data_sm, DataSm)
    assert (data_sm.message_payload, data_sm.dest_addr_subunit, data_sm.sar_msg_ref_num) == (b"hi", 1, None)


def test_repr_leaves_out_the_message_text() -> None:
    pdu = decode_pdu(spec_pdu(Command.SUBMIT_SM))
    assert "123456" not in repr(pdu)
    assert "SubmitSm" in repr(pdu)


# -- encode refuses what does not fit --------------------------------------------


@pytest.mark.parametrize(
    ("command", "params", "tlvs"),
    [
        (Command.BIND_TRANSMITTER, {"system_id": "s" * 16}, {}),
        (Command.SUBMIT_SM, {"short_message": b"x" * 255}, {}),
        (Command.SUBMIT_SM, {"esm_class": 256}, {}),
        (Command.SUBMIT_SM, {}, {Tag.MESSAGE_PAYLOAD: b"x" * 65536}),
        (Command.SUBMIT_MULTI, {"dest_addresses": [{"dest_flag": 2, "dl_name": "l"}] * 255}, {}),
    ],
    ids=["c-string", "short_message", "u8", "tlv", "dests"],
)
def test_encode_raises_value_error_for_values_that_do_not_fit(
    command: Command, params: dict[str, object], tlvs: dict[int, bytes]
) -> None:
    with pytest.raises(ValueError):
        encode_pdu(build(command, params, tlvs))


# -- header-level refusals ------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4, 15])
def test_frame_shorter_than_header(size: int) -> None:
    exc = _decode_error(header(16, Command.ENQUIRE_LINK)[:size])
    assert exc.status is Status.ESME_RINVCMDLEN
    assert (exc.command_id, exc.sequence) == (0, 0)


@pytest.mark.parametrize("declared", [16, 17, 15, 100, 0xFFFFFFFF])
def test_command_length_mismatch(declared: int) -> None:
    data = header(declared, Command.SUBMIT_SM_RESP, 0, 42) + b"12\x00"
    exc = _decode_error(data)
    assert exc.status is Status.ESME_RINVCMDLEN
    assert (exc.command_id, exc.sequence) == (Command.SUBMIT_SM_RESP, 42)


@pytest.mark.parametrize("command_id", [0x00000000, 0x0000000A, 0x00000099, 0x80000099, 0x8000000B, 0x00010000])
def test_unknown_command_id(command_id: int) -> None:
    exc = _decode_error(header(16, command_id, 0, 77))
    assert exc.status is Status.ESME_RINVCMDID
    assert (exc.command_id, exc.sequence) == (command_id, 77)


# -- body refusals -----------------------------------------------------------------


def _c_string_cases() -> list[tuple[Command, str]]:
    return [
        (command, name)
        for command in ALL_COMMANDS
        for name, kind, _size in SPEC_BODIES[command]
        if kind == "c" and command is not Command.GENERIC_NACK
    ]


@pytest.mark.parametrize(("command", "field"), _c_string_cases(), ids=lambda v: getattr(v, "label", v))
def test_c_string_too_long_carries_the_field_status(command: Command, field: str) -> None:
    size = next(size for name, kind, size in SPEC_BODIES[command] if name == field)
    # `size` octets before the NUL: one more than the field may hold.
    data = spec_pdu(command, tlvs={}, sequence=31, raw={field: b"7" * size + b"\x00"})
    exc = _decode_error(data)
    assert exc.status is FIELD_STATUS[field]
    assert (exc.command_id, exc.sequence) == (command, 31)


@pytest.mark.parametrize(("command", "field"), _c_string_cases(), ids=lambda v: getattr(v, "label", v))
def test_body_ending_inside_a_c_string(command: Command, field: str) -> None:
    fields = SPEC_BODIES[command]
    index = next(i for i, (name, _k, _s) in enumerate(fields) if name == field)
    body = spec_fields(fields[:index], SAMPLES[command][0]) + b"12"  # no NUL, then the end
    exc = _decode_error(frame(command, body, 12))
    assert exc.status is Status.ESME_RINVCMDLEN
    assert (exc.command_id, exc.sequence) == (command, 12)


def _u8_cases() -> list[tuple[Command, str]]:
    return [
        (c, name)
        for c in ALL_COMMANDS
        for name, kind, _s in SPEC_BODIES[c]
        if kind in ("u8", "sm", "dests", "unsuccess")
    ]


@pytest.mark.parametrize(("command", "field"), _u8_cases(), ids=lambda v: getattr(v, "label", v))
def test_body_ending_before_an_octet_field(command: Command, field: str) -> None:
    fields = SPEC_BODIES[command]
    index = next(i for i, (name, _k, _s) in enumerate(fields) if name == field)
    body = spec_fields(fields[:index], SAMPLES[command][0])
    exc = _decode_error(frame(command, body, 13))
    assert exc.status is Status.ESME_RINVCMDLEN
    assert exc.sequence == 13


@pytest.mark.parametrize("command", [Command.SUBMIT_SM, Command.DELIVER_SM, Command.REPLACE_SM, Command.SUBMIT_MULTI])
def test_sm_length_running_past_the_body(command: Command) -> None:
    data = spec_pdu(command, tlvs={}, raw={"short_message": b"\x0a" + b"short"})
    assert _decode_error(data).status is Status.ESME_RINVMSGLEN


def test_sm_length_255_is_refused() -> None:
    data = spec_pdu(Command.SUBMIT_SM, tlvs={}, raw={"short_message": b"\xff" + b"x" * 255})
    assert _decode_error(data).status is Status.ESME_RINVMSGLEN


def test_sm_length_overrun_into_tlvs_is_not_taken_as_text() -> None:
    # sm_length claims the TLV bytes too, then one more: refused, not silently re-read.
    data = spec_pdu(Command.SUBMIT_SM, tlvs={}, raw={"short_message": b"\x08" + b"ab" + tlv(0x0204, b"\x00")})
    assert _decode_error(data).status is Status.ESME_RINVMSGLEN


@pytest.mark.parametrize("tail", [b"\x02", b"\x02\x04", b"\x02\x04\x00"])
def test_trailing_fragment_shorter_than_a_tlv_header_is_ignored(tail: bytes) -> None:
    data = spec_pdu(Command.SUBMIT_SM, tlvs={})
    pdu = decode_pdu(frame(Command.SUBMIT_SM, data[16:] + tail, 21))
    assert (pdu.command, pdu.sequence, pdu.tlvs) == (Command.SUBMIT_SM, 21, {})
    assert values_of(pdu) == values_of(decode_pdu(data))


def test_tlv_running_past_the_body() -> None:
    body = spec_pdu(Command.SUBMIT_SM, tlvs={})[16:] + struct.pack(">HH", Tag.MESSAGE_PAYLOAD, 10) + b"abc"
    assert _decode_error(frame(Command.SUBMIT_SM, body)).status is Status.ESME_RINVOPTPARSTREAM


def test_one_octet_after_an_empty_body_response_is_ignored() -> None:
    assert decode_pdu(frame(Command.GENERIC_NACK, b"\x00")).tlvs == {}


# Fixed value sizes from the spec's TLV definitions (5.3.2.x), written out here.
SPEC_TLV_SIZES = {
    0x0005: 1,  # dest_addr_subunit
    0x000D: 1,  # source_addr_subunit
    0x0006: 1,  # dest_network_type
    0x000E: 1,  # source_network_type
    0x0007: 1,  # dest_bearer_type
    0x000F: 1,  # source_bearer_type
    0x0017: 4,  # qos_time_to_live
    0x0019: 1,  # payload_type
    0x0030: 1,  # ms_msg_wait_facilities
    0x0201: 1,  # privacy_indicator
    0x0204: 2,  # user_message_reference
    0x0205: 1,  # user_response_code
    0x020A: 2,  # source_port
    0x020B: 2,  # destination_port
    0x020C: 2,  # sar_msg_ref_num
    0x020D: 1,  # language_indicator
    0x020E: 1,  # sar_total_segments
    0x020F: 1,  # sar_segment_seqnum
    0x0210: 1,  # sc_interface_version
    0x0302: 1,  # callback_num_pres_ind
    0x0304: 1,  # number_of_messages
    0x0420: 1,  # dpf_result
    0x0421: 1,  # set_dpf
    0x0422: 1,  # ms_availability_status
    0x0423: 3,  # network_error_code
    0x0425: 1,  # delivery_failure_reason
    0x0426: 1,  # more_messages_to_send
    0x0427: 1,  # message_state
    0x0501: 1,  # ussd_service_op
    0x1201: 1,  # display_time
    0x1203: 2,  # sms_signal
    0x1204: 1,  # ms_validity
    0x130C: 0,  # alert_on_message_delivery
    0x1380: 1,  # its_reply_type
    0x1383: 2,  # its_session_info
}
SPEC_TLV_MAX_SIZES = {0x001E: 65, 0x0424: 65535, 0x001D: 256}


@pytest.mark.parametrize("tag", sorted(TLV_SIZES), ids=lambda t: f"0x{t:04X}")
def test_tlv_sizes_row_matches_spec(tag: int) -> None:
    assert TLV_SIZES[tag] == SPEC_TLV_SIZES[tag]


@pytest.mark.parametrize("tag", sorted(TLV_MAX_SIZES), ids=lambda t: f"0x{t:04X}")
def test_tlv_max_sizes_row_matches_spec(tag: int) -> None:
    assert TLV_MAX_SIZES[tag] == SPEC_TLV_MAX_SIZES[tag]


def test_tlv_tags_match_spec_numbers() -> None:
    names = {tag.name.lower(): int(tag) for tag in Tag}
    spec = {
        "dest_addr_subunit": 0x0005,
        "source_addr_subunit": 0x000D,
        "qos_time_to_live": 0x0017,
        "payload_type": 0x0019,
        "additional_status_info_text": 0x001D,
        "receipted_message_id": 0x001E,
        "user_message_reference": 0x0204,
        "sar_msg_ref_num": 0x020C,
        "sar_total_segments": 0x020E,
        "sar_segment_seqnum": 0x020F,
        "sc_interface_version": 0x0210,
        "network_error_code": 0x0423,
        "message_payload": 0x0424,
        "more_messages_to_send": 0x0426,
        "message_state": 0x0427,
        "its_session_info": 0x1383,
    }
    assert {name: names[name] for name in spec} == spec


# The TLVs the bridge reads (flash, SAR): a wrong length refuses the PDU.
READ_TLVS = {0x0005: 1, 0x020C: 2, 0x020E: 1, 0x020F: 1}


@pytest.mark.parametrize("tag", sorted(READ_TLVS), ids=lambda t: f"0x{t:04X}")
@pytest.mark.parametrize("delta", [-1, 1])
def test_read_tlv_with_the_wrong_length_is_refused(tag: int, delta: int) -> None:
    size = READ_TLVS[tag] + delta
    exc = _decode_error(spec_pdu(Command.SUBMIT_SM, tlvs={tag: b"\x01" * size}, sequence=44))
    assert exc.status is Status.ESME_RINVPARLEN
    assert (exc.command_id, exc.sequence) == (Command.SUBMIT_SM, 44)


@pytest.mark.parametrize("tag", sorted(set(TLV_SIZES) - set(READ_TLVS)), ids=lambda t: f"0x{t:04X}")
def test_unread_tlv_with_the_wrong_length_is_dropped(tag: int) -> None:
    # As Kannel does: the TLV goes, the submit stays (the others TLVs with it).
    size = SPEC_TLV_SIZES[tag] + 1
    pdu = decode_pdu(spec_pdu(Command.SUBMIT_SM, tlvs={tag: b"\x01" * size, 0x0005: b"\x01"}, sequence=44))
    assert pdu.tlvs == {0x0005: b"\x01"}


def test_unread_tlv_with_the_wrong_length_bytes() -> None:
    # user_message_reference (0x0204, 2 octets) sent with 3: dropped; the rest is read.
    body = spec_pdu(Command.SUBMIT_SM, tlvs={})[16:]
    data = frame(Command.SUBMIT_SM, body + bytes.fromhex("0204 0003 010203") + bytes.fromhex("0005 0001 01"), 7)
    assert decode_pdu(data).tlvs == {0x0005: b"\x01"}


@pytest.mark.parametrize("tag", sorted(TLV_SIZES), ids=lambda t: f"0x{t:04X}")
def test_fixed_size_tlv_with_the_right_length(tag: int) -> None:
    value = b"\x01" * TLV_SIZES[tag]
    assert decode_pdu(spec_pdu(Command.SUBMIT_SM, tlvs={tag: value})).tlvs == {tag: value}


@pytest.mark.parametrize("tag", sorted(TLV_MAX_SIZES), ids=lambda t: f"0x{t:04X}")
def test_variable_tlv_up_to_its_maximum(tag: int) -> None:
    limit = TLV_MAX_SIZES[tag]
    value = b"a" * (limit - 1) + b"\x00"
    assert decode_pdu(spec_pdu(Command.DATA_SM, tlvs={tag: value})).tlvs[tag] == value
    if limit < 65535:  # longer: not read by the bridge, so dropped
        assert tag not in decode_pdu(spec_pdu(Command.DATA_SM, tlvs={tag: value + b"\x00"})).tlvs


def test_submit_multi_invalid_dest_flag() -> None:
    dests = b"\x02" + b"\x01\x01\x015210\x00" + b"\x03" + b"\x01\x015211\x00"
    exc = _decode_error(spec_pdu(Command.SUBMIT_MULTI, tlvs={}, sequence=3, raw={"dest_addresses": dests}))
    assert exc.status is Status.ESME_RINVDESTFLAG
    assert (exc.command_id, exc.sequence) == (Command.SUBMIT_MULTI, 3)


def test_submit_multi_zero_destinations() -> None:
    exc = _decode_error(spec_pdu(Command.SUBMIT_MULTI, tlvs={}, raw={"dest_addresses": b"\x00"}))
    assert exc.status is Status.ESME_RINVNUMDESTS


def test_submit_multi_more_than_254_destinations() -> None:
    dests = b"\xff" + (b"\x02" + cstr("list")) * 255
    exc = _decode_error(spec_pdu(Command.SUBMIT_MULTI, tlvs={}, raw={"dest_addresses": dests}))
    assert exc.status is Status.ESME_RINVNUMDESTS


def test_submit_multi_destination_list_ending_early() -> None:
    # number_of_dests says 3, two follow, then the body ends.
    head = spec_fields(SPEC_BODIES[Command.SUBMIT_MULTI][:4], SAMPLES[Command.SUBMIT_MULTI][0])
    dests = b"\x03" + b"\x01\x01\x01" + cstr("5210") + b"\x02" + cstr("list")
    assert _decode_error(frame(Command.SUBMIT_MULTI, head + dests)).status is Status.ESME_RINVCMDLEN


@pytest.mark.parametrize(
    ("fields", "raw", "status"),
    [
        (SME_ADDRESS, {"destination_addr": b"1" * 21 + b"\x00"}, Status.ESME_RINVDSTADR),
        (DL_NAME, {"dl_name": b"d" * 21 + b"\x00"}, Status.ESME_RINVDLNAME),
    ],
    ids=["sme", "dl"],
)
def test_submit_multi_destination_too_long(
    fields: list[tuple[str, str, int]], raw: dict[str, bytes], status: Status
) -> None:
    flag = b"\x01" if fields is SME_ADDRESS else b"\x02"
    dests = b"\x01" + flag + spec_fields(fields, {"dest_addr_ton": 1}, raw)
    exc = _decode_error(spec_pdu(Command.SUBMIT_MULTI, tlvs={}, raw={"dest_addresses": dests}))
    assert exc.status is status


def test_submit_multi_resp_error_status_code_cut_short() -> None:
    unsuccess = b"\x01" + b"\x01\x01" + cstr("5210") + b"\x00\x00"
    data = frame(Command.SUBMIT_MULTI_RESP, cstr("9") + unsuccess)
    assert _decode_error(data).status is Status.ESME_RINVCMDLEN


def test_pdu_error_carries_reason_and_is_an_exception() -> None:
    exc = _decode_error(spec_pdu(Command.SUBMIT_SM, tlvs={}, sequence=5, raw={"source_addr": b"9" * 30 + b"\x00"}))
    assert isinstance(exc, Exception)
    assert "source_addr" in exc.reason
    assert str(exc) == exc.reason
    assert exc.sequence == 5
    assert HEADER_SIZE == 16
