"""What core code needs from one SMPP connection; `bridge.server` provides it.

Core code never touches sockets: it drives the sans-IO `session` through its public
methods and asks for a flush (or an unbind); the transport writes the bytes.
"""

from __future__ import annotations

from typing import Any, Protocol

from bridge.config import Account
from bridge.smpp.session import Session


class Connection(Protocol):
    session: Session
    account: Account | None
    peer_host: str
    log: Any  # a structlog logger bound with session / system_id

    def flush(self) -> None:
        """Write what the session has queued (soon, coalescing writes)."""

    def close(self) -> None:
        """Write what is queued, then close."""

    def unbind(self) -> None:
        """Unbind from our side: the unbind goes out now; the session closes the
        connection once nothing is owed either way, or after response_timeout."""

    @property
    def connection_id(self) -> str: ...
