"""Compact serialisation of the core records, shared by the SQLite and Redis stores.

Positional JSON arrays rather than `dataclasses.asdict` + dicts: asdict walks every
field reflectively and was a quarter of the bridge's CPU per message in profiles;
building a list by hand and handing it to the C JSON encoder costs a few
microseconds. The first element is a format version.

Fields added later go at the end and may be missing from older records: the load
gives them a sensible value, so a restart after an upgrade loses nothing. Messages
and segments end with the normalised destination number (`[digits, international]`);
records written before numbers were normalised stored the destination's digits with
`+`/`00` stripped, and load with the number those digits make without a default
country (`legacy_number`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson

from bridge.core.history import HistoryEvent
from bridge.core.message import Address, Lifecycle, Message, Part, PendingSegment, Receipt
from bridge.core.numbers import Number, normalise
from bridge.smpp.constants import MessageState

_VERSION = 1
_loads = json.loads  # reads rows of either encoder: the same JSON
_json_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _dumps(value: Any) -> str:
    """Compact JSON text, UTF-8 kept as is. orjson, not the json module: with
    `ensure_ascii=False` the json module builds a new C encoder per call, and the
    history rows of every write made it ~4 % of the bridge's CPU per message. What
    orjson refuses and the json module takes (an integer past 64 bits, a key that is
    not a string, in a provider's raw report) is written by the json module."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _json_dumps(value)


def _address(a: Address) -> list[Any]:
    return [a.ton, a.npi, a.addr]


def legacy_number(destination: Address) -> Number:
    """The number of a record from before numbers were normalised: its digits
    normalised without a default country; what cannot be normalised stays national
    (a provider decides)."""
    number = normalise(destination.addr, destination.ton)
    return number if isinstance(number, Number) else Number(destination.addr, international=False)


def _number(stored: list[Any] | None, destination: Address) -> Number:
    """The stored number, or the legacy one of an older record."""
    return Number(*stored) if stored else legacy_number(destination)


def dump_message(m: Message) -> str:
    return _dumps(
        [
            _VERSION,
            m.id,
            m.system_id,
            [m.source.ton, m.source.npi, m.source.addr],
            [m.destination.ton, m.destination.npi, m.destination.addr],
            m.text,
            m.flash,
            [[p.message_id, p.registered_delivery, p.submitted_at, p.preview, p.id_format] for p in m.parts],
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
            m.session,
        ]
    )


def load_message(text: str | bytes) -> Message:
    (_, id_, system_id, source, destination, body, flash, parts, route, ack, created_at, lifecycle, provider,
     provider_ids, state, error, attempts, next_attempt_at, done_at, *rest) = _loads(text)  # fmt: skip
    sent_to = Address(*destination)
    return Message(
        id=id_,
        system_id=system_id,
        source=Address(*source),
        destination=sent_to,
        number=_number(rest[0] if rest else None, sent_to),
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
        session=rest[1] if len(rest) > 1 else "",
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
            r.id_format,
        ]
    )


def load_receipt(text: str | bytes) -> Receipt:
    (_, id_, system_id, message_id, state, error, submitted_at, done_at, preview, source, destination, provider,
     attempts, next_attempt_at, *rest) = _loads(text)  # fmt: skip
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
        id_format=rest[0] if rest else "",  # records from before id formats were per bind
    )


def dump_segment(s: PendingSegment) -> str:
    """Everything but the user data (stored beside it as bytes)."""
    return _dumps(
        [
            _VERSION,
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
            s.id_format,
            [s.number.digits, s.number.international],
        ]
    )


def load_segment(text: str | bytes, data: bytes) -> PendingSegment:
    (_, set_key, system_id, index, total, message_id, data_coding, registered_delivery, submitted_at, flash, source,
     destination, *rest) = _loads(text)  # fmt: skip
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
        number=_number(rest[1] if len(rest) > 1 else None, sent_to),
        id_format=rest[0] if rest else "",  # records from before id formats were per bind
    )


def dump_event(e: HistoryEvent) -> str:
    return _dumps([_VERSION, e.message_id, e.at, e.kind, e.data])


def load_event(text: str | bytes) -> HistoryEvent:
    _, message_id, at, kind, data = _loads(text)
    return HistoryEvent(message_id, at, kind, data)


# -- the SQLite store's columns ---------------------------------------------------------
#
# The SQLite store keeps a message as columns, not as one JSON record: an insert binds
# plain values (no encoder, no nested lists) and a state change updates only what
# changes. The common single-part message keeps its Part in three columns; a
# concatenated or submit_multi message (Parts with their own ids or times) keeps its
# Parts as JSON. A route is its provider names joined with US (config keys: no
# control characters); provider ids beyond the first (rare) are a JSON list.

ROUTE_SEPARATOR = "\x1f"

# The columns of a message row, in the order `message_row` gives them (after the id).
MESSAGE_COLUMNS = (
    "id, lifecycle, first_provider, provider, done_at, destination, created_at, system_id, src_ton, src_npi,"
    " src_addr, dst_ton, dst_npi, dst_addr, international, body, flash, parts, registered_delivery, preview,"
    " id_format, route, ack, provider_id, more_ids, state, error, attempts, next_attempt_at, session"
)


def message_row(m: Message) -> tuple[Any, ...]:
    """The column values of a message (MESSAGE_COLUMNS)."""
    parts = m.parts
    one = parts[0] if len(parts) == 1 else None
    if one is not None and one.message_id == m.id and one.submitted_at == m.created_at:
        encoded_parts = None
        registered_delivery: int | None = one.registered_delivery
        preview: str | None = one.preview
        id_format: str | None = one.id_format
    else:
        encoded_parts = _dumps(
            [[p.message_id, p.registered_delivery, p.submitted_at, p.preview, p.id_format] for p in parts]
        )
        registered_delivery = preview = id_format = None
    ids = m.provider_ids
    source, destination = m.source, m.destination
    return (
        m.id,
        int(m.lifecycle),
        m.route[0] if m.route else "",
        m.provider,
        m.done_at,
        m.number.digits,
        m.created_at,
        m.system_id,
        source.ton,
        source.npi,
        source.addr,
        destination.ton,
        destination.npi,
        destination.addr,
        int(m.number.international),  # (an int, not a bool: sqlite3 binds a bool through its adapter lookup)
        m.text,
        int(m.flash),
        encoded_parts,
        registered_delivery,
        preview,
        id_format,
        ROUTE_SEPARATOR.join(m.route),
        m.ack,
        ids[0] if ids else None,
        _dumps(ids[1:]) if len(ids) > 1 else None,
        int(m.state) if m.state is not None else None,
        m.error,
        m.attempts,
        m.next_attempt_at,
        m.session or None,
    )


def due_columns(m: Message) -> tuple[float | None, int]:
    """The due columns of a message as written with its lifecycle (due_at, polls)."""
    return (m.due_at, m.polls) if m.lifecycle is Lifecycle.ACCEPTED else (None, 0)


def insert_rows(messages: Sequence[Message]) -> list[tuple[Any, ...]]:
    """The rows inserting `messages`: their columns (MESSAGE_COLUMNS) and due columns."""
    return [(*message_row(m), *due_columns(m)) for m in messages]


def state_row(m: Message) -> tuple[Any, ...]:
    """What a state change writes: lifecycle, provider, done_at, text (cleared once
    handed over), provider ids, state, error, attempts, next attempt time."""
    ids = m.provider_ids
    return (
        int(m.lifecycle),
        m.provider,
        m.done_at,
        m.text,
        ids[0] if ids else None,
        _dumps(ids[1:]) if len(ids) > 1 else None,
        int(m.state) if m.state is not None else None,
        m.error,
        m.attempts,
        m.next_attempt_at,
    )


def row_message(row: Sequence[Any]) -> Message:
    """A message from its columns (MESSAGE_COLUMNS, in that order)."""
    (id_, lifecycle, _, provider, done_at, digits, created_at, system_id, src_ton, src_npi, src_addr, dst_ton,
     dst_npi, dst_addr, international, body, flash, parts, registered_delivery, preview, id_format, route, ack,
     provider_id, more_ids, state, error, attempts, next_attempt_at, session) = row  # fmt: skip
    if parts is None:
        loaded = [Part(id_, registered_delivery, created_at, preview, id_format)]
    else:
        loaded = [Part(*p) for p in _loads(parts)]
    ids: list[str] = []
    if provider_id is not None:
        ids.append(provider_id)
        if more_ids is not None:
            ids.extend(_loads(more_ids))
    return Message(
        id=id_,
        system_id=system_id,
        source=Address(src_ton, src_npi, src_addr),
        destination=Address(dst_ton, dst_npi, dst_addr),
        number=Number(digits, bool(international)),
        text=body,
        flash=bool(flash),
        parts=loaded,
        route=route.split(ROUTE_SEPARATOR) if route else [],
        ack=ack,
        created_at=created_at,
        lifecycle=Lifecycle(lifecycle),
        provider=provider,
        provider_ids=ids,
        state=MessageState(state) if state is not None else None,
        error=error,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        done_at=done_at,
        session=session or "",
    )


def dump_events(events: Sequence[HistoryEvent]) -> str:
    """The events of one message from one write, as one history row (SQLite): one
    row per message and write instead of one per event. Format version 2; a version
    1 row is one event (`dump_event`)."""
    return _dumps([2, [[e.at, e.kind, e.data] for e in events]])


def load_events(message_id: int, text: str | bytes) -> list[HistoryEvent]:
    """The events of one history row: several (version 2) or one (version 1)."""
    loaded = _loads(text)
    if loaded[0] == 1:
        return [HistoryEvent(loaded[1], loaded[2], loaded[3], loaded[4])]
    return [HistoryEvent(message_id, at, kind, data) for at, kind, data in loaded[1]]


def history_rows(events: Sequence[HistoryEvent]) -> list[tuple[Any, ...]]:
    """The history rows of one write: one per message, its events of this write
    together (`dump_events`): (message id, first event's time, events)."""
    by_message: dict[int, list[HistoryEvent]] = {}
    for e in events:
        group = by_message.get(e.message_id)
        if group is None:
            by_message[e.message_id] = [e]
        else:
            group.append(e)
    return [(message_id, group[0].at, dump_events(group)) for message_id, group in by_message.items()]
