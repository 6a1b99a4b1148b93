"""systemd's notify protocol (sd_notify(3)): READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1.

A state is one datagram written to the unix socket named by `$NOTIFY_SOCKET`; a name
starting with "@" is an abstract socket. Without `$NOTIFY_SOCKET` (not started by
systemd as Type=notify, or in Docker) every call does nothing. The watchdog pings
at half of `$WATCHDOG_USEC` from a task on the event loop, so a loop that hangs stops
the pings and systemd restarts the service.

Why not the `sdnotify` package: the protocol is this one datagram; the package adds a
dependency that connects once when constructed, hides every error behind a bare
`except`, and has nothing for WATCHDOG_USEC / WATCHDOG_PID.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

WATCHDOG_FRACTION = 0.5  # ping at half the timeout, as sd_watchdog_enabled(3) advises


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (newline-separated KEY=VALUE lines); False when there is no
    notify socket or it cannot be reached (systemd gone: nothing to tell)."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings, or None when systemd does not watch us."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1_000_000 * WATCHDOG_FRACTION


class Notifier:
    """The daemon's side of Type=notify: tell systemd where the service stands."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._environ.get("NOTIFY_SOCKET"))

    def send(self, state: str) -> bool:
        return notify(state, self._environ)

    def ready(self, status: str = "serving") -> bool:
        self.start_watchdog()
        return self.send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this reload.
        return self.send(f"RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def reloaded(self, status: str) -> bool:
        return self.send(f"READY=1\nSTATUS={status}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1\nSTATUS=draining sessions")

    def start_watchdog(self) -> None:
        interval = watchdog_interval(self._environ)
        if interval is None or not self.enabled or self._watchdog is not None:
            return
        self._watchdog = asyncio.ensure_future(self._ping(interval))

    async def _ping(self, interval: float) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)

    def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
