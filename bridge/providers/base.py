"""The one small interface every provider connector implements.

A connector turns a core `Message` into its provider's HTTP call and the answer
into a `SendResult`; it turns the provider's delivery reports (callback, postback,
poll) into `StatusReport`s handed to `ProviderContext.report`. It never sees SMPP
bytes; it speaks in `command_status` and `message_state` values only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from bridge.core.history import iso
from bridge.core.message import UPGRADE_DUE, Message
from bridge.logging import get_logger
from bridge.metrics import Metrics
from bridge.smpp.constants import MessageState, Status


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
        return dataclasses.replace(self, http_status=http_status, provider_code=code)

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


ReportSink = Callable[[StatusReport], Awaitable[bool]]
DUE_RETRY = 10.0  # seconds before a due message whose report could not be stored is taken again


@dataclass
class ProviderContext:
    """What the bridge lends a connector."""

    report: ReportSink  # True when the report matched a message we know
    metrics: Metrics
    public_url: str
    clock: Callable[[], float] = time.time
    log: Any = None


class Provider(ABC):
    """Base of the connectors. `kind` is the config `type`; `name` its config key.

    Work a connector does later for an accepted message without a report (poll its
    status, issue a synthetic receipt, give up) is not a timer of its own: `due_after`
    gives the first due time, stored with the acceptance, and the bridge's due-timer
    loop (`bridge.core.due`) hands due messages to `on_due`, on one instance of a
    cluster, restarts included."""

    kind: ClassVar[str]
    supports_flash: ClassVar[bool] = False
    max_batch: int = 1  # recipients one request can carry (bulk coalescing)
    due_batch: int = 500  # due messages handed to one on_due call

    def __init__(self, name: str, settings: Any, context: ProviderContext) -> None:
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

    async def handle_callback(self, request: web.Request) -> web.StreamResponse:
        """A request to /callbacks/{name}/{token}, token already checked."""
        raise web.HTTPNotFound()

    def callback_token(self) -> str | None:
        """The secret path segment of this provider's callback URL, if it has one."""
        return None

    async def check_access(self) -> ProviderCheck:
        """One harmless authenticated request (never a message) that tells whether the
        provider is reachable and takes our credentials. Connectors whose API has such
        a call override this; the others say honestly that nothing was checked."""
        return ProviderCheck(checked=False, detail=NOT_CHECKABLE)


async def check_access(provider: Provider) -> dict[str, Any]:
    """`provider.check_access()` as JSON (with the provider's type), never raising."""
    try:
        check = await asyncio.wait_for(provider.check_access(), provider.settings.timeout + 5)
    except Exception as exc:
        check = ProviderCheck(checked=True, reachable=False, detail=f"check failed: {type(exc).__name__}")
    return {"type": provider.kind, **check.as_dict()}


async def send_checked(
    messages: Sequence[Message],
    check: Callable[[Message], SendResult | None],
    send_together: Callable[[list[Message]], Awaitable[list[SendResult]]],
) -> list[SendResult]:
    """Results in order: what `check` refuses is refused, the rest share one request."""
    results: list[SendResult | None] = [check(message) for message in messages]
    positions = [i for i, refused in enumerate(results) if refused is None]
    if positions:
        sent = await send_together([messages[i] for i in positions])
        for i, result in zip(positions, sent, strict=True):
            results[i] = result
    return [result for result in results if result is not None]
