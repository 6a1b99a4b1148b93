"""RedisStore: the Store promises the SQLite store keeps, on Redis shared by several
bridge instances.

A message is `m:<id>` (r = record, l = lifecycle, o = owning instance) with its
indexes, kept by one script per write (scripts.SAVE) together with the receipts
its new state produced and, in the same MULTI/EXEC, the history events pending for
it (scripts.JOURNAL). A final message never changes again; an outbox write by an
instance that no longer owns the message fails with OwnershipLost. The key layout
is in bridge/store/redis/__init__.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from bridge.core.cluster import OwnershipLost, new_instance_id
from bridge.core.history import HistoryEvent, receipt_owner, with_received
from bridge.core.message import UPGRADE_DUE, Lifecycle, Message, PendingSegment, Receipt
from bridge.core.ports import MAX_MESSAGE_ID, PURGE_BATCH, Store
from bridge.logging import get_logger
from bridge.store.ids import MAX_ID_PROBES, id_seed
from bridge.store.records import (
    dump_event,
    dump_message,
    dump_receipt,
    dump_segment,
    load_event,
    load_message,
    load_receipt,
    load_segment,
)
from bridge.store.redis import scripts
from bridge.store.redis.connection import RedisConnection, first_reply, text


class RedisStore(Store):
    """The Store on Redis: every call is one or a few commands (mostly a script)
    queued on `connection` (connection.py), so calls keep their order and
    concurrent calls share a MULTI/EXEC."""

    def __init__(
        self,
        url: str,
        prefix: str = "smpp-bridge",
        timeout: float = 5.0,
        instance_id: str | None = None,
        retention: float = 7 * 86400,
    ) -> None:
        super().__init__()
        self.retention = retention
        self.instance_id = instance_id or new_instance_id()
        self._redis = RedisConnection(url, prefix, timeout, on_success=self._delete_undeleted)
        self._p = self._redis.key_prefix  # the scripts' ARGV[1]
        self._log = get_logger("store")
        self._undeleted: list[str] = []  # receipts acknowledged while Redis was away

    @property
    def connection(self) -> RedisConnection:
        """The client and command queue, shared: RedisCluster and RedisReceiptQueue
        send their own commands through it (in the same MULTI/EXEC batches)."""
        return self._redis

    async def open(self) -> None:
        await self._redis.open()
        migrated = await self._redis.submit([scripts.MIGRATE_DUE.command(self._p, repr(UPGRADE_DUE))], first_reply)
        if migrated:
            self._log.info("store_migrated", messages_given_a_due_time=int(migrated))

    async def close(self) -> None:
        await self._redis.close()

    # -- ids ------------------------------------------------------------------------------

    async def reserve_ids(self, count: int) -> int:
        # A fresh Redis (or a counter from before ids were bounded) starts from the clock.
        first: int = await self._redis.submit(
            [scripts.RESERVE_IDS.command(self._p, count, id_seed(time.time()), MAX_MESSAGE_ID, MAX_ID_PROBES)],
            lambda r: int(r[0]),
        )
        return first

    # -- messages -------------------------------------------------------------------------

    def _save(self, message: Message, mode: str, receipts: Sequence[Receipt] = ()) -> tuple[Any, ...]:
        m = message
        provider = m.provider or ""
        args: list[Any] = [
            self._p,
            self.instance_id,
            mode,
            m.id,
            dump_message(m),
            int(m.lifecycle),
            provider,
            m.route[0] if m.route else "",
            repr(m.done_at) if m.done_at is not None else "",
            repr(m.due_at) if m.due_at is not None and m.lifecycle is Lifecycle.ACCEPTED else "",
            m.polls,
        ]
        provider_ids = m.provider_ids if provider else []
        args.append(len(provider_ids))
        args.extend(provider_ids)
        parts = [p.message_id for p in m.parts if p.message_id != m.id] if mode == "i" else []
        args.append(len(parts))
        args.extend(parts)
        args.append(len(receipts))
        for receipt in receipts:
            args.extend((receipt.id, receipt.system_id, dump_receipt(receipt)))
        return scripts.SAVE.command(*args)

    def insert_messages(self, messages: Sequence[Message]) -> Awaitable[None]:
        commands = [self._save(m, "i") for m in messages]
        return self._redis.submit(self._journaled(commands, [m.id for m in messages], messages), _check_owned)

    def update_messages(self, messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> Awaitable[None]:
        # Each message's receipts go with it: they land only if its new state does.
        owner: dict[tuple[str, int], int] = {}
        for index, m in enumerate(messages):
            for part in m.parts:
                owner[(m.system_id, part.message_id)] = index
        grouped: list[list[Receipt]] = [[] for _ in messages]
        loose: list[Receipt] = []
        for receipt in receipts:
            at = owner.get((receipt.system_id, receipt.message_id))
            (grouped[at] if at is not None else loose).append(receipt)
        commands = [self._save(m, "u", grouped[i]) for i, m in enumerate(messages)]
        if loose:
            commands.append(self._add_receipts(loose))
        return self._redis.submit(self._journaled(commands, [m.id for m in messages]), _check_owned)

    async def get_message(self, message_id: int) -> Message | None:
        record = await self._redis.submit([scripts.GET_MESSAGE.command(self._p, message_id)], first_reply, write=False)
        return load_message(record) if record is not None else None

    async def find_by_provider_id(self, provider: str, provider_id: str) -> Message | None:
        record = await self._redis.submit(
            [scripts.FIND_BY_PROVIDER_ID.command(self._p, provider, provider_id)], first_reply, write=False
        )
        return load_message(record) if record is not None else None

    async def messages_in(
        self, lifecycles: Sequence[int], provider: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[Message]:
        wanted = [int(lc) for lc in lifecycles if int(lc) != Lifecycle.FINAL]
        if not wanted:
            return []
        if provider is not None and wanted == [Lifecycle.ACCEPTED]:
            indexes, check = [f"lc:{Lifecycle.ACCEPTED:d}:{provider}"], None
        else:
            indexes, check = [f"lc:{lc:d}" for lc in wanted], provider
        out: list[Message] = []
        while len(out) < limit:
            records = await self._redis.submit(
                [scripts.MESSAGES_IN.command(self._p, after_id, limit, *indexes)], first_reply, write=False
            )
            batch = [load_message(r) for r in records or []]
            if not batch:
                break
            after_id = batch[-1].id
            out.extend(m for m in batch if check is None or m.provider == check)
            if check is None:
                break
        return out[:limit]

    async def due_messages(self, provider: str, now: float, limit: int = 500) -> list[Message]:
        reply = await self._redis.submit(
            [scripts.DUE_MESSAGES.command(self._p, provider, repr(now), limit)], first_reply, write=False
        )
        out = []
        for record, due_at, polls in zip(reply[::3], reply[1::3], reply[2::3], strict=True):
            message = load_message(record)
            message.due_at, message.polls = float(due_at), int(polls)
            out.append(message)
        return out

    async def next_due(self, provider: str) -> float | None:
        first = await self._redis.submit(
            [("ZRANGE", self._redis.key("due:", provider), 0, 0, "WITHSCORES")], first_reply, write=False
        )
        return float(first[1]) if first else None

    def reschedule(self, messages: Sequence[Message]) -> Awaitable[None]:
        args: list[Any] = [self._p]
        for m in messages:
            args.extend((m.id, m.provider or "", repr(m.due_at) if m.due_at is not None else "", m.polls))
        return self._redis.submit([scripts.RESCHEDULE.command(*args)] if messages else [])

    async def count_outbox(self) -> dict[str, int]:
        providers = await self._redis.submit([("SMEMBERS", self._redis.key("obp"))], first_reply, write=False)
        names = sorted(text(p) for p in providers or ())
        if not names:
            return {}
        counts = await self._redis.submit(
            [("ZCARD", self._redis.key("ob:", name)) for name in names], write=False, parse=list
        )
        return {name: int(n) for name, n in zip(names, counts, strict=True) if int(n)}

    async def purge(self, finished_before: float, limit: int = PURGE_BATCH) -> int:
        # One script per batch: one round trip, a few ms of Redis's time, no record decoded.
        deleted = await self._redis.submit([scripts.PURGE.command(self._p, repr(finished_before), limit)], first_reply)
        return int(deleted)

    # -- segments -------------------------------------------------------------------------

    async def add_segment(self, segment: PendingSegment) -> list[PendingSegment] | None:
        command = scripts.ADD_SEGMENT.command(
            self._p,
            segment.set_key,
            segment.index,
            repr(segment.submitted_at),
            dump_segment(segment),
            segment.data,
            segment.total,
        )
        fields = await self._redis.submit([command], first_reply)
        return _segments(fields) if fields else None

    async def take_expired_segments(self, created_before: float) -> list[PendingSegment]:
        sets = await self._redis.submit(
            [scripts.TAKE_EXPIRED_SEGMENTS.command(self._p, repr(created_before))], first_reply
        )
        out: list[PendingSegment] = []
        for fields in sets or ():
            out.extend(_segments(fields))
        return out

    # -- receipts -------------------------------------------------------------------------

    def _add_receipts(self, receipts: Sequence[Receipt]) -> tuple[Any, ...]:
        args: list[Any] = [self._p]
        for receipt in receipts:
            args.extend((receipt.id, receipt.system_id, dump_receipt(receipt)))
        return scripts.ADD_RECEIPTS.command(*args)

    def add_receipts(self, receipts: Sequence[Receipt]) -> Awaitable[None]:
        if not receipts:
            return self._redis.submit([])
        owners = sorted({receipt_owner(r.id, r.message_id) for r in receipts})
        return self._redis.submit(self._journaled([self._add_receipts(receipts)], owners))

    def update_receipt(self, receipt: Receipt) -> Awaitable[None]:
        command = scripts.UPDATE_RECEIPT.command(self._p, receipt.id, dump_receipt(receipt))
        return self._redis.submit(self._journaled([command], [receipt_owner(receipt.id, receipt.message_id)]))

    def _delete_undeleted(self) -> None:
        """After every batch Redis answered: the deletes that failed while it was away, again."""
        if self._undeleted:
            undeleted, self._undeleted = self._undeleted, []
            for receipt_id in undeleted:
                self.delete_receipt(receipt_id)

    def delete_receipt(self, receipt_id: str) -> Awaitable[None]:
        """An acknowledged receipt must not stay in its stream (it would be sent again
        one day): a delete that fails is tried again once Redis answers."""
        command = scripts.DELETE_RECEIPT.command(self._p, receipt_id)
        future = self._redis.submit(self._journaled([command], [receipt_owner(receipt_id)]))

        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is not None and not self._redis.healthy and not self._redis.closing:
                self._undeleted.append(receipt_id)  # Redis was away (not a refused command)

        future.add_done_callback(done)
        return future

    async def pending_receipts(self, system_id: str | None = None, limit: int = 10000) -> list[Receipt]:
        if system_id is None:
            names = await self._redis.submit([("SMEMBERS", self._redis.key("rqa"))], first_reply, write=False)
            accounts = sorted(text(n) for n in names or ())
        else:
            accounts = [system_id]
        out: list[Receipt] = []
        for account in accounts:
            if len(out) >= limit:
                break
            records = await self._redis.submit(
                [scripts.PENDING_RECEIPTS.command(self._p, account, limit - len(out))], first_reply, write=False
            )
            out.extend(load_receipt(r) for r in records or ())
        return out

    # -- history and the operator's queries -----------------------------------------------

    def _journaled(
        self, commands: list[tuple[Any, ...]], owners: Sequence[int], inserted: Sequence[Message] = ()
    ) -> list[tuple[Any, ...]]:
        """`commands` and, in the same MULTI, one command appending the history events
        pending for `owners` (and indexing the `inserted` messages by destination)."""
        events = self.journal.take(owners)
        if not events and not inserted:
            return commands
        args: list[Any] = [self._p, max(1, int(self.retention * 1000)), len(inserted)]
        for m in inserted:
            args.extend((m.number.digits, repr(m.created_at), m.id))
        for event in events:
            args.extend((event.message_id, dump_event(event)))
        return [*commands, scripts.JOURNAL.command(*args)]

    def flush_history(self, message_ids: Sequence[int]) -> Awaitable[None]:
        return self._redis.submit(self._journaled([], message_ids))

    async def history(self, message_id: int) -> list[HistoryEvent]:
        record, events = await self._redis.submit(
            [("HGET", self._redis.key("m:", message_id), "r"), ("LRANGE", self._redis.key("h:", message_id), 0, -1)],
            list,
            write=False,
        )
        message = load_message(record) if record is not None else None
        return with_received(message, [load_event(r) for r in events or ()])

    async def find_by_destination(self, destination: str, since: float, until: float, limit: int) -> list[Message]:
        command = scripts.FIND_BY_DESTINATION.command(self._p, destination, repr(since), repr(until), limit)
        records = await self._redis.submit([command], first_reply, write=False)
        return [load_message(r) for r in records or ()]

    async def purge_history(self, before: float) -> int:
        return 0  # each message's events expire by themselves (h:<id>, `retention` after the last)

    async def incomplete_sets(self, limit: int = 1000) -> list[list[PendingSegment]]:
        sets = await self._redis.submit([scripts.INCOMPLETE_SETS.command(self._p, limit)], first_reply, write=False)
        return [_segments(fields) for fields in sets or () if fields]


def _check_owned(replies: list[Any]) -> None:
    if any(r == -1 for r in replies):
        raise OwnershipLost("another instance took this outbox message over")


def _segments(fields: list[Any]) -> list[PendingSegment]:
    """HGETALL of a set (r<idx> record, d<idx> data) -> its segments by index."""
    records: dict[str, Any] = {}
    data: dict[str, bytes] = {}
    for name, value in zip(fields[::2], fields[1::2], strict=True):
        field = text(name)
        (records if field[0] == "r" else data)[field[1:]] = value
    segments = [load_segment(record, data.get(index, b"")) for index, record in records.items()]
    return sorted(segments, key=lambda s: s.index)
