"""The ports of the core: the interfaces core code needs from the outside world, and
the values that cross them. Core imports only these; `bridge/store/` and
`bridge/providers/` implement them and import nothing from each other; the asyncio
edges (`bridge/web.py`) hand a provider's callback over as a `CallbackRequest`, not
as their HTTP server's own request type.

- `Store`: everything the bridge must not lose (SQLite, Redis).
- `Provider`: one connector per HTTP SMS API; what one send attempt means
  (`SendResult`, `Outcome`), a provider's word on a message (`StatusReport`), its
  callbacks (`CallbackRequest` -> `CallbackAnswer`), its access check (`ProviderCheck`).

(`Cluster` and `ReceiptQueue`, what instances sharing one store agree on, are ports
too: they live in `core/cluster.py` beside their single-instance implementations.)

Store writes are queued the moment they are called, in call order, and return an
awaitable that completes once the write is durable (group-committed with whatever
else was waiting). A caller that must not answer before the write is safe awaits
it; one that only needs the order (a receipt acknowledged, an attempt counted)
may leave it running: failures are logged by the store.

A connector turns a core `Message` into its provider's HTTP call and the answer into
a `SendResult`; it turns the provider's delivery reports (callback, postback, poll)
into `StatusReport`s handed to `ProviderContext.report`. It never sees SMPP bytes; it
speaks in `command_status` and `message_state` values only.
"""

from __future__ import annotations

import asyncio
import enum
import http
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message as MimeMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from bridge.config import ProviderBase
from bridge.core.history import HistoryEvent, Journal, iso
from bridge.core.message import UPGRADE_DUE, Message, PendingSegment, Receipt
from bridge.logging import get_logger
from bridge.metrics import Metrics
from bridge.smpp.constants import MessageState, Status

# -- the store ---------------------------------------------------------------------------

PURGE_BATCH = 1000  # messages one purge step deletes: a few ms of the store's time

# message_ids are in [1, MAX_MESSAGE_ID]: at most 10 decimal digits (SMPP v3.4 Appendix
# B's receipt id) or 8 hex digits (a v3.3 bind's message_id), and they fit the
# unsigned 32-bit integer some clients keep them in. The counter wraps; ids still
# held by a stored message are skipped.
MAX_MESSAGE_ID = 2**32 - 1


class StoreUnavailable(Exception):
    """The store cannot take writes now (disk full, Redis down): answer ESME_RSYSERR."""


class Store(ABC):
    """Messages, their parts and provider ids, segments, receipts, due times, history:
    `bridge/store/sqlite.py` (one instance) and `bridge/store/redis` (several)."""

    def __init__(self) -> None:
        # Events of messages' lives noted by core code; every write below takes the
        # pending events of the messages it writes into the same transaction.
        self.journal = Journal()

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Finish queued writes, then close."""

    # ids
    @abstractmethod
    async def reserve_ids(self, count: int) -> int:
        """First id of a block of `count` ids in [1, MAX_MESSAGE_ID] that nobody (no
        restart, no other instance) gets while a message or part holding one of them
        is stored; the counter wraps. `count` 0 checks that the store takes writes."""

    # messages
    @abstractmethod
    def insert_messages(self, messages: Sequence[Message]) -> Awaitable[None]:
        """New messages, with their part-id and provider-id indexes (and the due time
        of one inserted ACCEPTED)."""

    @abstractmethod
    def update_messages(self, messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> Awaitable[None]:
        """New lifecycle / state / provider ids of stored messages, and `receipts` to
        add, in one transaction (a final state and its receipts land together). A
        message's `due_at` and `polls` are written when it becomes ACCEPTED (and by
        `reschedule`), cleared when it leaves ACCEPTED, and otherwise left as stored."""

    @abstractmethod
    async def get_message(self, message_id: int) -> Message | None:
        """By Message id or by any of its Part ids."""

    @abstractmethod
    async def find_by_provider_id(self, provider: str, provider_id: str) -> Message | None: ...

    @abstractmethod
    async def messages_in(
        self, lifecycles: Sequence[int], provider: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[Message]:
        """Messages in the given lifecycles, by id (outbox, polling, recovery)."""

    # due times of accepted messages (written by insert/update_messages with the
    # acceptance, cleared with the final state)
    @abstractmethod
    async def due_messages(self, provider: str, now: float, limit: int = 500) -> list[Message]:
        """ACCEPTED messages of `provider` whose `due_at` is at or before `now`, the
        earliest first, with `due_at` and `polls` filled in."""

    @abstractmethod
    async def next_due(self, provider: str) -> float | None:
        """The earliest `due_at` of `provider`'s messages; None when none is due ever."""

    @abstractmethod
    def reschedule(self, messages: Sequence[Message]) -> Awaitable[None]:
        """Store the new `due_at` (None: nothing more to do) and `polls` of each
        message that is still ACCEPTED; a message that became final meanwhile keeps
        no due time."""

    @abstractmethod
    async def purge(self, finished_before: float, limit: int = PURGE_BATCH) -> int:
        """Delete up to `limit` final messages done before the cutoff, with their
        indexes; returns how many. One short step: submits wait for it."""

    async def purge_due(self, finished_before: float, batch: int = PURGE_BATCH) -> int:
        """Delete every final message done before the cutoff, `batch` at a time,
        letting the event loop run between batches; returns how many."""
        total = 0
        while True:
            deleted = await self.purge(finished_before, batch)
            total += deleted
            if deleted < batch:
                return total
            await asyncio.sleep(0)

    # segments of concatenated messages
    @abstractmethod
    async def add_segment(self, segment: PendingSegment) -> list[PendingSegment] | None:
        """Store one segment; when its set is complete, remove and return the set,
        ordered by index."""

    @abstractmethod
    async def take_expired_segments(self, created_before: float) -> list[PendingSegment]:
        """Remove and return the segments of sets that began before the cutoff."""

    # receipts
    @abstractmethod
    def add_receipts(self, receipts: Sequence[Receipt]) -> Awaitable[None]:
        """Store receipts; one with an `id` already stored is left as it is."""

    @abstractmethod
    def update_receipt(self, receipt: Receipt) -> Awaitable[None]:
        """Store a new attempt count and next attempt time."""

    @abstractmethod
    def delete_receipt(self, receipt_id: str) -> Awaitable[None]: ...

    def delete_receipts(self, receipt_ids: Sequence[str]) -> None:
        """Delete receipts acknowledged together (one write where the store can batch
        them); failures are the store's to log or retry, as `delete_receipt`'s."""
        for receipt_id in receipt_ids:
            self.delete_receipt(receipt_id)

    @abstractmethod
    async def pending_receipts(self, system_id: str | None = None, limit: int = 10000) -> list[Receipt]: ...

    # history and the operator's queries (bridge.core.lookup)
    @abstractmethod
    def flush_history(self, message_ids: Sequence[int]) -> Awaitable[None]:
        """Write the pending events of these messages on their own (events with no
        state change to ride with: operator actions)."""

    @abstractmethod
    async def history(self, message_id: int) -> list[HistoryEvent]:
        """The events of one Message (by its id, not a Part id), oldest first."""

    @abstractmethod
    async def find_by_destination(self, destination: str, since: float, until: float, limit: int) -> list[Message]:
        """Messages to `destination` received in [since, until), oldest first."""

    @abstractmethod
    async def purge_history(self, before: float) -> int:
        """Delete history events older than the cutoff; returns how many."""

    @abstractmethod
    async def incomplete_sets(self, limit: int = 1000) -> list[list[PendingSegment]]:
        """The concatenated sets still waiting for parts (segments without their
        data), oldest first."""


# -- providers -------------------------------------------------------------------------


class Outcome(enum.Enum):
    """What is known about one attempt (DESIGN.md, "Failover and retries")."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"  # a definitive answer: no failover, the mapped status
    NOT_SENT = "not_sent"  # nothing reached the provider (refused, 429, 5xx): fail over / retry
    UNKNOWN = "unknown"  # the request may have reached it: never blindly re-sent


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status: Status = Status.ESME_ROK
    provider_ids: tuple[str, ...] = ()
    retry_after: float | None = None
    reason: str = ""  # for logs: never a number, a text or a secret
    metric: str = "accepted"  # upstream_requests outcome label
    # For the message's history (never a number or a text): the HTTP status of the
    # provider's answer, and the provider's own error code or word when it gave one.
    http_status: int | None = None
    provider_code: str = ""

    def answered(self, http_status: int, provider_code: str = "") -> SendResult:
        """This result, noting the HTTP answer it came from (and the provider's code)."""
        code = (provider_code or self.provider_code)[:64]
        # The constructor, not dataclasses.replace: this runs once per message and
        # replace walks the fields reflectively.
        return SendResult(
            outcome=self.outcome,
            status=self.status,
            provider_ids=self.provider_ids,
            retry_after=self.retry_after,
            reason=self.reason,
            metric=self.metric,
            http_status=http_status,
            provider_code=code,
        )

    @classmethod
    def accepted(cls, *provider_ids: str) -> SendResult:
        return cls(Outcome.ACCEPTED, Status.ESME_ROK, tuple(provider_ids))

    @classmethod
    def rejected(cls, status: Status, reason: str) -> SendResult:
        return cls(Outcome.REJECTED, status, reason=reason, metric="rejected")

    @classmethod
    def not_sent(
        cls, status: Status, reason: str, retry_after: float | None = None, metric: str = "error"
    ) -> SendResult:
        return cls(Outcome.NOT_SENT, status, retry_after=retry_after, reason=reason, metric=metric)

    @classmethod
    def unknown(cls, reason: str, metric: str = "timeout") -> SendResult:
        return cls(Outcome.UNKNOWN, Status.ESME_RSYSERR, reason=reason, metric=metric)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A provider's word on one message, keyed the way the store indexes it."""

    provider: str
    provider_id: str
    state: MessageState
    error: int = 0
    at: float = field(default_factory=time.time)
    detail: str = ""  # the provider's own status word, for logs and the message's history


@dataclass(frozen=True, slots=True)
class ProviderCheck:
    """The result of `Provider.check_access`: can we reach the provider, does it take our
    credentials? `checked` False: the API has no harmless call, nothing was sent."""

    checked: bool
    reachable: bool | None = None
    credentials: str = "unknown"  # "ok" | "refused" | "unknown"
    http_status: int | None = None
    latency_ms: float | None = None
    detail: str = ""
    at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        """Nothing wrong was found (an unchecked provider is not a failure)."""
        return not self.checked or (self.reachable is True and self.credentials != "refused")

    def as_dict(self) -> dict[str, Any]:
        """The JSON of /readyz, /admin/providers and `check-providers --json`."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "reachable": self.reachable,
            "credentials": self.credentials,
            "http_status": self.http_status,
            "latency_ms": self.latency_ms,
            "detail": self.detail,
            "at": iso(self.at),
        }


NOT_CHECKABLE = "the API documents no call that checks credentials without sending a message"


# True when the report matched a message we know, once it is committed; raises
# StoreUnavailable when the store could not take it (answer 5xx: the provider tries again).
ReportSink = Callable[[StatusReport], Awaitable[bool]]
DUE_RETRY = 10.0  # seconds before a due message whose report could not be stored is taken again


@dataclass
class ProviderContext:
    """What the bridge lends a connector."""

    report: ReportSink
    metrics: Metrics
    public_url: str
    clock: Callable[[], float] = time.time
    log: Any = None


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """A provider's call to its callback URL, as its connector sees it: plain values,
    none of the HTTP server's types, so the intake (`bridge/web.py`) can change without
    touching a connector. `query` holds the first value of each parameter; header
    names are lower case; `body` is complete (its size already bounded by the intake);
    `peer` is the caller's address."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    peer: str | None = None

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters ("" if none)."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    @property
    def charset(self) -> str:
        """The body's charset parameter, UTF-8 when it names none."""
        content_type = self.headers.get("content-type", "")
        if ";" not in content_type:  # no parameters: the common case of every callback
            return "utf-8"
        for parameter in content_type.split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                return value.strip().strip('"')
        return "utf-8"

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON (or not in its charset)."""
        try:
            return json.loads(self.body.decode(self.charset))
        except LookupError as exc:  # an unknown charset
            raise ValueError(str(exc)) from exc

    def form(self) -> dict[str, str]:
        """Form fields of a urlencoded or multipart/form-data body (the first value of
        each name); empty for a body of any other type. ValueError when it cannot be read."""
        if self.content_type in ("", "application/x-www-form-urlencoded"):
            try:
                pairs = parse_qsl(self.body.decode(self.charset), keep_blank_values=True)
            except LookupError as exc:
                raise ValueError(str(exc)) from exc
        elif self.content_type == "multipart/form-data":
            pairs = _multipart_fields(self.headers["content-type"], self.body)
        else:
            return {}
        fields: dict[str, str] = {}
        for name, value in pairs:
            fields.setdefault(name, value)
        return fields


def _multipart_fields(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The named text fields of a multipart/form-data body (RFC 7578)."""
    mime = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not mime.is_multipart():
        raise ValueError("not a multipart body")
    fields = []
    for part in mime.iter_parts():
        assert isinstance(part, MimeMessage)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("multipart field without a name")
        payload = part.get_payload(decode=True)
        charset = part.get_content_charset() or "utf-8"
        fields.append((name, payload.decode(charset, "replace") if isinstance(payload, bytes) else ""))
    return fields


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    """What the intake answers a provider's callback (a plain-text body)."""

    status: int = 200
    body: str = "OK"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, body: str | None = None, headers: Mapping[str, str] | None = None) -> CallbackAnswer:
        """An error answer; the body says the status in words unless given."""
        return cls(status, body if body is not None else f"{status}: {http.HTTPStatus(status).phrase}", headers or {})


class Provider(ABC):
    """Base of the connectors. `kind` is the config `type`; `name` its config key.

    Work a connector does later for an accepted message without a report (poll its
    status, issue a synthetic receipt, give up) is not a timer of its own: `due_after`
    gives the first due time, stored with the acceptance, and the bridge's due-timer
    loop (`bridge.core.due`) hands due messages to `on_due`, on one instance of a
    cluster, restarts included."""

    kind: ClassVar[str] = ""  # the config `type`: each connector names its own
    supports_flash: ClassVar[bool] = False
    max_batch: int = 1  # recipients one request can carry (bulk coalescing)
    due_batch: int = 500  # due messages handed to one on_due call

    def __init__(self, name: str, settings: ProviderBase, context: ProviderContext) -> None:
        self.name = name
        self.settings = settings
        self.context = context
        self.log: Any = (context.log or get_logger("provider")).bind(provider=name)

    async def start(self) -> None:
        """Open pools, start pollers."""

    async def close(self) -> None:
        """Close pools and stop background work."""

    @abstractmethod
    async def send(self, message: Message) -> SendResult: ...

    async def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """The same text to several destinations, one result per message, in order.
        Providers whose API takes several recipients in one request override this
        (and `max_batch`); the default sends them one by one, concurrently."""
        return list(await asyncio.gather(*(self.send(message) for message in messages)))

    def due_after(self, message: Message) -> float | None:
        """Seconds after its acceptance when this connector must act on `message` if
        no report came (None: never, the provider reports by itself or not at all)."""
        return None

    async def on_due(self, messages: Sequence[Message]) -> list[float | None]:
        """Act on messages whose due time came (ACCEPTED, `polls` = times already
        acted on). Returns, per message, its next due time (epoch seconds) or None
        when nothing more is to be done; reports go through `context.report`."""
        return [None] * len(messages)

    async def reported(self, reports: Sequence[StatusReport]) -> list[bool]:
        """Hand each report to the bridge, concurrently; per report, True once it is
        committed (or its id is unknown), False when storing it failed (the store is
        away): the caller acts on that message again later."""
        results = await asyncio.gather(*(self.context.report(r) for r in reports), return_exceptions=True)
        out = []
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                self.log.warning("report_not_stored", error=str(result))
            out.append(not isinstance(result, BaseException))
        return out

    async def report_timed_out(
        self, messages: Sequence[Message], timeout: float, state: MessageState, detail: str
    ) -> list[float | None]:
        """`on_due` of a connector whose only due work is to end a message in `state`
        `timeout` seconds (> 0) after its acceptance (a synthetic receipt, a give-up).
        A message accepted before due times were stored (`UPGRADE_DUE`) waits for
        `timeout` from its creation."""
        now = self.context.clock()
        due: list[float | None] = []
        reports: dict[int, StatusReport] = {}
        for message in messages:
            not_before = message.created_at + timeout
            if timeout > 0 and message.due_at == UPGRADE_DUE and not_before > now:
                due.append(not_before)
                continue
            if timeout > 0 and message.provider_ids:
                reports[len(due)] = StatusReport(self.name, message.provider_ids[0], state, 0, now, detail)
            due.append(None)
        return await self.report_due(due, reports)

    async def report_due(self, due: list[float | None], reports: Mapping[int, StatusReport]) -> list[float | None]:
        """`on_due`'s answer: `due`, the next due time of each message once the report
        at its position in `reports` (if any) is stored; a message whose report could
        not be stored is taken again after DUE_RETRY."""
        positions = list(reports)
        stored = await self.reported([reports[i] for i in positions])
        retry = self.context.clock() + DUE_RETRY
        for i, ok in zip(positions, stored, strict=True):
            if not ok:
                due[i] = retry
        return due

    async def handle_callback(self, request: CallbackRequest) -> CallbackAnswer:
        """A request to /callbacks/{name}/{token}, token and source already checked."""
        return CallbackAnswer.error(404)

    def callback_token(self) -> str | None:
        """The secret path segment of this provider's callback URL, if it has one."""
        return None

    async def check_access(self) -> ProviderCheck:
        """One harmless authenticated request (never a message) that tells whether the
        provider is reachable and takes our credentials. Connectors whose API has such
        a call override this; the others say honestly that nothing was checked."""
        return ProviderCheck(checked=False, detail=NOT_CHECKABLE)
