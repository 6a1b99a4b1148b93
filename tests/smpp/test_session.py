"""Session state machine (testing level 2), driven with bytes and a fake clock.

Every state x request cell is checked against a table written here from SMPP v3.4
section 2.3 (plus enquire_link in OPEN, which real clients send before binding)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.smpp.constants import BIND_COMMANDS, Command, Status, Tag
from bridge.smpp.pdu import (
    PDU_CLASSES,
    DataSmResp,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    SubmitSmResp,
    UnbindResp,
    decode_pdu,
    encode_pdu,
)
from bridge.smpp.session import (
    MAX_SEQUENCE,
    PEER_REQUESTS,
    BindRequested,
    BindType,
    Closing,
    Event,
    LocalProtocolError,
    PduCounters,
    PeerError,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    Session,
    SessionConfig,
    State,
    Unbound,
)
from tests.smpp.samples import (
    REQUESTS,
    SAMPLES,
    answer_body,
    build,
    frame,
    header,
    request_bytes,
    spec_pdu,
    split_frames,
    values_of,
)

CONFIG = SessionConfig(
    window=3,
    enquire_link_interval=30.0,
    inactivity_timeout=300.0,
    bind_timeout=40.0,
    response_timeout=20.0,
    max_command_length=4096,
)
SMSC_ID = "SMPPBRIDGE"

SUBMIT_REQUESTS = {
    Command.SUBMIT_SM,
    Command.SUBMIT_MULTI,
    Command.DATA_SM,
    Command.QUERY_SM,
    Command.CANCEL_SM,
    Command.REPLACE_SM,
}
BINDS = {Command.BIND_TRANSMITTER, Command.BIND_RECEIVER, Command.BIND_TRANSCEIVER}
# What an ESME may send in each state (v3.4 2.3, table 2-1; enquire_link also in OPEN).
ALLOWED: dict[State, set[Command]] = {
    State.OPEN: BINDS | {Command.ENQUIRE_LINK},
    State.BOUND_TX: SUBMIT_REQUESTS | {Command.ENQUIRE_LINK, Command.UNBIND},
    State.BOUND_RX: {Command.ENQUIRE_LINK, Command.UNBIND},
    State.BOUND_TRX: SUBMIT_REQUESTS | {Command.ENQUIRE_LINK, Command.UNBIND},
    State.UNBINDING: {Command.ENQUIRE_LINK, Command.UNBIND},
    State.CLOSED: set(),
}
BOUND = (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX)
BIND_FOR_STATE = {
    State.BOUND_TX: Command.BIND_TRANSMITTER,
    State.BOUND_RX: Command.BIND_RECEIVER,
    State.BOUND_TRX: Command.BIND_TRANSCEIVER,
}
# The spec's *_resp of each request; outbind and alert_notification have none.
RESPONSE_OF = {
    Command.BIND_RECEIVER: Command.BIND_RECEIVER_RESP,
    Command.BIND_TRANSMITTER: Command.BIND_TRANSMITTER_RESP,
    Command.BIND_TRANSCEIVER: Command.BIND_TRANSCEIVER_RESP,
    Command.QUERY_SM: Command.QUERY_SM_RESP,
    Command.SUBMIT_SM: Command.SUBMIT_SM_RESP,
    Command.DELIVER_SM: Command.DELIVER_SM_RESP,
    Command.UNBIND: Command.UNBIND_RESP,
    Command.REPLACE_SM: Command.REPLACE_SM_RESP,
    Command.CANCEL_SM: Command.CANCEL_SM_RESP,
    Command.ENQUIRE_LINK: Command.ENQUIRE_LINK_RESP,
    Command.SUBMIT_MULTI: Command.SUBMIT_MULTI_RESP,
    Command.DATA_SM: Command.DATA_SM_RESP,
    Command.OUTBIND: Command.GENERIC_NACK,
    Command.ALERT_NOTIFICATION: Command.GENERIC_NACK,
}


class Peer:
    """An ESME on the other end: sends bytes with a clock it controls, reads ours."""

    def __init__(self, config: SessionConfig = CONFIG, now: float = 0.0) -> None:
        self.now = now
        self.counters = PduCounters()
        self.session = Session(config, now, self.counters)
        self._sequence = 1000

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def send(self, data: bytes, at: float | None = None) -> list[Event]:
        if at is not None:
            self.now = at
        return self.session.receive_data(data, self.now)

    def request(self, command: Command, at: float | None = None, **overrides: Any) -> tuple[int, list[Event]]:
        sequence = self.next_sequence()
        return sequence, self.send(request_bytes(command, sequence, **overrides), at)

    def tick(self, at: float) -> list[Event]:
        self.now = at
        return self.session.tick(at)

    def read(self) -> list[Pdu]:
        return [decode_pdu(f) for f in split_frames(self.session.data_to_send())]

    def bind(self, state: State, interface_version: int = 0x34) -> Pdu:
        """Bind into `state` through the public API; returns our bind_resp."""
        _, events = self.request(BIND_FOR_STATE[state], interface_version=interface_version)
        (event,) = events
        assert isinstance(event, BindRequested)
        self.session.accept_bind(event.pdu, SMSC_ID)
        (resp,) = self.read()
        assert self.session.state is state
        return resp


def reach(state: State, now: float = 0.0) -> Peer:
    peer = Peer(now=now)
    if state in BOUND:
        peer.bind(state)
    elif state is State.UNBINDING:
        peer.bind(State.BOUND_TRX)
        peer.session.unbind(now)
        (unbind,) = peer.read()
        assert unbind.command is Command.UNBIND
    elif state is State.CLOSED:
        peer.bind(State.BOUND_TRX)
        peer.request(Command.UNBIND)
        peer.read()
    assert peer.session.state is state
    return peer


def only(pdus: list[Pdu]) -> Pdu:
    assert len(pdus) == 1, pdus
    return pdus[0]


def deliver_sm(with_tlvs: bool = False) -> Pdu:
    """The sample deliver_sm (a receipt), to send as ours."""
    params, tlvs = SAMPLES[Command.DELIVER_SM]
    return build(Command.DELIVER_SM, params, tlvs if with_tlvs else {})


# -- the table -----------------------------------------------------------------------


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
def test_peer_requests_row_matches_spec(state: State) -> None:
    assert set(PEER_REQUESTS[state]) == ALLOWED[state]


@pytest.mark.parametrize("command", REQUESTS, ids=lambda c: c.label)
@pytest.mark.parametrize("state", [State.OPEN, *BOUND, State.UNBINDING], ids=lambda s: s.value)
def test_every_state_and_request(state: State, command: Command) -> None:
    peer = reach(state)
    sequence, events = peer.request(command)
    out = peer.read()
    if command in ALLOWED[state] and command in SUBMIT_REQUESTS:
        assert out == []
        (event,) = events
        assert isinstance(event, RequestReceived)
        assert event.pdu.command is command and event.pdu.sequence == sequence
        assert type(event.pdu) is PDU_CLASSES[command]
        assert values_of(event.pdu) == SAMPLES[command][0]
        peer.session.respond(event.pdu, Status.ESME_ROK, answer_body(RESPONSE_OF[command]))
        resp = only(peer.read())
        assert (resp.command, resp.sequence, resp.status) == (RESPONSE_OF[command], sequence, 0)
    elif command in ALLOWED[state] and command in BINDS:
        assert out == []
        (event,) = events
        assert isinstance(event, BindRequested)
        assert event.pdu.sequence == sequence
        assert (
            event.bind_type
            is {
                Command.BIND_TRANSMITTER: BindType.TRANSMITTER,
                Command.BIND_RECEIVER: BindType.RECEIVER,
                Command.BIND_TRANSCEIVER: BindType.TRANSCEIVER,
            }[command]
        )
    elif command is Command.ENQUIRE_LINK:
        assert events == []
        resp = only(out)
        assert (resp.command, resp.sequence, resp.status) == (Command.ENQUIRE_LINK_RESP, sequence, 0)
        assert peer.session.state is state
    elif command in ALLOWED[state]:  # unbind
        assert command is Command.UNBIND
        resp = only(out)
        assert (resp.command, resp.sequence, resp.status) == (Command.UNBIND_RESP, sequence, 0)
        assert [type(e) for e in events] == [Unbound, Closing]
        assert peer.session.state is State.CLOSED
        assert peer.session.is_closing
    else:
        expected = Status.ESME_RALYBND if command in BINDS and state in BOUND else Status.ESME_RINVBNDSTS
        resp = only(out)
        assert (resp.command, resp.sequence, resp.status) == (RESPONSE_OF[command], sequence, expected)
        assert events == [PeerError(expected, events[0].reason, command)]  # type: ignore[union-attr]  # == checks the type
        assert peer.session.state is state
        assert not peer.session.is_closing


def test_closed_session_ignores_everything() -> None:
    peer = reach(State.CLOSED)
    assert peer.request(Command.ENQUIRE_LINK)[1] == []
    assert peer.send(b"\x00\x00\x00\x01garbage") == []
    assert peer.read() == []
    assert peer.session.tick(1e9) == []
    assert peer.session.next_deadline() is None


# -- framing -------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 8, 15])
@pytest.mark.parametrize("state", [State.OPEN, State.BOUND_TRX], ids=lambda s: s.value)
def test_command_length_below_header_size(state: State, length: int) -> None:
    peer = reach(state)
    events = peer.send(header(length, Command.ENQUIRE_LINK, 0, 77) + request_bytes(Command.ENQUIRE_LINK, 78))
    nack = only(peer.read())  # the enquire_link after it is not read
    assert (nack.command, nack.status, nack.sequence) == (Command.GENERIC_NACK, Status.ESME_RINVCMDLEN, 77)
    assert [type(e) for e in events] == [PeerError, Closing]
    assert isinstance(events[0], PeerError) and events[0].status is Status.ESME_RINVCMDLEN
    assert peer.session.is_closing
    assert peer.request(Command.ENQUIRE_LINK)[1] == []
    assert peer.read() == []


def test_command_length_judged_from_the_first_four_octets() -> None:
    peer = Peer()
    events = peer.send(b"\x00\x00\x00\x05")
    nack = only(peer.read())
    assert (nack.command, nack.status, nack.sequence) == (Command.GENERIC_NACK, Status.ESME_RINVCMDLEN, 0)
    assert isinstance(events[-1], Closing)


@pytest.mark.parametrize("state", [State.OPEN, State.BOUND_TRX], ids=lambda s: s.value)
def test_command_length_above_maximum(state: State) -> None:
    peer = reach(state)
    events = peer.send(header(CONFIG.max_command_length + 1, Command.SUBMIT_SM, 0, 5))
    nack = only(peer.read())
    assert (nack.command, nack.status, nack.sequence) == (Command.GENERIC_NACK, Status.ESME_RINVCMDLEN, 5)
    assert [type(e) for e in events] == [PeerError, Closing]
    if state in BOUND:
        assert peer.session.connection_lost() == [Unbound("connection lost")]


def test_command_length_at_maximum_is_read() -> None:
    peer = reach(State.BOUND_TRX)
    base = spec_pdu(Command.SUBMIT_SM, {**SAMPLES[Command.SUBMIT_SM][0], "short_message": b""}, {})
    payload = b"p" * (CONFIG.max_command_length - len(base) - 4)
    data = spec_pdu(Command.SUBMIT_SM, {**SAMPLES[Command.SUBMIT_SM][0], "short_message": b""}, {0x0424: payload})
    assert len(data) == CONFIG.max_command_length
    (event,) = peer.send(data)
    assert isinstance(event, RequestReceived)
    assert event.pdu.tlvs[Tag.MESSAGE_PAYLOAD] == payload


@pytest.mark.parametrize("state", [State.OPEN, State.BOUND_RX, State.BOUND_TRX], ids=lambda s: s.value)
def test_unknown_command_id_is_nacked_and_the_session_goes_on(state: State) -> None:
    peer = reach(state)
    events = peer.send(frame(0x00000099, b"whatever", 61))
    nack = only(peer.read())
    assert (nack.command, nack.status, nack.sequence) == (Command.GENERIC_NACK, Status.ESME_RINVCMDID, 61)
    assert events == [PeerError(Status.ESME_RINVCMDID, "unknown command_id", 0x99)]
    assert not peer.session.is_closing
    assert peer.session.state is state
    sequence, _ = peer.request(Command.ENQUIRE_LINK)
    assert only(peer.read()).sequence == sequence


MALFORMED = [
    (State.OPEN, Command.BIND_TRANSMITTER, {"system_id": b"x" * 16 + b"\x00"}, {}, Status.ESME_RINVSYSID),
    (State.OPEN, Command.BIND_RECEIVER, {"password": b"x" * 9 + b"\x00"}, {}, Status.ESME_RINVPASWD),
    (State.OPEN, Command.BIND_TRANSCEIVER, {"system_type": b"x" * 13 + b"\x00"}, {}, Status.ESME_RINVSYSTYP),
    (State.BOUND_TRX, Command.SUBMIT_SM, {"source_addr": b"1" * 21 + b"\x00"}, {}, Status.ESME_RINVSRCADR),
    (State.BOUND_TRX, Command.SUBMIT_SM, {"destination_addr": b"1" * 21 + b"\x00"}, {}, Status.ESME_RINVDSTADR),
    (State.BOUND_TX, Command.SUBMIT_SM, {"service_type": b"CMTXXX\x00"}, {}, Status.ESME_RINVSERTYP),
    (State.BOUND_TX, Command.SUBMIT_SM, {"schedule_delivery_time": b"1" * 17 + b"\x00"}, {}, Status.ESME_RINVSCHED),
    (State.BOUND_TX, Command.SUBMIT_SM, {"validity_period": b"1" * 17 + b"\x00"}, {}, Status.ESME_RINVEXPIRY),
    (State.BOUND_TX, Command.SUBMIT_SM, {"short_message": b"\x09abc"}, {}, Status.ESME_RINVMSGLEN),
    (State.BOUND_TX, Command.SUBMIT_SM, {}, {Tag.SAR_TOTAL_SEGMENTS: b"\x00\x02"}, Status.ESME_RINVPARLEN),
    (State.BOUND_TX, Command.QUERY_SM, {"message_id": b"9" * 65 + b"\x00"}, {}, Status.ESME_RINVMSGID),
    (State.BOUND_TX, Command.CANCEL_SM, {"message_id": b"9" * 65 + b"\x00"}, {}, Status.ESME_RINVMSGID),
    (State.BOUND_TX, Command.REPLACE_SM, {"message_id": b"9" * 65 + b"\x00"}, {}, Status.ESME_RINVMSGID),
    (State.BOUND_TX, Command.DATA_SM, {"source_addr": b"1" * 65 + b"\x00"}, {}, Status.ESME_RINVSRCADR),
    (State.BOUND_TX, Command.SUBMIT_MULTI, {"dest_addresses": b"\x01\x05abc\x00"}, {}, Status.ESME_RINVDESTFLAG),
    (State.BOUND_TX, Command.SUBMIT_MULTI, {"dest_addresses": b"\x00"}, {}, Status.ESME_RINVNUMDESTS),
    (State.OPEN, Command.OUTBIND, {"system_id": b"x" * 16 + b"\x00"}, {}, Status.ESME_RINVSYSID),
]


# The mandatory fields of error responses whose body v3.4 keeps on error (4.5.2, 4.7.2,
# 4.8.2); bind responses and submit_sm_resp have none.
ERROR_BODY: dict[Command, dict[str, Any]] = {
    Command.QUERY_SM_RESP: {"message_id": "", "final_date": "", "message_state": 7, "error_code": 0},
    Command.DATA_SM_RESP: {"message_id": ""},
    Command.SUBMIT_MULTI_RESP: {"message_id": "", "unsuccess_smes": []},
}


@pytest.mark.parametrize(
    ("state", "command", "raw", "tlvs", "status"),
    MALFORMED,
    ids=[f"{c.label}-{s.name}" for _st, c, _r, _t, s in MALFORMED],
)
def test_malformed_request_gets_its_response_with_the_precise_status(
    state: State, command: Command, raw: dict[str, bytes], tlvs: dict[int, bytes], status: Status
) -> None:
    peer = reach(state)
    events = peer.send(spec_pdu(command, tlvs=tlvs, sequence=88, raw=raw))
    data = peer.session.data_to_send()
    resp = only([decode_pdu(f) for f in split_frames(data)])
    assert (resp.command, resp.status, resp.sequence) == (RESPONSE_OF[command], status, 88)
    if resp.command in ERROR_BODY:
        assert values_of(resp) == ERROR_BODY[resp.command]
    else:
        assert len(data) == 16  # the header only
    (event,) = events
    assert isinstance(event, PeerError) and event.status is status and event.command_id == command
    assert peer.session.state is state
    assert peer.session.unanswered == 0
    assert not peer.session.is_closing


def test_malformed_response_is_not_answered() -> None:
    peer = reach(State.BOUND_RX)
    sequence = peer.session.send_request(deliver_sm(), 0.0)
    peer.read()
    events = peer.send(frame(Command.DELIVER_SM_RESP, b"\x00" + bytes.fromhex("0204 0005 01"), sequence))
    assert peer.read() == []
    (event,) = events
    assert isinstance(event, PeerError) and event.status is Status.ESME_RINVOPTPARSTREAM


def test_response_to_nothing_we_sent_is_reported_not_answered() -> None:
    peer = reach(State.BOUND_TRX)
    events = peer.send(header(16, Command.DELIVER_SM_RESP, 0, 999))
    assert peer.read() == []
    assert events == [PeerError(Status.ESME_RINVCMDID, "unexpected deliver_sm_resp", Command.DELIVER_SM_RESP)]


# -- window --------------------------------------------------------------------------


def test_window_full_is_throttled_and_the_session_stays_usable() -> None:
    peer = reach(State.BOUND_TRX)
    pending = []
    for _ in range(CONFIG.window):
        _, (event,) = peer.request(Command.SUBMIT_SM)
        assert isinstance(event, RequestReceived)
        pending.append(event.pdu)
    assert peer.read() == []
    sequence, events = peer.request(Command.SUBMIT_SM)
    resp = only(peer.read())
    assert (resp.command, resp.status, resp.sequence) == (Command.SUBMIT_SM_RESP, Status.ESME_RTHROTTLED, sequence)
    assert [e.status for e in events if isinstance(e, PeerError)] == [Status.ESME_RTHROTTLED]
    # enquire_link is not counted against the window
    enquire, _ = peer.request(Command.ENQUIRE_LINK)
    assert only(peer.read()).sequence == enquire
    peer.session.respond(pending.pop(0), Status.ESME_ROK, SubmitSmResp(message_id="1"))
    assert only(peer.read()).status == 0
    _, (event,) = peer.request(Command.DATA_SM)
    assert isinstance(event, RequestReceived)
    assert peer.session.state is State.BOUND_TRX


def test_window_counts_every_application_request_kind() -> None:
    peer = reach(State.BOUND_TX)
    kinds = [Command.QUERY_SM, Command.CANCEL_SM, Command.REPLACE_SM]
    for command in kinds:
        _, (event,) = peer.request(command)
        assert isinstance(event, RequestReceived)
    _, events = peer.request(Command.SUBMIT_MULTI)
    assert only(peer.read()).status == Status.ESME_RTHROTTLED
    assert isinstance(events[0], PeerError)


# -- enquire_link and timers ---------------------------------------------------------


def test_enquire_link_answered_in_open() -> None:
    peer = Peer()
    sequence, events = peer.request(Command.ENQUIRE_LINK)
    assert events == []
    assert only(peer.read()) == EnquireLinkResp(sequence)


def test_idle_bound_session_gets_our_enquire_link_after_the_interval() -> None:
    peer = reach(State.BOUND_TRX)
    assert peer.session.next_deadline() == 30.0
    assert peer.tick(29.9) == []
    assert peer.read() == []
    assert peer.tick(30.0) == []
    enquire = only(peer.read())
    assert enquire.command is Command.ENQUIRE_LINK
    # answered: no event for the application, the next one an interval after
    assert peer.send(header(16, Command.ENQUIRE_LINK_RESP, 0, enquire.sequence), at=31.0) == []
    assert peer.session.window_room() == CONFIG.window
    assert peer.session.next_deadline() == 61.0


def test_peer_traffic_postpones_our_enquire_link() -> None:
    peer = reach(State.BOUND_TRX)
    peer.request(Command.ENQUIRE_LINK, at=20.0)
    peer.read()
    assert peer.tick(30.0) == []
    assert peer.read() == []
    assert peer.session.next_deadline() == 50.0


def test_unanswered_enquire_link_does_not_close_the_session() -> None:
    peer = reach(State.BOUND_TRX)
    sent = 0
    while (deadline := peer.session.next_deadline()) is not None and deadline < CONFIG.inactivity_timeout:
        assert peer.tick(deadline) == []
        sent += sum(p.command is Command.ENQUIRE_LINK for p in peer.read())
    assert sent >= 2  # it keeps asking, and never gives up on the session for it
    assert peer.session.state is State.BOUND_TRX
    assert not peer.session.is_closing


def test_inactivity_sends_our_unbind_then_closes_after_response_timeout() -> None:
    peer = reach(State.BOUND_TRX)
    peer.tick(CONFIG.inactivity_timeout)
    unbind = [p for p in peer.read() if p.command is Command.UNBIND]
    assert len(unbind) == 1
    assert peer.session.state is State.UNBINDING
    assert not peer.session.can_deliver
    closing_at = CONFIG.inactivity_timeout + CONFIG.response_timeout
    assert peer.session.next_deadline() == closing_at
    assert peer.tick(closing_at - 0.01) == []
    assert peer.tick(closing_at) == [Unbound("unbind not answered"), Closing("unbind not answered")]
    assert peer.session.state is State.CLOSED


def test_inactivity_unbind_closes_on_unbind_resp() -> None:
    peer = reach(State.BOUND_RX)
    peer.tick(CONFIG.inactivity_timeout)
    (unbind,) = [p for p in peer.read() if p.command is Command.UNBIND]
    events = peer.send(header(16, Command.UNBIND_RESP, 0, unbind.sequence), at=301.0)
    assert events == [Unbound("unbind answered"), Closing("unbind answered")]
    assert peer.read() == []


def test_bind_timeout_in_open() -> None:
    peer = Peer(now=100.0)
    assert peer.session.next_deadline() == 140.0
    assert peer.tick(139.9) == []
    assert peer.tick(140.0) == [Closing("bind timeout")]
    assert peer.session.is_closing
    assert peer.session.next_deadline() is None
    assert peer.tick(200.0) == []


def test_bind_timeout_applies_while_a_bind_is_undecided_and_a_late_accept_does_not_bind() -> None:
    peer = Peer()
    _, (event,) = peer.request(Command.BIND_TRANSCEIVER)
    assert isinstance(event, BindRequested)
    assert peer.tick(CONFIG.bind_timeout) == [Closing("bind timeout")]
    peer.session.accept_bind(event.pdu, SMSC_ID)
    assert peer.session.state is State.OPEN
    assert not peer.session.can_deliver
    assert peer.session.connection_lost() == []


def test_response_timed_out_for_an_unanswered_deliver_sm() -> None:
    peer = reach(State.BOUND_TRX)
    sequence = peer.session.send_request(deliver_sm(with_tlvs=True), 5.0, context="receipt-1")
    sent = only(peer.read())
    assert (sent.command, sent.sequence, sent.tlvs) == (Command.DELIVER_SM, sequence, SAMPLES[Command.DELIVER_SM][1])
    assert peer.session.next_deadline() == 25.0
    assert peer.tick(24.9) == []
    (event,) = peer.tick(25.0)
    assert isinstance(event, ResponseTimedOut)
    assert (event.request.command, event.request.sequence, event.request.context) == (
        Command.DELIVER_SM,
        sequence,
        "receipt-1",
    )
    assert peer.session.window_room() == CONFIG.window
    assert peer.session.take_back_outstanding() == []
    # a late answer is reported, not delivered as a response
    late = peer.send(header(16, Command.DELIVER_SM_RESP, 0, sequence), at=26.0)
    assert [type(e) for e in late] == [PeerError]


@pytest.mark.parametrize("status", [Status.ESME_ROK, Status.ESME_RSYSERR])
def test_deliver_sm_resp_is_response_received_with_its_context(status: Status) -> None:
    peer = reach(State.BOUND_RX)
    sequence = peer.session.send_request(deliver_sm(), 0.0, context=7)
    peer.read()
    (event,) = peer.send(header(16, Command.DELIVER_SM_RESP, status, sequence))
    assert isinstance(event, ResponseReceived)
    assert (event.pdu.status, event.request.context, event.request.command) == (status, 7, Command.DELIVER_SM)


def test_generic_nack_to_our_request_is_its_response() -> None:
    peer = reach(State.BOUND_TRX)
    sequence = peer.session.send_request(deliver_sm(), 0.0)
    peer.read()
    (event,) = peer.send(header(16, Command.GENERIC_NACK, Status.ESME_RINVCMDID, sequence))
    assert isinstance(event, ResponseReceived)
    assert event.pdu.command is Command.GENERIC_NACK


# -- unbind --------------------------------------------------------------------------


@pytest.mark.parametrize("state", BOUND, ids=lambda s: s.value)
def test_unbind_from_the_peer(state: State) -> None:
    peer = reach(state)
    sequence, events = peer.request(Command.UNBIND)
    assert only(peer.read()) == UnbindResp(sequence)
    assert events == [Unbound("peer unbind"), Closing("peer unbind")]
    assert peer.session.state is State.CLOSED
    assert not peer.session.can_deliver


def test_pdus_after_the_peers_unbind_in_the_same_chunk_are_not_read() -> None:
    peer = reach(State.BOUND_TRX)
    events = peer.send(request_bytes(Command.UNBIND, 1) + request_bytes(Command.SUBMIT_SM, 2))
    assert [p.command for p in peer.read()] == [Command.UNBIND_RESP]
    assert [type(e) for e in events] == [Unbound, Closing]


def test_peer_unbind_waits_for_the_answers_to_earlier_requests() -> None:
    peer = reach(State.BOUND_TRX)
    submit, unbind = peer.next_sequence(), peer.next_sequence()
    events = peer.send(request_bytes(Command.SUBMIT_SM, submit) + request_bytes(Command.UNBIND, unbind))
    (event,) = events
    assert isinstance(event, RequestReceived)
    assert peer.read() == []
    assert peer.session.state is State.UNBINDING
    assert not peer.session.can_deliver
    # meanwhile new submissions are refused, enquire_link still answered
    late, _ = peer.request(Command.SUBMIT_SM)
    enquire, _ = peer.request(Command.ENQUIRE_LINK)
    assert [(p.command, p.sequence, p.status) for p in peer.read()] == [
        (Command.SUBMIT_SM_RESP, late, Status.ESME_RINVBNDSTS),
        (Command.ENQUIRE_LINK_RESP, enquire, 0),
    ]
    peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="77"))
    assert [(p.command, p.sequence) for p in peer.read()] == [
        (Command.SUBMIT_SM_RESP, submit),
        (Command.UNBIND_RESP, unbind),
    ]
    assert peer.session.next_deadline() is not None
    deadline = peer.session.next_deadline()
    assert deadline is not None and deadline <= peer.now
    assert peer.tick(peer.now) == [Unbound("peer unbind"), Closing("peer unbind")]


def test_peer_unbind_is_answered_after_response_timeout_if_the_application_is_silent() -> None:
    peer = reach(State.BOUND_TX)
    _, (event,) = peer.request(Command.SUBMIT_SM, at=1.0)
    unbind, _ = peer.request(Command.UNBIND, at=2.0)
    assert peer.read() == []
    assert peer.session.next_deadline() == 2.0 + CONFIG.response_timeout
    assert peer.tick(21.9) == []
    assert peer.tick(22.0) == [Unbound("peer unbind"), Closing("peer unbind")]
    assert only(peer.read()) == UnbindResp(unbind)
    assert isinstance(event, RequestReceived)
    peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="1"))  # too late: no-op
    assert peer.read() == []


def test_repeated_peer_unbind_waits_with_the_first() -> None:
    peer = reach(State.BOUND_TRX)
    submit, (event,) = peer.request(Command.SUBMIT_SM)
    first, _ = peer.request(Command.UNBIND)
    second, events = peer.request(Command.UNBIND)
    assert events == []
    assert peer.read() == []
    assert isinstance(event, RequestReceived)
    peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="1"))
    assert [(p.command, p.sequence) for p in peer.read()] == [
        (Command.SUBMIT_SM_RESP, submit),
        (Command.UNBIND_RESP, first),
        (Command.UNBIND_RESP, second),
    ]
    assert peer.tick(peer.now) == [Unbound("peer unbind"), Closing("peer unbind")]


def test_unbind_after_the_waiting_one_was_answered_closes_at_once() -> None:
    peer = reach(State.BOUND_TRX)
    _, (event,) = peer.request(Command.SUBMIT_SM)
    peer.request(Command.UNBIND)
    assert isinstance(event, RequestReceived)
    peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="1"))
    peer.read()
    again, events = peer.request(Command.UNBIND)
    assert only(peer.read()) == UnbindResp(again)
    assert events == [Unbound("peer unbind"), Closing("peer unbind")]


def _receiver_with_a_receipt_out() -> tuple[Peer, int]:
    """A receiver bound, one deliver_sm of ours (context "r") waiting for its answer."""
    peer = reach(State.BOUND_RX)
    sequence = peer.session.send_request(deliver_sm(), 0.0, context="r")
    assert only(peer.read()).command is Command.DELIVER_SM
    return peer, sequence


def test_peer_unbind_then_the_deliver_sm_resp_it_owes_is_read_before_unbind_resp() -> None:
    # Net::SMPP and libsmpp34 do this when a receipt arrives just after they decided to
    # unbind; the bytes below are theirs. Closing at the unbind lost the answer, and the
    # receipt went out again on the next bind (a duplicate receipt).
    peer, sequence = _receiver_with_a_receipt_out()
    assert sequence == 1
    unbind = bytes.fromhex("00000010 00000006 00000000 00000003")
    deliver_sm_resp = bytes.fromhex("00000011 80000005 00000000 00000001 00")
    events = peer.send(unbind + deliver_sm_resp)
    assert [type(e) for e in events] == [ResponseReceived, Unbound, Closing]
    assert isinstance(events[0], ResponseReceived) and events[0].request.context == "r"
    assert events[1:] == [Unbound("peer unbind"), Closing("peer unbind")]
    assert peer.session.data_to_send() == bytes.fromhex("00000010 80000006 00000000 00000003")
    assert peer.session.take_back_outstanding() == []  # nothing left to send again


def test_peer_unbind_waits_for_the_answer_to_our_deliver_sm_in_a_later_chunk() -> None:
    peer, sequence = _receiver_with_a_receipt_out()
    unbind, events = peer.request(Command.UNBIND, at=1.0)
    assert events == []
    assert peer.read() == []  # unbind_resp waits for the deliver_sm_resp
    assert peer.session.state is State.UNBINDING and not peer.session.can_deliver
    enquire, _ = peer.request(Command.ENQUIRE_LINK, at=2.0)
    assert [(p.command, p.sequence) for p in peer.read()] == [(Command.ENQUIRE_LINK_RESP, enquire)]
    events = peer.send(header(17, Command.DELIVER_SM_RESP, 0, sequence) + b"\x00", at=3.0)
    assert [type(e) for e in events] == [ResponseReceived, Unbound, Closing]
    assert [(p.command, p.sequence) for p in peer.read()] == [(Command.UNBIND_RESP, unbind)]


def test_peer_unbind_with_our_deliver_sm_never_answered_closes_when_it_times_out() -> None:
    peer, _ = _receiver_with_a_receipt_out()
    unbind, _ = peer.request(Command.UNBIND, at=1.0)
    assert peer.session.next_deadline() == CONFIG.response_timeout  # the deliver_sm's, sent at 0
    assert peer.tick(CONFIG.response_timeout - 0.01) == []
    events = peer.tick(CONFIG.response_timeout)
    assert [type(e) for e in events] == [ResponseTimedOut, Unbound, Closing]
    assert [(p.command, p.sequence) for p in peer.read()] == [(Command.UNBIND_RESP, unbind)]


def test_peer_unbind_does_not_wait_for_our_unanswered_enquire_link() -> None:
    # node-smpp never answers enquire_link: its unbind is answered at once.
    peer = reach(State.BOUND_TRX)
    peer.tick(30.0)
    assert only(peer.read()).command is Command.ENQUIRE_LINK
    unbind, events = peer.request(Command.UNBIND, at=31.0)
    assert events == [Unbound("peer unbind"), Closing("peer unbind")]
    assert only(peer.read()) == UnbindResp(unbind)


def test_peer_unbind_waits_for_both_our_answers_and_theirs() -> None:
    peer = reach(State.BOUND_TRX)
    deliver = peer.session.send_request(deliver_sm(), 0.0, context="r")
    peer.read()
    submit, (event,) = peer.request(Command.SUBMIT_SM)
    unbind, _ = peer.request(Command.UNBIND)
    assert isinstance(event, RequestReceived)
    peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="1"))
    assert [(p.command, p.sequence) for p in peer.read()] == [(Command.SUBMIT_SM_RESP, submit)]
    events = peer.send(header(17, Command.DELIVER_SM_RESP, 0, deliver) + b"\x00")
    assert [type(e) for e in events] == [ResponseReceived, Unbound, Closing]
    assert [(p.command, p.sequence) for p in peer.read()] == [(Command.UNBIND_RESP, unbind)]


def test_our_unbind_answered_before_our_deliver_sm_waits_for_its_answer() -> None:
    peer, sequence = _receiver_with_a_receipt_out()
    peer.session.unbind(1.0)
    (ours,) = peer.read()
    assert peer.send(header(16, Command.UNBIND_RESP, 0, ours.sequence), at=2.0) == []
    assert not peer.session.is_closing
    events = peer.send(header(17, Command.DELIVER_SM_RESP, 0, sequence) + b"\x00", at=3.0)
    assert events[0].request.context == "r"  # type: ignore[union-attr]  # a ResponseReceived, or no .request
    assert events[1:] == [Unbound("unbind answered"), Closing("unbind answered")]


@pytest.mark.parametrize("state", BOUND, ids=lambda s: s.value)
def test_unbind_from_us(state: State) -> None:
    peer = reach(state)
    peer.session.unbind(3.0)
    unbind = only(peer.read())
    assert (unbind.command, unbind.status) == (Command.UNBIND, 0)
    assert peer.session.state is State.UNBINDING
    peer.session.unbind(4.0)  # a second call does nothing
    assert peer.read() == []
    events = peer.send(header(16, Command.UNBIND_RESP, 0, unbind.sequence), at=5.0)
    assert events == [Unbound("unbind answered"), Closing("unbind answered")]
    assert peer.session.state is State.CLOSED


def test_unbind_from_us_still_answers_requests_read_before_it() -> None:
    peer = reach(State.BOUND_TRX)
    sequence, (event,) = peer.request(Command.SUBMIT_SM)
    peer.session.unbind(1.0)
    peer.read()
    assert isinstance(event, RequestReceived)
    peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="5"))
    resp = only(peer.read())
    assert (resp.command, resp.sequence, values_of(resp)) == (Command.SUBMIT_SM_RESP, sequence, {"message_id": "5"})


def test_unbind_crossing_ours_is_answered_and_closes() -> None:
    peer = reach(State.UNBINDING)
    sequence, events = peer.request(Command.UNBIND)
    assert only(peer.read()) == UnbindResp(sequence)
    assert events == [Unbound("peer unbind"), Closing("peer unbind")]


def test_unbind_in_open_closes_without_a_pdu() -> None:
    peer = Peer()
    peer.session.unbind(1.0)
    assert peer.session.is_closing
    assert peer.read() == []


def test_connection_lost() -> None:
    peer = reach(State.BOUND_TRX)
    _, (event,) = peer.request(Command.SUBMIT_SM)
    assert peer.session.connection_lost() == [Unbound("connection lost")]
    assert peer.session.state is State.CLOSED
    assert isinstance(event, RequestReceived)
    peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="1"))
    assert peer.read() == []
    assert Peer().session.connection_lost() == []


# -- bind ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0x34, 0x50])
def test_accept_bind_to_v34_or_later_carries_sc_interface_version(version: int) -> None:
    peer = Peer()
    resp = peer.bind(State.BOUND_TRX, interface_version=version)
    assert (resp.command, resp.status, values_of(resp)) == (Command.BIND_TRANSCEIVER_RESP, 0, {"system_id": SMSC_ID})
    assert resp.tlvs == {Tag.SC_INTERFACE_VERSION: b"\x34"}
    assert peer.session.interface_version == version
    assert peer.session.system_id == "esme1"
    assert peer.session.bind_type is BindType.TRANSCEIVER


@pytest.mark.parametrize("version", [0x33, 0x00])
def test_accept_bind_to_v33_carries_no_tlvs_and_later_pdus_have_none(version: int) -> None:
    peer = Peer()
    resp = peer.bind(State.BOUND_TRX, interface_version=version)
    assert resp.tlvs == {}
    peer.session.send_request(deliver_sm(with_tlvs=True), 0.0)
    data = peer.session.data_to_send()
    assert decode_pdu(data).tlvs == {}
    assert data == encode_pdu(deliver_sm(), sequence=decode_pdu(data).sequence)
    _, (event,) = peer.request(Command.DATA_SM)
    assert isinstance(event, RequestReceived)
    answer = DataSmResp(message_id="1", tlvs={Tag.ADDITIONAL_STATUS_INFO_TEXT: b"x\x00"})
    peer.session.respond(event.pdu, 0, answer)
    assert only(peer.read()).tlvs == {}


@pytest.mark.parametrize("state", BOUND, ids=lambda s: s.value)
def test_bind_type_and_can_deliver(state: State) -> None:
    peer = reach(state)
    assert peer.session.can_deliver == (state is not State.BOUND_TX)
    assert peer.session.bind_type is not None


def test_reject_bind_keeps_the_session_open_for_another_bind() -> None:
    peer = Peer()
    sequence, (event,) = peer.request(Command.BIND_TRANSMITTER)
    assert isinstance(event, BindRequested)
    peer.session.reject_bind(event.pdu, Status.ESME_RBINDFAIL, SMSC_ID)
    resp = only(peer.read())
    assert (resp.command, resp.sequence, resp.status) == (Command.BIND_TRANSMITTER_RESP, sequence, 0x0D)
    assert peer.session.state is State.OPEN
    assert peer.session.unanswered == 0
    _, (again,) = peer.request(Command.BIND_RECEIVER)
    assert isinstance(again, BindRequested)


def test_second_bind_while_the_first_is_undecided_is_refused() -> None:
    peer = Peer()
    first, second = peer.next_sequence(), peer.next_sequence()
    data = request_bytes(Command.BIND_TRANSMITTER, first) + request_bytes(Command.BIND_RECEIVER, second)
    events = peer.send(data)
    assert isinstance(events[0], BindRequested)
    assert [type(e) for e in events[1:]] == [PeerError]
    resp = only(peer.read())
    assert (resp.command, resp.sequence, resp.status) == (
        Command.BIND_RECEIVER_RESP,
        second,
        Status.ESME_RINVBNDSTS,
    )
    assert isinstance(events[0], BindRequested)
    peer.session.accept_bind(events[0].pdu, SMSC_ID)
    assert peer.session.state is State.BOUND_TX


# -- bytes in and out ----------------------------------------------------------------


def _conversation() -> bytes:
    return b"".join(
        [
            request_bytes(Command.BIND_TRANSCEIVER, 1),
            request_bytes(Command.ENQUIRE_LINK, 2),
            request_bytes(Command.SUBMIT_SM, 3),
            frame(0x77, b"", 4),
            spec_pdu(Command.SUBMIT_SM, sequence=5, raw={"source_addr": b"x" * 30 + b"\x00"}),
        ]
    )


def _summary(events: list[Event]) -> list[tuple[str, int]]:
    out = []
    for event in events:
        pdu = getattr(event, "pdu", None)
        out.append((type(event).__name__, pdu.sequence if pdu else getattr(event, "status", 0)))
    return out


def test_pdus_fed_one_byte_at_a_time_decode_the_same() -> None:
    whole, split = Peer(), Peer()
    events_whole = whole.send(_conversation())
    events_split: list[Event] = []
    for byte in _conversation():
        events_split += split.send(bytes((byte,)))
    assert _summary(events_split) == _summary(events_whole)
    assert [e.pdu for e in events_split if isinstance(e, BindRequested | RequestReceived)] == [
        e.pdu for e in events_whole if isinstance(e, BindRequested | RequestReceived)
    ]
    assert split.session.data_to_send() == whole.session.data_to_send()


def test_several_pdus_in_one_chunk_are_answered_in_order() -> None:
    peer = reach(State.BOUND_TRX)
    data = b"".join(request_bytes(Command.ENQUIRE_LINK, s) for s in (11, 12)) + request_bytes(Command.SUBMIT_SM, 13)
    data += request_bytes(Command.ENQUIRE_LINK, 14) + request_bytes(Command.ENQUIRE_LINK, 15)[:7]
    events = peer.send(data)
    assert [e.pdu.sequence for e in events if isinstance(e, RequestReceived)] == [13]
    assert [p.sequence for p in peer.read()] == [11, 12, 14]
    peer.send(request_bytes(Command.ENQUIRE_LINK, 15)[7:])
    assert [p.sequence for p in peer.read()] == [15]


def test_data_to_send_drains() -> None:
    peer = reach(State.BOUND_TRX)
    peer.request(Command.ENQUIRE_LINK)
    peer.request(Command.ENQUIRE_LINK)
    assert len(split_frames(peer.session.data_to_send())) == 2
    assert peer.session.data_to_send() == b""


def test_sequence_numbers_wrap_at_0x7fffffff() -> None:
    peer = reach(State.BOUND_TRX)
    peer.session._next_sequence = MAX_SEQUENCE - 1  # 2**31 requests are too many to send
    sequences = [peer.session.send_request(deliver_sm(), 0.0) for _ in range(3)]
    assert sequences == [0x7FFFFFFE, 0x7FFFFFFF, 1]
    assert [p.sequence for p in peer.read()] == sequences


def test_our_sequence_numbers_start_at_one_and_increase() -> None:
    peer = reach(State.BOUND_TRX)
    assert [peer.session.send_request(deliver_sm(), 0.0) for _ in range(3)] == [1, 2, 3]


def test_pdu_counters() -> None:
    peer = reach(State.BOUND_TRX)
    peer.request(Command.ENQUIRE_LINK)
    peer.request(Command.ENQUIRE_LINK)
    peer.send(frame(0x77))
    assert peer.counters.received == {Command.BIND_TRANSCEIVER: 1, Command.ENQUIRE_LINK: 2}
    assert peer.counters.sent == {
        Command.BIND_TRANSCEIVER_RESP: 1,
        Command.ENQUIRE_LINK_RESP: 2,
        Command.GENERIC_NACK: 1,
    }


# -- next_deadline and tick ----------------------------------------------------------


def _open() -> Peer:
    return Peer(now=3.0)


def _bound_idle() -> Peer:
    return reach(State.BOUND_TRX, now=1.0)


def _enquire_pending() -> Peer:
    peer = reach(State.BOUND_RX)
    peer.tick(30.0)
    peer.read()
    return peer


def _deliver_outstanding() -> Peer:
    peer = reach(State.BOUND_TRX)
    peer.session.send_request(deliver_sm(), 2.0)
    peer.read()
    return peer


def _unbinding() -> Peer:
    return reach(State.UNBINDING, now=4.0)


def _peer_unbind_waiting() -> Peer:
    peer = reach(State.BOUND_TX)
    peer.request(Command.SUBMIT_SM, at=6.0)
    peer.request(Command.UNBIND, at=7.0)
    return peer


def _short_inactivity() -> Peer:
    config = SessionConfig(window=3, enquire_link_interval=60.0, inactivity_timeout=10.0, response_timeout=5.0)
    peer = Peer(config)
    peer.bind(State.BOUND_TRX)
    return peer


def _peer_unbind_waiting_for_its_answer() -> Peer:
    peer = reach(State.BOUND_RX)
    peer.session.send_request(deliver_sm(), 2.0)
    peer.read()
    peer.request(Command.UNBIND, at=5.0)
    return peer


SCENARIOS = [_open, _bound_idle, _enquire_pending, _deliver_outstanding, _unbinding, _peer_unbind_waiting]
SCENARIOS += [_short_inactivity, _peer_unbind_waiting_for_its_answer]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__.strip("_"))
def test_next_deadline_and_tick_agree(scenario: Any) -> None:
    peer: Peer = scenario()
    for _ in range(12):
        deadline = peer.session.next_deadline()
        if deadline is None:
            assert peer.session.is_closing
            return
        assert peer.tick(deadline - 0.001) == []
        assert peer.read() == []
        assert peer.session.next_deadline() == deadline
        events = peer.tick(deadline)
        written = peer.read()
        assert events or written or peer.session.next_deadline() != deadline, f"tick at {deadline} did nothing"
    assert peer.session.state in BOUND  # only idle sessions with silent peers go on for this long


def test_tick_before_any_deadline_is_harmless() -> None:
    peer = reach(State.BOUND_TRX, now=10.0)
    for t in (10.0, 11.0, 39.0):
        assert peer.tick(t) == []
    assert peer.read() == []


def test_bind_commands_table_constant() -> None:
    assert set(BIND_COMMANDS) == BINDS


def test_max_pdus_takes_a_bounded_share_and_keeps_the_rest() -> None:
    session = Session(SessionConfig(), 0.0)
    frames = b"".join(encode_pdu(EnquireLink(i)) for i in range(1, 11))
    session.receive_data(frames, 0.0, max_pdus=4)
    assert session.has_buffered_pdu
    assert len(split_frames(session.data_to_send())) == 4
    session.receive_data(b"", 0.0, max_pdus=4)
    session.receive_data(b"", 0.0, max_pdus=4)
    assert not session.has_buffered_pdu
    assert [decode_pdu(f).sequence for f in split_frames(session.data_to_send())] == list(range(5, 11))


# -- issue 14: what strict client codecs expect --------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        # 0x104 ESME_RINVDCS is v5.0 only; v3.3/v3.4 binds are told 0x45 ESME_RSUBMITFAIL.
        (0x33, "00000010 80000004 00000045"),
        (0x34, "00000010 80000004 00000045"),
        (0x49, "00000010 80000004 00000045"),
        (0x50, "00000010 80000004 00000104"),
    ],
)
def test_rinvdcs_only_to_v50_binds(version: int, expected: str) -> None:
    peer = Peer()
    peer.bind(State.BOUND_TRX, interface_version=version)
    sequence, (event,) = peer.request(Command.SUBMIT_SM)
    assert isinstance(event, RequestReceived)
    peer.session.respond(event.pdu, Status.ESME_RINVDCS)
    assert peer.session.data_to_send() == bytes.fromhex(expected) + sequence.to_bytes(4, "big")


def test_refused_bind_carries_our_system_id() -> None:
    # Kept on purpose (README): some decoders need it to report the refusal cleanly.
    peer = Peer()
    sequence, (event,) = peer.request(Command.BIND_TRANSCEIVER)
    assert isinstance(event, BindRequested)
    peer.session.reject_bind(event.pdu, Status.ESME_RINVPASWD, "SMSC")
    expected = bytes.fromhex("00000015 80000009 0000000e") + sequence.to_bytes(4, "big") + b"SMSC\x00"
    assert peer.session.data_to_send() == expected


@pytest.mark.parametrize(
    "answer",
    [
        "00000010 80000015 00000000",  # enquire_link_resp with the deliver_sm's sequence
        "00000010 80000004 00000000",  # submit_sm_resp
        "00000010 80000006 00000000",  # unbind_resp
    ],
)
def test_only_deliver_sm_resp_or_generic_nack_answers_a_deliver_sm(answer: str) -> None:
    peer = reach(State.BOUND_TRX)
    sequence = peer.session.send_request(deliver_sm(), 0.0, context="r")
    peer.read()
    events = peer.send(bytes.fromhex(answer) + sequence.to_bytes(4, "big"))
    assert [type(e) for e in events] == [PeerError]
    assert peer.session.window_room() == CONFIG.window - 1  # still waiting: its own answer or the timeout
    (event,) = peer.send(bytes.fromhex("00000011 80000005 00000000") + sequence.to_bytes(4, "big") + b"\x00")
    assert isinstance(event, ResponseReceived) and event.request.context == "r"


def test_generic_nack_with_status_0_is_still_a_generic_nack() -> None:
    peer = reach(State.BOUND_TRX)
    sequence = peer.session.send_request(deliver_sm(), 0.0, context="r")
    peer.read()
    (event,) = peer.send(bytes.fromhex("00000010 80000000 00000000") + sequence.to_bytes(4, "big"))
    assert isinstance(event, ResponseReceived)
    assert (event.pdu.command, event.pdu.status) == (Command.GENERIC_NACK, 0)


def test_our_unbind_answered_keeps_writing_the_answers_still_owed() -> None:
    peer = reach(State.BOUND_TRX)
    first, (event1,) = peer.request(Command.SUBMIT_SM)
    second, (event2,) = peer.request(Command.SUBMIT_SM)
    assert isinstance(event1, RequestReceived) and isinstance(event2, RequestReceived)
    peer.session.unbind(1.0)
    (unbind,) = peer.read()
    assert peer.send(header(16, Command.UNBIND_RESP, 0, unbind.sequence), at=2.0) == []
    assert not peer.session.is_closing
    peer.session.respond(event1.pdu, Status.ESME_ROK, SubmitSmResp(message_id="5"))
    assert (
        peer.session.data_to_send() == bytes.fromhex("00000012 80000004 00000000") + first.to_bytes(4, "big") + b"5\x00"
    )
    assert peer.tick(3.0) == []
    peer.session.respond(event2.pdu, Status.ESME_ROK, SubmitSmResp(message_id="6"))
    assert (
        peer.session.data_to_send()
        == bytes.fromhex("00000012 80000004 00000000") + second.to_bytes(4, "big") + b"6\x00"
    )
    # owes nothing now: the next tick closes
    assert peer.session.next_deadline() == -float("inf")
    assert peer.tick(3.0) == [Unbound("unbind answered"), Closing("unbind answered")]


def test_our_unbind_answered_closes_after_response_timeout_if_answers_never_come() -> None:
    peer = reach(State.BOUND_TRX)
    _, (event,) = peer.request(Command.SUBMIT_SM)
    peer.session.unbind(1.0)
    (unbind,) = peer.read()
    assert peer.send(header(16, Command.UNBIND_RESP, 0, unbind.sequence), at=2.0) == []
    deadline = 1.0 + CONFIG.response_timeout
    assert peer.session.next_deadline() == deadline
    assert peer.tick(deadline - 0.01) == []
    assert peer.tick(deadline) == [Unbound("unbind answered"), Closing("unbind answered")]
    assert isinstance(event, RequestReceived)
    peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="5"))  # too late: not written
    assert peer.read() == []


# -- what the application may and may not do ------------------------------------------


def test_window_room_counts_our_requests_still_unanswered() -> None:
    peer = reach(State.BOUND_RX)
    assert peer.session.window_room() == CONFIG.window
    sequences = [peer.session.send_request(deliver_sm(), 0.0, context=i) for i in range(CONFIG.window)]
    peer.read()
    assert peer.session.window_room() == 0
    peer.send(header(16, Command.DELIVER_SM_RESP, 0, sequences[1]))
    assert peer.session.window_room() == 1


def test_take_back_outstanding_returns_the_contexts_oldest_first_and_forgets_them() -> None:
    peer = reach(State.BOUND_TRX)
    first = peer.session.send_request(deliver_sm(), 20.0, context="r1")
    peer.session.send_request(deliver_sm(), 20.0, context="r2")
    assert peer.tick(30.0) == []  # our enquire_link: no context, not handed back
    assert [p.command for p in peer.read()] == [Command.DELIVER_SM, Command.DELIVER_SM, Command.ENQUIRE_LINK]
    assert peer.session.take_back_outstanding() == ["r1", "r2"]
    assert peer.session.window_room() == CONFIG.window
    assert peer.session.take_back_outstanding() == []
    # an answer to a request taken back is no longer a response to anything
    assert [type(e) for e in peer.send(header(17, Command.DELIVER_SM_RESP, 0, first) + b"\x00")] == [PeerError]


def test_answering_a_request_twice_is_a_local_protocol_error() -> None:
    peer = reach(State.BOUND_TRX)
    _, (event,) = peer.request(Command.SUBMIT_SM)
    assert isinstance(event, RequestReceived)
    peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="1"))
    peer.read()
    with pytest.raises(LocalProtocolError):
        peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="1"))
    assert peer.read() == []  # nothing written for the misuse
    assert peer.session.unanswered == 0  # and the count did not go negative


def test_answering_a_request_never_received_is_a_local_protocol_error() -> None:
    peer = reach(State.BOUND_TRX)
    stranger = decode_pdu(request_bytes(Command.SUBMIT_SM, 4242))
    with pytest.raises(LocalProtocolError):
        peer.session.respond(stranger, Status.ESME_ROK)
    assert peer.read() == []
    assert peer.session.unanswered == 0


@pytest.mark.parametrize("answer", ["accept", "reject"])
def test_answering_a_bind_twice_is_a_local_protocol_error(answer: str) -> None:
    peer = Peer()
    _, (event,) = peer.request(Command.BIND_TRANSCEIVER)
    assert isinstance(event, BindRequested)
    peer.session.accept_bind(event.pdu, SMSC_ID)
    peer.read()
    with pytest.raises(LocalProtocolError):
        if answer == "accept":
            peer.session.accept_bind(event.pdu, SMSC_ID)
        else:
            peer.session.reject_bind(event.pdu, Status.ESME_RBINDFAIL, SMSC_ID)
    assert peer.read() == []


def test_a_sequence_the_peer_reuses_is_owed_once_per_request() -> None:
    # A peer may (wrongly) reuse a sequence number for two requests in flight: both
    # are answered, and a third answer is still refused.
    peer = reach(State.BOUND_TRX)
    events = peer.send(request_bytes(Command.SUBMIT_SM, 9) + request_bytes(Command.SUBMIT_SM, 9))
    first, second = (e.pdu for e in events if isinstance(e, RequestReceived))
    peer.session.respond(first, Status.ESME_ROK, SubmitSmResp(message_id="1"))
    peer.session.respond(second, Status.ESME_ROK, SubmitSmResp(message_id="2"))
    assert [(p.command, p.sequence) for p in peer.read()] == [(Command.SUBMIT_SM_RESP, 9)] * 2
    with pytest.raises(LocalProtocolError):
        peer.session.respond(first, Status.ESME_ROK)


def test_answering_with_another_commands_response_is_a_local_protocol_error() -> None:
    peer = reach(State.BOUND_TRX)
    _, (event,) = peer.request(Command.DATA_SM)
    assert isinstance(event, RequestReceived)
    with pytest.raises(LocalProtocolError):
        peer.session.respond(event.pdu, Status.ESME_ROK, SubmitSmResp(message_id="1"))  # not a data_sm_resp
    assert peer.read() == []
    peer.session.respond(event.pdu, Status.ESME_ROK, DataSmResp(message_id="1"))  # still owed: answered now
    assert only(peer.read()).command is Command.DATA_SM_RESP


def test_sending_a_response_as_our_request_is_a_local_protocol_error() -> None:
    peer = reach(State.BOUND_TRX)
    with pytest.raises(LocalProtocolError):
        peer.session.send_request(SubmitSmResp(message_id="1"), 0.0)
    assert peer.read() == []
    assert peer.session.window_room() == CONFIG.window
