"""The bridge's own records: `Message` (what goes to a provider), `Part` (what the
ESME holds a message_id for) and `Receipt` (a deliver_sm owed to an ESME).

A submit_sm is one Part. The parts of a concatenated message share one Message (one
provider request for the whole text); each destination of a submit_multi is its own
Message sharing one Part id. Each Part gets its own receipt.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from bridge.core.numbers import Number
from bridge.smpp.constants import MessageState


class Lifecycle(enum.IntEnum):
    """Where a Message is in the bridge (not the handset's state: see `state`)."""

    QUEUED = 0  # stored, not yet accepted upstream (the outbox)
    SENDING = 1  # an HTTP request is (or was, before a crash) in flight
    ACCEPTED = 2  # a provider took it; waiting for its report
    FINAL = 3  # a final state is known and its receipts were queued


@dataclass(slots=True)
class Address:
    ton: int
    npi: int
    addr: str


@dataclass(slots=True)
class Part:
    """One message_id handed to the ESME."""

    message_id: int
    registered_delivery: int
    submitted_at: float
    preview: str  # the first characters of the text, for the receipt's `text:`
    id_format: str = ""  # how its submit_sm_resp rendered the id ("" = the account's format)


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
