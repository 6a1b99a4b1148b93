"""The SMPP v3.4 session state machine, SMSC side. Sans-IO.

Everything that decides what a PDU means *in a session* lives in this file:
which requests each bind state allows (the `PEER_REQUESTS` table: a missing entry
is the ESME_RINVBNDSTS answer), framing limits, the window of unanswered requests,
enquire_link, unbind in both directions, and the bind / inactivity / response timers.
Every request read is answered exactly once: a second bind while one is being decided
is ESME_RINVBNDSTS. An unbind (the peer's, or ours once answered) ends the session only
when nothing is owed either way: our answers to the requests read before it are
written, and the peer's answers to our deliver_sm are still read (or time out).

It knows nothing about sockets, clocks, accounts, the store or providers. Feed it
bytes with `receive_data(data, now)` and time with `tick(now)`; it returns `Event`s
and queues outgoing bytes, which `data_to_send()` hands to whoever owns the socket.
Events carry typed PDUs (`bridge.smpp.pdu`). The application answers the requests it
is given with `accept_bind`, `reject_bind` and `respond` (with a typed response body),
and sends its own requests (a `DeliverSm`) with `send_request`, which numbers them;
every PDU written to a v3.3 bind leaves its TLVs out (decided once, at the bind);
`window_room()` says how many more fit, `take_back_outstanding()` hands back those
still unanswered when the session ends. Like h11, the session refuses misuse by the
application: answering a request twice, or one it never handed over, raises
`LocalProtocolError` instead of corrupting its count of answers owed.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from bridge.smpp.constants import BIND_COMMANDS, COMMAND_BY_ID, INTERFACE_VERSION_34, Command, Status, Tag
from bridge.smpp.pdu import (
    HEADER_SIZE,
    Bind,
    BindReceiverResp,
    BindResp,
    BindTransceiverResp,
    BindTransmitterResp,
    EncodedRequest,
    EnquireLink,
    Pdu,
    PduError,
    Unbind,
    decode_pdu,
    encode_pdu,
    encode_response,
    generic_nack,
)
from bridge.smpp.versions import status_for, takes_tlvs


class LocalProtocolError(Exception):
    """The application used the session wrongly (our bug, not the peer's): e.g. it
    answered a request twice, or one the session never handed to it."""


class State(enum.Enum):
    # Hashed as any object (members are singletons, equal only to themselves):
    # `enum.Enum.__hash__` is Python code, and the state is looked up per PDU.
    __hash__ = object.__hash__

    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"
    CLOSED = "closed"


class BindType(enum.Enum):
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"

    @property
    def can_receive(self) -> bool:
        return self is not BindType.TRANSMITTER


BIND_TYPE_BY_COMMAND = {
    Command.BIND_TRANSMITTER: BindType.TRANSMITTER,
    Command.BIND_RECEIVER: BindType.RECEIVER,
    Command.BIND_TRANSCEIVER: BindType.TRANSCEIVER,
}
BIND_RESP_BY_COMMAND: dict[Command, type[BindResp]] = {
    Command.BIND_TRANSMITTER: BindTransmitterResp,
    Command.BIND_RECEIVER: BindReceiverResp,
    Command.BIND_TRANSCEIVER: BindTransceiverResp,
}
BOUND_STATE_BY_TYPE = {
    BindType.TRANSMITTER: State.BOUND_TX,
    BindType.RECEIVER: State.BOUND_RX,
    BindType.TRANSCEIVER: State.BOUND_TRX,
}

_TX_REQUESTS = frozenset(
    {
        Command.SUBMIT_SM,
        Command.SUBMIT_MULTI,
        Command.DATA_SM,
        Command.QUERY_SM,
        Command.CANCEL_SM,
        Command.REPLACE_SM,
    }
)
_ALWAYS = frozenset({Command.ENQUIRE_LINK})
_BOUND = _ALWAYS | {Command.UNBIND}

# Requests an ESME may send in each state (SMPP v3.4 section 2.3). A request not
# listed for the current state is answered with ESME_RINVBNDSTS.
PEER_REQUESTS: dict[State, frozenset[Command]] = {
    State.OPEN: _ALWAYS | BIND_COMMANDS,
    State.BOUND_TX: _BOUND | _TX_REQUESTS,
    State.BOUND_RX: _BOUND,
    State.BOUND_TRX: _BOUND | _TX_REQUESTS,
    State.UNBINDING: _BOUND,
    State.CLOSED: frozenset(),
}

BOUND_STATES = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
# Our requests an unbind does not wait for: node-smpp never answers enquire_link, and
# our own unbind is what the unbind settles.
_NOT_AWAITED = frozenset({Command.ENQUIRE_LINK, Command.UNBIND})
MAX_SEQUENCE = 0x7FFFFFFF


# -- events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BindRequested:
    """Answer with `accept_bind` or `reject_bind`."""

    pdu: Bind
    bind_type: BindType


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A submit_sm, data_sm, submit_multi, query_sm, cancel_sm or replace_sm.
    Answer it with `respond` exactly once."""

    pdu: Pdu

    def __init__(self, pdu: Pdu) -> None:
        # Written out (bridge/core/message.py): compiled, the generated frozen one
        # stays interpreted, and one is made per request.
        object.__setattr__(self, "pdu", pdu)


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The peer answered one of our requests (a *_resp or a generic_nack)."""

    pdu: Pdu
    request: OutstandingRequest


@dataclass(frozen=True, slots=True)
class ResponseTimedOut:
    """One of our requests got no answer within `response_timeout`."""

    request: OutstandingRequest


@dataclass(frozen=True, slots=True)
class Unbound:
    """The session left its bound state (peer's unbind, ours answered, or a close)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Closing:
    """The transport should write what is queued and close the connection."""

    reason: str


@dataclass(frozen=True, slots=True)
class PeerError:
    """The peer sent something we refused; already answered. For logs and metrics."""

    status: Status
    reason: str
    command_id: int


Event = BindRequested | RequestReceived | ResponseReceived | ResponseTimedOut | Unbound | Closing | PeerError


@dataclass(slots=True)
class OutstandingRequest:
    command: Command
    sequence: int
    deadline: float
    context: Any = None


@dataclass(slots=True)
class SessionConfig:
    window: int = 100
    enquire_link_interval: float = 30.0
    inactivity_timeout: float = 300.0
    bind_timeout: float = 30.0
    response_timeout: float = 30.0
    max_command_length: int = 65536 + HEADER_SIZE
    pdu_timeout: float = 30.0  # a PDU that has begun must be complete within this time


@dataclass(slots=True)
class PduCounters:
    """PDUs read and written, by command. Shared by all sessions; a metrics
    collector reads it at scrape time so the hot path only adds integers."""

    received: dict[Command, int] = field(default_factory=dict)
    sent: dict[Command, int] = field(default_factory=dict)


class Session:
    """One SMPP connection, seen from the SMSC."""

    def __init__(self, config: SessionConfig, now: float, counters: PduCounters | None = None) -> None:
        self.config = config
        self.counters = counters or PduCounters()
        self.state = State.OPEN
        self.bind_type: BindType | None = None
        self.system_id: str | None = None
        self.interface_version = INTERFACE_VERSION_34
        # Whether the PDUs we write carry TLVs: not to a v3.3 bind (decided at bind).
        self._tlvs = True
        self.opened_at = now
        self.last_received = now
        # Requests read and not yet answered, by sequence (a count: a peer may reuse one).
        self._owed: dict[int, int] = {}
        self._unanswered = 0
        self._outstanding: dict[int, OutstandingRequest] = {}
        self._next_sequence = 1
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._closing = False
        self._unbind_deadline: float | None = None
        self._unbind_reason = "unbind not answered"
        self._unbind_answered = False  # our unbind got its unbind_resp; answers may still be owed
        self._partial_since: float | None = None
        self._enquire_link_sequence: int | None = None
        self._bind_pending = False
        # Sequences of the peer's unbinds waiting for the answers to earlier requests.
        self._peer_unbinds: list[int] = []

    # -- bytes in --------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float, max_pdus: int = 0) -> list[Event]:
        """Feed bytes from the socket; returns what happened, in order. With `max_pdus`,
        at most that many PDUs are taken now; the rest waits for the next call (see
        `has_buffered_pdu`), so one flooding peer cannot hold the event loop."""
        if self._closing:
            return []
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        offset = 0
        available = len(buffer)
        max_length = self.config.max_command_length
        budget = max_pdus or -1
        while available - offset >= 4 and not self._closing and budget != 0:
            budget -= 1
            length = int.from_bytes(buffer[offset : offset + 4], "big")
            if length < HEADER_SIZE or length > max_length:
                self._framing_error(buffer, offset, length, events)
                break
            if available - offset < length:
                break
            frame = bytes(buffer[offset : offset + length])
            offset += length
            self.last_received = now
            self._handle_frame(frame, now, events)
        if offset:
            del buffer[:offset]
        # Slowloris: a PDU trickling in never completes; time it from its first byte.
        if not buffer:
            self._partial_since = None
        elif offset or self._partial_since is None:
            self._partial_since = now
        return events

    @property
    def has_buffered_pdu(self) -> bool:
        """A complete PDU (or a framing error) is waiting in the input buffer."""
        buffer = self._buffer
        if len(buffer) < 4 or self._closing:
            return False
        length = int.from_bytes(buffer[:4], "big")
        return length < HEADER_SIZE or length > self.config.max_command_length or len(buffer) >= length

    def _framing_error(self, buffer: bytearray, offset: int, length: int, events: list[Event]) -> None:
        sequence = 0
        if len(buffer) - offset >= HEADER_SIZE:
            sequence = int.from_bytes(buffer[offset + 12 : offset + 16], "big")
        self._write(generic_nack(sequence, Status.ESME_RINVCMDLEN), Command.GENERIC_NACK)
        events.append(PeerError(Status.ESME_RINVCMDLEN, f"command_length {length}", 0))
        self._close("invalid command_length", events)

    def _handle_frame(self, frame: bytes, now: float, events: list[Event]) -> None:
        try:
            pdu = decode_pdu(frame)
        except PduError as exc:
            self._refuse(exc, events)
            return
        command = pdu.command
        received = self.counters.received
        received[command] = received.get(command, 0) + 1
        if command.is_response:
            self._handle_response(pdu, events)
        elif command in PEER_REQUESTS[self.state] and not (self._bind_pending and command in BIND_COMMANDS):
            self._handle_request(pdu, now, events)
        else:
            status = (
                Status.ESME_RALYBND
                if command in BIND_COMMANDS and self.state in BOUND_STATES
                else Status.ESME_RINVBNDSTS
            )
            self._answer_to(command, pdu.sequence, status)
            events.append(PeerError(status, f"{command.label} in state {self.state.value}", command))

    def _refuse(self, exc: PduError, events: list[Event]) -> None:
        command = COMMAND_BY_ID.get(exc.command_id)
        if command is not None and command.is_response:
            events.append(PeerError(exc.status, f"malformed {command.label}: {exc.reason}", exc.command_id))
            return
        if command is None:
            self._write(generic_nack(exc.sequence, exc.status), Command.GENERIC_NACK)
        else:
            self._answer_to(command, exc.sequence, exc.status)
        events.append(PeerError(exc.status, exc.reason, exc.command_id))

    def _handle_request(self, pdu: Pdu, now: float, events: list[Event]) -> None:
        command = pdu.command
        if command is Command.ENQUIRE_LINK:
            self._answer_to(command, pdu.sequence, Status.ESME_ROK)
        elif command is Command.UNBIND:
            self._handle_unbind(pdu, now, events)
        elif isinstance(pdu, Bind):
            self._owe(pdu.sequence)
            self._bind_pending = True
            events.append(BindRequested(pdu, BIND_TYPE_BY_COMMAND[command]))
        elif self.state is State.UNBINDING:
            self._answer_to(command, pdu.sequence, Status.ESME_RINVBNDSTS)
        elif self._unanswered >= self.config.window:
            self._answer_to(command, pdu.sequence, Status.ESME_RTHROTTLED)
            events.append(PeerError(Status.ESME_RTHROTTLED, "window full", command))
        else:
            self._owe(pdu.sequence)
            events.append(RequestReceived(pdu))

    def _handle_unbind(self, pdu: Pdu, now: float, events: list[Event]) -> None:
        if not self._settled():
            # Answers still owed, either way: ours (an ESME that unbinds without waiting
            # for its submit_sm_resp would resubmit) or the peer's (a deliver_sm_resp it
            # sends after its unbind: a receipt whose answer is lost goes out again on
            # the next bind). unbind_resp once both are settled, or after
            # response_timeout. Meanwhile only enquire_link, unbind and answers pass.
            if not self._peer_unbinds:
                self.state = State.UNBINDING
                self._unbind_reason = "peer unbind"
                deadline = now + self.config.response_timeout
                if self._unbind_deadline is None or deadline < self._unbind_deadline:
                    self._unbind_deadline = deadline
            self._peer_unbinds.append(pdu.sequence)
            return
        self._answer_to(Command.UNBIND, pdu.sequence, Status.ESME_ROK)
        self._leave_bound("peer unbind", events)
        self._close("peer unbind", events)

    def _settled(self) -> bool:
        """No answer owed either way: none of ours, and none to our requests that matter
        (an unanswered enquire_link is allowed, and our unbind is what ends the session)."""
        return self._unanswered <= 0 and all(r.command in _NOT_AWAITED for r in self._outstanding.values())

    def _unbind_settled(self) -> bool:
        """An unbind (the peer's, or ours once answered) has nothing left to wait for."""
        return bool(self._peer_unbinds or self._unbind_answered) and self._settled()

    def _finish_unbind(self, events: list[Event]) -> None:
        if self._unbind_settled():
            self._answer_peer_unbinds()
            self._leave_bound(self._unbind_reason, events)
            self._close(self._unbind_reason, events)

    def _answer_peer_unbinds(self) -> None:
        for sequence in self._peer_unbinds:
            self._answer_to(Command.UNBIND, sequence, Status.ESME_ROK)
        self._peer_unbinds.clear()

    def _handle_response(self, pdu: Pdu, events: list[Event]) -> None:
        request = self._outstanding.get(pdu.sequence)
        if request is None or pdu.command not in (request.command.response, Command.GENERIC_NACK):
            # Only the request's own *_resp or a generic_nack answers it: an
            # enquire_link_resp carrying a deliver_sm's sequence leaves it waiting.
            events.append(PeerError(Status.ESME_RINVCMDID, f"unexpected {pdu.command.label}", pdu.command))
            return
        del self._outstanding[pdu.sequence]
        if request.command is Command.ENQUIRE_LINK:
            self._enquire_link_sequence = None
        elif request.command is Command.UNBIND:
            # Closes once nothing is owed either way; else the answers still owed go
            # out first (`respond`) and theirs are read, until the unbind deadline.
            self._unbind_answered = True
            self._unbind_reason = "unbind answered"
        else:
            events.append(ResponseReceived(pdu, request))
        self._finish_unbind(events)

    # -- answers from the application ------------------------------------------------

    def accept_bind(self, request: Bind, our_system_id: str) -> None:
        """Answer a `BindRequested` with success. A no-op once the session is closing
        (bind timeout, framing error, lost connection): it must not come back bound."""
        bind_type = BIND_TYPE_BY_COMMAND[request.command]
        self._settle(request)
        self._bind_pending = False
        if self._closing:
            return
        self.bind_type = bind_type
        self.system_id = request.system_id
        self.interface_version = request.interface_version
        self._tlvs = takes_tlvs(request.interface_version)
        self.state = BOUND_STATE_BY_TYPE[bind_type]
        self._answer(request, Status.ESME_ROK, self._bind_resp(request, our_system_id, sc_interface_version=True))

    def reject_bind(self, request: Bind, status: Status, our_system_id: str) -> None:
        self._settle(request)
        self._bind_pending = False
        self._answer(request, status, self._bind_resp(request, our_system_id))

    @staticmethod
    def _bind_resp(request: Bind, our_system_id: str, sc_interface_version: bool = False) -> BindResp:
        tlvs: dict[int, bytes] = (
            {Tag.SC_INTERFACE_VERSION: bytes((INTERFACE_VERSION_34,))} if sc_interface_version else {}
        )
        return BIND_RESP_BY_COMMAND[request.command](system_id=our_system_id, tlvs=tlvs)

    def respond(self, request: Pdu, status: int, body: Pdu | None = None) -> None:
        """Answer a `RequestReceived` with `status` and, if given, the response's
        fields and TLVs in `body` (a `SubmitSmResp` ...; its header is ignored). Safe
        after the session closed (then a no-op)."""
        if body is not None and body.command is not request.command.response:
            raise LocalProtocolError(f"a {body.command.label} does not answer a {request.command.label}")
        self._settle(request)
        if self.state is not State.CLOSED:
            self._answer(request, status, body)
            if self._unbind_settled():
                self._answer_peer_unbinds()  # right after the last answer owed
                self._unbind_deadline = -math.inf  # nothing left to wait for: the next tick closes

    @property
    def unanswered(self) -> int:
        """Requests read from the peer and not yet answered."""
        return self._unanswered

    def _owe(self, sequence: int) -> None:
        self._owed[sequence] = self._owed.get(sequence, 0) + 1
        self._unanswered += 1

    def _settle(self, request: Pdu) -> None:
        """Count `request` as answered; raises `LocalProtocolError` when it is not owed."""
        owed = self._owed.get(request.sequence, 0)
        if owed <= 0:
            raise LocalProtocolError(
                f"{request.command.label} sequence {request.sequence} is not waiting for an answer"
                " (answered already, or never received)"
            )
        if owed == 1:
            del self._owed[request.sequence]
        else:
            self._owed[request.sequence] = owed - 1
        self._unanswered -= 1

    # -- our requests ----------------------------------------------------------------

    def send_request(self, request: Pdu | EncodedRequest, now: float, context: Any = None) -> int:
        """Queue a request to the peer (a `DeliverSm` ..., or one encoded already; the
        session numbers it); its answer comes back as `ResponseReceived` (or
        `ResponseTimedOut`) carrying `context`. Returns the sequence number."""
        command = request.command
        if command.is_response:
            raise LocalProtocolError(f"{command.label} is not a request")
        sequence = self._allocate_sequence()
        self._outstanding[sequence] = OutstandingRequest(command, sequence, now + self.config.response_timeout, context)
        if isinstance(request, EncodedRequest):
            self._write(request.encode(sequence, self._tlvs), command)
        else:
            self._write(encode_pdu(request, sequence=sequence, status=0, tlvs=self._tlvs), command)
        return sequence

    def unbind(self, now: float) -> None:
        """Start an unbind from our side (shutdown, inactivity). The session closes on
        the unbind_resp once it owes no answers, or after `response_timeout`; answers
        still owed meanwhile are written (an ESME that lost them would resubmit)."""
        if self.state in BOUND_STATES:
            self.state = State.UNBINDING
            self._unbind_deadline = now + self.config.response_timeout
            self.send_request(Unbind(), now)
        elif self.state is State.OPEN:
            self._closing = True

    def window_room(self) -> int:
        """How many more requests of ours fit in the window now."""
        return max(0, self.config.window - len(self._outstanding))

    def take_back_outstanding(self) -> list[Any]:
        """The contexts of our requests still unanswered, oldest first, forgotten here:
        their answers will not be waited for (the session ended)."""
        contexts = [request.context for request in self._outstanding.values() if request.context is not None]
        self._outstanding.clear()
        self._enquire_link_sequence = None
        return contexts

    @property
    def can_deliver(self) -> bool:
        """True when deliver_sm may be sent here (RX or TRX, still bound)."""
        return (
            self.bind_type is not None
            and self.bind_type.can_receive
            and self.state
            in (
                State.BOUND_RX,
                State.BOUND_TRX,
            )
        )

    @property
    def is_closing(self) -> bool:
        return self._closing

    # -- time ------------------------------------------------------------------------

    def tick(self, now: float) -> list[Event]:
        """Run the timers. Call at or after `next_deadline()`."""
        events: list[Event] = []
        if self._closing:
            return events
        config = self.config
        if self.state is State.OPEN and now - self.opened_at >= config.bind_timeout:
            self._close("bind timeout", events)
            return events
        if self._partial_since is not None and now - self._partial_since >= config.pdu_timeout:
            self._close("PDU not completed in time", events)
            return events
        if self._unbind_deadline is not None and now >= self._unbind_deadline:
            self._answer_peer_unbinds()
            self._leave_bound(self._unbind_reason, events)
            self._close(self._unbind_reason, events)
            return events
        # Deadlines grow with insertion order (one response_timeout), so the
        # expired requests are the first ones in the dict.
        outstanding = self._outstanding
        while outstanding:
            request = next(iter(outstanding.values()))
            if now < request.deadline:
                break
            del outstanding[request.sequence]
            if request.command is Command.ENQUIRE_LINK:
                self._enquire_link_sequence = None  # unanswered is allowed (node-smpp)
            else:
                events.append(ResponseTimedOut(request))
        self._finish_unbind(events)
        idle = now - self.last_received
        if self.state in BOUND_STATES:
            if idle >= config.inactivity_timeout:
                self.unbind(now)
            elif idle >= config.enquire_link_interval and self._enquire_link_sequence is None:
                self._enquire_link_sequence = self.send_request(EnquireLink(), now)
        return events

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do, or None."""
        if self._closing:
            return None
        config = self.config
        candidates: list[float] = []
        if self._partial_since is not None:
            candidates.append(self._partial_since + config.pdu_timeout)
        if self.state is State.OPEN:
            return min([self.opened_at + config.bind_timeout, *candidates])
        if self._outstanding:
            candidates.append(next(iter(self._outstanding.values())).deadline)
        if self._unbind_deadline is not None:
            candidates.append(self._unbind_deadline)
        if self.state in BOUND_STATES:
            candidates.append(self.last_received + config.inactivity_timeout)
            if self._enquire_link_sequence is None:
                candidates.append(self.last_received + config.enquire_link_interval)
        return min(candidates) if candidates else None

    def connection_lost(self) -> list[Event]:
        """The transport lost the socket: leave the bound state and drop what waits."""
        events: list[Event] = []
        self._leave_bound("connection lost", events)
        self.state = State.CLOSED
        self._closing = True
        return events

    # -- bytes out -------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        return data

    # -- internals -------------------------------------------------------------------

    def _answer(self, request: Pdu, status: int, body: Pdu | None = None) -> None:
        self._answer_to(request.command, request.sequence, status, body)

    def _answer_to(self, command: Command, sequence: int, status: int, body: Pdu | None = None) -> None:
        """Every answer goes through here: the status is the one the bind's version
        knows (and, like every PDU we write, it carries no TLVs to a v3.3 bind)."""
        response = command.response or Command.GENERIC_NACK
        status = status_for(status, self.interface_version)
        self._write(encode_response(command, sequence, status, body, tlvs=self._tlvs), response)

    def _write(self, data: bytes, command: Command) -> None:
        sent = self.counters.sent
        sent[command] = sent.get(command, 0) + 1
        self._out.append(data)

    def _allocate_sequence(self) -> int:
        sequence = self._next_sequence
        self._next_sequence = 1 if sequence >= MAX_SEQUENCE else sequence + 1
        return sequence

    def _leave_bound(self, reason: str, events: list[Event]) -> None:
        if self.state in BOUND_STATES or self.state is State.UNBINDING:
            events.append(Unbound(reason))
        self.state = State.CLOSED

    def _close(self, reason: str, events: list[Event]) -> None:
        if not self._closing:
            self._closing = True
            events.append(Closing(reason))
