"""The Redis connection RedisStore, RedisCluster and RedisReceiptQueue share, and the
ordered command queue in front of it.

Every call is queued the moment it is made, in call order, and one writer task sends
whatever waits as a single MULTI/EXEC pipeline (N concurrent submits cost one round
trip); a read queued behind writes sees them.

Scripts go by SHA (EVALSHA, bridge/store/redis/scripts.py). Every new connection
loads them all before its first command (the connect hook), so a Redis restart or a
failover never meets a missing script. What remains is a SCRIPT FLUSH on a live
server: inside MULTI/EXEC Redis then refuses only the EVALSHAs (NOSCRIPT) and
applies the rest, so a batch that met one is followed by a second MULTI/EXEC that
loads every script and runs, in call order, the refused commands of each write (its
other commands were applied) and the whole of each read that met one (so that it
sees the writes).

redis-py's own `register_script` objects are not used: in a pipeline they send
SCRIPT EXISTS (and SCRIPT LOAD for the missing ones) before every execute, a second
round trip per batch, the one this queue exists to save, and a NOSCRIPT at EXEC comes
back as an error with nothing loaded again. Outside a pipeline they do reload and
retry, but every script here runs through the queue.

Redis going away never crashes the bridge: calls fail with StoreUnavailable (the
pipeline answers ESME_RSYSERR, /readyz fails), failed writes are logged, and
redis-py reconnects by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ExecAbortError, NoScriptError, RedisError

from bridge.core.cluster import OwnershipLost
from bridge.logging import get_logger
from bridge.store.base import StoreUnavailable
from bridge.store.redis.scripts import SCRIPTS

Command = tuple[Any, ...]

ERROR_LOG_INTERVAL = 1.0  # at most one line per second about Redis being away
# What "Redis is away" looks like; any other exception in a handler is a bug and is
# logged with its traceback rather than reported as an outage.
AWAY = (StoreUnavailable, RedisError, OSError, TimeoutError)
_MAX_OPS = 2000  # calls per MULTI/EXEC
_NOSCRIPT_ROUNDS = 3  # reload-and-run-again rounds for a batch that met NOSCRIPT
_LOAD_SCRIPTS: list[Command] = [("SCRIPT", "LOAD", script.source) for script in SCRIPTS]


class _Op:
    """One queued call: its commands, how to read their replies, and its future."""

    __slots__ = ("commands", "future", "parse", "write")

    def __init__(
        self,
        commands: list[Command],
        parse: Callable[[list[Any]], Any] | None,
        future: asyncio.Future[Any],
        write: bool,
    ) -> None:
        self.commands = commands
        self.parse = parse
        self.future = future
        self.write = write


class RedisConnection:
    """The client, the command queue and its writer task, and whether Redis answers.

    `on_success` is called after every batch Redis answered (the store sends again
    what failed while Redis was away)."""

    def __init__(self, url: str, prefix: str, timeout: float, on_success: Callable[[], None] | None = None) -> None:
        self.url = url
        self.key_prefix = f"{prefix}:"  # every key; the scripts get it as ARGV[1]
        self.timeout = timeout
        self.client: Redis | None = None
        self.healthy = False
        self.batches = 0  # MULTI/EXEC round trips (for the benchmark notes)
        self._on_success = on_success
        self._ops: deque[_Op] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._log = get_logger("store")
        self._last_error_log = 0.0
        self._probe: asyncio.Task[bool] | None = None

    def key(self, *parts: Any) -> str:
        return self.key_prefix + "".join(str(part) for part in parts)

    @property
    def closing(self) -> bool:
        return self._closing

    async def open(self) -> None:
        self.client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=min(self.timeout, 2.0),
            # One retry: a pooled connection broken by a Redis restart is replaced at
            # once; a Redis that is away fails fast instead of stalling submits.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
            protocol=2,  # the reply shapes this package reads, whatever redis-py's default
            redis_connect_func=_load_scripts,
        )
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            await self.client.aclose()
            self.client = None
            raise StoreUnavailable(f"cannot reach Redis at {_safe_url(self.url)}: {exc}") from exc
        self.healthy = True
        self._writer = asyncio.ensure_future(self._write_loop())

    async def close(self) -> None:
        if self._writer is None:
            return
        self._closing = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def submit(
        self, commands: list[Command], parse: Callable[[list[Any]], Any] | None = None, write: bool = True
    ) -> asyncio.Future[Any]:
        """Queue `commands` behind every call made before; the future has `parse` of
        their replies (None without one). A write that fails is logged (at most once a
        second); a read's failure is only its caller's. Raises StoreUnavailable once
        closing."""
        if self._writer is None or self._closing:
            raise StoreUnavailable("store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(self._log_failure if write else retrieve)
        self._ops.append(_Op(commands, parse, future, write))
        self._wake.set()
        return future

    async def probe(self) -> bool:
        """Is Redis back? One PING through the queue, shared by concurrent callers."""
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._ping())
        try:
            return await asyncio.shield(self._probe)
        finally:
            if self._probe is not None and self._probe.done():
                self._probe = None

    # -- the writer task ------------------------------------------------------------------

    def _log_failure(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None or isinstance(error, OwnershipLost):
            return
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL:
            self._last_error_log = now
            self._log.error("store_write_failed", error=str(error))

    async def _write_loop(self) -> None:
        while True:
            if not self._ops:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._ops.popleft() for _ in range(min(len(self._ops), _MAX_OPS))]
            try:
                await self._run(batch)
            except Exception as exc:  # never let the writer die: the bridge would hang
                self._log.exception("store_writer_failed", operations=len(batch))  # a bug, not Redis away
                _fail(batch, StoreUnavailable(f"store writer: {exc}"))

    async def _exec(self, commands: list[Command]) -> list[Any]:
        """One MULTI/EXEC; a command's error is its reply."""
        assert self.client is not None
        pipe = self.client.pipeline(transaction=True)
        for command in commands:
            pipe.execute_command(*command)
        try:
            return await pipe.execute(raise_on_error=False)
        finally:
            await pipe.reset()

    async def _run(self, batch: list[_Op]) -> None:
        try:
            replies = await self._exec([command for op in batch for command in op.commands])
        except ExecAbortError:
            # A command was refused as it was queued: the transaction did nothing.
            # Run each call on its own so one bad call does not fail the others.
            if len(batch) > 1:
                for op in batch:
                    await self._run([op])
            else:
                _fail(batch, StoreUnavailable("Redis refused the command"))
            return
        except (RedisError, OSError) as exc:
            self._unhealthy(exc)
            _fail(batch, StoreUnavailable(f"Redis unavailable: {exc}"))
            return
        if any(isinstance(r, NoScriptError) for r in replies):
            try:
                replies = await self._run_refused_again(batch, replies)
            except (RedisError, OSError) as exc:  # never the split above: part of the batch was applied
                self._unhealthy(exc)
                _fail(batch, StoreUnavailable(f"Redis unavailable: {exc}"))
                return
        if not self.healthy:
            self._log.info("store_recovered")
        self.healthy = True
        self.batches += 1
        if self._on_success is not None:
            self._on_success()
        at = 0
        for op in batch:
            own = replies[at : at + len(op.commands)]
            at += len(op.commands)
            if op.future.done():
                continue
            error = next((r for r in own if isinstance(r, Exception)), None)
            if error is not None:
                op.future.set_exception(StoreUnavailable(f"Redis: {error}"))
                continue
            try:
                op.future.set_result(op.parse(own) if op.parse is not None else None)
            except Exception as exc:
                op.future.set_exception(exc)

    async def _run_refused_again(self, batch: list[_Op], replies: list[Any]) -> list[Any]:
        """The scripts were flushed from a live Redis: load them all and run again, in
        one MULTI/EXEC and in call order, each write's refused commands (the rest of it
        was applied) and every read that met a refusal (to see the writes)."""
        replies = list(replies)
        for _ in range(_NOSCRIPT_ROUNDS):
            again: list[int] = []
            at = 0
            for op in batch:
                span = range(at, at + len(op.commands))
                at += len(op.commands)
                refused = [i for i in span if isinstance(replies[i], NoScriptError)]
                if refused:
                    again.extend(refused if op.write else span)
            if not again:
                break
            self._log.warning("store_scripts_reloaded", commands=len(again))
            commands = [command for op in batch for command in op.commands]
            rerun = await self._exec([*_LOAD_SCRIPTS, *(commands[i] for i in again)])
            for i, reply in zip(again, rerun[len(_LOAD_SCRIPTS) :], strict=True):
                replies[i] = reply
        return replies

    def _unhealthy(self, exc: BaseException) -> None:
        if self.healthy:
            self._log.error("store_unavailable", error=str(exc))
        self.healthy = False

    async def _ping(self) -> bool:
        try:
            await asyncio.wait_for(self.submit([("PING",)], write=False), self.timeout)
        except AWAY:
            return False
        except Exception:
            self._log.exception("store_probe_failed")
            return False
        return True


async def _load_scripts(connection: AbstractConnection) -> None:
    """redis-py's connect hook: the usual handshake, then every script loaded (in one
    MULTI/EXEC: a flush never leaves some loaded and others not)."""
    await connection.on_connect()
    await connection.send_packed_command(connection.pack_commands([("MULTI",), *_LOAD_SCRIPTS, ("EXEC",)]))
    for _ in range(len(_LOAD_SCRIPTS) + 2):
        await connection.read_response()


def first_reply(replies: list[Any]) -> Any:
    """The reply of a call's only command (a `parse` for `submit`)."""
    return replies[0]


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's failure retrieved (the caller reads it, or nobody needs to)."""
    if not future.cancelled():
        future.exception()


def _fail(batch: list[_Op], error: Exception) -> None:
    for op in batch:
        if not op.future.done():
            op.future.set_exception(error)


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
