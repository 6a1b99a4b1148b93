"""Bound sessions by system_id: for max_binds, receipts, metrics and shutdown."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from bridge.core.connection import Connection


class SessionRegistry:
    def __init__(self) -> None:
        self._bound: dict[str, list[Connection]] = {}
        self._rotation = itertools.count()

    def add(self, conn: Connection) -> None:
        assert conn.session.system_id is not None
        self._bound.setdefault(conn.session.system_id, []).append(conn)

    def remove(self, conn: Connection) -> bool:
        """False when `conn` was not bound here."""
        system_id = conn.session.system_id
        if system_id is None:
            return False
        conns = self._bound.get(system_id)
        if conns and conn in conns:
            conns.remove(conn)
            if not conns:
                del self._bound[system_id]
            return True
        return False

    def count(self, system_id: str) -> int:
        return len(self._bound.get(system_id, ()))

    def receivers(self, system_id: str) -> list[Connection]:
        """RX/TRX sessions of `system_id` able to take a deliver_sm, rotated so that
        receipts spread over them."""
        conns = [c for c in self._bound.get(system_id, ()) if c.session.can_deliver]
        if len(conns) > 1:
            shift = next(self._rotation) % len(conns)
            conns = conns[shift:] + conns[:shift]
        return conns

    def all(self) -> Iterator[Connection]:
        for conns in self._bound.values():
            yield from conns

    def metric_rows(self) -> Iterator[tuple[str, str, int]]:
        counts: dict[tuple[str, str], int] = {}
        for system_id, conns in self._bound.items():
            for conn in conns:
                kind = conn.session.bind_type
                key = (system_id, kind.value if kind else "none")
                counts[key] = counts.get(key, 0) + 1
        for (system_id, bind_name), count in sorted(counts.items()):
            yield system_id, bind_name, count
