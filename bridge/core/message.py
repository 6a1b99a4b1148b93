"""The bridge's own records: `Message` (what goes to a provider), `Part` (what the
ESME holds a message_id for) and `Receipt` (a deliver_sm owed to an ESME).

A submit_sm is one Part. The parts of a concatenated message share one Message (one
provider request for the whole text); each destination of a submit_multi is its own
Message sharing one Part id. Each Part gets its own receipt.

Compiled with mypyc (bridge/native.py), with the intake that builds them
(bridge/core/intake.py). Each dataclass writes its own `__init__`: mypyc compiles
the methods written in the source, while the ones the dataclass decorator generates
stay interpreted (a Message built through a generated `__init__` took 1.8 µs instead
of 0.4 µs compiled). `__eq__` and `__repr__` are still the dataclass's; copy and
pickle rebuild them through that `__init__` (`rebuild`: a compiled class with an
`__init__` of its own cannot be made empty and filled field by field).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

from bridge.core.numbers import Number
from bridge.smpp.constants import MessageState


class Lifecycle(enum.IntEnum):
    """Where a Message is in the bridge (not the handset's state: see `state`)."""

    QUEUED = 0  # stored, not yet accepted upstream (the outbox)
    SENDING = 1  # an HTTP request is (or was, before a crash) in flight
    ACCEPTED = 2  # a provider took it; waiting for its report
    FINAL = 3  # a final state is known and its receipts were queued


def rebuild(record: Any) -> tuple[Any, ...]:
    """`__reduce__` of a record class whose `__init__` takes its fields in order."""
    return type(record), tuple(getattr(record, f.name) for f in fields(record))


@dataclass(slots=True)
class Address:
    ton: int
    npi: int
    addr: str

    def __init__(self, ton: int, npi: int, addr: str) -> None:
        self.ton = ton
        self.npi = npi
        self.addr = addr

    def __reduce__(self) -> tuple[Any, ...]:
        return rebuild(self)


@dataclass(slots=True)
class Part:
    """One message_id handed to the ESME."""

    message_id: int
    registered_delivery: int
    submitted_at: float
    preview: str  # the first characters of the text, for the receipt's `text:`
    id_format: str = ""  # how its submit_sm_resp rendered the id ("" = the account's format)

    def __init__(
        self, message_id: int, registered_delivery: int, submitted_at: float, preview: str, id_format: str = ""
    ) -> None:
        self.message_id = message_id
        self.registered_delivery = registered_delivery
        self.submitted_at = submitted_at
        self.preview = preview
        self.id_format = id_format

    def __reduce__(self) -> tuple[Any, ...]:
        return rebuild(self)


# The due time an upgrade gives the messages accepted before due times were stored:
# due at once, and their connector works out from the message what is left to do.
UPGRADE_DUE = 0.0


@dataclass(slots=True)
class Message:
    id: int
    system_id: str
    source: Address
    destination: Address  # as the ESME sent it: the receipt's source_addr
    number: Number  # `destination` normalised at submit: routing, coalescing, providers
    text: str
    flash: bool
    parts: list[Part]
    route: list[str]
    ack: str
    created_at: float
    lifecycle: Lifecycle = Lifecycle.QUEUED
    provider: str | None = None
    provider_ids: list[str] = field(default_factory=list)
    state: MessageState | None = None
    error: int = 0
    attempts: int = 0
    next_attempt_at: float = 0.0
    done_at: float | None = None
    # While ACCEPTED: when its provider must next act on it without a report (a poll,
    # a synthetic receipt, a give-up), and how many times it already did. Stored beside
    # the record and indexed per provider (`Store.due_messages`), so the timer outlives
    # the process; set with the acceptance, cleared when the message becomes final.
    due_at: float | None = None  # UPGRADE_DUE: accepted before due times were stored
    polls: int = 0
    # The SMPP session that submitted it (its connection id): the history's `received`
    # event is read from the message itself (bridge/core/history.received_event), not
    # written as an event of its own. "" for a message from before that (its received
    # event is a history row) or not from a session.
    session: str = ""

    def __init__(
        self,
        id: int,
        system_id: str,
        source: Address,
        destination: Address,
        number: Number,
        text: str,
        flash: bool,
        parts: list[Part],
        route: list[str],
        ack: str,
        created_at: float,
        lifecycle: Lifecycle = Lifecycle.QUEUED,
        provider: str | None = None,
        provider_ids: list[str] | None = None,  # None: a new list
        state: MessageState | None = None,
        error: int = 0,
        attempts: int = 0,
        next_attempt_at: float = 0.0,
        done_at: float | None = None,
        due_at: float | None = None,
        polls: int = 0,
        session: str = "",
    ) -> None:
        self.id = id
        self.system_id = system_id
        self.source = source
        self.destination = destination
        self.number = number
        self.text = text
        self.flash = flash
        self.parts = parts
        self.route = route
        self.ack = ack
        self.created_at = created_at
        self.lifecycle = lifecycle
        self.provider = provider
        self.provider_ids = [] if provider_ids is None else provider_ids
        self.state = state
        self.error = error
        self.attempts = attempts
        self.next_attempt_at = next_attempt_at
        self.done_at = done_at
        self.due_at = due_at
        self.polls = polls
        self.session = session

    def __reduce__(self) -> tuple[Any, ...]:
        return rebuild(self)


@dataclass(slots=True)
class Receipt:
    """A deliver_sm receipt waiting for (or on its way to) an RX/TRX session."""

    system_id: str
    message_id: int
    state: MessageState
    error: int
    submitted_at: float
    done_at: float
    preview: str
    source: Address  # the original destination: receipts come from the handset
    destination: Address  # the original source
    provider: str = ""
    id: str = ""  # "<Message id>:<Part message_id>:<state>": one receipt per part and state
    attempts: int = 0
    next_attempt_at: float = 0.0
    id_format: str = ""  # its Part's id_format: the receipt repeats the submit_sm_resp id

    def __init__(
        self,
        system_id: str,
        message_id: int,
        state: MessageState,
        error: int,
        submitted_at: float,
        done_at: float,
        preview: str,
        source: Address,
        destination: Address,
        provider: str = "",
        id: str = "",
        attempts: int = 0,
        next_attempt_at: float = 0.0,
        id_format: str = "",
    ) -> None:
        self.system_id = system_id
        self.message_id = message_id
        self.state = state
        self.error = error
        self.submitted_at = submitted_at
        self.done_at = done_at
        self.preview = preview
        self.source = source
        self.destination = destination
        self.provider = provider
        self.id = id
        self.attempts = attempts
        self.next_attempt_at = next_attempt_at
        self.id_format = id_format

    def __reduce__(self) -> tuple[Any, ...]:
        return rebuild(self)


@dataclass(slots=True)
class PendingSegment:
    """One part of a concatenated message, stored until its set is complete."""

    set_key: str
    system_id: str
    index: int
    total: int
    message_id: int
    data: bytes  # user data without UDH, still in its data_coding
    data_coding: int
    registered_delivery: int
    submitted_at: float
    flash: bool
    source: Address
    destination: Address  # as sent
    number: Number  # normalised
    id_format: str = ""
