"""A lean HTTP/1.1 server on asyncio protocols and httptools: the whole HTTP port.

Why not aiohttp's server: measured on this machine it spends ~100 µs of CPU per
request of its own (request and response objects, multidicts, the router, the
payload streams, a task and timers per request), which was most of the cost of a
provider callback, and a busy bridge takes thousands of callbacks a second. This
server parses with httptools (llhttp, the parser of Node.js, as uvicorn uses it) and
writes the answer bytes itself; the routes (`bridge/web.py`, `bridge/admin.py`) see
a plain `Request` and give back a plain `Response`.

Two parts, as `smpp/session.py` and `server.py` are for SMPP:

- `HttpConnection` owns the protocol rules of one connection and nothing else: it
  is fed bytes and the time, and hands out complete requests and the bytes to
  write. Every rule of the connection lives there: keep-alive, pipelining (answers
  go out in request order, whatever order the handlers finish in), Content-Length
  and chunked bodies, `Expect: 100-continue`, HTTP/1.0, `Connection: close`, the
  size limits (a body over `max_body` is refused with 413 from its Content-Length,
  before it is read; a request-target over `max_target` with 414; a header section
  over `max_head` or with more than `max_headers` fields with 431), malformed
  requests (400) and the timeouts (a request must arrive whole within
  `request_timeout` of its first byte, else 408: the slowloris defence; an idle
  keep-alive connection is closed after `keepalive_timeout`). A refused request
  ends the connection: the answer says `Connection: close`, nothing more is read.
- `HttpServer` is the asyncio edge: a listener whose connections feed an
  `HttpConnection`, run the handler for each request as its own task (a callback
  is answered only once its report is committed, so handlers of one connection
  overlap), write what the connection says (the answers finished in one turn of
  the loop in one write) and close when it says. It stops reading from a
  connection with `max_pipelined` answers owed or whose peer does not read its
  answers, and after a refusal it closes gently: it shuts its side down and
  discards what the peer still sends for `linger` seconds, so the peer reads the
  413 instead of a connection reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, unquote

import httptools

EMPTY: Mapping[str, str] = MappingProxyType({})
REASONS = {status.value: status.phrase for status in http.HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Statuses whose answer has no body (RFC 9110 §6.4.1).
BODILESS = frozenset({204, 304})
# Header names as clients usually spell them, to their lower-case str (not decoded and
# lowered again for every request); any other spelling is decoded as it comes.
_COMMON_HEADERS = ("host", "content-type", "content-length", "user-agent", "accept", "accept-encoding",
                   "connection", "authorization", "x-forwarded-for", "expect", "transfer-encoding")  # fmt: skip
_HEADER_NAMES = {spelling.encode(): name for name in _COMMON_HEADERS for spelling in (name, name.title(), name.upper())}


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one connection (sizes in bytes, times in seconds)."""

    max_body: int = 64 * 1024
    max_target: int = 8 * 1024
    max_head: int = 16 * 1024
    max_headers: int = 100
    request_timeout: float = 15.0
    keepalive_timeout: float = 75.0
    max_pipelined: int = 64
    linger: float = 2.0


@dataclass(slots=True)
class Request:
    """One complete request. `raw_path` is the path as sent (percent-encoded);
    header names are lower case, a repeated field's values joined with ", "."""

    method: str
    raw_path: str
    query_string: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    peer: str | None = None

    @property
    def path(self) -> str:
        """The path, percent-decoded (UTF-8)."""
        return unquote(self.raw_path) if "%" in self.raw_path else self.raw_path

    @property
    def query(self) -> dict[str, str]:
        """The first value of each query parameter ('+' is a space, as in forms)."""
        query: dict[str, str] = {}
        if self.query_string:
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                query.setdefault(name, value)
        return query


class Response:
    """An answer: status, body and its media type, more header fields."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, status: int = 200, body: bytes = b"", content_type: str | None = "text/plain; charset=utf-8",
                 headers: Mapping[str, str] = EMPTY) -> None:  # fmt: skip
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers

    @classmethod
    def text(cls, status: int, text: str, headers: Mapping[str, str] = EMPTY) -> Response:
        return cls(status, text.encode(), "text/plain; charset=utf-8", headers)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] = EMPTY) -> Response:
        return cls(status, json.dumps(data).encode(), "application/json; charset=utf-8", headers)

    @classmethod
    def error(cls, status: int, headers: Mapping[str, str] = EMPTY) -> Response:
        """A plain-text error saying its status in words ("404: Not Found")."""
        return cls.text(status, f"{status}: {REASONS.get(status, 'Error')}", headers)


class Exchange:
    """One request's place in the connection's answer queue. `request` is None for
    a request refused before it was complete (its answer is set at once)."""

    __slots__ = ("answer", "expect_continue", "head", "http10", "keep_alive", "request")

    def __init__(self, head: bool = False) -> None:
        self.request: Request | None = None
        self.answer: bytes | None = None
        self.head = head  # a HEAD request: the answer carries no body
        self.keep_alive = True
        self.http10 = False
        self.expect_continue = False


_date_second = -1
_date_text = ""


def http_date() -> str:
    """The Date header's value, formatted once a second."""
    global _date_second, _date_text
    now = time.time()
    if int(now) != _date_second:
        _date_second, _date_text = int(now), formatdate(now, usegmt=True)
    return _date_text


# Answers without header fields of their own (a callback's "200 OK") rendered this
# second, by (status, body, content type, head, close, http10): most answers are one
# of a few, and each callback would otherwise format its whole head again.
_RENDERED_MAX = 64
_rendered: dict[tuple[int, bytes, str | None, bool, bool, bool], bytes] = {}
_rendered_date = ""


def render(response: Response, head: bool, close: bool, http10: bool, date: str) -> bytes:
    """The bytes of an answer. A header value with CR or LF raises ValueError (no
    response splitting, whatever a handler hands back)."""
    global _rendered_date
    if response.headers or len(response.body) > 256:
        return _render(response, head, close, http10, date)
    if date != _rendered_date:
        _rendered.clear()
        _rendered_date = date
    key = (response.status, response.body, response.content_type, head, close, http10)
    data = _rendered.get(key)
    if data is None:
        data = _render(response, head, close, http10, date)
        if len(_rendered) < _RENDERED_MAX:
            _rendered[key] = data
    return data


def _render(response: Response, head: bool, close: bool, http10: bool, date: str) -> bytes:
    status = response.status
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}", f"Date: {date}"]
    body = response.body
    if status in BODILESS:
        body = b""
    else:
        lines.append(f"Content-Length: {len(body)}")
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
    for name, value in response.headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"CR or LF in the header {name!r}")
        lines.append(f"{name}: {value}")
    if close:
        lines.append("Connection: close")
    elif http10:
        lines.append("Connection: keep-alive")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + (b"" if head else body)


class HttpConnection:
    """The protocol rules of one HTTP/1.1 server connection (sans-IO).

    `receive(data, now)` returns the requests that became complete; each is answered
    with `answer(exchange, response, now)`, in any order; `output()` gives the bytes
    that may be written now (answers in request order); once `finished`, the
    connection is closed (`lingering`: the peer may still be sending, close
    gently). `deadline` is when `expire(now)` must be called if nothing happens."""

    def __init__(self, limits: Limits, peer: str | None, now: float,
                 date: Callable[[], str] = http_date) -> None:  # fmt: skip
        self.limits = limits
        self.peer = peer
        self._date = date
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Exchange] = deque()  # answers owed, in request order
        self._complete: list[Exchange] = []  # requests completed by this receive()
        self._reading = True  # False once no further request is taken
        self.closing = False  # close once every answer owed is written
        self.lingering = False  # closing after a refusal: the peer may still send
        self._idle_since = now
        self._now = now
        # The request being received.
        self._in_request = False
        self._in_head = False
        self._begun = 0  # requests begun on this connection
        self._started = 0.0
        self._head_bytes = 0  # read while the head was incomplete, after its first chunk
        self._url = b""
        self._headers: dict[str, str] = {}
        self._head_size = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._method = ""
        self._current: Exchange | None = None

    # -- input -----------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Exchange]:
        """Feed what the socket read; the exchanges whose request is now complete."""
        if not self._reading:
            return []
        self._now = now
        size, began = len(data), self._begun
        was_in_head = self._in_head
        while data:
            try:
                self._parser.feed_data(data)
                data = b""
            except httptools.HttpParserUpgrade as upgrade:
                # An Upgrade (h2c, websocket) or CONNECT request: not supported, so it
                # was answered as a plain request; what follows is HTTP/1.1 again.
                data = data[upgrade.args[0] :] if self._reading else b""
            except httptools.HttpParserError:
                data = b""
                if self._reading:
                    self._refuse(400)
        if self._reading and was_in_head and self._in_head and self._begun == began:
            # A head arriving in pieces: bound what httptools buffers before it is whole.
            self._head_bytes += size
            if self._head_bytes > self.limits.max_head:
                self._refuse(431)
        complete, self._complete = self._complete, []
        return complete

    def receive_eof(self) -> None:
        """The peer sent everything it will: answer what is owed, then close (a
        request still incomplete is dropped, nobody waits for its answer)."""
        self._stop_reading(drop_partial=True)

    def stop(self) -> None:
        """The server stops: no further request; close once the answers owed are out."""
        self._stop_reading(drop_partial=True)

    def _stop_reading(self, drop_partial: bool) -> None:
        self._reading = False
        self.closing = True
        if drop_partial and self._in_request:
            self._in_request = self._in_head = False
            if self._current is not None and self._current.answer is None:
                self._queue.remove(self._current)
            self._current = None

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._reading:
            return
        self._in_request = self._in_head = True
        self._begun += 1
        self._started = self._now
        self._head_bytes = 0
        self._url = b""
        self._headers = {}
        self._head_size = 0
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        if not self._reading:
            return
        self._url += url
        if len(self._url) > self.limits.max_target:
            self._refuse(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._reading:
            return
        self._head_size += len(name) + len(value) + 4
        key = _HEADER_NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = headers[key] + ", " + text if key in headers else text
        if len(headers) > self.limits.max_headers or self._head_size + len(self._url) > self.limits.max_head:
            self._refuse(431)

    def on_headers_complete(self) -> None:
        if not self._reading:
            return
        self._in_head = False
        parser = self._parser
        self._method = method = parser.get_method().decode("ascii")
        exchange = self._current = Exchange(head=method == "HEAD")
        self._queue.append(exchange)
        headers = self._headers
        length = headers.get("content-length")
        if parser.should_upgrade() and (length not in (None, "0") or "transfer-encoding" in headers):
            # llhttp would hand the body over as the upgraded protocol's bytes.
            self._refuse(400)
        elif length is not None and int(length) > self.limits.max_body:
            self._refuse(413)
        elif "expect" in headers and headers["expect"].lower() == "100-continue":
            exchange.expect_continue = parser.get_http_version() == "1.1"

    def on_body(self, body: bytes) -> None:
        if not self._reading:
            return
        self._body_size += len(body)
        if self._body_size > self.limits.max_body:
            self._refuse(413)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._reading:
            return
        target = self._split_target(self._url)
        if target is None:
            self._refuse(400)
            return
        exchange = self._current
        assert exchange is not None
        self._current = None
        self._in_request = False
        parser = self._parser
        exchange.request = Request(
            self._method,
            target[0],
            target[1],
            self._headers,
            b"".join(self._body) if self._body else b"",
            self.peer,
        )
        exchange.expect_continue = False
        exchange.keep_alive = parser.should_keep_alive()
        exchange.http10 = parser.get_http_version() == "1.0"
        if not exchange.keep_alive:
            self._reading = False
            self.closing = True
        self._complete.append(exchange)

    @staticmethod
    def _split_target(url: bytes) -> tuple[str, str] | None:
        """(raw path, query string) of the request-target; None if it is no URL."""
        text = url.decode("latin-1") if url.isascii() else url.decode("utf-8", "replace")
        if text.startswith("/"):
            path, _, query = text.partition("?")
            return path.partition("#")[0], query.partition("#")[0]
        if text == "*":  # OPTIONS *
            return text, ""
        try:  # absolute-form (RFC 9112 §3.2.2): a server must accept it
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            return None
        if parsed.schema not in (b"http", b"https"):
            return None
        path = (parsed.path or b"/").decode("latin-1")
        return path, (parsed.query or b"").decode("latin-1")

    # -- refusals and time ---------------------------------------------------------------------

    def _refuse(self, status: int) -> None:
        """Answer `status` in this request's turn and read nothing more."""
        exchange = self._current
        if exchange is None or exchange.answer is not None:
            exchange = Exchange()
            self._queue.append(exchange)
        self._current = None
        self._in_request = self._in_head = False
        self._reading = False
        self.closing = self.lingering = True
        exchange.expect_continue = False
        exchange.answer = render(Response.error(status), False, True, False, self._date())

    @property
    def deadline(self) -> float | None:
        """When `expire` is due: the end of the request timeout while a request is
        arriving, of the keep-alive timeout while idle; None while answers are owed."""
        if self._in_request:
            return self._started + self.limits.request_timeout
        if self.closing or self._queue:
            return None
        return self._idle_since + self.limits.keepalive_timeout

    def expire(self, now: float) -> None:
        """The deadline passed: a request still arriving gets 408; an idle
        connection is closed."""
        if self._in_request:
            self._refuse(408)
        else:
            self._stop_reading(drop_partial=False)

    # -- output --------------------------------------------------------------------------------

    @property
    def owed(self) -> int:
        """Answers not yet written."""
        return len(self._queue)

    @property
    def finished(self) -> bool:
        return self.closing and not self._queue

    def answer(self, exchange: Exchange, response: Response, now: float) -> None:
        """The handler's answer to `exchange` (written in its turn by `output`)."""
        if exchange.answer is not None:
            return
        close = not exchange.keep_alive or (self.closing and exchange is self._queue[-1])
        exchange.answer = render(response, exchange.head, close, exchange.http10, self._date())
        self._idle_since = now

    def output(self) -> bytes:
        """The answers that may be written now, in request order (and a 100 Continue
        for a request at the head of the queue waiting to send its body)."""
        queue = self._queue
        if len(queue) == 1 and queue[0].answer is not None:  # the common case
            return queue.popleft().answer  # type: ignore[return-value]
        out: list[bytes] = []
        while queue:
            exchange = queue[0]
            if exchange.answer is None:
                if exchange.expect_continue:
                    exchange.expect_continue = False
                    out.append(CONTINUE)
                break
            out.append(exchange.answer)
            queue.popleft()
        return b"".join(out)


Handler = Callable[[Request], Awaitable[Response]]
MATCHED_PATHS = 1024  # paths whose matching routes the router remembers
RouteHandler = Callable[[Request, dict[str, str]], Awaitable[Response]]


class Router:
    """Requests to handlers by method and path, a table tried in order. In a
    pattern, `{name}` matches one non-empty path segment (handed to the handler
    percent-decoded) and a final `*` whatever follows. The first route matching
    path and method wins; a path matched only by routes of other methods gets 405
    (with Allow), no match 404. A GET route answers HEAD too."""

    def __init__(self) -> None:
        self._routes: list[tuple[frozenset[str] | None, list[str], bool, RouteHandler]] = []
        # raw path -> the routes matching it, with their parameters: a busy bridge
        # gets its callbacks on a handful of paths. Bounded (a scanner's paths).
        self._matched: dict[str, list[tuple[frozenset[str] | None, RouteHandler, dict[str, str]]]] = {}

    def add(self, method: str, pattern: str, handler: RouteHandler) -> None:
        """`method`: "GET", "POST", ... or "*" for any."""
        methods = None if method == "*" else frozenset({method, "HEAD"} if method == "GET" else {method})
        parts = pattern.split("/")
        rest = parts[-1] == "*"
        self._routes.append((methods, parts[:-1] if rest else parts, rest, handler))
        self._matched.clear()

    def _matching(self, raw_path: str) -> list[tuple[frozenset[str] | None, RouteHandler, dict[str, str]]]:
        matched = self._matched.get(raw_path)
        if matched is None:
            segments = raw_path.split("/")
            matched = []
            for methods, parts, rest, handler in self._routes:
                params = _match(parts, rest, segments)
                if params is not None:
                    matched.append((methods, handler, params))
            if len(self._matched) >= MATCHED_PATHS:
                self._matched.clear()
            self._matched[raw_path] = matched
        return matched

    def __call__(self, request: Request) -> Awaitable[Response]:
        """The matching handler's answer to await (the router adds no coroutine of
        its own to every request)."""
        allowed: set[str] = set()
        for methods, handler, params in self._matching(request.raw_path):
            if methods is None or request.method in methods:
                return handler(request, dict(params))
            allowed |= methods
        if allowed:
            return _answered(Response.error(405, {"Allow": ", ".join(sorted(allowed))}))
        return _answered(Response.error(404))


async def _answered(response: Response) -> Response:
    return response


def _match(parts: list[str], rest: bool, segments: list[str]) -> dict[str, str] | None:
    if len(segments) < len(parts) if rest else len(segments) != len(parts):
        return None
    params: dict[str, str] = {}
    for part, segment in zip(parts, segments, strict=False):
        if part[:1] == "{":
            if not segment:
                return None
            params[part[1:-1]] = unquote(segment) if "%" in segment else segment
        elif part != segment:
            return None
    return params


class _HttpProtocol(asyncio.Protocol):
    """One connection: bytes to its `HttpConnection`, each request to the handler."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn: HttpConnection | None = None
        self.lost = False
        self.reading_paused = False
        self.write_blocked_since: float | None = None
        self.linger_until: float | None = None
        self.peer_done = False
        self.flush_due = False  # a write of the answers is scheduled for this turn

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else None
        self.conn = HttpConnection(self.server.limits, host, self.loop.time())
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.linger_until is not None:
            return  # closing gently: what the peer still sends is discarded
        conn = self.conn
        assert conn is not None
        for exchange in conn.receive(data, self.loop.time()):
            task = self.loop.create_task(self._run(exchange))
            self.server.tasks.add(task)
            task.add_done_callback(self.server.tasks.discard)
        self._flush()
        if conn.owed >= self.server.limits.max_pipelined:
            self._pause_reading()

    def eof_received(self) -> bool:
        self.peer_done = True
        if self.linger_until is not None:
            return False  # the peer read our refusal and closed: done
        assert self.conn is not None
        self.conn.receive_eof()
        self._flush()
        return True  # keep our side open to write the answers owed

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.connections.discard(self)

    def pause_writing(self) -> None:
        self.write_blocked_since = self.loop.time()
        self._pause_reading()

    def resume_writing(self) -> None:
        self.write_blocked_since = None
        self._flush()

    # -- requests --------------------------------------------------------------------------------

    async def _run(self, exchange: Exchange) -> None:
        request = exchange.request
        assert request is not None
        try:
            response = await self.server.handler(request)
        except Exception:
            self.server.log.exception("http_handler_failed", method=request.method, path=request.raw_path)
            response = Response.error(500)
        if self.lost:
            return
        assert self.conn is not None
        try:
            self.conn.answer(exchange, response, self.loop.time())
        except ValueError:
            self.server.log.exception("http_answer_invalid", method=request.method, path=request.raw_path)
            self.conn.answer(exchange, Response.error(500), self.loop.time())
        if not self.flush_due:
            # Handlers finishing in one turn of the loop (the callbacks of one store
            # commit) have their answers written together, in one write.
            self.flush_due = True
            self.loop.call_soon(self._flush_turn)

    def _flush_turn(self) -> None:
        self.flush_due = False
        self._flush()

    def _flush(self) -> None:
        """Write what may be written; close when the connection says so."""
        conn, transport = self.conn, self.transport
        if self.lost or conn is None or transport is None or self.linger_until is not None:
            return
        data = conn.output()
        if data:
            transport.write(data)
        if conn.finished:
            self._close(conn.lingering)
        elif self.reading_paused and self.write_blocked_since is None and conn.owed < self.server.limits.max_pipelined:
            self.reading_paused = False
            transport.resume_reading()

    def _pause_reading(self) -> None:
        if not self.reading_paused and not self.lost and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _close(self, gently: bool) -> None:
        transport = self.transport
        assert transport is not None
        if gently and not self.peer_done and transport.can_write_eof():
            # Shut our side down after the refusal and drain the peer for a while:
            # closing with its bytes unread would reset the connection, and the peer
            # might never read the answer.
            transport.write_eof()
            self.linger_until = self.loop.time() + self.server.limits.linger
            if self.reading_paused:
                self.reading_paused = False
                transport.resume_reading()
        else:
            transport.close()

    # -- time ----------------------------------------------------------------------------------

    def deadline(self) -> float | None:
        if self.linger_until is not None:
            return self.linger_until
        if self.write_blocked_since is not None:
            return self.write_blocked_since + self.server.limits.request_timeout
        return self.conn.deadline if self.conn is not None else None

    def expire(self, now: float) -> None:
        assert self.transport is not None and self.conn is not None
        if self.linger_until is not None or self.write_blocked_since is not None:
            self.transport.abort()  # a peer that neither reads nor closes
            return
        self.conn.expire(now)
        self._flush()

    def stop(self) -> None:
        if self.lost or self.conn is None:
            return
        self.conn.stop()
        self._flush()

    def close_now(self) -> None:
        """At the end of a stop: a connection with its answers written is closed
        (what is buffered still goes out), any other one cut off."""
        if self.lost or self.transport is None:
            return
        if self.conn is not None and self.conn.finished and self.write_blocked_since is None:
            self.transport.close()
        else:
            self.transport.abort()


class HttpServer:
    """The listener: one `HttpConnection` per connection, `handler` per request."""

    def __init__(self, handler: Handler, log: Any, limits: Limits | None = None) -> None:
        self.handler = handler
        self.log = log
        self.limits = limits or Limits()
        self.connections: set[_HttpProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; the port taken (the config may say 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _HttpProtocol(self), host, port)
        self._sweeper = loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def listening(self) -> bool:
        """Accepting connections (False once `stop` has begun)."""
        return self._server is not None and self._server.is_serving()

    async def _sweep(self) -> None:
        """Expire connections past their deadline (one timer for all of them,
        rather than a timer set and cancelled per request)."""
        limits = self.limits
        tick = min(1.0, limits.request_timeout / 4, limits.keepalive_timeout / 4, limits.linger / 2)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for connection in list(self.connections):
                due = connection.deadline()
                if due is not None and now >= due:
                    connection.expire(now)

    async def stop(self, grace: float) -> None:
        """Stop listening; requests under way get up to `grace` seconds to be
        answered (a callback's report is being committed), then are cancelled."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.stop()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=grace)
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for connection in list(self.connections):
            connection.close_now()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # 3.12 waits for every connection to go
                    await self._server.wait_closed()
            self._server = None
