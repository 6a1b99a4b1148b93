"""Each message's life, as an append-only journal of events (the operator's "where is
my message?"): received, each attempt, the provider's reports, its receipts, the
outbox giving up, operator actions.

Core code notes an event here the moment it happens (`Journal.attempt`, `report`,
...); the event then waits, in memory, for the store write of the state change it
belongs to, which takes the pending events of the messages it writes and appends
them in the same transaction (SQLite: more rows in the same group commit; Redis: one
more command in the same MULTI). So history costs no extra commit and no fsync of its
own, and a state change is never stored without its event. An event that has no
state change to ride with (an operator's look at full numbers, say) is written on
its own with `Store.flush_history`. The first event, `received`, is not written at
all: everything it says is in the message's own row (its session, parts, route, ack
mode, created_at), so a store gives it from the message when the history is read
(`received_event`): the insert of an accepted submit is one row, not two (issue 16).

Events hold no message text and no phone number: provider ids, statuses, codes,
sessions, times. Everything is keyed by the Message id (a receipt's events by the
Message its receipt id names), and bounded by `[store] retention` like the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bridge.core.message import Message, Receipt, rebuild
from bridge.smpp.constants import MessageState, status_name

if TYPE_CHECKING:  # no import cycle at run time: the ports import the history
    from bridge.core.ports import SendResult, StatusReport

MAX_PENDING = 50_000  # messages with events waiting for their write; beyond, the oldest are dropped


@dataclass(slots=True)
class HistoryEvent:
    message_id: int
    at: float
    kind: str
    data: dict[str, Any]

    def __init__(self, message_id: int, at: float, kind: str, data: dict[str, Any]) -> None:
        self.message_id = message_id  # written out: see bridge/core/message.py
        self.at = at
        self.kind = kind
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return rebuild(self)


def received_event(message: Message) -> HistoryEvent | None:
    """The message's `received` event, from the message itself (the module docstring);
    None for a message without a session (stored before, with the event as a row)."""
    if not message.session:
        return None
    data = {
        "session": message.session,
        "parts": [p.message_id for p in message.parts],
        "route": list(message.route),
        "ack": message.ack,
    }
    return HistoryEvent(message.id, message.created_at, "received", data)


def with_received(message: Message | None, written: list[HistoryEvent]) -> list[HistoryEvent]:
    """A message's history as a store reads it: its `received` event (when the message
    is still stored and has one), then the events written."""
    received = received_event(message) if message is not None else None
    return written if received is None else [received, *written]


def receipt_owner(receipt_id: str, default: int = 0) -> int:
    """The Message a receipt belongs to: the first field of its id
    ("<Message id>:<Part message_id>:<state>"); `default` for an id without one."""
    head = receipt_id.split(":", 1)[0]
    return int(head) if head.isdigit() else default


def iso(at: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (None stays None)."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Journal:
    """Events noted, waiting for the store write that takes them (`take`)."""

    def __init__(self, clock: Callable[[], float] = time.time, limit: int = MAX_PENDING) -> None:
        self._clock = clock
        self._limit = limit
        self._pending: dict[int, list[HistoryEvent]] = {}  # in insertion order: the oldest first

    def note(self, message_id: int, kind: str, **data: Any) -> None:
        events = self._pending.get(message_id)
        if events is None:
            events = self._pending[message_id] = []
            if len(self._pending) > self._limit:  # a write that never came: forget its events
                del self._pending[next(iter(self._pending))]
        events.append(HistoryEvent(message_id, self._clock(), kind, data))

    def take(self, message_ids: Iterable[int]) -> list[HistoryEvent]:
        """The pending events of these messages, removed (for the write that stores them)."""
        taken: list[HistoryEvent] = []
        for message_id in message_ids:
            events = self._pending.pop(message_id, None)
            if events:
                taken.extend(events)
        return taken

    def discard(self, message_id: int) -> None:
        """The message will not be stored (refused upstream): its events go with it."""
        self._pending.pop(message_id, None)

    # -- the events, one method each, so their shapes live in one place ---------------

    def attempt(self, message: Message, provider: str, result: SendResult, elapsed: float | None) -> None:
        """One try to hand the message to `provider` (`elapsed` None: no request was made)."""
        data: dict[str, Any] = {
            "provider": provider,
            "outcome": result.outcome.value,
            "command_status": status_name(result.status),
        }
        if elapsed is not None:
            data["latency_ms"] = _ms(elapsed)
        if result.http_status is not None:
            data["http_status"] = result.http_status
        if result.provider_code:
            data["provider_code"] = result.provider_code
        if result.provider_ids:
            data["provider_ids"] = list(result.provider_ids)
        if result.reason:
            data["reason"] = result.reason
        if result.retry_after is not None:
            data["retry_after"] = result.retry_after
        self.note(message.id, "attempt", **data)

    def retry_scheduled(self, message: Message, delay: float) -> None:
        self.note(
            message.id,
            "retry_scheduled",
            attempts=message.attempts,
            next_attempt_at=message.next_attempt_at,
            delay=round(delay, 3),
        )

    def gave_up(self, message: Message, state: MessageState, reason: str) -> None:
        self.note(message.id, "gave_up", attempts=message.attempts, stat=state.stat, reason=reason)

    def recovered(self, message: Message, reason: str) -> None:
        """Taken up again from the store (a restart, an adopted outbox)."""
        self.note(message.id, "recovered", lifecycle=message.lifecycle.name.lower(), reason=reason)

    def report(self, message: Message, report: StatusReport) -> None:
        """A provider's word (callback, postback, poll, or the connector's own timeout)."""
        self.note(
            message.id,
            "report",
            provider=report.provider,
            provider_id=report.provider_id,
            raw=report.detail,
            stat=report.state.stat,
            err=report.error,
            reported_at=report.at,
        )

    def receipt_answered(self, receipt: Receipt, session: str, status: int | None) -> None:
        """The ESME answered a deliver_sm receipt (None: no answer in time)."""
        self.note(
            receipt_owner(receipt.id, receipt.message_id),
            "receipt_sent",
            part=receipt.message_id,
            stat=receipt.state.stat,
            session=session,
            deliver_sm_resp=status_name(status) if status is not None else "no answer",
            attempt=receipt.attempts + 1,
        )

    def receipt_retry(self, receipt: Receipt) -> None:
        self.note(
            receipt_owner(receipt.id, receipt.message_id),
            "receipt_retry",
            part=receipt.message_id,
            attempts=receipt.attempts,
            next_attempt_at=receipt.next_attempt_at,
        )

    def receipt_dropped(self, receipt: Receipt) -> None:
        self.note(
            receipt_owner(receipt.id, receipt.message_id),
            "receipt_dropped",
            part=receipt.message_id,
            attempts=receipt.attempts,
        )

    def operator(self, message_id: int, action: str, who: str, reason: str = "", **data: Any) -> None:
        self.note(message_id, "operator", action=action, who=who, reason=reason, **data)
