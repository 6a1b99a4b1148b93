"""Compact serialisation of the core records, shared by the SQLite and Redis stores.

Positional JSON arrays rather than `dataclasses.asdict` + dicts: asdict walks every
field reflectively and was a quarter of the bridge's CPU per message in profiles;
building a list by hand and handing it to the C JSON encoder costs a few
microseconds. The first element is a format version.

Version 2 (messages and segments) appends the normalised destination number
(`[digits, international]`). Version 1 records, written before numbers were
normalised, stored the destination's digits after `+`/`00` were stripped; they load
with the number those digits make without a default country (`legacy_number`), so a
restart after an upgrade loses nothing.
"""

from __future__ import annotations

import json
from typing import Any

from bridge.core.message import Address, Lifecycle, Message, Part, PendingSegment, Receipt
from bridge.core.numbers import Number, normalise
from bridge.smpp.constants import MessageState

_VERSION = 1  # receipts
_NUMBERED_VERSION = 2  # messages and segments: the normalised number at the end
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


def _address(a: Address) -> list[Any]:
    return [a.ton, a.npi, a.addr]


def legacy_number(destination: Address) -> Number:
    """The number of a version 1 record: its digits normalised without a default
    country; what cannot be normalised stays national (a provider decides)."""
    number = normalise(destination.addr, destination.ton)
    return number if isinstance(number, Number) else Number(destination.addr, international=False)


def _number(record: list[Any], destination: Address) -> Number:
    """The trailing number of a version 2 record, or the legacy one of version 1."""
    return Number(*record[0]) if record else legacy_number(destination)


def dump_message(m: Message) -> str:
    return _dumps(
        [
            _NUMBERED_VERSION,
            m.id,
            m.system_id,
            [m.source.ton, m.source.npi, m.source.addr],
            [m.destination.ton, m.destination.npi, m.destination.addr],
            m.text,
            m.flash,
            [[p.message_id, p.registered_delivery, p.submitted_at, p.preview] for p in m.parts],
            m.route,
            m.ack,
            m.created_at,
            int(m.lifecycle),
            m.provider,
            m.provider_ids,
            int(m.state) if m.state is not None else None,
            m.error,
            m.attempts,
            m.next_attempt_at,
            m.done_at,
            [m.number.digits, m.number.international],
        ]
    )


def load_message(text: str | bytes) -> Message:
    (_, id_, system_id, source, destination, body, flash, parts, route, ack, created_at, lifecycle, provider,
     provider_ids, state, error, attempts, next_attempt_at, done_at, *number) = _loads(text)  # fmt: skip
    sent_to = Address(*destination)
    return Message(
        id=id_,
        system_id=system_id,
        source=Address(*source),
        destination=sent_to,
        number=_number(number, sent_to),
        text=body,
        flash=flash,
        parts=[Part(*p) for p in parts],
        route=route,
        ack=ack,
        created_at=created_at,
        lifecycle=Lifecycle(lifecycle),
        provider=provider,
        provider_ids=provider_ids,
        state=MessageState(state) if state is not None else None,
        error=error,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        done_at=done_at,
    )


def dump_receipt(r: Receipt) -> str:
    return _dumps(
        [
            _VERSION,
            r.id,
            r.system_id,
            r.message_id,
            int(r.state),
            r.error,
            r.submitted_at,
            r.done_at,
            r.preview,
            _address(r.source),
            _address(r.destination),
            r.provider,
            r.attempts,
            r.next_attempt_at,
        ]
    )


def load_receipt(text: str | bytes) -> Receipt:
    (_, id_, system_id, message_id, state, error, submitted_at, done_at, preview, source, destination, provider,
     attempts, next_attempt_at) = _loads(text)  # fmt: skip
    return Receipt(
        system_id=system_id,
        message_id=message_id,
        state=MessageState(state),
        error=error,
        submitted_at=submitted_at,
        done_at=done_at,
        preview=preview,
        source=Address(*source),
        destination=Address(*destination),
        provider=provider,
        id=id_,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
    )


def dump_segment(s: PendingSegment) -> str:
    """Everything but the user data (stored beside it as bytes)."""
    return _dumps(
        [
            _NUMBERED_VERSION,
            s.set_key,
            s.system_id,
            s.index,
            s.total,
            s.message_id,
            s.data_coding,
            s.registered_delivery,
            s.submitted_at,
            s.flash,
            _address(s.source),
            _address(s.destination),
            [s.number.digits, s.number.international],
        ]
    )


def load_segment(text: str | bytes, data: bytes) -> PendingSegment:
    (_, set_key, system_id, index, total, message_id, data_coding, registered_delivery, submitted_at, flash, source,
     destination, *number) = _loads(text)  # fmt: skip
    sent_to = Address(*destination)
    return PendingSegment(
        set_key=set_key,
        system_id=system_id,
        index=index,
        total=total,
        message_id=message_id,
        data=bytes(data),
        data_coding=data_coding,
        registered_delivery=registered_delivery,
        submitted_at=submitted_at,
        flash=flash,
        source=Address(*source),
        destination=sent_to,
        number=_number(number, sent_to),
    )
