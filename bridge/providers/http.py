"""HTTP plumbing shared by the connectors: one pool of keep-alive connections per
provider, explicit timeouts, and the classification of transport failures.

What is known about an attempt decides what may happen next (DESIGN.md):
- the connection failed (refused, DNS, connect timeout): nothing was sent -> NOT_SENT;
- HTTP 429 or 5xx: the provider says it did not take it -> NOT_SENT (429: throttled);
- the request was written and then the read timed out or the peer reset -> UNKNOWN:
  the provider may have taken it, so it is never blindly sent again.

What an answer means is each connector's business (its documented shapes and error
tables); `refusal` and `undocumented_answer` are the rules all four share: how a table
row becomes a SendResult, and what an answer none of the documented shapes matched
means by its HTTP status alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as _json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from bridge import __version__
from bridge.core.message import Message
from bridge.core.ports import Outcome, ProviderCheck, SendResult
from bridge.providers.render import form_encode, json_body
from bridge.providers.wire import AnswerLost, ConnectFailed, WireClient
from bridge.smpp.constants import Status

USER_AGENT = f"smpp-bridge/{__version__}"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return _json.loads(self.text)
        except ValueError:
            return None


def retry_after(headers: dict[str, str], now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date)."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, moment - (time.time() if now is None else now))


def refused_by_status(answer: HttpAnswer) -> SendResult | None:
    """The NOT_SENT result for HTTP 429 and 5xx answers; None for anything else."""
    if answer.status == 429:
        return SendResult.not_sent(
            Status.ESME_RTHROTTLED, "HTTP 429", retry_after=retry_after(answer.headers), metric="throttled"
        )
    if answer.status >= 500:
        return SendResult.not_sent(
            Status.ESME_RSYSERR, f"HTTP {answer.status}", retry_after=retry_after(answer.headers), metric="error"
        )
    return None


# HTTP statuses that say our credentials (key, account, scope) were refused: not the message's fault.
CREDENTIALS_REFUSED = frozenset({401, 403})


class Rule(NamedTuple):
    """One row of a provider's error table: what the answer means for the message."""

    status: Status
    outcome: Outcome
    alert: bool = False  # the operator must act (credentials, account, billing), not the ESME


def refusal(status: Status, outcome: Outcome, reason: str) -> SendResult:
    """The SendResult of a provider's refusal mapped by its error table: REJECTED, or
    NOT_SENT (counted as `throttled` for ESME_RTHROTTLED, else as `rejected`: the
    provider answered, so it is neither a transport error nor a timeout)."""
    if outcome is Outcome.NOT_SENT:
        metric = "throttled" if status is Status.ESME_RTHROTTLED else "rejected"
        return SendResult.not_sent(status, reason, metric=metric)
    return SendResult.rejected(status, reason)


def undocumented_answer(answer: HttpAnswer, provider: str) -> SendResult:
    """What an answer none of the provider's documented shapes matched means, by its
    HTTP status alone (`provider` starts the reason):
    - 429, 5xx: `refused_by_status`, NOT_SENT;
    - 401, 403: our credentials were refused, not the message: NOT_SENT, so another
      provider may send it (the connector tells the operator, `CREDENTIALS_REFUSED`);
    - any other 2xx: the provider read the request, whether it took the message is
      unknown: UNKNOWN, never sent again;
    - anything else: REJECTED with ESME_RSUBMITFAIL."""
    refused = refused_by_status(answer)
    if refused is not None:
        return refused
    if answer.status in CREDENTIALS_REFUSED:
        return refusal(Status.ESME_RSYSERR, Outcome.NOT_SENT, f"{provider}: HTTP {answer.status}, credentials refused")
    if 200 <= answer.status < 300:
        return SendResult.unknown(f"{provider}: unreadable answer (HTTP {answer.status})", metric="error")
    return refusal(Status.ESME_RSUBMITFAIL, Outcome.REJECTED, f"{provider}: HTTP {answer.status}")


class HttpClient:
    """One keep-alive connection pool to one provider (see bridge/providers/wire.py for
    why it is not aiohttp's client). Takes aiohttp-style keywords: `json=` (a JSON
    body), `data=` (a dict as a form body), `params=` (a dict as the query string),
    `headers=`; bodies and queries are rendered by bridge/providers/render.py, the
    request line and headers once per URL (wire.prepare)."""

    def __init__(
        self,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self._wire = WireClient(timeout, connect_timeout, max_connections, self._headers)

    @classmethod
    def for_provider(cls, settings: Any, headers: dict[str, str]) -> HttpClient:
        """A pool with the provider's `timeout`, `connect_timeout` and `max_connections`."""
        return cls(settings.timeout, settings.connect_timeout, settings.max_connections, headers)

    async def start(self) -> None:
        """Nothing to open: connections are made on first use and kept alive."""

    async def close(self) -> None:
        self._wire.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpAnswer | SendResult:
        """The answer, or the SendResult a transport failure means."""
        body, content_type = b"", None
        if json is not None:
            body, content_type = json_body(json), "application/json"
        elif data is not None:
            body, content_type = form_encode(data).encode(), "application/x-www-form-urlencoded"
        if params:
            url += ("&" if "?" in url else "?") + form_encode(params)
        try:
            status, answer_headers, raw = await self._wire.request(method, url, body, content_type, headers)
        except ConnectFailed as exc:
            return SendResult.not_sent(Status.ESME_RSYSERR, str(exc), metric="error")
        except AnswerLost as exc:
            reason = str(exc)
            return SendResult.unknown(reason, metric="timeout" if "timeout" in reason else "error")
        return HttpAnswer(status, answer_headers, raw.decode("utf-8", "replace"))


async def access_check(http: HttpClient, url: str, params: dict[str, Any] | None = None) -> ProviderCheck:
    """One harmless authenticated GET, and what its answer says about our access:
    2xx credentials taken, 401/403 refused, anything else reachable but not conclusive."""
    started = time.perf_counter()
    answer = await http.request("GET", url, params=params)
    latency = round((time.perf_counter() - started) * 1000, 1)
    if isinstance(answer, SendResult):
        return ProviderCheck(checked=True, reachable=False, latency_ms=latency, detail=answer.reason)
    if 200 <= answer.status < 300:
        credentials, detail = "ok", "credentials accepted"
    elif answer.status in CREDENTIALS_REFUSED:
        credentials, detail = "refused", f"HTTP {answer.status}: credentials refused"
    elif answer.status == 404:
        credentials, detail = "unknown", "HTTP 404: check the URL (base_url, sid)"
    else:
        credentials, detail = "unknown", f"HTTP {answer.status}"
    return ProviderCheck(
        checked=True, reachable=True, credentials=credentials, http_status=answer.status, latency_ms=latency,
        detail=detail,
    )  # fmt: skip


class RequestWindow:
    """At most `limit` requests in any `window` seconds, exactly (a sliding window, not a
    token bucket: a full bucket plus its refill lets through nearly twice the limit in
    one window).

    A request holds its place from when it starts until `window` seconds after its
    answer came (`slot`). The provider's clock stamps a request somewhere between our
    start and our answer, so however the network delays each one, no `window` seconds
    of the provider's ever see more than `limit` of ours."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._ended: deque[float] = deque()  # when recent requests were answered, oldest first
        self._open = 0  # requests started and not yet answered
        self._released = asyncio.Event()
        self._lock = asyncio.Lock()  # waiters get their turn in order

    def delay(self) -> float | None:
        """0 when a request may start now; else the seconds until the oldest place
        frees, or None when every place is held by a request still waiting for its
        answer."""
        now = self._clock()
        while self._ended and self._ended[0] <= now - self.window:
            self._ended.popleft()
        if self._open + len(self._ended) < self.limit:
            return 0.0
        return self._ended[0] + self.window - now if self._ended else None

    async def acquire(self) -> None:
        """Wait for a place and take it; `release` gives it back when the answer came."""
        async with self._lock:
            while (wait := self.delay()) != 0.0:
                self._released.clear()
                with contextlib.suppress(TimeoutError):  # not wait_for: see bridge.core.tasks
                    async with asyncio.timeout(wait):
                        await self._released.wait()
            self._open += 1

    def release(self) -> None:
        self._open -= 1
        self._ended.append(self._clock())
        self._released.set()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """`async with window.slot():` around one request."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()


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
