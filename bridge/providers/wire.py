"""A lean HTTP/1.1 keep-alive client on asyncio protocols, for the per-message path.

Why not aiohttp's client here: measured on this machine it costs ~140 µs of CPU per
request (request/response objects, tracing hooks, timers, header multidicts), which
is most of the bridge's budget per message. This client writes the request bytes
itself and parses the answer with `httptools` (the C parser uvicorn uses), ~20 µs
per request. It does exactly what the connectors need: one pool of keep-alive
connections per host, a connect timeout, a read timeout, HTTPS, Content-Length and
chunked bodies. Its server side is `bridge/http_server.py`, on the same parser.

Outcomes keep the distinction the pipeline depends on (DESIGN.md): a failure before
the request was written is "not sent"; one after it is "unknown" and never retried.
A request written on a pooled connection the server closed at that very moment is
"unknown" too (the server may have read it); to make that rare, the pool drops idle
connections well before servers do (15 s) and never reuses one it saw close.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

IDLE_TIMEOUT = 15.0


class ConnectFailed(Exception):
    """Nothing was sent: the connection could not be made."""


class AnswerLost(Exception):
    """The request was written; the answer did not come (timeout, reset, garbage)."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


def split_url(url: str) -> tuple[Origin, str, str]:
    """(origin, Host header, path with query)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    default = port == (443 if parts.scheme == "https" else 80)
    host_header = parts.hostname if default else f"{parts.hostname}:{port}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Origin(parts.scheme, parts.hostname, port), host_header, path


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A method and URL with their fixed headers, rendered once: a request is then
    `head` + the body's length + `tail` + the body, the same bytes as before
    (request line, Host, Content-Length, Content-Type, the client's headers)."""

    origin: Origin
    head: bytes  # "POST /path HTTP/1.1\r\nHost: h\r\nContent-Length: "
    tail: bytes  # "\r\nContent-Type: ...\r\nName: value\r\n...\r\n\r\n" (one CRLF ends the length)

    def render(self, body: bytes) -> bytes:
        return self.head + str(len(body)).encode() + self.tail + body


@functools.lru_cache(maxsize=256)
def prepare(method: str, url: str, content_type: str | None, headers: tuple[tuple[str, str], ...]) -> Endpoint:
    """The Endpoint of a request; cached, so the connectors' send URLs are rendered
    once (a poll URL with its ids in it takes one place, until pushed out)."""
    origin, host, path = split_url(url)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: "
    lines = [f"Content-Type: {content_type}"] if content_type else []
    lines += [f"{name}: {value}" for name, value in headers]
    tail = "".join(f"\r\n{line}" for line in lines) + "\r\n\r\n"
    return Endpoint(origin, head.encode("latin-1"), tail.encode("latin-1"))


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.received_any = False
        self.keep_alive = True
        self.idle_since = time.monotonic()
        self.closed = False

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(AnswerLost(f"malformed HTTP answer ({type(exc).__name__})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        self._fail(AnswerLost("connection closed before the answer" if self.received_any else "connection closed"))

    # -- httptools callbacks -------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        answer = self.answer
        self.answer = None
        if answer is not None and not answer.done():
            answer.set_result((self.status, self.headers, b"".join(self.body)))
        if not self.keep_alive:
            self.close()

    # -- use -------------------------------------------------------------------------------

    def send(self, request: bytes) -> asyncio.Future[tuple[int, dict[str, str], bytes]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.status, self.headers, self.body, self.received_any = 0, {}, [], False
        self.transport.write(request)
        return self.answer

    def time_out(self) -> None:
        """The read deadline passed: the answer fails; the caller drops the connection."""
        self._fail(AnswerLost("read timeout after the request was sent"))

    def _fail(self, error: Exception) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to one origin, at most `limit` at once."""

    def __init__(self, origin: Origin, limit: int, connect_timeout: float, ssl_context: ssl.SSLContext | None) -> None:
        self.origin = origin
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.ssl_context = ssl_context
        self.idle: deque[_Connection] = deque()
        self.busy = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.closed = False

    async def acquire(self) -> _Connection:
        while True:
            if self.closed:
                raise ConnectFailed("connection pool closed")
            if self.busy < self.limit:
                break
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
                raise
        self.busy += 1
        conn = self._idle_connection()
        if conn is not None:
            return conn
        try:
            return await self._connect()
        except BaseException:
            self._release_slot()
            raise

    def take(self) -> _Connection | None:
        """An idle connection at once, when one is free and nobody waits for a place:
        the common case, without `acquire`'s coroutine. None: `acquire` it."""
        if self.closed or self.busy >= self.limit or self.waiters:
            return None
        conn = self._idle_connection()
        if conn is not None:
            self.busy += 1
        return conn

    def _idle_connection(self) -> _Connection | None:
        """The most recently used idle connection still fit for use (stale ones closed)."""
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_TIMEOUT:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):  # not wait_for: see bridge.core.tasks
                _, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    self.origin.host,
                    self.origin.port,
                    ssl=self.ssl_context if self.origin.tls else None,
                )
        except TimeoutError as exc:
            raise ConnectFailed("connect timeout") from exc
        except OSError as exc:
            raise ConnectFailed(f"connect failed: {exc.strerror or type(exc).__name__}") from exc
        return conn

    def release(self, conn: _Connection, reusable: bool) -> None:
        """A connection back from a request; closed instead of kept once the pool is."""
        if reusable and not conn.closed and not self.closed:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            conn.close()
        self._release_slot()

    def _release_slot(self) -> None:
        self.busy -= 1
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def forget(self, conn: _Connection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> None:
        """Close the idle connections now; one in use is closed when its request ends
        (`release`), never under it."""
        self.closed = True
        while self.idle:
            self.idle.pop().close()
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectFailed("connection pool closed"))


class Deadlines:
    """The read deadlines of the requests in flight, with one loop timer for them all.

    Every request of a client waits the same `timeout`, so their deadlines come in the
    order the requests were written: a dict in insertion order, and one timer armed at
    its first deadline. A timer per request (call_later, then cancel) cost ~1.8 µs a
    message on uvloop; this costs a dict insert and delete. A request still waiting
    at its deadline fails as before (`_Connection.time_out`), at that deadline."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._due: dict[_Connection, float] = {}  # in insertion order: the earliest first
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def add(self, conn: _Connection) -> None:
        """`conn`'s request was written now: its answer is due within `timeout`."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # what was waiting belonged to a loop that has ended
            self._loop, self._due, self._timer = loop, {}, None
        self._due[conn] = due = loop.time() + self.timeout
        if self._timer is None:
            self._timer = loop.call_at(due, self._expire)

    def discard(self, conn: _Connection) -> None:
        """`conn`'s request ended (answered, failed, cancelled)."""
        self._due.pop(conn, None)

    def _expire(self) -> None:
        """Fail the requests past their deadline; re-arm for the next one."""
        self._timer = None
        assert self._loop is not None
        now = self._loop.time()
        while self._due:
            conn, due = next(iter(self._due.items()))
            if due > now:
                self._timer = self._loop.call_at(due, self._expire)
                return
            del self._due[conn]
            conn.time_out()


class WireClient:
    """HTTP/1.1 requests over pooled keep-alive connections."""

    def __init__(self, timeout: float, connect_timeout: float, max_connections: int,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.headers = headers or {}
        self._fixed = tuple(self.headers.items())
        self._pools: dict[Origin, Pool] = {}
        self._ssl = ssl.create_default_context()
        self._deadlines = Deadlines(timeout)
        self._closed = False

    async def request(
        self, method: str, url: str, body: bytes = b"", content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        """(status, headers, body). ConnectFailed: nothing sent; AnswerLost: sent, no answer."""
        if self._closed:
            raise ConnectFailed("client closed")
        fixed = tuple({**self.headers, **headers}.items()) if headers else self._fixed
        endpoint = prepare(method, url, content_type, fixed)
        pool = self._pools.get(endpoint.origin)
        if pool is None:
            pool = self._pools[endpoint.origin] = Pool(
                endpoint.origin, self.max_connections, self.connect_timeout, self._ssl
            )
        request = endpoint.render(body)
        conn = pool.take() or await pool.acquire()
        answer = conn.send(request)
        # The read deadline fails the answer with AnswerLost (`Deadlines`), not
        # `asyncio.timeout` (its context manager cost ~3 % of the CPU per message).
        # Nothing wraps the await, so a cancellation of this task reaches it as is
        # (the lesson of bridge.core.tasks about wait_for).
        self._deadlines.add(conn)
        try:
            result = await answer
        except BaseException:
            pool.release(conn, reusable=False)
            raise
        finally:
            self._deadlines.discard(conn)
        pool.release(conn, reusable=conn.keep_alive)
        return result

    def close(self) -> None:
        """No new requests; idle connections close now, busy ones when answered."""
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
