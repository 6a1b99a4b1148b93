"""The message pipeline: a decoded submit_sm (data_sm, submit_multi) to an answer.

validate -> decode text -> reassemble (segments wait in the store) -> route ->
`ack = "upstream"`: send, store, answer | `ack = "stored"`: store, answer, outbox.
query_sm is answered from the store; cancel_sm and replace_sm cannot be honoured
once a message may have reached an HTTP API, and say so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.config import Account, Config
from bridge.core.checks import DEST_STATUSES, Parsed, Refused, address_status, parse_submit
from bridge.core.cluster import Cluster, LocalCluster
from bridge.core.connection import Connection
from bridge.core.ids import IdAllocator, parse_id, render_id
from bridge.core.intake import PREVIEW_CHARS, destination_of, new_message, one_part_message
from bridge.core.message import Address, Lifecycle, Message, Part, PendingSegment
from bridge.core.numbers import Number, Unusable
from bridge.core.outbox import Outbox
from bridge.core.ports import Outcome, Store, StoreUnavailable
from bridge.core.receipts import ReceiptEngine
from bridge.core.router import Resolved, Router
from bridge.core.sender import Sender
from bridge.core.tasks import TurnWrite, run_together
from bridge.metrics import Metrics, labels
from bridge.smpp.constants import (
    Command,
    MessageState,
    Status,
    status_name,
)
from bridge.smpp.pdu import (
    DataSm,
    DataSmResp,
    DistributionList,
    MessageIdResp,
    Pdu,
    QuerySm,
    QuerySmResp,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    UnsuccessSme,
)
from bridge.smpp.receipt import ascii_safe
from bridge.smpp.text import Charset, TextError, decode_text, ia5_charset
from bridge.smpp.times import format_smpp_time
from bridge.smpp.versions import id_format_for, status_for

_CHARSETS = {"gsm0338": Charset.GSM0338, "latin1": Charset.LATIN1, "ascii": Charset.ASCII}
# The response carrying the message_id of an accepted submit_sm / data_sm.
_ID_RESPONSES: dict[Command, type[MessageIdResp]] = {Command.SUBMIT_SM: SubmitSmResp, Command.DATA_SM: DataSmResp}
_SUBMITS = frozenset((Command.SUBMIT_SM, Command.DATA_SM, Command.SUBMIT_MULTI))


@dataclass(slots=True)
class Answer:
    """How a request is answered. `body` is a response built by its handler
    (submit_multi_resp, query_sm_resp); without one, an accepted submit_sm / data_sm
    is answered with `message_id` rendered for the bind."""

    status: int
    message_id: int | None = None
    provider: str = "none"
    flash: bool = False
    release: Sequence[int] = ()
    body: Pdu | None = None


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: Store,
        ids: IdAllocator,
        sender: Sender,
        receipts: ReceiptEngine,
        outbox: Outbox,
        metrics: Metrics,
        log: Any,
        clock: Callable[[], float] = time.time,
        cluster: Cluster | None = None,
    ) -> None:
        self._store = store
        self._cluster = cluster or LocalCluster()
        self._ids = ids
        self._sender = sender
        self._receipts = receipts
        self._outbox = outbox
        self._metrics = metrics
        self._log = log
        self._clock = clock
        # The messages accepted upstream in one event-loop turn: one store write.
        self._inserts: TurnWrite[Message] = TurnWrite(lambda messages: self._store.insert_messages(messages))
        self._open_sets: dict[str, set[str]] = {}  # incomplete concatenated sets per account
        self._submit_children: dict[tuple[str, ...], Any] = {}
        self._duration_children: dict[tuple[str, ...], Any] = {}
        # Each handler takes its own command's class (the session hands over only these).
        self._handlers: dict[Command, Callable[[Connection, Account, Any], Awaitable[Answer]]] = {
            Command.SUBMIT_SM: self._submit_sm,
            Command.DATA_SM: self._submit_sm,
            Command.SUBMIT_MULTI: self._submit_multi,
            Command.QUERY_SM: self._query_sm,
            Command.CANCEL_SM: self._cancel_sm,
            Command.REPLACE_SM: self._replace_sm,
        }
        self.reload(config)

    def reload(self, config: Config) -> None:
        self.config = config
        self._security = config.security
        self.router = Router(config)

    # -- entry point -----------------------------------------------------------------

    async def handle_batch(self, conn: Connection, pdus: Sequence[Pdu], started: float) -> None:
        """Answer the requests of one read together (the server hands over what one
        `data_received` brought). Whole submit_sm / data_sm are checked one by one,
        then with `ack = "stored"` stored by one store call and answered after its
        commit in one write; with `ack = "upstream"` each is sent as it comes and the
        accepted ones of one event-loop turn share one store write. Segments and the
        other commands take `handle`'s way, side by side. Never raises."""
        account = conn.account
        assert account is not None
        if account.ack != "stored":
            await self._handle_batch(conn, account, pdus, started)
            return
        self._outbox.intake_began(len(pdus))  # stored intake comes first: the outbox steps back meanwhile
        try:
            await self._handle_batch(conn, account, pdus, started)
        finally:
            self._outbox.intake_ended()

    async def _handle_batch(self, conn: Connection, account: Account, pdus: Sequence[Pdu], started: float) -> None:
        ready: list[tuple[Pdu, Message, Part]] = []
        refused: list[tuple[Pdu, Answer]] = []
        jobs: list[Coroutine[Any, Any, None]] = []
        id_format = _id_format(conn, account)
        # The outbox's room, looked at once for the read: nothing changes it until an
        # await (and after one it is looked at again).
        full = self._no_room(account)
        for pdu in pdus:
            if not isinstance(pdu, (SubmitSm, DataSm)):
                jobs.append(self.handle(conn, pdu, started))
                continue
            try:
                prepared = self._prepare_now(conn, account, pdu, id_format, full)
                if prepared is None:
                    prepared = await self._prepare(conn, account, pdu, id_format)
                    full = self._no_room(account)
            except Exception as exc:
                refused.append((pdu, self._failure(conn, pdu, exc)))
                continue
            if isinstance(prepared, tuple):
                message, part = prepared
                ready.append((pdu, message, part))
            else:  # a segment of a concatenated message
                jobs.append(self._answer(conn, account, pdu, prepared, started))
        if refused:
            self._respond_all(conn, account, refused, started)
        if ready:
            if account.ack == "stored":
                jobs.append(self._store_batch(conn, account, ready, started))
            else:
                jobs.extend(
                    self._answer(conn, account, pdu, self._dispatch(conn, account, message, part), started)
                    for pdu, message, part in ready
                )
        if len(jobs) == 1:
            await jobs[0]
        elif jobs:
            await run_together(jobs)

    async def handle(self, conn: Connection, pdu: Pdu, started: float) -> None:
        """Answer one request the session handed over. Never raises."""
        account = conn.account
        assert account is not None
        await self._answer(conn, account, pdu, self._handlers[pdu.command](conn, account, pdu), started)

    async def _answer(
        self, conn: Connection, account: Account, pdu: Pdu, job: Awaitable[Answer], started: float
    ) -> None:
        try:
            answer = await job
        except Exception as exc:
            answer = self._failure(conn, pdu, exc)
        self._respond_all(conn, account, [(pdu, answer)], started)

    @staticmethod
    def _failure(conn: Connection, pdu: Pdu, exc: Exception) -> Answer:
        """The answer to a request whose handling raised `exc` (called in its except
        block: an unexpected error is logged with its traceback)."""
        if isinstance(exc, (Refused, TextError)):
            conn.log.info(
                "submit_refused",
                sequence=pdu.sequence,
                command=pdu.command.label,
                command_status=status_name(exc.status),
                reason=exc.reason,
            )
            return Answer(exc.status)
        if isinstance(exc, StoreUnavailable):
            conn.log.error("store_unavailable", sequence=pdu.sequence, error=str(exc))
        else:
            conn.log.exception("request_failed", sequence=pdu.sequence, command=pdu.command.label)
        return Answer(Status.ESME_RSYSERR)

    def _respond_all(
        self,
        conn: Connection,
        account: Account,
        answers: Sequence[tuple[Pdu, Answer]],
        started: float,
        held: Sequence[int] = (),
    ) -> None:
        """Answer requests: the answers leave in one write, the metrics count them once.
        The receipts held for them are released once they are written: each answer's
        `release`, and `held` (a batch's, given once rather than one per answer)."""
        session = conn.session
        release: list[int] = list(held)
        counted: dict[tuple[str, int, bool], int] = {}
        id_format = _id_format(conn, account)
        for pdu, answer in answers:
            body = answer.body
            if body is None and answer.message_id is not None:
                # Positional (header, TLVs, message_id): the response classes are
                # compiled, and keywords cost them twice as much from here.
                body = _ID_RESPONSES[pdu.command](0, 0, None, render_id(answer.message_id, id_format))
            session.respond(pdu, answer.status, body)
            release.extend(answer.release)
            if pdu.command in _SUBMITS:
                key = (answer.provider, answer.status, answer.flash)
                counted[key] = counted.get(key, 0) + 1
        conn.flush()
        if release:
            self._receipts.release(release)
        if counted:
            version = session.interface_version
            for (provider, status, flash), count in counted.items():
                labels(
                    self._metrics.submits,
                    self._submit_children,
                    account.system_id,
                    provider,
                    status_name(status_for(status, version)),  # what was sent
                    "true" if flash else "false",
                ).inc(count)
            duration = labels(self._metrics.submit_duration, self._duration_children, account.system_id)
            duration.observe_times(time.monotonic() - started, sum(counted.values()))

    # -- submit_sm / data_sm ---------------------------------------------------------

    async def _submit_sm(self, conn: Connection, account: Account, pdu: SubmitSm | DataSm) -> Answer:
        prepared = await self._prepare(conn, account, pdu, _id_format(conn, account))
        if isinstance(prepared, tuple):
            return await self._dispatch(conn, account, *prepared)
        return await prepared

    async def _prepare(
        self, conn: Connection, account: Account, pdu: SubmitSm | DataSm, id_format: str
    ) -> tuple[Message, Part] | Awaitable[Answer]:
        """A whole message checked, decoded and given its id, with its one Part; for a
        segment of a concatenated message, what adds it to its set (to await).
        `id_format`: the bind's (`_id_format`), found once per read."""
        await self._throttle(account)
        checked = self._check(conn, account, pdu, self._no_room(account))
        return self._made(conn, account, checked, await self._ids.next_id(), id_format)

    def _prepare_now(
        self, conn: Connection, account: Account, pdu: SubmitSm | DataSm, id_format: str, outbox_full: bool
    ) -> tuple[Message, Part] | Awaitable[Answer] | None:
        """`_prepare` without an await (a submit is ~20 µs of the daemon's core when
        stored; its awaits were a coroutine each), or None, with nothing done, when it
        needs one: a cluster's shared throughput bucket, or a new block of ids.
        `outbox_full`: the outbox's room as looked at for this read (`ack = "stored"`)."""
        if not self._ids.has_id():
            return None
        admitted = self._cluster.admit_now(account.system_id, account.throughput)
        if admitted is None:
            return None
        if not admitted:
            raise self._throttled(account)
        checked = self._check(conn, account, pdu, outbox_full)
        message_id = self._ids.take()
        assert message_id is not None  # (has_id, and nothing ran since)
        return self._made(conn, account, checked, message_id, id_format)

    def _check(
        self, conn: Connection, account: Account, pdu: SubmitSm | DataSm, outbox_full: bool
    ) -> tuple[Parsed, Address, Number, Resolved]:
        """What `_prepare` checks once the account's throughput admitted the submit."""
        parsed = self._parse(account, pdu, conn.session.interface_version)
        self._check_receipt_room(account, parsed.registered_delivery)
        destination, number, route = self._destination(account, pdu, parsed.flash)
        if outbox_full:
            raise self._outbox_full(account)
        return parsed, destination, number, route

    def _made(
        self,
        conn: Connection,
        account: Account,
        checked: tuple[Parsed, Address, Number, Resolved],
        message_id: int,
        id_format: str,
    ) -> tuple[Message, Part] | Awaitable[Answer]:
        """The end of `_prepare`: the message and its Part, or the segment's job."""
        parsed, destination, number, route = checked
        now = self._clock()
        if parsed.segment is None:
            text = self._decode(account, parsed.data, parsed.charset)
            message = one_part_message(
                message_id,
                message_id,
                account.system_id,
                parsed,
                destination,
                number,
                text,
                id_format,
                route.providers,
                account.ack,
                now,
            )
            return message, message.parts[0]
        return self._add_segment(account, parsed, destination, number, route, message_id, now, conn)

    async def _store_batch(
        self, conn: Connection, account: Account, ready: Sequence[tuple[Pdu, Message, Part]], started: float
    ) -> None:
        """`ack = "stored"`: the whole messages of one read stored by one store call,
        all answered after its commit, in one write."""
        answers: list[tuple[Pdu, Answer]] = []
        room = self._outbox.reserve_up_to(len(ready))  # the first `room` of them
        taken = ready[:room] if room < len(ready) else ready
        for pdu, _, _ in ready[room:]:
            answers.append((pdu, self._failure(conn, pdu, self._outbox_full(account))))
        messages = [message for _, message, _ in taken]
        session = conn.connection_id
        for message in messages:
            message.session = session  # its history's `received` event
        held = [part.message_id for _, _, part in taken]
        self._receipts.hold(held)
        release: Sequence[int] = ()  # once answered: the held receipts of the ones stored
        try:
            if taken:
                await self._store.insert_messages(messages)
        except BaseException as exc:
            self._outbox.unreserve(len(taken))
            self._receipts.release(held)
            if not isinstance(exc, Exception):
                raise
            answers.extend((pdu, self._failure(conn, pdu, exc)) for pdu, _, _ in taken)
        else:
            self._outbox.submit_all(messages, reserved=True)
            ok = Status.ESME_ROK
            answers += [
                (pdu, Answer(ok, part.message_id, message.route[0], message.flash)) for pdu, message, part in taken
            ]
            release = held
        self._respond_all(conn, account, answers, started, release)

    def _parse(self, account: Account, pdu: SubmitSm | SubmitMulti | DataSm, interface_version: int) -> Parsed:
        return parse_submit(pdu, _CHARSETS[account.default_charset], interface_version, self._clock())

    @staticmethod
    def _decode(account: Account, data: bytes, charset: Charset) -> str:
        """The text of a whole message (segments already joined)."""
        if charset is Charset.ASCII:
            charset = ia5_charset(data, account.ia5_charset)
        return decode_text(data, charset)

    def _no_room(self, account: Account) -> bool:
        """Is the outbox full for this account's submits (only `ack = "stored"` ones wait in it)?"""
        return account.ack == "stored" and self._outbox.full()

    def _outbox_full(self, account: Account) -> Refused:
        self._metrics.throttled.labels(account.system_id, "outbox_full").inc()
        return Refused(Status.ESME_RMSGQFUL, "outbox full")

    def _check_receipt_room(self, account: Account, registered_delivery: int) -> None:
        """An account whose receipts pile up (no receiver bound, or one that refuses
        them) gets backpressure instead of an unbounded queue."""
        if registered_delivery and self._receipts.waiting_for(account.system_id) >= self._security.max_queued_receipts:
            self._metrics.throttled.labels(account.system_id, "receipts_queued").inc()
            raise Refused(Status.ESME_RMSGQFUL, "too many receipts waiting for this account")

    async def _throttle(self, account: Account) -> None:
        """`throughput` per account, across every instance of a cluster (the Cluster's
        bucket); it also refuses early, before any HTTP call, while a shared store is down."""
        if not await self._cluster.admit(account.system_id, account.throughput):
            raise self._throttled(account)

    def _throttled(self, account: Account) -> Refused:
        self._metrics.throttled.labels(account.system_id, "throughput").inc()
        return Refused(Status.ESME_RTHROTTLED, "account throughput exceeded")

    def _destination(
        self, account: Account, target: SubmitSm | DataSm | SmeAddress, flash: bool
    ) -> tuple[Address, Number, Resolved]:
        """The destination as sent (for the receipt), normalised once (for everything
        else, see `bridge.core.numbers`), and its route."""
        destination, number = destination_of(
            target.dest_addr_ton,
            target.dest_addr_npi,
            target.destination_addr,
            account.default_country,
            account.ton0_reading == "national",
        )
        if isinstance(number, Unusable):
            raise Refused(Status.ESME_RINVDSTADR, number.reason)
        route = self.router.resolve(account, number, flash)
        if route is None:
            raise Refused(Status.ESME_RINVDSTADR, "no route for destination")
        return destination, number, route

    # -- concatenated messages -------------------------------------------------------

    async def _add_segment(
        self,
        account: Account,
        parsed: Parsed,
        destination: Address,
        number: Number,
        route: Resolved,
        message_id: int,
        now: float,
        conn: Connection,
    ) -> Answer:
        segment = parsed.segment
        assert segment is not None
        set_key = "\x1f".join(
            (
                account.system_id,
                parsed.source.addr,
                number.digits,
                segment.scheme,
                str(segment.reference),
                str(segment.total),
            )
        )
        pending = PendingSegment(
            set_key=set_key,
            system_id=account.system_id,
            index=segment.index,
            total=segment.total,
            message_id=message_id,
            data=parsed.data,
            data_coding=parsed.data_coding,
            registered_delivery=parsed.registered_delivery,
            submitted_at=now,
            flash=parsed.flash,
            source=parsed.source,
            destination=destination,
            number=number,
            id_format=_id_format(conn, account),
        )
        open_sets = self._open_sets.setdefault(account.system_id, set())
        if set_key not in open_sets and len(open_sets) >= self._security.max_pending_sets:
            self._metrics.throttled.labels(account.system_id, "pending_sets").inc()
            raise Refused(Status.ESME_RMSGQFUL, "too many incomplete concatenated messages")
        open_sets.add(set_key)
        complete = await self._store.add_segment(pending)
        if complete is None:  # acked on store; the set waits for its other parts
            return Answer(Status.ESME_ROK, message_id, flash=parsed.flash)
        open_sets.discard(set_key)
        data = b"".join(s.data for s in complete)
        parts = [Part(s.message_id, s.registered_delivery, s.submitted_at, "", s.id_format) for s in complete]
        this_part = next(p for p in parts if p.message_id == message_id)
        first = complete[0]
        message = new_message(
            first.message_id,
            account.system_id,
            first.source,
            first.destination,
            first.number,
            "",
            any(s.flash for s in complete),
            parts,
            route.providers,
            account.ack,
            now,
        )
        try:
            text = self._decode(account, data, parsed.charset)
        except TextError:
            others = [p for p in parts if p is not this_part]
            await self._receipts.fail_parts(message, others, MessageState.REJECTED, Status.ESME_RINVDCS)
            raise
        message.text = text
        for part, chunk in zip(parts, _preview_chunks(complete, text), strict=True):
            part.preview = ascii_safe(chunk, PREVIEW_CHARS)
        return await self._dispatch(conn, account, message, this_part)

    async def expire_segments(self, timeout: float) -> int:
        """Sets still incomplete after `timeout` seconds end with a failure receipt
        for each part that asked for one."""
        expired = await self._store.take_expired_segments(self._clock() - timeout)
        by_set: dict[str, list[PendingSegment]] = {}
        for segment in expired:
            by_set.setdefault(segment.set_key, []).append(segment)
        for set_key, segments in by_set.items():
            first = segments[0]
            self._open_sets.get(first.system_id, set()).discard(set_key)
            parts = [Part(s.message_id, s.registered_delivery, s.submitted_at, "", s.id_format) for s in segments]
            message = Message(
                id=first.message_id,
                system_id=first.system_id,
                source=first.source,
                destination=first.destination,
                number=first.number,
                text="",
                flash=first.flash,
                parts=parts,
                route=[],
                ack="",
                created_at=first.submitted_at,
            )
            self._log.warning("segments_expired", system_id=first.system_id, received=len(segments), total=first.total)
            await self._receipts.fail_parts(message, parts, MessageState.UNDELIVERABLE, Status.ESME_RSUBMITFAIL)
        return len(by_set)

    # -- the two ack modes -----------------------------------------------------------

    async def _dispatch(self, conn: Connection, account: Account, message: Message, part: Part) -> Answer:
        part_ids = [p.message_id for p in message.parts]
        message.session = conn.connection_id  # its history's `received` event
        if account.ack == "stored":
            if not self._outbox.reserve():
                others = [p for p in message.parts if p is not part]
                await self._receipts.fail_parts(message, others, MessageState.REJECTED, Status.ESME_RMSGQFUL)
                raise self._outbox_full(account)
            self._receipts.hold(part_ids)
            try:
                await self._insert_soon(message)
            except BaseException:
                self._outbox.unreserve()
                self._receipts.release(part_ids)
                raise
            self._outbox.submit(message, reserved=True)
            return Answer(Status.ESME_ROK, part.message_id, message.route[0], message.flash, part_ids)
        result, provider = await self._sender.send(message)
        if result.outcome is not Outcome.ACCEPTED:
            self._store.journal.discard(message.id)  # not stored: the ESME has the answer
            if result.status == Status.ESME_RTHROTTLED:
                self._metrics.throttled.labels(account.system_id, "upstream").inc()
            # A definitive rejection is the ESME's business; anything else is ours to watch.
            log = conn.log.info if result.outcome is Outcome.REJECTED else conn.log.warning
            log(
                "submit_not_accepted",
                message_id=message.id,
                provider=provider,
                outcome=result.outcome.value,
                reason=result.reason,
            )
            others = [p for p in message.parts if p is not part]
            if others:
                message.provider = provider
                await self._receipts.fail_parts(message, others, MessageState.REJECTED, int(result.status))
            return Answer(result.status, None, provider or message.route[0], message.flash)
        self._sender.accepted(message, result, provider, self._clock())
        self._receipts.hold(part_ids)
        try:
            await self._insert_soon(message)
        except BaseException:
            self._receipts.release(part_ids)
            raise
        return Answer(Status.ESME_ROK, part.message_id, provider or "none", message.flash, part_ids)

    def _insert_soon(self, message: Message) -> asyncio.Future[None]:
        """Store `message` with the others of this event-loop turn (TurnWrite).
        Awaited directly, not shielded: only a stop cancels these awaits, and it
        cancels them all."""
        return self._inserts.add(message)

    # -- submit_multi ----------------------------------------------------------------

    async def _submit_multi(self, conn: Connection, account: Account, pdu: SubmitMulti) -> Answer:
        await self._throttle(account)
        parsed = self._parse(account, pdu, conn.session.interface_version)
        if parsed.segment is not None:
            raise Refused(Status.ESME_RINVESMCLASS, "concatenated submit_multi is not supported")
        text = self._decode(account, parsed.data, parsed.charset)
        if self._no_room(account):
            raise self._outbox_full(account)
        message_id = await self._ids.next_id()
        now = self._clock()
        unsuccess: list[UnsuccessSme] = []
        jobs: list[tuple[SmeAddress, Awaitable[Answer]]] = []
        first = True
        for dest in pdu.dest_addresses:
            if isinstance(dest, DistributionList):  # we keep no distribution lists
                unsuccess.append(UnsuccessSme(0, 0, dest.dl_name, Status.ESME_RINVDLNAME))
                continue
            failure = address_status(dest.dest_addr_ton, dest.dest_addr_npi, *DEST_STATUSES)
            if failure is None:
                try:
                    destination, number, route = self._destination(account, dest, parsed.flash)
                except Refused as exc:
                    failure = exc.status
            if failure is not None:
                unsuccess.append(_unsuccess_entry(dest, failure))
                continue
            own_id = message_id if first else await self._ids.next_id()
            first = False
            message = one_part_message(
                own_id,
                message_id,
                account.system_id,
                parsed,
                destination,
                number,
                text,
                _id_format(conn, account),
                route.providers,
                account.ack,
                now,
            )
            jobs.append((dest, self._dispatch(conn, account, message, message.parts[0])))
        answers = await asyncio.gather(*(job for _, job in jobs), return_exceptions=True)
        release: list[int] = []
        provider = "none"
        for (dest, _), answer in zip(jobs, answers, strict=True):
            if isinstance(answer, BaseException):
                status = answer.status if isinstance(answer, (Refused, TextError)) else Status.ESME_RSYSERR
                unsuccess.append(_unsuccess_entry(dest, status))
            elif answer.status != Status.ESME_ROK:
                unsuccess.append(_unsuccess_entry(dest, answer.status))
            else:
                release.extend(answer.release)
                provider = answer.provider
        body = SubmitMultiResp(message_id=render_id(message_id, _id_format(conn, account)), unsuccess_smes=unsuccess)
        return Answer(Status.ESME_ROK, message_id, provider, parsed.flash, release, body)

    # -- query_sm, cancel_sm, replace_sm ---------------------------------------------

    async def _query_sm(self, conn: Connection, account: Account, pdu: QuerySm) -> Answer:
        rendered = pdu.message_id
        message_id = parse_id(rendered, _id_format(conn, account))
        message = await self._store.get_message(message_id) if message_id else None
        if message is None or message.system_id != account.system_id:
            raise Refused(Status.ESME_RQUERYFAIL, "unknown message_id")
        state = message.state if message.state is not None else MessageState.ENROUTE
        done_at = message.done_at if message.lifecycle is Lifecycle.FINAL else None
        if done_at is None or not state.is_final:
            # A final state always comes with its final_date, and only then (5.2.28).
            state, done_at = MessageState.ENROUTE, None
        final_date = format_smpp_time(done_at) if done_at is not None else ""
        return Answer(
            Status.ESME_ROK,
            body=QuerySmResp(
                message_id=rendered, final_date=final_date, message_state=int(state), error_code=message.error & 0xFF
            ),
        )

    async def _cancel_sm(self, conn: Connection, account: Account, pdu: Pdu) -> Answer:
        raise Refused(Status.ESME_RCANCELFAIL, "messages handed to an HTTP API cannot be cancelled")

    async def _replace_sm(self, conn: Connection, account: Account, pdu: Pdu) -> Answer:
        raise Refused(Status.ESME_RREPLACEFAIL, "messages handed to an HTTP API cannot be replaced")


def _id_format(conn: Connection, account: Account) -> str:
    """How this bind is given message_ids (submit_sm_resp, query_sm; its receipts
    repeat it): the account's format, hex to a v3.3 bind."""
    return id_format_for(account.message_id_format, conn.session.interface_version)


def _unsuccess_entry(dest: SmeAddress, status: int) -> UnsuccessSme:
    return UnsuccessSme(dest.dest_addr_ton, dest.dest_addr_npi, dest.destination_addr, int(status))


def _preview_chunks(segments: Sequence[PendingSegment], text: str) -> list[str]:
    """Each segment's share of the text, for its receipt: the text split in the
    proportions of the segments' sizes (exact for single-byte codings)."""
    total = sum(len(s.data) for s in segments) or 1
    chunks: list[str] = []
    start = 0
    for s in segments:
        end = start + round(len(text) * len(s.data) / total)
        chunks.append(text[start:end])
        start = end
    return chunks
