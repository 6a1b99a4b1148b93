"""RedisCluster: what several bridge instances on one Redis share (bridge.core.cluster).

Heartbeats (`hb:<instance>`, listed in `instances`), bound sessions per account
(`binds:<system_id>`), throughput buckets (`tp:<system_id>`, taken in shares),
once-per-cluster leases (`lease:<name>`), and the takeover of a gone instance: its
outbox (`own:<instance>`) and the receipts it had read (receipts.py). Its commands
go through the store's queue (`RedisStore.connection`), in the same MULTI/EXEC
batches as the store's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

from bridge.core.cluster import Cluster, Lease, OrphanSink
from bridge.logging import get_logger
from bridge.store.base import StoreUnavailable
from bridge.store.redis import scripts
from bridge.store.redis.connection import AWAY, first_reply, retrieve, text
from bridge.store.redis.receipts import requeue_receipts_of
from bridge.store.redis.store import RedisStore


@dataclass(slots=True)
class _Share:
    """This instance's share of an account's cluster-wide throughput bucket."""

    rate: float
    block: int
    tokens: float = 0.0
    expires: float = 0.0
    empty_until: float = 0.0
    refill: asyncio.Task[None] | None = None
    waiting: int = 0  # submits waiting for a refill: it asks for enough for all of them


SHARE_SECONDS = 0.05  # tokens taken from Redis at a time: this many seconds of the rate
SHARE_LIFETIME = 1.0  # tokens unused this long go unused (no instance hoards them)
PROBE_INTERVAL = 0.5  # while Redis is away, a submit checks whether it is back at most this often


class RedisCluster(Cluster):
    """Heartbeat every instance_ttl/4; an instance whose heartbeat lapsed is gone:
    its outbox and the receipts it had read are taken over, its bind slots and
    leases expire on their own."""

    shared = True

    def __init__(self, store: RedisStore, ttl: float = 10.0) -> None:
        super().__init__(store.instance_id)
        self._redis = store.connection
        self.ttl = ttl
        self._log = get_logger("cluster").bind(instance=self.instance_id)
        self._binds: dict[str, str] = {}  # member -> system_id, bound here
        self._leases: dict[str, float] = {}  # name -> ttl, held here
        self._shares: dict[str, _Share] = {}
        self._task: asyncio.Task[None] | None = None
        self._on_orphans: OrphanSink | None = None
        self._orphans: list[int] = []  # taken over, not yet handed to the outbox
        self._connected_since: float | None = None
        self._last_probe = 0.0

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def start(self, on_orphans: OrphanSink) -> None:
        self._on_orphans = on_orphans
        await self._beat()
        self._connected_since = time.monotonic()
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        commands: list[tuple[Any, ...]] = [
            scripts.RELEASE.command(self._redis.key("lease:", name), self.instance_id) for name in self._leases
        ]
        commands.extend(("ZREM", self._redis.key("binds:", sid), member) for member, sid in self._binds.items())
        # Still listed in `instances`, without a heartbeat: the others take over what
        # this instance leaves (its outbox, receipts it read) at their next beat.
        commands.append(("DEL", self._redis.key("hb:", self.instance_id)))
        self._leases.clear()
        self._binds.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._redis.submit(commands), self._redis.timeout)

    # -- heartbeat and taking over ------------------------------------------------------

    async def _loop(self) -> None:
        interval = self.ttl / 4
        while True:
            await asyncio.sleep(interval)
            try:
                await self._beat()
                if self._connected_since is None:
                    self._connected_since = time.monotonic()
                # Claim only after a whole ttl of contact: after an outage every live
                # instance gets the time to beat again before it counts as gone.
                if time.monotonic() - self._connected_since >= self.ttl:
                    await self._take_over()
                if self._orphans:
                    await self._adopt()
            except Exception as exc:
                if self._connected_since is not None or not isinstance(exc, AWAY):
                    # Redis away is said once per outage; anything else is a bug, with its traceback.
                    self._log.error("cluster_heartbeat_failed", error=str(exc), exc_info=not isinstance(exc, AWAY))
                self._connected_since = None

    async def _beat(self) -> None:
        r = self._redis
        hb = r.key("hb:", self.instance_id)
        commands: list[tuple[Any, ...]] = [
            ("SET", hb, repr(time.time()), "PX", self._ttl_ms, "GET"),
            ("SADD", r.key("instances"), self.instance_id),
        ]
        if self._binds:
            pairs = [a for member, sid in self._binds.items() for a in (r.key("binds:", sid), member)]
            commands.append(scripts.REFRESH_BINDS.command(self._ttl_ms, *pairs))
        names = list(self._leases)
        for name in names:
            commands.append(
                scripts.LEASE.command(r.key("lease:", name), self.instance_id, int(self._leases[name] * 1000))
            )
        replies = await asyncio.wait_for(r.submit(commands, list), r.timeout)
        if replies[0] is None and self._connected_since is not None:
            # Our heartbeat had lapsed: the others may have taken our outbox over.
            self._log.warning("cluster_heartbeat_lapsed")
        for name, state in zip(names, replies[len(commands) - len(names) :], strict=True):
            if state == 0:
                self._leases.pop(name, None)
                self._log.warning("lease_lost", lease=name)

    async def _take_over(self) -> None:
        r = self._redis
        members = sorted(text(m) for m in await r.submit([("SMEMBERS", r.key("instances"))], first_reply, False))
        others = [m for m in members if m != self.instance_id]
        if not others:
            return
        alive = await r.submit([("EXISTS", r.key("hb:", m)) for m in others], list, write=False)
        for gone, beating in zip(others, alive, strict=True):
            if beating:
                continue
            ids = [
                int(i)
                for i in await r.submit(
                    [scripts.CLAIM_OUTBOX.command(r.key_prefix, gone, self.instance_id)], first_reply
                )
            ]
            receipts = await requeue_receipts_of(r, gone)
            await r.submit([("SREM", r.key("instances"), gone)])
            self._log.warning("cluster_instance_gone", gone=gone, outbox=len(ids), receipts=receipts)
            self._orphans.extend(ids)

    async def _adopt(self) -> None:
        orphans, self._orphans = self._orphans, []
        try:
            assert self._on_orphans is not None
            await self._on_orphans(orphans)
        except Exception:
            self._orphans = orphans + self._orphans  # again at the next beat
            raise

    # -- binds ----------------------------------------------------------------------------

    async def try_bind(self, system_id: str, member: str, max_binds: int) -> bool:
        r = self._redis
        command = scripts.BIND.command(r.key("binds:", system_id), member, max_binds, self._ttl_ms)
        granted = bool(await r.submit([command], first_reply))
        if granted:
            self._binds[member] = system_id
        return granted

    def unbind(self, system_id: str, member: str) -> None:
        if self._binds.pop(member, None) is None:
            return
        with contextlib.suppress(StoreUnavailable):  # if lost: it expires with the heartbeat ttl
            self._redis.submit([("ZREM", self._redis.key("binds:", system_id), member)])

    # -- throughput -----------------------------------------------------------------------

    async def admit(self, system_id: str, rate: float) -> bool:
        """Tokens come from the account's bucket in Redis in blocks of SHARE_SECONDS of
        the rate: one round trip per block, not per submit (see docs/redis.md)."""
        if not self._redis.healthy:
            await self._check_back()
        if rate <= 0:
            return True
        now = time.monotonic()
        share = self._shares.get(system_id)
        if share is None or share.rate != rate:
            block = max(1, min(math.ceil(rate * SHARE_SECONDS), int(max(rate, 1.0))))
            share = self._shares[system_id] = _Share(rate, block)
        if now > share.expires:
            share.tokens = 0.0
        if share.tokens < 1:
            share.waiting += 1
            try:
                while share.tokens < 1:
                    if time.monotonic() < share.empty_until and share.refill is None:
                        return False  # the cluster's bucket was empty a moment ago
                    await self._refill(system_id, share)
            finally:
                share.waiting -= 1
        share.tokens -= 1
        if share.tokens < share.block / 2 and share.refill is None:
            task = share.refill = asyncio.ensure_future(self._take_tokens(system_id, share))
            task.add_done_callback(retrieve)
        return True

    async def _check_back(self) -> None:
        now = time.monotonic()
        if now - self._last_probe >= PROBE_INTERVAL:
            self._last_probe = now
            if await self._redis.probe():
                return
        raise StoreUnavailable("Redis unavailable")

    async def _refill(self, system_id: str, share: _Share) -> None:
        if share.refill is None:
            share.refill = asyncio.ensure_future(self._take_tokens(system_id, share))
        await asyncio.shield(share.refill)

    async def _take_tokens(self, system_id: str, share: _Share) -> None:
        try:
            r = self._redis
            burst = max(share.rate, 1.0)
            want = min(int(burst), max(share.block, share.waiting))
            command = scripts.TAKE_TOKENS.command(r.key("tp:", system_id), repr(share.rate), repr(burst), want)
            granted = int(await r.submit([command], first_reply))
            now = time.monotonic()
            if now > share.expires:
                share.tokens = 0.0
            share.tokens += granted
            share.expires = now + SHARE_LIFETIME
            if not granted:
                share.empty_until = now + 1.0 / share.rate
        finally:
            share.refill = None

    # -- leases ---------------------------------------------------------------------------

    async def lease(self, name: str, ttl: float) -> Lease:
        r = self._redis
        try:
            command = scripts.LEASE.command(r.key("lease:", name), self.instance_id, max(1, int(ttl * 1000)))
            state = int(await r.submit([command], first_reply))
        except Exception as exc:
            # Redis away: whoever held the lease goes on (its work needs no Redis).
            if not isinstance(exc, AWAY):
                self._log.exception("lease_failed", lease=name)
            return Lease.HELD if name in self._leases else Lease.NO
        if state == 0:
            self._leases.pop(name, None)
            return Lease.NO
        self._leases[name] = ttl
        return Lease.GAINED if state == 2 else Lease.HELD

    async def release(self, name: str) -> None:
        self._leases.pop(name, None)  # no longer renewed: it lapses if the release fails
        with contextlib.suppress(Exception):
            command = scripts.RELEASE.command(self._redis.key("lease:", name), self.instance_id)
            await asyncio.wait_for(self._redis.submit([command]), self._redis.timeout)

    def holds(self, name: str) -> bool:
        return name in self._leases
