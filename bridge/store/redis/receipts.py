"""RedisReceiptQueue: the receipts waiting for each account, shared by every instance
(bridge.core.cluster.ReceiptQueue).

One stream per account (`rq:<system_id>`, listed in `rqa`), one consumer group
(scripts.GROUP); a receipt's record and its current entry are in `r:<receipt id>`.
The store adds and deletes receipts (store.py, with the message that produced
them); here they are read (XREADGROUP), counted, given back, and taken back from an
instance that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from bridge.core.cluster import ReceiptQueue
from bridge.core.message import Receipt
from bridge.logging import get_logger
from bridge.store.base import StoreUnavailable
from bridge.store.records import load_receipt
from bridge.store.redis import scripts
from bridge.store.redis.connection import ERROR_LOG_INTERVAL, RedisConnection, first_reply, text
from bridge.store.redis.store import RedisStore


class RedisReceiptQueue(ReceiptQueue):
    """One Redis stream per account, one consumer group. An instance with receivers
    of an account bound reads as many entries as their windows have room for
    (XREADGROUP, blocking); the store deletes an entry on ESME_ROK. Receipts held by
    an instance whose receivers went away go back to the end of the stream; those
    read by an instance that died are put back by the others (RedisCluster)."""

    def __init__(self, store: RedisStore, block: float = 1.0, count_interval: float = 1.0) -> None:
        self._redis = store.connection
        self._consumer = store.instance_id  # our name in every stream's group
        self._block_ms = max(1, int(block * 1000))
        self._count_interval = count_interval
        self._consumers: dict[str, asyncio.Task[None]] = {}
        self._counts: dict[str, int] = {}
        self._counter: asyncio.Task[None] | None = None
        self._closed = False
        self._log = get_logger("receipts")
        self._last_error_log = 0.0
        self._unreturned: list[str] = []  # given back while Redis was away: tried again

    def added(self, receipts: Sequence[Receipt]) -> list[Receipt]:
        return []  # they are in their stream: whoever has a receiver reads them

    async def load(self) -> list[Receipt]:
        self._counter = asyncio.ensure_future(self._count_forever())
        return []

    def want(self, system_id: str) -> None:
        if self._closed or system_id in self._consumers:
            return
        self._consumers[system_id] = asyncio.ensure_future(self._consume(system_id))

    def give_back(self, system_id: str, receipts: Sequence[Receipt]) -> bool:
        self._return([r.id for r in receipts])
        return True

    def _return(self, receipt_ids: list[str]) -> None:
        """Back to their streams; while Redis is away, again every count_interval (until
        then they stay read by this instance, and taken over if it dies)."""
        try:
            r = self._redis
            future = r.submit([scripts.GIVE_BACK.command(r.key_prefix, *receipt_ids)])
        except StoreUnavailable:
            return  # closing: the others take them over once our heartbeat is gone

        def done(f: Any) -> None:
            if not f.cancelled() and f.exception() is not None and not self._closed:
                self._unreturned.extend(receipt_ids)

        future.add_done_callback(done)

    def waiting(self, system_id: str, local: int) -> int:
        return max(self._counts.get(system_id, 0), local)

    def accounts(self) -> list[str]:
        return list(self._counts)

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._consumers.values(), *([self._counter] if self._counter else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._consumers.clear()

    async def _consume(self, system_id: str) -> None:
        r = self._redis
        stream = r.key("rq:", system_id)
        failures = 0
        try:
            while not self._closed:
                room = self._room(system_id)
                if room <= 0 or r.client is None:
                    return
                try:
                    reply = await r.client.xreadgroup(
                        scripts.GROUP, self._consumer, {stream: ">"}, count=min(room, 500), block=self._block_ms
                    )
                    failures = 0
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    with contextlib.suppress(ResponseError):
                        await r.client.xgroup_create(stream, scripts.GROUP, id="0", mkstream=True)
                    await r.client.sadd(r.key("rqa"), system_id)  # where the takeover looks
                    continue
                except (RedisError, OSError) as exc:
                    self._error(exc)
                    failures += 1
                    await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                    continue
                receipts = [
                    load_receipt(fields[b"d"])
                    for _name, entries in _stream_entries(reply)
                    for _id, fields in entries
                    if fields and b"d" in fields
                ]
                if receipts:
                    self._take(receipts)
        finally:
            if self._consumers.get(system_id) is asyncio.current_task():
                del self._consumers[system_id]

    async def _count_forever(self) -> None:
        """Cluster-wide receipts waiting per account (for max_queued_receipts and the gauge)."""
        r = self._redis
        while not self._closed:
            try:
                assert r.client is not None
                accounts = sorted(text(a) for a in await r.client.smembers(r.key("rqa")))
                if accounts:
                    pipe = r.client.pipeline(transaction=False)
                    for account in accounts:
                        pipe.xlen(r.key("rq:", account))
                    lengths = await pipe.execute()
                    self._counts = {a: int(n) for a, n in zip(accounts, lengths, strict=True)}
            except (RedisError, OSError) as exc:
                self._error(exc)
            if self._unreturned and r.healthy:
                unreturned, self._unreturned = self._unreturned, []
                self._return(unreturned)
            await asyncio.sleep(self._count_interval)

    def _error(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL:
            self._last_error_log = now
            self._log.warning("receipt_queue_unavailable", error=str(exc))


async def requeue_receipts_of(r: RedisConnection, gone: str) -> int:
    """Receipts a gone instance had read (sent or queued, unacknowledged) go back to
    the end of their stream for any receiver (RedisCluster, taking the instance over)."""
    assert r.client is not None
    accounts = sorted(text(a) for a in await r.submit([("SMEMBERS", r.key("rqa"))], first_reply, False))
    moved = 0
    for account in accounts:
        stream = r.key("rq:", account)
        while True:
            try:
                pending = await r.client.xpending_range(stream, scripts.GROUP, "-", "+", 1000, consumername=gone)
            except ResponseError:  # no such stream or group
                break
            ids = [p["message_id"] for p in pending]
            if not ids:
                break
            moved += int(await r.submit([scripts.REQUEUE_ENTRIES.command(r.key_prefix, account, *ids)], first_reply))
        with contextlib.suppress(ResponseError):
            await r.client.xgroup_delconsumer(stream, scripts.GROUP, gone)
    return moved


def _stream_entries(reply: Any) -> list[tuple[Any, list[tuple[Any, dict[bytes, Any]]]]]:
    """XREAD / XREADGROUP replies (RESP2) as [(stream, [(id, fields)])]."""
    return [(name, entries) for name, entries in reply or ()]
