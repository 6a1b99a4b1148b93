"""Due timers: what a provider does later for an accepted message that got no report
by then (Kaleyra's and FlashSMS's status polls, Contacta's synthetic receipt,
Skycore's `final_timeout`, the simulator's reports).

No such timer lives in a process. A message's next due time is stored with it
(`Message.due_at`, written by the same store write that records its acceptance,
from `Provider.due_after`; cleared with its final state). One `DueTimer` per
provider takes the due messages from the store in batches, hands them to the
connector's `on_due`, and stores the next due times it answers. In a cluster a
provider's timer runs on the instance that holds its lease (`due:<provider>`); when
that instance dies the lease lapses after `instance_ttl`, and the next holder simply
goes on from the store. With SQLite the due times survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bridge.core.cluster import Cluster, Lease
from bridge.core.message import Lifecycle, Message
from bridge.core.tasks import Tasks
from bridge.providers.base import Provider
from bridge.store.base import Store, StoreUnavailable

RETRY_AFTER_FAILURE = 5.0  # the store or the connector failed: look again after this many seconds
LOCAL_IDLE = 30.0  # one instance: acceptances wake the timer; the store is read again at least this often
SHARED_IDLE = 1.0  # a cluster: other instances' acceptances are seen within this many seconds
MIN_WAIT = 0.01


class DueTimer:
    """The due messages of one provider (see the module docstring). `step` is one
    round, driven directly by tests with a fake store and clock; `run` loops it."""

    def __init__(
        self,
        name: str,
        providers: Mapping[str, Provider],
        store: Store,
        cluster: Cluster,
        log: Any,
        *,
        lease_ttl: float,
        idle: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.lease = f"due:{name}"
        self._providers = providers  # looked up each round: a reload may replace the connector
        self._store = store
        self._cluster = cluster
        self._log = log
        self._lease_ttl = lease_ttl
        self._idle = idle
        self._clock = clock
        self._wake = asyncio.Event()
        self._until = math.inf  # when the sleeping loop looks again (inf: it is awake)

    def wake(self, at: float) -> None:
        """A message of this provider is due at `at` (just accepted here): look
        sooner if the loop would sleep past it."""
        if at < self._until:
            self._wake.set()

    async def run(self) -> None:
        """Until the provider is removed from the config."""
        while self.name in self._providers:
            self._wake.clear()
            self._until = math.inf
            wait = await self.step()
            if wait > 0:
                self._until = self._clock() + wait
                # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that
                # comes as the wake is set (stop then waited for this task forever).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()

    async def step(self) -> float:
        """One round: act on what is due now (if this instance holds the lease);
        returns how many seconds to wait before the next round."""
        provider = self._providers.get(self.name)
        if provider is None:
            return 0.0
        try:
            if not await self._holds_lease():
                return self._lease_ttl / 2  # another instance acts; ask again in a while
            batch = await self._store.due_messages(self.name, self._clock(), provider.due_batch)
            if batch:
                await self._act(provider, batch)
                return 0.0
            next_due = await self._store.next_due(self.name)
        except Exception as exc:
            self._log.warning(
                "due_timer_failed", provider=self.name, error=str(exc), exc_info=not isinstance(exc, StoreUnavailable)
            )
            return RETRY_AFTER_FAILURE
        if next_due is None:
            return self._idle
        return min(self._idle, max(MIN_WAIT, next_due - self._clock()))

    async def _holds_lease(self) -> bool:
        """Held already (renewed by the cluster's heartbeat), or gained now."""
        return self._cluster.holds(self.lease) or await self._cluster.lease(self.lease, self._lease_ttl) is not Lease.NO

    async def _act(self, provider: Provider, batch: Sequence[Message]) -> None:
        """Hand `batch` to the connector; store the next due time of each message that
        is still waiting (one it failed on is taken again after RETRY_AFTER_FAILURE)."""
        acted = 1
        try:
            nexts = await provider.on_due(batch)
            if len(nexts) != len(batch):
                raise ValueError(f"on_due answered {len(nexts)} due times for {len(batch)} messages")
        except Exception:
            self._log.exception("due_work_failed", provider=self.name, messages=len(batch))
            nexts = [self._clock() + RETRY_AFTER_FAILURE] * len(batch)
            acted = 0
        waiting = []
        for message, at in zip(batch, nexts, strict=True):
            if message.lifecycle is not Lifecycle.ACCEPTED:
                continue  # final meanwhile: the store dropped its due time with it
            message.due_at = at
            message.polls += acted
            waiting.append(message)
        if waiting:
            await self._store.reschedule(waiting)


class DueTimers:
    """One DueTimer per configured provider, started and stopped with the bridge;
    `sync` after a reload starts the timers of providers added."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        store: Store,
        cluster: Cluster,
        log: Any,
        lease_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._providers = providers
        self._store = store
        self._cluster = cluster
        self._log = log
        self.lease_ttl = lease_ttl
        self._clock = clock
        self._timers: dict[str, tuple[DueTimer, asyncio.Task[None]]] = {}
        self._tasks = Tasks(log, "due_timer")

    def sync(self, names: Iterable[str]) -> None:
        """A running timer for each of `names` (a removed provider's ends by itself)."""
        idle = SHARED_IDLE if self._cluster.shared else LOCAL_IDLE
        for name in names:
            current = self._timers.get(name)
            if current is not None and not current[1].done():
                continue
            timer = DueTimer(
                name,
                self._providers,
                self._store,
                self._cluster,
                self._log,
                lease_ttl=self.lease_ttl,
                idle=idle,
                clock=self._clock,
            )
            self._timers[name] = (timer, self._tasks.spawn(timer.run()))

    def wake(self, provider: str, at: float) -> None:
        """`Sender.on_due_set`: a message of `provider` is due at `at`."""
        current = self._timers.get(provider)
        if current is not None:
            current[0].wake(at)

    async def stop(self) -> None:
        await self._tasks.cancel()
        self._timers.clear()
