"""The application behind every SMPP session (aiosmtpd's "handler").

The transport feeds bytes to the sans-IO session and hands the resulting events
here; this module decides what they mean for the bridge: binds are authenticated,
requests go to the pipeline, deliver_sm answers go to the ReceiptEngine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from bridge.config import Account, Config
from bridge.core.auth import Authenticator
from bridge.core.cluster import Cluster, LocalCluster
from bridge.core.connection import Connection
from bridge.core.message import Receipt
from bridge.core.pipeline import Pipeline
from bridge.core.ports import StoreUnavailable
from bridge.core.receipts import ReceiptEngine
from bridge.core.registry import SessionRegistry
from bridge.core.tasks import Tasks
from bridge.metrics import Metrics
from bridge.smpp.constants import Command, Status, status_name
from bridge.smpp.pdu import Pdu
from bridge.smpp.session import (
    BindRequested,
    Closing,
    Event,
    PeerError,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    Unbound,
)


class Smsc:
    def __init__(
        self,
        config: Config,
        authenticator: Authenticator,
        registry: SessionRegistry,
        pipeline: Pipeline,
        receipts: ReceiptEngine,
        metrics: Metrics,
        log: Any,
        cluster: Cluster | None = None,
    ) -> None:
        self.config = config
        self.cluster = cluster or LocalCluster()
        self.authenticator = authenticator
        self.registry = registry
        self.pipeline = pipeline
        self.receipts = receipts
        self._metrics = metrics
        self._log = log
        self.accepting = True
        self._tasks = Tasks(log, "smsc")
        self._handlers: dict[type, Callable[[Connection, Any, float], None]] = {
            BindRequested: self._on_bind,
            ResponseReceived: self._on_response,
            ResponseTimedOut: self._on_timeout,
            Unbound: self._on_unbound,
            Closing: self._on_closing,
            PeerError: self._on_peer_error,
        }

    def reload(self, config: Config) -> None:
        self.config = config

    def handle_events(self, conn: Connection, events: list[Event], now: float) -> None:
        """The events of one read (or timer): the requests among them go to the
        pipeline together, as one batch (one task, one store call, one write); the
        answers to receipts are settled together too (one store write deletes the
        delivered ones), before any other event that follows them."""
        handlers = self._handlers
        requests: list[Pdu] = []
        answers: list[tuple[Receipt, Command, int]] = []  # to receipts: settled together
        for event in events:
            if type(event) is RequestReceived:
                requests.append(event.pdu)
            elif type(event) is ResponseReceived and isinstance(event.request.context, Receipt):
                answers.append((event.request.context, event.pdu.command, event.pdu.status))
            else:
                if answers:
                    self.receipts.on_responses(conn, answers)
                    answers = []
                handlers[type(event)](conn, event, now)
        if answers:
            self.receipts.on_responses(conn, answers)
        if requests:
            self._on_requests(conn, requests, now)

    # -- events ----------------------------------------------------------------------

    def _on_bind(self, conn: Connection, event: BindRequested, now: float) -> None:
        self._spawn(self._bind(conn, event))

    def _on_requests(self, conn: Connection, requests: list[Pdu], now: float) -> None:
        if not self.accepting:
            for pdu in requests:
                conn.session.respond(pdu, Status.ESME_RSYSERR)
            conn.flush()
            return
        self._spawn(self.pipeline.handle_batch(conn, requests, now))

    def _on_response(self, conn: Connection, event: ResponseReceived, now: float) -> None:
        """An answer to one of our other requests (enquire_link, unbind): the session
        has settled it. Answers to receipts never come here: `handle_events` settles
        those of one read together."""

    def _on_timeout(self, conn: Connection, event: ResponseTimedOut, now: float) -> None:
        context = event.request.context
        if isinstance(context, Receipt):
            self.receipts.on_timeout(conn, context)

    def _on_unbound(self, conn: Connection, event: Unbound, now: float) -> None:
        if self.registry.remove(conn) and conn.session.system_id:
            self.cluster.unbind(conn.session.system_id, self._member(conn))
        self.receipts.on_session_closed(conn)
        conn.log.info("unbound", reason=event.reason)

    def _on_closing(self, conn: Connection, event: Closing, now: float) -> None:
        conn.log.info("session_closing", reason=event.reason)
        conn.close()

    def _on_peer_error(self, conn: Connection, event: PeerError, now: float) -> None:
        if event.status is Status.ESME_RTHROTTLED:
            system_id = conn.account.system_id if conn.account else "unknown"
            self._metrics.throttled.labels(system_id, "window").inc()
        conn.log.info(
            "peer_error", command_status=event.status.name, reason=event.reason, command_id=f"0x{event.command_id:08X}"
        )

    # -- bind ------------------------------------------------------------------------

    async def _bind(self, conn: Connection, event: BindRequested) -> None:
        """Every bind is answered: one whose check fails unexpectedly (a bug, a store
        that raised) is refused with ESME_RBINDFAIL and logged with its traceback."""
        system_id = event.pdu.system_id
        try:
            decision_status, account, reason = await self._decide_bind(conn, event)
        except Exception:
            conn.log.exception("bind_failed", system_id_known=self.authenticator.account(system_id) is not None)
            decision_status, account, reason = Status.ESME_RBINDFAIL, None, "bind check failed"
        self._answer_bind(conn, event, decision_status, account, reason)

    async def _decide_bind(self, conn: Connection, event: BindRequested) -> tuple[Status, Account | None, str]:
        pdu = event.pdu
        system_id = pdu.system_id
        if not self.accepting:
            decision_status, account, reason = Status.ESME_RBINDFAIL, None, "shutting down"
        else:
            decision = await self.authenticator.check(
                system_id,
                pdu.password,
                conn.peer_host,
                time.monotonic(),
            )
            decision_status, account, reason = decision.status, decision.account, decision.reason
            for kind in decision.locked_now:
                self._metrics.bind_lockouts.labels(kind).inc()
                conn.log.warning("bind_lockout", kind=kind, system_id=system_id if kind == "system_id" else None)
            # Counted after the password check, which may have yielded to other binds.
            if account is not None and self.registry.count(system_id) >= account.max_binds:
                decision_status, account, reason = Status.ESME_RBINDFAIL, None, "max_binds reached"
            if account is not None:
                decision_status, reason = await self._count_bind(conn, system_id, account.max_binds)
                if decision_status is not Status.ESME_ROK:
                    account = None
        return decision_status, account, reason

    def _answer_bind(
        self, conn: Connection, event: BindRequested, decision_status: Status, account: Account | None, reason: str
    ) -> None:
        pdu = event.pdu
        system_id = pdu.system_id
        our_id = self.config.smpp.system_id
        known = self.authenticator.account(system_id) is not None
        label = system_id if known else "unknown"
        if account is not None and conn.session.is_closing:
            self.cluster.unbind(system_id, self._member(conn))  # gone while we counted it
        if account is None or conn.session.is_closing:
            conn.session.reject_bind(pdu, decision_status, our_id)
            conn.flush()
            self._metrics.binds.labels(label, status_name(decision_status)).inc()
            conn.log.warning(
                "bind_refused",
                system_id=label,
                bind_type=event.bind_type.value,
                command_status=status_name(decision_status),
                reason=reason,
            )
            return
        conn.account = account
        conn.session.accept_bind(pdu, our_id)
        conn.log = conn.log.bind(system_id=system_id)
        self.registry.add(conn)
        conn.flush()
        self._metrics.binds.labels(label, "ok").inc()
        conn.log.info(
            "bound", bind_type=event.bind_type.value, interface_version=f"0x{conn.session.interface_version:02X}"
        )
        if event.bind_type.can_receive:
            self.receipts.pump(system_id)

    async def _count_bind(self, conn: Connection, system_id: str, max_binds: int) -> tuple[Status, str]:
        """`max_binds` across every instance of a cluster (the registry counted this one's)."""
        try:
            if await self.cluster.try_bind(system_id, self._member(conn), max_binds):
                return Status.ESME_ROK, "ok"
        except Exception as exc:  # the shared store is away: refuse rather than overshoot
            # A store that is away says so; anything else is a bug, logged with its traceback.
            conn.log.error("bind_count_failed", error=str(exc), exc_info=not isinstance(exc, StoreUnavailable))
            return Status.ESME_RSYSERR, "cluster state unavailable"
        return Status.ESME_RBINDFAIL, "max_binds reached across the cluster"

    def _member(self, conn: Connection) -> str:
        return f"{self.cluster.instance_id}/{conn.connection_id}"

    # -- tasks and shutdown ----------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(coro)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> bool:
        """Wait until every request already read has been answered."""
        return await self._tasks.wait(timeout)

    async def stop(self) -> None:
        """Cancel what drain left running, and wait for it."""
        await self._tasks.cancel()
