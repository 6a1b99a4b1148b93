"""The asyncio side of SMPP: listeners, TLS, bytes to and from the session machine.

No protocol rules here: each connection owns a sans-IO `Session`, feeds it what
the socket reads and the clock, writes what it queues, and passes its events to
the `Smsc`. Session time is `time.monotonic()`.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from typing import Any, cast

from bridge.config import Account, SecuritySettings, SmppSettings
from bridge.core.smsc import Smsc
from bridge.smpp.session import PduCounters, Session, SessionConfig

# Write buffer: stop reading from a peer that does not read our answers beyond the
# high mark; cut it off beyond the hard limit.
WRITE_HIGH = 256 * 1024
WRITE_LOW = 64 * 1024
WRITE_HARD_LIMIT = 4 * 1024 * 1024

_connection_ids = itertools.count(1)


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

    def __init__(self, server: SmppServer) -> None:
        self._server = server
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
        self.log.debug("connected")
        self._arm()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        events = self.session.receive_data(data, now)
        if events:
            self._server.smsc.handle_events(self, events, now)
        self._write_now()
        self._arm()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._connection_gone(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._stall is not None:
            self._stall.cancel()
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
        if self._transport is not None and not self._closed:
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
                lambda: SmppConnection(self), s.host, s.tls_port, ssl=ssl_context, backlog=1024
            )
            self._servers.append(tls)
            self.ports["smpps"] = tls.sockets[0].getsockname()[1]

    @property
    def listening(self) -> bool:
        return bool(self._servers) and all(server.is_serving() for server in self._servers)

    def stop_listening(self) -> None:
        """No new connections; the open ones stay (closing listeners does not close them)."""
        for server in self._servers:
            server.close()
        self._servers.clear()

    def unbind_all(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            conn.session.unbind(now)
            conn._write_now()
            if conn.session.is_closing:
                conn.close()
            else:
                conn._arm()

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until every connection has closed, at most `timeout` seconds."""
        if self.connections:
            self._all_closed.clear()
            try:
                await asyncio.wait_for(self._all_closed.wait(), timeout)
            except TimeoutError:
                return False
        return True

    def _connection_gone(self, conn: SmppConnection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self._all_closed.set()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            if conn._transport is not None:
                conn._transport.abort()
