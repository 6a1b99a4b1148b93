"""HTTP plumbing shared by the connectors: one pooled aiohttp session per provider,
explicit timeouts, and the classification of transport failures.

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
import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import aiohttp

from bridge.providers.base import Outcome, SendResult
from bridge.smpp.constants import Status


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.text)
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
    """One keep-alive connection pool to one provider."""

    def __init__(
        self,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=timeout)
        self._max_connections = max_connections
        self._headers = headers or {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, headers=self._headers, raise_for_status=False
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpAnswer | SendResult:
        """The answer, or the SendResult a transport failure means."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            async with self._session.request(method, url, **kwargs) as response:
                text = await response.text(errors="replace")
                return HttpAnswer(response.status, dict(response.headers), text)
        except aiohttp.ConnectionTimeoutError:
            return SendResult.not_sent(Status.ESME_RSYSERR, "connect timeout", metric="error")
        except aiohttp.ClientConnectorError as exc:
            return SendResult.not_sent(
                Status.ESME_RSYSERR, f"connect failed: {exc.strerror or 'error'}", metric="error"
            )
        except (TimeoutError, aiohttp.SocketTimeoutError):
            return SendResult.unknown("read timeout after the request was sent", metric="timeout")
        except aiohttp.ClientError as exc:
            return SendResult.unknown(
                f"connection lost after the request was sent ({type(exc).__name__})", metric="error"
            )


class RateLimiter:
    """At most `limit` units per `period` seconds; `acquire` waits for room."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._tokens = float(limit)
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, units: int = 1) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.limit, self._tokens + (now - self._last) * self.limit / self.period)
                self._last = now
                if self._tokens >= units:
                    self._tokens -= units
                    return
                await asyncio.sleep((units - self._tokens) * self.period / self.limit)
