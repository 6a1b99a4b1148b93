"""Property tests (testing level 5): no input crashes the codec, the text codecs or a
session, everything a session writes is well-formed, and every request read is
answered exactly once.

Example counts come from SMPP_HYPOTHESIS_EXAMPLES (default 200) so a longer fuzz run
is one environment variable away."""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.smpp.constants import COMMAND_BY_ID, Command, Status, Tag
from bridge.smpp.pdu import BODIES, PDU_CLASSES, DataSm, DeliverSm, Pdu, PduError, SubmitSm, decode_pdu, encode_pdu
from bridge.smpp.receipt import ascii_safe, format_receipt, parse_receipt
from bridge.smpp.session import (
    BindRequested,
    Closing,
    Event,
    PeerError,
    RequestReceived,
    Session,
    SessionConfig,
)
from bridge.smpp.text import GSM_BASIC, GSM_EXTENSION, Charset, TextError, decode_text, gsm_decode, gsm_encode
from bridge.smpp.times import parse_smpp_time
from bridge.smpp.udh import split_payload
from tests.smpp.samples import REQUESTS, answer_body, frame, request_bytes, spec_pdu, split_frames

EXAMPLES = int(os.environ.get("SMPP_HYPOTHESIS_EXAMPLES", "200"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KNOWN_IDS = sorted(COMMAND_BY_ID)
RESPONSE_IDS = frozenset(c.value for c in Command if c.is_response)
CONFIG = SessionConfig(
    window=3,
    enquire_link_interval=30.0,
    inactivity_timeout=300.0,
    bind_timeout=40.0,
    response_timeout=20.0,
    max_command_length=2048,
)


# -- strategies ----------------------------------------------------------------------

command_ids = st.one_of(st.sampled_from(KNOWN_IDS), st.integers(0, 0xFFFFFFFF))


@st.composite
def mutated_pdus(draw: st.DrawFn) -> bytes:
    """A valid PDU of any command with some octets changed, cut, or added."""
    command = draw(st.sampled_from(sorted(BODIES, key=int)))
    data = bytearray(spec_pdu(command, sequence=draw(st.integers(0, 0xFFFFFFFF))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and pos < len(data):
            del data[pos]
    if draw(st.booleans()) and len(data) >= 4:
        data[0:4] = struct.pack(">I", len(data))  # keep the frame consistent: exercise the body
    return bytes(data)


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """Any command_id with any body, command_length correct."""
    return frame(draw(command_ids), draw(st.binary(max_size=120)), draw(st.integers(0, 0xFFFFFFFF)))


@st.composite
def mutated_bodies(draw: st.DrawFn, sequence: int) -> bytes:
    """A request's header, correct command_length, a mutated body."""
    command = draw(st.sampled_from(REQUESTS))
    body = bytearray(request_bytes(command, sequence)[16:])
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(body)))
        if pos < len(body) and draw(st.booleans()):
            body[pos] = draw(st.integers(0, 255))
        else:
            del body[pos:]
    return frame(command, bytes(body), sequence)


# -- the codec -----------------------------------------------------------------------


def _decodes_or_refuses(data: bytes) -> Pdu | None:
    try:
        pdu = decode_pdu(data)
    except PduError as exc:
        assert isinstance(exc.status, Status)
        return None
    assert isinstance(pdu, Pdu)
    return pdu


@PROPERTY
@given(st.binary(max_size=300))
def test_decode_arbitrary_bytes(data: bytes) -> None:
    _decodes_or_refuses(data)


@PROPERTY
@given(framed())
def test_decode_well_framed_arbitrary_bodies(data: bytes) -> None:
    _decodes_or_refuses(data)


@PROPERTY
@given(mutated_pdus())
def test_decode_mutated_valid_pdus(data: bytes) -> None:
    pdu = _decodes_or_refuses(data)
    # submit_sm_resp with an error is written without its body (v3.4 4.4.2), whatever it held
    dropped = pdu is not None and pdu.status and pdu.command is Command.SUBMIT_SM_RESP
    if pdu is not None and not dropped:
        # what we accept we can write back, and it reads the same
        again = decode_pdu(encode_pdu(pdu))
        assert (again.command, again.sequence, again.status) == (pdu.command, pdu.sequence, pdu.status)
        assert again == pdu


# -- the session ---------------------------------------------------------------------


def _check_output(data: bytes) -> list[Pdu]:
    """Everything written is whole PDUs that our decoder accepts."""
    return [decode_pdu(f) for f in split_frames(data)]


def _answer_now(session: Session, events: list[Event], accept: bool) -> None:
    for event in events:
        if isinstance(event, BindRequested):
            if accept:
                session.accept_bind(event.pdu, "SMSC")
            else:
                session.reject_bind(event.pdu, Status.ESME_RBINDFAIL, "SMSC")
        elif isinstance(event, RequestReceived):
            response = Command(event.pdu.command | 0x80000000)  # spec 5.1.2.1: the request's id, bit 31 set
            session.respond(event.pdu, Status.ESME_ROK, answer_body(response, "1"))


def _bound_session(now: float = 0.0) -> Session:
    session = Session(CONFIG, now)
    (event,) = session.receive_data(request_bytes(Command.BIND_TRANSCEIVER, 1), now)
    assert isinstance(event, BindRequested)
    session.accept_bind(event.pdu, "SMSC")
    session.data_to_send()
    return session


pieces = st.one_of(
    st.builds(request_bytes, st.sampled_from(REQUESTS), st.integers(1, 0x7FFFFFFF)),
    mutated_pdus(),
    framed(),
    st.binary(max_size=40),
)


@PROPERTY
@given(
    bound=st.booleans(),
    stream=st.lists(pieces, max_size=12),
    cuts=st.lists(st.integers(1, 64), max_size=30),
    accept=st.booleans(),
    ticks=st.lists(st.floats(0, 50, allow_nan=False), max_size=4),
)
def test_session_never_raises_and_writes_only_well_formed_pdus(
    bound: bool, stream: list[bytes], cuts: list[int], accept: bool, ticks: list[float]
) -> None:
    session = _bound_session() if bound else Session(CONFIG, 0.0)
    data = b"".join(stream)
    now = 0.0
    pos = 0
    written = bytearray()
    for size in [*cuts, len(data)]:
        chunk = data[pos : pos + size]
        pos += len(chunk)
        events = session.receive_data(chunk, now)
        _answer_now(session, events, accept)
        written += session.data_to_send()
        if ticks:
            now += ticks.pop()
            _answer_now(session, session.tick(now), accept)
            session.next_deadline()
            written += session.data_to_send()
    _check_output(bytes(written))


@PROPERTY
@given(
    stream=st.lists(st.builds(request_bytes, st.sampled_from(REQUESTS), st.integers(1, 999)), max_size=10),
    cuts=st.lists(st.integers(1, 40), max_size=40),
)
def test_session_output_does_not_depend_on_how_bytes_are_chunked(stream: list[bytes], cuts: list[int]) -> None:
    data = b"".join(stream)
    whole = _bound_session()
    events_whole = whole.receive_data(data, 1.0)
    chunked = _bound_session()
    events_chunked: list[Event] = []
    pos = 0
    for size in [*cuts, len(data)]:
        events_chunked += chunked.receive_data(data[pos : pos + size], 1.0)
        pos += size
    assert [type(e) for e in events_chunked] == [type(e) for e in events_whole]
    assert chunked.data_to_send() == whole.data_to_send()


@dataclass
class Ledger:
    """Which requests the session read, and what it answered."""

    read: list[int] = field(default_factory=list)  # sequences of requests fed to an open session
    pending: list[Event] = field(default_factory=list)  # BindRequested / RequestReceived not yet answered
    framing_error: bool = False
    pending_at_framing_error: set[int] = field(default_factory=set)


@st.composite
def conversations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Steps: ("pdu", bytes) one whole frame each, or ("answer", index into the pending list)."""
    steps: list[tuple[str, Any]] = []
    sequence = 100
    for _ in range(draw(st.integers(1, 20))):
        sequence += 1
        kind = draw(st.sampled_from(["request", "request", "request", "mutated", "unknown", "response", "answer"]))
        if kind == "request":
            command = draw(st.sampled_from(REQUESTS))
            steps.append(("pdu", request_bytes(command, sequence)))
        elif kind == "mutated":
            steps.append(("pdu", draw(mutated_bodies(sequence))))
        elif kind == "unknown":
            command_id = draw(st.integers(0, 0xFFFFFFFF).filter(lambda c: c not in COMMAND_BY_ID))
            steps.append(("pdu", frame(command_id, draw(st.binary(max_size=20)), sequence)))
        elif kind == "response":
            command_id = draw(st.sampled_from(sorted(RESPONSE_IDS)))
            steps.append(("pdu", frame(command_id, b"", sequence)))
        else:
            steps.append(("answer", draw(st.integers(0, 10))))
    if draw(st.booleans()):
        # now and then a framing error somewhere
        at = draw(st.integers(0, len(steps)))
        steps.insert(at, ("pdu", struct.pack(">IIII", draw(st.integers(0, 15)), 0x15, 0, 99)))
    return steps


def _answer(session: Session, event: Event, accept: bool) -> None:
    _answer_now(session, [event], accept)


@PROPERTY
@given(steps=conversations(), bind_first=st.booleans(), accept=st.booleans())
def test_every_request_read_gets_exactly_one_answer(
    steps: list[tuple[str, Any]], bind_first: bool, accept: bool
) -> None:
    session = Session(CONFIG, 0.0)
    ledger = Ledger()
    output = bytearray()
    if bind_first:
        steps = [("pdu", request_bytes(Command.BIND_TRANSCEIVER, 50)), ("answer", 0), *steps]
    for kind, value in steps:
        if kind == "answer":
            if ledger.pending:
                _answer(session, ledger.pending.pop(value % len(ledger.pending)), accept or bind_first)
        else:
            if session.is_closing:
                continue  # not read: the session is over
            command_id, sequence = struct.unpack_from(">I", value, 4)[0], struct.unpack_from(">I", value, 12)[0]
            is_request = command_id not in RESPONSE_IDS
            length = struct.unpack_from(">I", value, 0)[0]
            if is_request or length < 16:
                ledger.read.append(sequence)
            events = session.receive_data(value, 1.0)
            if any(isinstance(e, Closing) and "command_length" in e.reason for e in events):
                ledger.framing_error = True
                ledger.pending_at_framing_error = {
                    e.pdu.sequence for e in ledger.pending if isinstance(e, BindRequested | RequestReceived)
                }
            ledger.pending += [e for e in events if isinstance(e, BindRequested | RequestReceived)]
            assert not [e for e in events if isinstance(e, PeerError) and not isinstance(e.status, Status)]
        output += session.data_to_send()
    for event in ledger.pending:
        _answer(session, event, accept)
    output += session.data_to_send()

    answers: dict[int, int] = {}
    for pdu in _check_output(bytes(output)):
        assert pdu.command.is_response  # without ticks we send no requests of our own
        answers[pdu.sequence] = answers.get(pdu.sequence, 0) + 1
    for sequence in ledger.read:
        if sequence == 99 or sequence in ledger.pending_at_framing_error:
            assert answers.get(sequence, 0) <= 1
        else:
            assert answers.get(sequence, 0) == 1, f"request {sequence}: {answers.get(sequence, 0)} answers"
    assert set(answers) <= set(ledger.read) | {0}


# -- text and concatenation ----------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=200), st.sampled_from(list(Charset)))
def test_decode_text_raises_only_text_error(data: bytes, charset: Charset) -> None:
    try:
        assert isinstance(decode_text(data, charset), str)
    except TextError as exc:
        assert isinstance(exc.status, Status)


@PROPERTY
@given(st.binary(max_size=200))
def test_gsm_decode_raises_only_text_error(data: bytes) -> None:
    try:
        text = gsm_decode(data)
    except TextError as exc:
        assert exc.status is Status.ESME_RINVDCS
        assert not data.isascii()
    else:
        assert data.isascii()
        assert len(text) <= len(data)


GSM_CHARS = [c for c in GSM_BASIC if c != "\x1b"] + list(GSM_EXTENSION.values())


@PROPERTY
@given(st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=200))
def test_gsm_round_trip(text: str) -> None:
    assert gsm_decode(gsm_encode(text)) == text


_SPLIT_TAGS = [Tag.MESSAGE_PAYLOAD, Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM]


@PROPERTY
@given(
    command=st.sampled_from([Command.SUBMIT_SM, Command.DATA_SM, Command.DELIVER_SM]),
    esm_class=st.integers(0, 255),
    short_message=st.binary(max_size=160),
    tlvs=st.dictionaries(st.sampled_from(_SPLIT_TAGS), st.binary(max_size=8), max_size=4),
)
def test_split_payload_raises_only_text_error(
    command: Command, esm_class: int, short_message: bytes, tlvs: dict[int, bytes]
) -> None:
    fields = (
        {"esm_class": esm_class}
        if command is Command.DATA_SM
        else {"esm_class": esm_class, "short_message": short_message}
    )
    pdu = PDU_CLASSES[command](1, 0, tlvs, **fields)
    assert isinstance(pdu, SubmitSm | DataSm | DeliverSm)
    try:
        data, segment = split_payload(pdu)
    except TextError as exc:
        assert isinstance(exc.status, Status)
    else:
        assert isinstance(data, bytes)
        if segment is not None:
            assert 1 <= segment.index <= segment.total and segment.total > 1


@PROPERTY
@given(st.binary(max_size=120).map(lambda b: frame(Command.SUBMIT_SM, b)))
def test_split_payload_of_any_decoded_submit_sm(data: bytes) -> None:
    pdu = _decodes_or_refuses(data)
    if pdu is not None:
        assert isinstance(pdu, SubmitSm)  # a submit_sm's frame decodes to one
        with contextlib.suppress(TextError):
            split_payload(pdu)


# -- receipts and times --------------------------------------------------------------


@PROPERTY
@given(st.text(max_size=60), st.integers(1, 40))
def test_ascii_safe_output(text: str, limit: int) -> None:
    safe = ascii_safe(text, limit)
    assert len(safe) == min(len(text), limit)
    assert safe.isascii()
    assert not set(safe) & set("@$_[]{}\\^~|`")
    assert all(0x20 <= ord(c) < 0x7F for c in safe)


@PROPERTY
@given(
    message_id=st.text(alphabet="0123456789abcdef-", min_size=1, max_size=36),
    text=st.text(max_size=40),
    error=st.integers(0, 5000),
    submitted=st.floats(0, 4e9, allow_nan=False),
)
def test_receipt_parse_round_trip(message_id: str, text: str, error: int, submitted: float) -> None:
    from bridge.smpp.constants import MessageState

    receipt = format_receipt(message_id, MessageState.DELIVERED, submitted, submitted + 5, error, text)
    parsed = parse_receipt(receipt)
    assert parsed is not None
    assert parsed["id"] == message_id
    assert parsed["text"] == ascii_safe(text)
    assert parsed["err"] == f"{min(error, 999):03d}"


@PROPERTY
@given(st.one_of(st.text(max_size=20), st.text(alphabet="0123456789+-R", min_size=16, max_size=16)))
def test_parse_smpp_time_returns_a_time_or_value_error(text: str) -> None:
    try:
        result = parse_smpp_time(text, 1_700_000_000.0)
    except ValueError:
        return
    assert result is None or isinstance(result, float)
