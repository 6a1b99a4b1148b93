"""The asyncio side of SMPP: listeners, TLS, bytes to and from the session machine.

No protocol rules here: each connection owns a sans-IO `Session`, feeds it what
the socket reads and the clock, writes what it queues, and passes its events to
the `Smsc`. Session time is `time.monotonic()`.

Behind a TCP load balancer (HAProxy `send-proxy` / `send-proxy-v2`) the first bytes
of a connection are a PROXY protocol header naming the real client; it is transport,
not SMPP, so it is read here (`parse_proxy_header`) and the session only ever sees
what follows. The address it names is the `peer_host` that `allowed_networks`, the
bind lockout and the logs use.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import ssl
import time
from typing import Any, cast

from bridge.config import Account, SecuritySettings, SmppSettings
from bridge.core.auth import address_allowed
from bridge.core.smsc import Smsc
from bridge.smpp.session import PduCounters, Session, SessionConfig

# Write buffer: stop reading from a peer that does not read our answers beyond the
# high mark; cut it off beyond the hard limit.
WRITE_HIGH = 256 * 1024
WRITE_LOW = 64 * 1024
WRITE_HARD_LIMIT = 4 * 1024 * 1024
PDUS_PER_TURN = 64

_connection_ids = itertools.count(1)

# -- PROXY protocol (haproxy.org/download/2.6/doc/proxy-protocol.txt) -----------------
#
# Our own parser rather than the PyPI `proxy-protocol` package: that one reads the
# header from an asyncio StreamReader (asyncio.start_server callbacks), while this
# server is an asyncio.Protocol fed by data_received; an incremental parser over the
# bytes received so far fits it, and the sans-IO style of the rest, in 80 lines.

PROXY_V1_PREFIX = b"PROXY "
PROXY_V1_MAX = 107  # the longest v1 line, CRLF included
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PROXY_V2_MAX = 16 + 1024  # header and TLVs we accept (HAProxy sends far less)
# v2 family/protocol byte -> length of the address block and of one address
_V2_INET = {0x11: (12, 4), 0x12: (12, 4), 0x21: (36, 16), 0x22: (36, 16)}
_V2_OTHER = {0x00, 0x31, 0x32}  # UNSPEC, UNIX stream/dgram: no IP address to take


class ProxyHeaderError(ValueError):
    """Not a PROXY protocol header (or a broken one): the connection is closed."""


def parse_proxy_header(data: bytes) -> tuple[str | None, int] | None:
    """The client address a PROXY v1/v2 header at the start of `data` names (None: a
    LOCAL/UNKNOWN header, the connection's own address stands) and the header's length;
    None while more bytes are needed. Raises ProxyHeaderError on anything else."""
    if data[:12] == PROXY_V2_SIGNATURE[: len(data[:12])] and data[:1] == b"\r":
        return _parse_v2(data) if len(data) >= 16 else None
    if data[:6] == PROXY_V1_PREFIX[: len(data[:6])]:
        return _parse_v1(data) if len(data) >= 6 else None
    raise ProxyHeaderError("no PROXY protocol header")


def _parse_v1(data: bytes) -> tuple[str | None, int] | None:
    end = data.find(b"\r\n", 0, PROXY_V1_MAX)
    if end < 0:
        if len(data) >= PROXY_V1_MAX:
            raise ProxyHeaderError("PROXY v1 line too long")
        return None
    fields = data[:end].split(b" ")
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        return None, end + 2
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("malformed PROXY v1 line")
    try:
        source = ipaddress.ip_address(fields[2].decode("ascii"))
        destination = ipaddress.ip_address(fields[3].decode("ascii"))
        ports = [int(p) for p in fields[4:6] if p.isdigit() and (len(p) == 1 or not p.startswith(b"0"))]
    except (UnicodeDecodeError, ValueError):
        raise ProxyHeaderError("malformed PROXY v1 address") from None
    family = 4 if fields[1] == b"TCP4" else 6
    if source.version != family or destination.version != family or len(ports) != 2 or max(ports) > 65535:
        raise ProxyHeaderError("malformed PROXY v1 address")
    return str(source), end + 2


def _parse_v2(data: bytes) -> tuple[str | None, int] | None:
    if data[:12] != PROXY_V2_SIGNATURE:
        raise ProxyHeaderError("bad PROXY v2 signature")
    version, command, family = data[12] >> 4, data[12] & 0x0F, data[13]
    length = 16 + int.from_bytes(data[14:16], "big")
    if version != 2 or command > 1:
        raise ProxyHeaderError("unsupported PROXY v2 version or command")
    if length > PROXY_V2_MAX:
        raise ProxyHeaderError("PROXY v2 header too long")
    if family not in _V2_INET and family not in _V2_OTHER:
        raise ProxyHeaderError("unknown PROXY v2 address family")
    if len(data) < length:
        return None
    if command == 0 or family in _V2_OTHER:  # LOCAL (a health check), or no IP address
        return None, length
    block, size = _V2_INET[family]
    if length - 16 < block:
        raise ProxyHeaderError("PROXY v2 address block too short")
    return str(ipaddress.ip_address(data[16 : 16 + size])), length


def session_config(settings: SmppSettings, pdu_timeout: float = 30.0) -> SessionConfig:
    return SessionConfig(
        window=settings.window,
        enquire_link_interval=settings.enquire_link_interval,
        inactivity_timeout=settings.inactivity_timeout,
        bind_timeout=settings.bind_timeout,
        response_timeout=settings.response_timeout,
        max_command_length=settings.max_command_length,
        pdu_timeout=pdu_timeout,
    )


class SmppConnection(asyncio.Protocol):
    """One TCP (or TLS) connection; implements `bridge.core.connection.Connection`."""

    def __init__(self, server: SmppServer, tls: bool = False) -> None:
        self._server = server
        self._tls = tls
        self._loop = asyncio.get_running_loop()
        self.session = Session(server.session_config, time.monotonic(), server.counters)
        self.account: Account | None = None
        self.peer_host = ""
        self.log: Any = server.log
        self._id = f"s{next(_connection_ids)}"
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._flush_scheduled = False
        self._closed = False
        self._stall: asyncio.TimerHandle | None = None
        self._input_paused = False
        self._proxy: bytearray | None = None  # PROXY header bytes while it is expected
        self._proxy_timer: asyncio.TimerHandle | None = None

    @property
    def connection_id(self) -> str:
        return self._id

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert hasattr(transport, "write")  # uvloop's transports are not asyncio.Transport subclasses
        self._transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer_host = peer[0] if peer else ""
        self.log = self._server.log.bind(session=self._id, peer=self.peer_host)
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        self._server.connections.add(self)
        if len(self._server.connections) > self._server.settings.max_sessions:
            self.log.warning("connection_refused", reason="max_sessions reached")
            transport.abort()
            return
        if not self._tls and self._server.expects_proxy_header(self.peer_host):
            self._proxy = bytearray()
            self._proxy_timer = self._loop.call_later(self._server.settings.proxy_header_timeout, self._no_proxy_header)
        self.log.debug("connected")
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._proxy is not None:
            rest = self._read_proxy_header(data)
            if not rest:
                return
            data = rest
        self._take_input(data)

    def _take_input(self, data: bytes = b"") -> None:
        """At most PDUS_PER_TURN PDUs per event-loop turn: a peer flooding us waits for
        the others (reading from it pauses until its backlog is worked off)."""
        now = time.monotonic()
        session = self.session
        events = session.receive_data(data, now, PDUS_PER_TURN)
        if events:
            self._server.smsc.handle_events(self, events, now)
        self._write_now()
        if session.has_buffered_pdu and not self._closed:
            if not self._input_paused and self._transport is not None:
                self._input_paused = True
                self._transport.pause_reading()
            self._loop.call_soon(self._take_input)
        elif self._input_paused:
            self._input_paused = False
            if self._transport is not None and not self._closed and self._stall is None:
                self._transport.resume_reading()
        self._arm()

    def _read_proxy_header(self, data: bytes) -> bytes:
        """Collect the PROXY header; returns the bytes after it once it is complete."""
        assert self._proxy is not None and self._transport is not None
        self._proxy += data
        try:
            parsed = parse_proxy_header(bytes(self._proxy))
        except ProxyHeaderError as exc:
            self.log.warning("proxy_header_refused", reason=str(exc))
            self._proxy = None
            self._transport.abort()
            return b""
        if parsed is None:
            return b""
        source, length = parsed
        rest = bytes(self._proxy[length:])
        self._proxy = None
        if self._proxy_timer is not None:
            self._proxy_timer.cancel()
            self._proxy_timer = None
        if source is not None:
            self.log = self._server.log.bind(session=self._id, peer=source, proxy=self.peer_host)
            self.peer_host = source
        self.log.debug("proxy_header", client=source)
        return rest

    def _no_proxy_header(self) -> None:
        self._proxy_timer = None
        if self._proxy is not None and self._transport is not None and not self._closed:
            self.log.warning("proxy_header_refused", reason="no PROXY header in time")
            self._transport.abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connection_closed(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._stall is not None:
            self._stall.cancel()
        if self._proxy_timer is not None:
            self._proxy_timer.cancel()
        events = self.session.connection_lost()
        if events:
            self._server.smsc.handle_events(self, events, time.monotonic())
        self.log.debug("disconnected", error=str(exc) if exc else None)

    def pause_writing(self) -> None:
        """The peer is not reading: stop reading its requests, and cut it off if it
        stays stalled for `write_stall_timeout`."""
        if self._transport is not None:
            self._transport.pause_reading()
            self._stall = self._loop.call_later(self._server.write_stall_timeout, self._stalled)

    def resume_writing(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if self._transport is not None and not self._closed and not self._input_paused:
            self._transport.resume_reading()

    def _stalled(self) -> None:
        self._stall = None
        if self._transport is not None and not self._closed:
            self.log.warning("session_aborted", reason="peer stopped reading")
            self._transport.abort()

    # -- Connection ------------------------------------------------------------------

    def flush(self) -> None:
        """Write queued bytes at the end of this loop iteration, so answers that
        complete together leave in one write."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._write_now)

    def close(self) -> None:
        self._write_now()
        if self._transport is not None:
            self._transport.close()

    def unbind(self) -> None:
        """Unbind from our side (shutdown): the unbind goes out now; the session closes
        the connection once it is settled, or after `response_timeout`."""
        self.session.unbind(time.monotonic())
        self._write_now()
        if self.session.is_closing:
            self.close()
        else:
            self._arm()

    def abort(self) -> None:
        """Drop the connection at once, without writing what is queued."""
        if self._transport is not None:
            self._transport.abort()

    # -- internals -------------------------------------------------------------------

    def _write_now(self) -> None:
        self._flush_scheduled = False
        data = self.session.data_to_send()
        transport = self._transport
        if not data or transport is None or self._closed or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > WRITE_HARD_LIMIT:
            self.log.warning("session_aborted", reason="peer does not read")
            transport.abort()
            return
        # What was written may change the timers (a bind accepted, an unbind answered).
        self._arm()

    def _arm(self) -> None:
        deadline = self.session.next_deadline()
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is not None and self._timer_at <= deadline:
            return  # it fires first and re-arms then
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_later(max(0.0, deadline - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        now = time.monotonic()
        events = self.session.tick(now)
        if events:
            self._server.smsc.handle_events(self, events, now)
        self._write_now()
        if self.session.is_closing and self._transport is not None and not events:
            self._transport.close()
            return
        self._arm()


class SmppServer:
    def __init__(
        self, settings: SmppSettings, security: SecuritySettings, smsc: Smsc, counters: PduCounters, log: Any
    ) -> None:
        self.reload(settings, security)
        self.smsc = smsc
        self.counters = counters
        self.log = log
        self.connections: set[SmppConnection] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._all_closed = asyncio.Event()
        self.ports: dict[str, int] = {}

    def reload(self, settings: SmppSettings, security: SecuritySettings) -> None:
        """Timers, window and limits apply to new sessions; listeners stay as they are."""
        self.settings = settings
        self.write_stall_timeout = security.write_stall_timeout
        self.session_config = session_config(settings, security.pdu_timeout)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        server = await loop.create_server(lambda: SmppConnection(self), s.host, s.port, backlog=1024)
        self._servers.append(server)
        self.ports["smpp"] = server.sockets[0].getsockname()[1]
        if s.tls_port is not None and ssl_context is not None:
            tls = await loop.create_server(
                lambda: SmppConnection(self, tls=True), s.host, s.tls_port, ssl=ssl_context, backlog=1024
            )
            self._servers.append(tls)
            self.ports["smpps"] = tls.sockets[0].getsockname()[1]

    def expects_proxy_header(self, peer_host: str) -> bool:
        """`proxy_protocol` on: peers in `proxy_trusted_networks` (every peer if it is
        empty) must open with a PROXY header; others speak SMPP directly. The plain
        port only: on the TLS port a header would have to come before the handshake."""
        s = self.settings
        return s.proxy_protocol and (
            not s.proxy_trusted_networks or address_allowed(s.proxy_trusted_networks, peer_host)
        )

    @property
    def listening(self) -> bool:
        return bool(self._servers) and all(server.is_serving() for server in self._servers)

    def stop_listening(self) -> None:
        """No new connections; the open ones stay (closing listeners does not close them)."""
        for server in self._servers:
            server.close()
        self._servers.clear()

    def unbind_all(self) -> None:
        for conn in list(self.connections):
            conn.unbind()

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until every connection has closed, at most `timeout` seconds."""
        if self.connections:
            self._all_closed.clear()
            try:
                async with asyncio.timeout(timeout):  # not wait_for: see bridge.core.tasks
                    await self._all_closed.wait()
            except TimeoutError:
                return False
        return True

    def connection_closed(self, conn: SmppConnection) -> None:
        """`conn` is gone (called by the connection itself)."""
        self.connections.discard(conn)
        if not self.connections:
            self._all_closed.set()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()
