"""ReceiptEngine: provider status -> Message state -> deliver_sm receipts to the ESME.

Intake: a `StatusReport` finds its Message by provider id; a final state finishes
the Message and, in the same store transaction, queues one Receipt per Part whose
registered_delivery asks for it. The intermediate state (ENROUTE) makes receipts
only for parts that asked for intermediate notifications; they go out with the
account's `intermediate_esm_class` (0x04 or 0x20). `on_report` returns only once
that transaction is committed (or raises StoreUnavailable), so a connector answers
its provider's callback, or stops polling, only for a report that a crash can no
longer lose.

Delivery: receipts wait in the store and in a per-system_id queue until an RX or
TRX session of that system_id is bound; each deliver_sm is deleted from the store
on an ESME_ROK deliver_sm_resp, dropped on a permanent refusal (ESME_RX_P_APPN,
ESME_RX_R_APPN), and retried with backoff otherwise (a generic_nack too). A receipt is
held back while its Part's submit_sm_resp has not been written (Kannel drops a
receipt that overtakes its response).

Which instance a receipt goes out from is the `ReceiptQueue`'s business
(`bridge.core.cluster`): with one instance every receipt is queued here; with
several, a shared queue hands each receipt to one instance that has a receiver of
its account bound, and takes back what an instance without receivers holds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from bridge.config import Account
from bridge.core.cluster import LocalReceiptQueue, ReceiptQueue
from bridge.core.connection import Connection
from bridge.core.ids import render_id
from bridge.core.message import Lifecycle, Message, Part, Receipt
from bridge.core.ports import StatusReport, Store, StoreUnavailable
from bridge.core.registry import SessionRegistry
from bridge.core.tasks import TurnWrite
from bridge.metrics import Metrics, labels
from bridge.smpp.constants import (
    ESM_CLASS_DELIVERY_RECEIPT,
    RECEIPT_ALWAYS,
    RECEIPT_ON_FAILURE,
    REGISTERED_DELIVERY_INTERMEDIATE,
    REGISTERED_DELIVERY_RECEIPT_MASK,
    Command,
    MessageState,
    Status,
    status_name,
)
from bridge.smpp.receipt import receipt_deliver_sm
from bridge.smpp.versions import RECEIPT_SUCCESS_ONLY

RETRY_DELAY_MAX = 600.0
# A report may beat the store write of its own send (a provider calling back before
# it answered): an unknown id is looked up again after these delays, within the
# request, before it counts as unknown; at most MAX_EARLY_REPORTS reports wait so.
EARLY_REPORT_RETRIES = (0.1, 0.4, 1.5)
MAX_EARLY_REPORTS = 10_000


# The deletions of delivered receipts wait for the next state change's write (one
# transaction for both: a commit is most of the store's cost) or this long, at most.
# A crash in between sends those receipts again, as it would before their commit.
DELETE_WAIT = 0.05

# A deliver_sm_resp status that says "never send this again" (v3.4 5.1.3: permanent
# and reject-message application errors); anything else is retried with backoff.
PERMANENT_REFUSALS = frozenset({Status.ESME_RX_P_APPN, Status.ESME_RX_R_APPN})


def retry_delay(attempts: int, base: float) -> float:
    """base, 3x base, 9x base ... capped at ten minutes."""
    return float(min(RETRY_DELAY_MAX, base * 3 ** max(0, attempts - 1)))


def wants_receipt(registered_delivery: int, state: MessageState) -> bool:
    """registered_delivery bits 0-1 (final: always / on failure / on success, the last
    one v5.0 only and refused at submit to older binds) and bit 4 (intermediate)."""
    if not state.is_final:
        return bool(registered_delivery & REGISTERED_DELIVERY_INTERMEDIATE)
    kind = registered_delivery & REGISTERED_DELIVERY_RECEIPT_MASK
    return (
        kind == RECEIPT_ALWAYS
        or (kind == RECEIPT_ON_FAILURE and state.is_failure)
        or (kind == RECEIPT_SUCCESS_ONLY and not state.is_failure)
    )


def receipts_for(message: Message, parts: Iterable[Part], state: MessageState, error: int, at: float) -> list[Receipt]:
    # Positional: Receipt is compiled (bridge/core/message.py), and a compiled
    # constructor parses keywords from interpreted code at twice the cost.
    return [
        Receipt(
            message.system_id,
            part.message_id,
            state,
            error,
            part.submitted_at,
            at,
            part.preview,
            message.destination,  # the receipt's source: the original destination
            message.source,
            message.provider or "",
            f"{message.id}:{part.message_id}:{int(state)}",
            0,
            0.0,
            part.id_format,
        )
        for part in parts
        if wants_receipt(part.registered_delivery, state)
    ]


class ReceiptEngine:
    def __init__(
        self,
        store: Store,
        registry: SessionRegistry,
        account_of: Callable[[str], Account | None],
        metrics: Metrics,
        log: Any,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 20,
        retry_base: float = 2.0,
        queue: ReceiptQueue | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._account_of = account_of
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self._queues: dict[str, deque[Receipt]] = {}
        self._in_flight: dict[str, int] = {}
        self._delayed: dict[str, int] = {}
        self._held: set[int] = set()
        self._parked: dict[int, list[Receipt]] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._early = 0  # reports waiting for their message to be stored
        self._committing: dict[int, asyncio.Future[None]] = {}
        # The state changes of one event-loop turn (a message and its receipts each):
        # one store write, their receipts queued together once it is committed.
        self._turn: TurnWrite[tuple[Message, list[Receipt]]] = TurnWrite(self._write_turn, self._turn_committed)
        self._undeleted: list[str] = []  # delivered receipts whose deletion waits (DELETE_WAIT)
        self._delete_timer: asyncio.TimerHandle | None = None
        self._receipt_children: dict[tuple[str, ...], Any] = {}
        self._report_children: dict[tuple[str, ...], Any] = {}
        self._latency_children: dict[tuple[str, ...], Any] = {}
        self._receipt_queue = queue or LocalReceiptQueue(store)
        self._receipt_queue.attach(self._take_handed_over, self.room)

    # -- intake ----------------------------------------------------------------------

    async def on_report(self, report: StatusReport) -> bool:
        """A provider's status for one of its ids; returns once the new state and its
        receipts are committed to the store, so the connector may answer the provider
        (or stop polling) and a crash loses nothing the provider will not send again.
        False when we do not know the id. Raises StoreUnavailable when the write
        failed: the connector answers 5xx (or polls again) so the report comes back."""
        message = await self._find(report)
        if message is None:
            self._count_report(report.provider, "unknown_id")
            self._log.warning("report_unknown_id", provider=report.provider, state=report.state.stat)
            return False
        self._store.journal.report(message, report)  # stored with the new state it brings
        applied = await self.apply_to(message, report.state, report.error, report.at)
        if not applied:
            self._store.flush_history([message.id])  # a late or repeated report: no state change to ride with
        self._count_report(report.provider, report.state.stat.lower() if applied else "duplicate")
        return True

    async def _find(self, report: StatusReport) -> Message | None:
        """The report's message. A report may beat the store write of its own send (a
        provider calling back before its HTTP answer was processed): an unknown id is
        looked up again a few times within the request (EARLY_REPORT_RETRIES, about
        two seconds) rather than answered and retried in the background, where a
        crash would lose a report the provider was told we have."""
        message = await self._store.find_by_provider_id(report.provider, report.provider_id)
        if message is not None or self._early >= MAX_EARLY_REPORTS:
            return message
        self._early += 1
        try:
            for delay in EARLY_REPORT_RETRIES:
                await asyncio.sleep(delay)
                message = await self._store.find_by_provider_id(report.provider, report.provider_id)
                if message is not None:
                    return message
        finally:
            self._early -= 1
        return None

    async def apply(self, message_id: int, state: MessageState, error: int, at: float) -> bool:
        """`apply_to` for a message known by id."""
        message = await self._store.get_message(message_id)
        return message is not None and await self.apply_to(message, state, error, at)

    async def apply_to(self, message: Message, state: MessageState, error: int, at: float) -> bool:
        """Move a Message to `state` and queue the receipts it owes; False if it was
        already there or final (a replayed or late report changes nothing). Returns
        once the change is committed (a replay waits for the commit of the change it
        repeats); raises StoreUnavailable, the change undone, when it failed.

        The decision and the in-memory change happen before the first await, so two
        reports for one message cannot interleave (the store keeps one object per
        unfinished message, so both see the same state); the receipts are queued for
        delivery only after the commit, and still wait for their submit_sm_resp."""
        pending = self._committing.get(message.id)
        if message.lifecycle is Lifecycle.FINAL or (not state.is_final and message.state is state):
            if pending is not None:
                await asyncio.shield(pending)
            return False
        before = (message.state, message.error, message.lifecycle, message.done_at)
        message.state = state
        message.error = error
        if state.is_final:
            message.lifecycle = Lifecycle.FINAL
            message.done_at = at
        after = (message.state, message.error, message.lifecycle, message.done_at)
        # A future of its own: a report's awaiter cancelled (a stopping poller) must not
        # cancel the write the turn's other reports wait for.
        write, own = self._turn.add_own((message, receipts_for(message, message.parts, state, error, at)))
        self._committing[message.id] = write
        try:
            await own
        except Exception:
            if (message.state, message.error, message.lifecycle, message.done_at) == after:
                message.state, message.error, message.lifecycle, message.done_at = before
            raise
        finally:
            if self._committing.get(message.id) is write:
                del self._committing[message.id]
        return True

    def _write_turn(self, changes: list[tuple[Message, list[Receipt]]]) -> Awaitable[None]:
        """The state changes of one turn and their receipts, in one store write (the
        deletions waiting go first, in the same transaction most likely)."""
        self._delete_delivered()
        return self._store.update_messages(
            [message for message, _ in changes], [receipt for _, receipts in changes for receipt in receipts]
        )

    def _turn_committed(self, changes: list[tuple[Message, list[Receipt]]]) -> None:
        """Committed: the reports are answered whatever delivery does now."""
        self.enqueue(self._receipt_queue.added([receipt for _, receipts in changes for receipt in receipts]))

    async def fail_parts(self, message: Message, parts: Sequence[Part], state: MessageState, error: int) -> None:
        """Receipts for parts that will never be sent (an incomplete concatenated
        set, a refused final segment), without a stored Message."""
        await self.queue_receipts(receipts_for(message, parts, state, error, self._clock()))

    async def queue_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Store receipts made outside a state change (failed parts, an operator's
        redelivery) and queue them for delivery."""
        if receipts:
            self._delete_delivered()  # before an id delivered before is stored again
            await self._store.add_receipts(receipts)
            self.enqueue(self._receipt_queue.added(receipts))

    def _count_report(self, provider: str, result: str) -> None:
        labels(self._metrics.provider_reports, self._report_children, provider, result).inc()

    # -- ordering against submit_sm_resp ---------------------------------------------

    def hold(self, message_ids: Iterable[int]) -> None:
        self._held.update(message_ids)

    def release(self, message_ids: Iterable[int]) -> None:
        if not self._parked:  # (almost always: nothing waits for these ids)
            self._held.difference_update(message_ids)
            return
        for message_id in message_ids:
            self._held.discard(message_id)
            parked = self._parked.pop(message_id, None)
            if parked:
                self.enqueue(parked)

    # -- delivery --------------------------------------------------------------------

    async def load_pending(self) -> int:
        """Queue every stored receipt that is this instance's to send (at start-up)."""
        pending = await self._receipt_queue.load()
        for receipt in pending:
            self._queues.setdefault(receipt.system_id, deque()).append(receipt)
        return len(pending)

    def _take_handed_over(self, receipts: list[Receipt]) -> None:
        """Receipts the receipt queue handed to this instance; one refused before (by
        any instance) waits here until its next attempt is due."""
        now = self._clock()
        due = []
        for receipt in receipts:
            if receipt.next_attempt_at > now:
                self._later(receipt, receipt.next_attempt_at - now)
            else:
                due.append(receipt)
        self.enqueue(due)

    def room(self, system_id: str) -> int:
        """Receipts the receivers of `system_id` here could take now beyond those queued."""
        free = 0
        for conn in self._registry.receivers(system_id):
            free += conn.session.window_room()
        return free - len(self._queues.get(system_id, ()))

    def enqueue(self, receipts: Iterable[Receipt]) -> None:
        touched: set[str] = set()
        for receipt in receipts:
            if receipt.message_id in self._held:
                self._parked.setdefault(receipt.message_id, []).append(receipt)
                continue
            self._queues.setdefault(receipt.system_id, deque()).append(receipt)
            touched.add(receipt.system_id)
        for system_id in touched:
            self.pump(system_id)

    def pump(self, system_id: str) -> None:
        """Send queued receipts of `system_id` to its receivers, within their windows;
        with room left, ask the shared queue for more; without a receiver here, offer
        what is queued back to it."""
        queue = self._queues.get(system_id)
        receivers = self._registry.receivers(system_id)
        if not receivers:
            if queue and self._receipt_queue.give_back(system_id, list(queue)):
                queue.clear()
            return
        if queue:
            for conn in receivers:
                room = conn.session.window_room()
                if room <= 0:
                    continue
                while queue and room > 0:
                    self._send(conn, queue.popleft())
                    room -= 1
                conn.flush()
                if not queue:
                    break
        if not queue:
            self._receipt_queue.want(system_id)

    def _send(self, conn: Connection, receipt: Receipt) -> None:
        account = self._account_of(receipt.system_id)
        rendered = render_id(
            receipt.message_id, receipt.id_format or (account.message_id_format if account else "decimal")
        )
        esm_class = ESM_CLASS_DELIVERY_RECEIPT
        if account is not None and not receipt.state.is_final:
            esm_class = account.intermediate_esm_class
        deliver_sm = receipt_deliver_sm(
            rendered,
            receipt.state,
            receipt.submitted_at,
            receipt.done_at,
            receipt.error,
            receipt.preview,
            (receipt.source.ton, receipt.source.npi, receipt.source.addr),
            (receipt.destination.ton, receipt.destination.npi, receipt.destination.addr),
            esm_class,
        )
        conn.session.send_request(deliver_sm, time.monotonic(), context=receipt)
        self._in_flight[receipt.system_id] = self._in_flight.get(receipt.system_id, 0) + 1

    def on_responses(self, conn: Connection, answers: Sequence[tuple[Receipt, Command, int]]) -> None:
        """The ESME's answers to receipts that came in one read: (receipt, the command
        it answered with: its deliver_sm_resp or a generic_nack, the session passes
        nothing else, status). Settled together: the delivered ones are deleted in
        one store write, with the next state change's (DELETE_WAIT at most), and
        each account's queue is pumped once."""
        delivered: list[str] = []
        touched: dict[str, None] = {}
        counts: dict[tuple[str, str], int] = {}  # counted once per read, not per receipt
        for receipt, command, status in answers:
            self._in_flight[receipt.system_id] -= 1
            touched[receipt.system_id] = None
            self._store.journal.receipt_answered(receipt, conn.connection_id, status)
            if command is not Command.DELIVER_SM_RESP:
                conn.log.warning(
                    "receipt_refused", message_id=receipt.message_id, command=command.label, command_status=status
                )
                self._retry(receipt)
            elif status in PERMANENT_REFUSALS:
                self._drop(receipt, f"refused permanently ({status_name(status)})")
            elif status == Status.ESME_ROK:
                delivered.append(receipt.id)
                key = (receipt.system_id, receipt.state.stat)
                counts[key] = counts.get(key, 0) + 1
                if receipt.state.is_final:
                    latency = self._clock() - receipt.submitted_at
                    labels(self._metrics.receipt_latency, self._latency_children, receipt.provider or "none").observe(
                        latency
                    )
            else:
                conn.log.warning("receipt_refused", message_id=receipt.message_id, command_status=status)
                self._retry(receipt)
        for (system_id, stat), count in counts.items():
            labels(self._metrics.receipts, self._receipt_children, system_id, stat).inc(count)
        if delivered:
            self._undeleted.extend(delivered)
            if self._delete_timer is None:
                self._delete_timer = asyncio.get_running_loop().call_later(DELETE_WAIT, self._delete_delivered)
        for system_id in touched:
            self.pump(system_id)

    def _delete_delivered(self) -> None:
        """Delete the delivered receipts from the store, in one write."""
        if self._delete_timer is not None:
            self._delete_timer.cancel()
            self._delete_timer = None
        if self._undeleted:
            delivered, self._undeleted = self._undeleted, []
            try:
                self._store.delete_receipts(delivered)
            except StoreUnavailable as exc:  # closed: they are sent again after a restart
                self._log.error("receipt_deletes_lost", receipts=len(delivered), error=str(exc))

    def on_timeout(self, conn: Connection, receipt: Receipt) -> None:
        self._in_flight[receipt.system_id] -= 1
        self._store.journal.receipt_answered(receipt, conn.connection_id, None)
        conn.log.warning("receipt_unanswered", message_id=receipt.message_id)
        self._retry(receipt)

    def on_session_closed(self, conn: Connection) -> None:
        """Receipts sent on a session that went away go back to the front of the queue."""
        returned = [c for c in conn.session.take_back_outstanding() if isinstance(c, Receipt)]
        for receipt in reversed(returned):
            self._in_flight[receipt.system_id] -= 1
            self._queues.setdefault(receipt.system_id, deque()).appendleft(receipt)
        touched = {r.system_id for r in returned}
        if conn.session.system_id:
            touched.add(conn.session.system_id)  # its last receiver here may be gone: see pump
        for system_id in touched:
            self.pump(system_id)

    def _retry(self, receipt: Receipt) -> None:
        receipt.attempts += 1
        if receipt.attempts >= self.max_attempts:
            self._drop(receipt, "too many attempts")
            return
        delay = retry_delay(receipt.attempts, self.retry_base)
        receipt.next_attempt_at = self._clock() + delay
        self._delete_delivered()  # the store's writes of receipts stay in order
        self._store.journal.receipt_retry(receipt)
        self._store.update_receipt(receipt)
        self._later(receipt, delay)

    def _drop(self, receipt: Receipt, reason: str) -> None:
        self._log.error(
            "receipt_dropped",
            system_id=receipt.system_id,
            message_id=receipt.message_id,
            attempts=receipt.attempts,
            reason=reason,
        )
        self._store.journal.receipt_dropped(receipt)
        self._undeleted.append(receipt.id)
        self._delete_delivered()

    def _later(self, receipt: Receipt, delay: float) -> None:
        """Queue `receipt` again after `delay` seconds."""
        self._delayed[receipt.system_id] = self._delayed.get(receipt.system_id, 0) + 1

        def due() -> None:
            self._timers.discard(handle)
            self._delayed[receipt.system_id] -= 1
            self._queues.setdefault(receipt.system_id, deque()).append(receipt)
            self.pump(receipt.system_id)

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._timers.add(handle)

    # -- observation and shutdown ------------------------------------------------------

    def waiting_for(self, system_id: str) -> int:
        """Receipts of one account not yet acknowledged (queued, in flight, delayed;
        with a shared queue, across the cluster)."""
        local = (
            len(self._queues.get(system_id, ())) + self._in_flight.get(system_id, 0) + self._delayed.get(system_id, 0)
        )
        return self._receipt_queue.waiting(system_id, local)

    def waiting(self) -> list[tuple[str, float]]:
        """Receipts not yet acknowledged, by system_id (queued, in flight, delayed)."""
        names = set(self._queues) | set(self._in_flight) | set(self._delayed) | set(self._receipt_queue.accounts())
        return sorted((name, float(self.waiting_for(name))) for name in names)

    def stop(self) -> None:
        """Write the deletions waiting, cancel retry timers (the receipts stay stored;
        the store finishes queued writes)."""
        self._delete_delivered()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
