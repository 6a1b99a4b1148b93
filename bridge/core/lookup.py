"""The operator's read side: one message's whole life, messages to a number, queues.

Everything here answers from the Store alone (so the CLI can read a stopped daemon's
SQLite file) plus, when the daemon is the one asking, what only it knows (receivers
bound). Views are plain JSON-able dicts: the admin API returns them as they are and
the CLI prints them as text or, with --json, the same JSON.

Phone numbers are masked to their last digits unless the caller asks for them in
full; message text is never part of a view.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bridge.config import Config
from bridge.core.history import HistoryEvent, iso
from bridge.core.ids import parse_id, render_id
from bridge.core.message import Lifecycle, Message, PendingSegment, Receipt
from bridge.core.numbers import TON_INTERNATIONAL, TON_UNKNOWN, Number, normalise
from bridge.core.ports import Store
from bridge.core.receipts import wants_receipt

KEEP_DIGITS = 4  # a masked number shows this many of its last digits
LIST_LIMIT = 20  # message ids listed per queue line
SCAN_LIMIT = 100_000  # messages read for one queue summary at most
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PHONE = re.compile(r"^\+?\d{7,}$")


class LookupFailed(Exception):
    """A request the lookup cannot answer as asked (a bad time, an unknown provider)."""


def parse_time(text: str, now: float) -> float:
    """`90s`, `15m`, `1h`, `2d`, `1w` ago; an ISO 8601 time (UTC unless it says); epoch seconds."""
    text = text.strip()
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LookupFailed(f"not a time: {text!r} (use 1h, 30m, 2d or an ISO 8601 time)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def mask(number: str, keep: int = KEEP_DIGITS) -> str:
    """`*******4567`: the last digits only, enough to match what a customer reads out."""
    if len(number) <= keep:
        return "*" * len(number)
    return "*" * (len(number) - keep) + number[-keep:]


def destination_keys(text: str) -> list[str]:
    """A number as the operator types it -> the forms messages may be indexed by (the
    normalised number, E.164 digits or national digits of an unknown country): read as
    an ESME's TON 0 would be, and as international digits."""
    keys: list[str] = []
    for ton in (TON_UNKNOWN, TON_INTERNATIONAL):
        number = normalise(text, ton)
        if isinstance(number, Number) and number.digits not in keys:
            keys.append(number.digits)
    return keys


class Lookup:
    """Views for the operator. `receivers(system_id)` (the daemon only): receiver
    sessions of an account bound to this instance."""

    def __init__(
        self,
        store: Store,
        config: Config | None = None,
        receivers: Callable[[str], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self._receivers = receivers
        self._clock = clock

    # -- one message -----------------------------------------------------------------

    async def find_message(self, key: str) -> Message | None:
        """By our message_id as an ESME saw it (decimal, or hex for hex accounts), of
        the Message or of any of its parts."""
        key = key.strip()
        for fmt in ("decimal", "hex"):
            message_id = parse_id(key[2:] if fmt == "hex" and key.lower().startswith("0x") else key, fmt)
            if message_id is not None:
                message = await self.store.get_message(message_id)
                if message is not None:
                    return message
        return None

    async def find_by_provider_id(self, provider_id: str, provider: str | None = None) -> Message | None:
        names = [provider] if provider else sorted(self.config.providers) if self.config else []
        if not names:
            raise LookupFailed("give the provider's name (--provider) to look up a provider id")
        for name in names:
            message = await self.store.find_by_provider_id(name, provider_id)
            if message is not None:
                return message
        return None

    async def message_view(self, message: Message, numbers: bool = False) -> dict[str, Any]:
        history = await self.store.history(message.id)
        fmt = self._id_format(message.system_id)
        waiting = [r for r in await self.store.pending_receipts(message.system_id) if _owned(r, message)]
        received = next((e for e in history if e.kind == "received"), None)
        view: dict[str, Any] = {
            "message_id": render_id(message.id, fmt),
            "system_id": message.system_id,
            "session": received.data.get("session") if received else None,
            "received_at": iso(message.created_at),
            "source": message.source.addr,
            "destination": message.destination.addr,
            "number": message.number.e164 or message.number.digits,
            "flash": message.flash,
            "ack": message.ack,
            "parts": [
                {"message_id": render_id(p.message_id, fmt), "registered_delivery": p.registered_delivery}
                for p in message.parts
            ],
            "route": list(message.route),
            "lifecycle": message.lifecycle.name.lower(),
            "state": message.state.stat if message.state is not None else None,
            "error": message.error,
            "done_at": iso(message.done_at),
            "provider": message.provider,
            "provider_ids": list(message.provider_ids),
            # The outbox counts its own; an upstream message's attempts are in its history.
            "attempts": max(message.attempts, sum(1 for e in history if e.kind == "attempt")),
            "next_attempt_at": iso(message.next_attempt_at) if message.lifecycle is Lifecycle.QUEUED else None,
            "receipts": self._receipts_of(message, history, waiting, fmt),
            "receipts_waiting": [
                {
                    "part": render_id(r.message_id, fmt),
                    "stat": r.state.stat,
                    "attempts": r.attempts,
                    "next_attempt_at": iso(r.next_attempt_at) if r.next_attempt_at else None,
                }
                for r in waiting
            ],
            "history": [self._event(e.at, e.kind, e.data, fmt) for e in history],
            "numbers": "full" if numbers else "masked",
        }
        return view if numbers else _masked(view, message)

    @staticmethod
    def _receipts_of(
        message: Message, history: list[HistoryEvent], waiting: list[Receipt], fmt: str
    ) -> list[dict[str, Any]]:
        """Per part: did the ESME ask for this final state's receipt, when was it
        queued (with the final state), is it still waiting, how often was it sent."""
        state, done = message.state, message.done_at
        final = message.lifecycle is Lifecycle.FINAL and state is not None and done is not None
        out = []
        for part in message.parts:
            asked = final and state is not None and wants_receipt(part.registered_delivery, state)
            sent = [e for e in history if e.kind == "receipt_sent" and e.data.get("part") == part.message_id]
            out.append(
                {
                    "part": render_id(part.message_id, fmt),
                    "registered_delivery": part.registered_delivery,
                    "asked": asked if final else None,
                    "queued_at": iso(done) if asked else None,
                    "waiting": any(r.message_id == part.message_id for r in waiting),
                    "sent": len(sent),
                    "acknowledged": any(e.data.get("deliver_sm_resp") == "ESME_ROK" for e in sent),
                }
            )
        return out

    def _event(self, at: float, kind: str, data: dict[str, Any], fmt: str) -> dict[str, Any]:
        out: dict[str, Any] = {"at": iso(at), "event": kind}
        for name, value in data.items():
            if name in ("part", "parts", "receipts"):
                value = [render_id(v, fmt) for v in value] if isinstance(value, list) else render_id(value, fmt)
            elif name in ("next_attempt_at", "reported_at") and isinstance(value, (int, float)):
                value = iso(value) if value else None
            out[name] = value
        return out

    # -- messages to a number --------------------------------------------------------

    async def find(
        self, to: str, since: float, until: float | None = None, limit: int = 100, numbers: bool = False
    ) -> dict[str, Any]:
        keys = destination_keys(to)
        if not keys:
            raise LookupFailed("not a phone number")
        destination = keys[0]
        until = self._clock() if until is None else until
        found: list[Message] = []
        for key in keys:
            found.extend(await self.store.find_by_destination(key, since, until + 0.001, limit))
        found = sorted({m.id: m for m in found}.values(), key=lambda m: m.created_at)[:limit]
        rows = []
        for m in found:
            row = {
                "message_id": self.render(m.id, m.system_id),
                "received_at": iso(m.created_at),
                "system_id": m.system_id,
                "destination": m.number.digits if numbers else mask(m.number.digits),
                "lifecycle": m.lifecycle.name.lower(),
                "state": m.state.stat if m.state is not None else None,
                "provider": m.provider,
                "parts": len(m.parts),
            }
            rows.append(row)
        return {
            "destination": destination if numbers else mask(destination),
            "since": iso(since),
            "until": iso(until),
            "messages": rows,
            "numbers": "full" if numbers else "masked",
        }

    # -- queues ----------------------------------------------------------------------

    async def queues(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "at": iso(now),
            "outbox": await self._outbox(),
            "receipts": await self._receipts(),
            "incomplete_sets": await self._incomplete_sets(now),
            "awaiting_reports": await self._awaiting_reports(now),
        }

    async def _scan(self, lifecycles: list[int], provider: str | None = None) -> list[Message]:
        out: list[Message] = []
        after = 0
        while len(out) < SCAN_LIMIT:
            batch = await self.store.messages_in(lifecycles, provider=provider, limit=1000, after_id=after)
            if not batch:
                break
            out.extend(batch)
            after = batch[-1].id
        return out

    async def _outbox(self) -> list[dict[str, Any]]:
        by_provider: dict[str, list[Message]] = {}
        for m in await self._scan([Lifecycle.QUEUED, Lifecycle.SENDING]):
            by_provider.setdefault(m.route[0] if m.route else "none", []).append(m)
        lines = []
        for provider, messages in sorted(by_provider.items()):
            messages.sort(key=lambda m: m.next_attempt_at)
            queued = [m for m in messages if m.lifecycle is Lifecycle.QUEUED]
            lines.append(
                {
                    "provider": provider,
                    "messages": len(messages),
                    "sending": len(messages) - len(queued),
                    "next_attempt_at": iso(queued[0].next_attempt_at) if queued else None,
                    "oldest_received_at": iso(min(m.created_at for m in messages)),
                    "first": [
                        {
                            "message_id": self.render(m.id, m.system_id),
                            "attempts": m.attempts,
                            "next_attempt_at": iso(m.next_attempt_at),
                        }
                        for m in messages[:LIST_LIMIT]
                    ],
                }
            )
        return lines

    async def _receipts(self) -> list[dict[str, Any]]:
        by_account: dict[str, list[Receipt]] = {}
        for receipt in await self.store.pending_receipts(None, SCAN_LIMIT):
            by_account.setdefault(receipt.system_id, []).append(receipt)
        lines = []
        for system_id, receipts in sorted(by_account.items()):
            retrying = [r for r in receipts if r.attempts > 0]
            receivers = self._receivers(system_id) if self._receivers is not None else None
            if receivers is None:
                why = "the daemon is not running"
            elif receivers == 0:
                why = "no receiver bound (bind_receiver or bind_transceiver)"
            elif retrying:
                why = "the ESME refused or did not answer deliver_sm: retrying"
            else:
                why = "being delivered"
            lines.append(
                {
                    "system_id": system_id,
                    "waiting": len(receipts),
                    "retrying": len(retrying),
                    "next_attempt_at": iso(min(r.next_attempt_at for r in retrying)) if retrying else None,
                    "receivers_bound": receivers,
                    "why": why,
                    "oldest_done_at": iso(min(r.done_at for r in receipts)),
                }
            )
        return lines

    async def _incomplete_sets(self, now: float) -> list[dict[str, Any]]:
        lines = []
        for segments in await self.store.incomplete_sets():
            first: PendingSegment = segments[0]
            fmt = self._id_format(first.system_id)
            began = min(s.submitted_at for s in segments)
            lines.append(
                {
                    "system_id": first.system_id,
                    "destination": mask(first.destination.addr),
                    "received": len(segments),
                    "total": first.total,
                    "age_seconds": round(now - began, 1),
                    "parts": [render_id(s.message_id, fmt) for s in segments],
                }
            )
        return lines

    async def _awaiting_reports(self, now: float) -> list[dict[str, Any]]:
        """Per provider: accepted messages waiting for its report, and those whose
        stored due time (the next poll, synthetic receipt or give-up) has passed
        without the bridge acting: normally none for long, since the due timer acts
        at the due time; many mean nobody runs that provider's due timer (the daemon
        is stopped; in a cluster, the lease holder is gone) or the store fails."""
        if self.config is None:
            return []
        lines = []
        for name in sorted(self.config.providers):
            awaiting = await self._scan([Lifecycle.ACCEPTED], provider=name)
            overdue = await self.store.due_messages(name, now, SCAN_LIMIT)
            next_due = await self.store.next_due(name)
            lines.append(
                {
                    "provider": name,
                    "awaiting": len(awaiting),
                    "next_due_at": iso(next_due),
                    "overdue": len(overdue),
                    "oldest_overdue_received_at": iso(min(m.created_at for m in overdue)) if overdue else None,
                    "first_overdue": [self.render(m.id, m.system_id) for m in overdue[:LIST_LIMIT]],
                }
            )
        return lines

    # -- helpers ---------------------------------------------------------------------

    def _id_format(self, system_id: str) -> str:
        account = self.config.account(system_id) if self.config is not None else None
        return account.message_id_format if account is not None else "decimal"

    def render(self, message_id: int, system_id: str) -> str:
        """An id as the account's ESMEs see it."""
        return render_id(message_id, self._id_format(system_id))


def _owned(receipt: Receipt, message: Message) -> bool:
    return receipt.id.split(":", 1)[0] == str(message.id)


def _masked(view: dict[str, Any], message: Message) -> dict[str, Any]:
    """The view with the message's phone numbers cut to their last digits, wherever they
    appear (FlashSMS provider ids carry the phone)."""
    numbers = [n for n in (message.number.digits, message.destination.addr, message.source.addr) if _PHONE.match(n)]
    replacements = {n.lstrip("+"): mask(n.lstrip("+")) for n in numbers}

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            for number, masked in replacements.items():
                value = value.replace(number, masked)
            return value
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: v if k in _NOT_NUMBERS else scrub(v) for k, v in value.items()}
        return value

    return {k: v if k in _NOT_NUMBERS else scrub(v) for k, v in view.items()}


# Fields that hold our ids or times, never a phone number: left as they are.
_NOT_NUMBERS = frozenset({"message_id", "part", "parts", "at", "received_at", "done_at", "next_attempt_at"})
