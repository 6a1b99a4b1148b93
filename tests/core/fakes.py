"""Fakes for the core's unit tests: a store, a provider, a clock, a log and an SMPP
connection, each implementing the interface core code uses (`bridge/core/ports.py`:
`Store`, `Provider`; `bridge/core/connection.py`) and nothing more.

The store keeps what was committed apart from the objects core code holds, so a
test can ask what a crash would leave; its writes can be held (a slow disk) or made
to fail (a full one).
"""

from __future__ import annotations

import asyncio
import copy
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from bridge.config import Account, parse_config
from bridge.core.history import HistoryEvent, with_received
from bridge.core.message import Lifecycle, Message, PendingSegment, Receipt
from bridge.core.ports import PURGE_BATCH, Provider, ProviderContext, SendResult, Store, StoreUnavailable
from bridge.metrics import Metrics
from bridge.smpp.session import Session, SessionConfig


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingLog:
    """A structlog-like logger that keeps every line: (level, event, fields)."""

    def __init__(self, lines: list[tuple[str, str, dict[str, Any]]] | None = None, **bound: Any) -> None:
        self.lines = [] if lines is None else lines
        self._bound = bound

    def bind(self, **fields: Any) -> RecordingLog:
        return RecordingLog(self.lines, **{**self._bound, **fields})

    def _log(self, level: str, event: str, **fields: Any) -> None:
        self.lines.append((level, event, {**self._bound, **fields}))

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log("error", event, exc_info=True, **fields)

    def events(self, event: str) -> list[dict[str, Any]]:
        return [fields for _, name, fields in self.lines if name == event]

    def with_traceback(self, event: str) -> list[dict[str, Any]]:
        """The lines of `event` that carry a traceback (exc_info)."""
        return [fields for fields in self.events(event) if fields.get("exc_info")]


class FakeStore(Store):
    """An in-memory Store. `committed` holds copies of what was written, as a crash
    would find it; the objects handed to core code are kept apart (one per
    unfinished message, as the real stores do)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, Message] = {}
        self.committed: dict[int, Message] = {}
        self.receipts: dict[str, Receipt] = {}
        self.segments: dict[str, dict[int, PendingSegment]] = {}
        self.next_id = 1000
        self.reserved: list[int] = []
        self.fail: Exception | None = None  # every write fails with this
        self.fail_reserve: Exception | None = None  # every id reservation fails with this
        self.gate: asyncio.Event | None = None  # when set up, writes wait for it
        self.opened = False
        self.closed = False
        self.events: list[HistoryEvent] = []
        self._pending: set[asyncio.Future[None]] = set()

    # -- lifecycle
    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.closed = True

    # -- writes
    def _write(self, apply: Callable[[], None]) -> Awaitable[None]:
        async def commit() -> None:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail is not None:
                raise self.fail
            apply()

        write = asyncio.ensure_future(commit())
        self._pending.add(write)
        write.add_done_callback(self._pending.discard)
        return write

    async def _after_writes(self) -> None:
        """As in the real stores, whose reads queue behind the writes called before
        them: the due times a timer reads include an acceptance written just before."""
        if self._pending:
            await asyncio.wait(list(self._pending))

    def _keep(self, messages: Sequence[Message]) -> None:
        for message in messages:
            if message.lifecycle is Lifecycle.FINAL:
                self.live.pop(message.id, None)
            else:
                self.live[message.id] = message

    def insert_messages(self, messages: Sequence[Message]) -> Awaitable[None]:
        copies = [copy.deepcopy(m) for m in messages]
        self._keep(messages)
        return self._write(lambda: self.committed.update((m.id, m) for m in copies))

    def update_messages(self, messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> Awaitable[None]:
        copies = [copy.deepcopy(m) for m in messages]
        added = [copy.deepcopy(r) for r in receipts]
        self._keep(messages)

        def apply() -> None:
            for m in copies:  # the due time is the acceptance's, then reschedule's (as in the real stores)
                before = self.committed.get(m.id)
                if m.lifecycle is not Lifecycle.ACCEPTED:
                    m.due_at, m.polls = None, 0
                elif before is not None and before.lifecycle is Lifecycle.ACCEPTED:
                    m.due_at, m.polls = before.due_at, before.polls
                self.committed[m.id] = m
            for receipt in added:
                self.receipts.setdefault(receipt.id, receipt)

        return self._write(apply)

    def add_receipts(self, receipts: Sequence[Receipt]) -> Awaitable[None]:
        added = [copy.deepcopy(r) for r in receipts]

        def apply() -> None:
            for receipt in added:
                self.receipts.setdefault(receipt.id, receipt)

        return self._write(apply)

    def update_receipt(self, receipt: Receipt) -> Awaitable[None]:
        saved = copy.deepcopy(receipt)
        return self._write(lambda: self.receipts.__setitem__(saved.id, saved))

    def delete_receipt(self, receipt_id: str) -> Awaitable[None]:

        def apply() -> None:
            self.receipts.pop(receipt_id, None)

        return self._write(apply)

    # -- ids
    async def reserve_ids(self, count: int) -> int:
        if self.fail_reserve is not None:
            raise self.fail_reserve
        first = self.next_id
        self.next_id += count
        self.reserved.append(count)
        return first

    # -- reads
    def _current(self, message_id: int) -> Message | None:
        if message_id in self.live:
            return self.live[message_id]
        stored = self.committed.get(message_id)
        if stored is None:
            return None
        found = copy.deepcopy(stored)
        if found.lifecycle is not Lifecycle.FINAL:
            self.live[found.id] = found
        return found

    async def get_message(self, message_id: int) -> Message | None:
        for candidate in [*self.live.values(), *self.committed.values()]:
            if message_id == candidate.id or message_id in [p.message_id for p in candidate.parts]:
                return self._current(candidate.id)
        return None

    async def find_by_provider_id(self, provider: str, provider_id: str) -> Message | None:
        for candidate in [*self.live.values(), *self.committed.values()]:
            if candidate.provider == provider and provider_id in candidate.provider_ids:
                return self._current(candidate.id)
        return None

    async def messages_in(
        self, lifecycles: Sequence[int], provider: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[Message]:
        found = []
        for message_id in sorted(self.committed):
            stored = self.committed[message_id]
            wanted = stored.lifecycle in lifecycles and (provider is None or stored.provider == provider)
            if message_id > after_id and wanted:
                current = self._current(message_id)
                assert current is not None
                found.append(current)
        return found[:limit]

    async def due_messages(self, provider: str, now: float, limit: int = 500) -> list[Message]:
        await self._after_writes()
        due = sorted(
            (m for m in self._waiting(provider) if m.due_at is not None and m.due_at <= now),
            key=lambda m: (m.due_at, m.id),
        )[:limit]
        found = []
        for stored in due:
            current = self._current(stored.id)
            assert current is not None
            current.due_at, current.polls = stored.due_at, stored.polls
            found.append(current)
        return found

    async def next_due(self, provider: str) -> float | None:
        await self._after_writes()
        return min((m.due_at for m in self._waiting(provider) if m.due_at is not None), default=None)

    def _waiting(self, provider: str) -> list[Message]:
        return [m for m in self.committed.values() if m.provider == provider and m.lifecycle is Lifecycle.ACCEPTED]

    def reschedule(self, messages: Sequence[Message]) -> Awaitable[None]:
        changes = [(m.id, m.due_at, m.polls) for m in messages]

        def apply() -> None:
            for message_id, due_at, polls in changes:
                stored = self.committed.get(message_id)
                if stored is not None and stored.lifecycle is Lifecycle.ACCEPTED:
                    stored.due_at, stored.polls = due_at, polls

        return self._write(apply)

    async def purge(self, finished_before: float, limit: int = PURGE_BATCH) -> int:
        return 0

    async def add_segment(self, segment: PendingSegment) -> list[PendingSegment] | None:
        if self.fail is not None:
            raise self.fail
        pending = self.segments.setdefault(segment.set_key, {})
        pending[segment.index] = segment
        if len(pending) < segment.total:
            return None
        del self.segments[segment.set_key]
        return [pending[i] for i in sorted(pending)]

    async def take_expired_segments(self, created_before: float) -> list[PendingSegment]:
        return []

    async def pending_receipts(self, system_id: str | None = None, limit: int = 10000) -> list[Receipt]:
        return [r for r in self.receipts.values() if system_id is None or r.system_id == system_id][:limit]

    # -- history (the operator's view): events on their own, kept in memory
    def flush_history(self, message_ids: Sequence[int]) -> Awaitable[None]:
        events = self.journal.take(message_ids)
        return self._write(lambda: self.events.extend(events))

    async def history(self, message_id: int) -> list[HistoryEvent]:
        written = [e for e in self.events if e.message_id == message_id]
        return with_received(self.committed.get(message_id), written)

    async def find_by_destination(self, destination: str, since: float, until: float, limit: int) -> list[Message]:
        found = [m for m in self.committed.values() if m.destination.addr == destination]
        return sorted((m for m in found if since <= m.created_at < until), key=lambda m: m.created_at)[:limit]

    async def purge_history(self, before: float) -> int:
        return 0

    async def incomplete_sets(self, limit: int = 1000) -> list[list[PendingSegment]]:
        return [sorted(s.values(), key=lambda seg: seg.index) for s in self.segments.values()][:limit]


def provider_settings(**settings: Any) -> Any:
    """Settings of one provider as the config loader makes them (type simulator: the
    fields every provider has: circuit, flash_fallback, coalescing)."""
    return parse_config({"providers": {"p": {"type": "simulator", **settings}}}).providers["p"]


class FakeProvider(Provider):
    """Answers each send with the next scripted result (default: accepted, with a
    provider id per message); `gate`, when set up, holds every request until set."""

    kind: ClassVar[str] = "fake"

    def __init__(
        self,
        name: str = "p",
        *,
        results: Sequence[SendResult | Exception] = (),
        max_batch: int = 1,
        context: ProviderContext | None = None,
        **settings: Any,
    ) -> None:

        async def no_report(report: Any) -> bool:
            return False

        super().__init__(
            name, provider_settings(**settings), context or ProviderContext(no_report, Metrics(), "http://x")
        )
        self.results: deque[SendResult | Exception] = deque(results)
        self.max_batch = max_batch
        self.sent: list[Message] = []
        self.batches: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.in_request = 0
        self.most_in_request = 0
        self.started = False
        self.closed = False
        self.on_send: Callable[[Message], None] | None = None

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def _request(self, messages: Sequence[Message]) -> list[SendResult]:
        self.in_request += 1
        self.most_in_request = max(self.most_in_request, self.in_request)
        try:
            for message in messages:
                if self.on_send is not None:
                    self.on_send(message)
            if self.gate is not None:
                await self.gate.wait()
            self.sent.extend(messages)
            out = []
            for message in messages:
                scripted = self.results.popleft() if self.results else SendResult.accepted(f"{self.name}-{message.id}")
                if isinstance(scripted, Exception):
                    raise scripted
                out.append(scripted)
            return out
        finally:
            self.in_request -= 1

    async def send(self, message: Message) -> SendResult:
        return (await self._request([message]))[0]

    async def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        self.batches.append([m.id for m in messages])
        return await self._request(messages)


class FakeConnection:
    """What core code needs from one SMPP connection (`bridge.core.connection`), over
    a real sans-IO Session; the bytes it would write are kept in `written`."""

    def __init__(self, now: float = 0.0, account: Account | None = None, peer_host: str = "127.0.0.1") -> None:
        self.now = now
        self.session = Session(SessionConfig(), now)
        self.account = account
        self.peer_host = peer_host
        self.log = RecordingLog()
        self.written = bytearray()
        self.closed = False

    def flush(self) -> None:
        self.written += self.session.data_to_send()

    def close(self) -> None:
        self.flush()
        self.closed = True

    def unbind(self) -> None:
        self.session.unbind(self.now)
        self.flush()

    @property
    def connection_id(self) -> str:
        return "c1"

    def responses(self) -> list[tuple[int, int, int]]:
        """(command_id, command_status, sequence_number) of each PDU written, read from
        the 16-octet headers (SMPP 3.4 section 3.2) by hand."""
        out = []
        data = bytes(self.written)
        while len(data) >= 16:
            length, command_id, status, sequence = struct.unpack(">IIII", data[:16])
            out.append((command_id, status, sequence))
            data = data[length:]
        return out


def refuse(error: str = "disk full") -> StoreUnavailable:
    return StoreUnavailable(error)
