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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from bridge.core.history import iso
from bridge.core.message import Message
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
# lease(provider name, ttl seconds) -> may this instance poll now? (one poller per cluster)
PollLease = Callable[[str, float], Awaitable[bool]]
POLL_LEASE_TTL = 15.0  # a dead poller's lease lapses after this; a live one keeps renewing it


async def always_lease(name: str, ttl: float) -> bool:
    """One instance: it is always the poller."""
    return True


@dataclass
class ProviderContext:
    """What the bridge lends a connector."""

    report: ReportSink  # True when the report matched a message we know
    metrics: Metrics
    public_url: str
    clock: Callable[[], float] = time.time
    log: Any = None
    find_messages: Callable[..., Awaitable[list[Message]]] | None = None
    # Status polling runs on one instance of a cluster: a poller asks before each poll,
    # and drops what falls due while another instance holds the lease (that one polls
    # every accepted message, sent by whichever instance).
    lease: PollLease = always_lease


class Provider(ABC):
    """Base of the connectors. `kind` is the config `type`; `name` its config key."""

    kind: ClassVar[str]
    supports_flash: ClassVar[bool] = False
    max_batch: int = 1  # recipients one request can carry (bulk coalescing)

    @classmethod
    def polls_status(cls, settings: Any) -> bool:
        """Does this connector poll for delivery status with these settings? (Polling
        runs on one instance of a cluster.)"""
        return False

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

    async def resume(self, messages: Sequence[Message]) -> None:
        """After a restart: messages this provider accepted that have no final state
        yet, so pollers and timers can pick them up again."""

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
