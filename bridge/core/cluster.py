"""What bridge instances sharing one store must agree on, behind two small interfaces.

`Cluster`: bind counts per system_id (`max_binds`), the per-account throughput bucket,
leases for work that must run once (each provider's due timers: polls, synthetic
receipts, give-ups) and the outbox of an instance that went away. `ReceiptQueue`:
where receipts wait until a receiver of their account is bound, and how they reach
the instance that holds one.

`LocalCluster` and `LocalReceiptQueue` are the single-instance behaviour (the SQLite
store): counts and buckets in memory, every lease held, receipts in an in-memory queue
loaded from the store at start. The Redis implementations live in
`bridge.store.redis`, so no Redis command leaks into core.
"""

from __future__ import annotations

import enum
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence

from bridge.core.limits import TokenBucket
from bridge.core.message import Receipt
from bridge.core.ports import Store, StoreUnavailable

# An outbox message adopted from a gone instance is handed to this callback.
OrphanSink = Callable[[Sequence[int]], Awaitable[object]]


class OwnershipLost(StoreUnavailable):
    """Another instance took this outbox message over (this one was presumed gone):
    it must not be sent from here any more."""


class Lease(enum.Enum):
    """Answer to "may I do this once-per-cluster work now?"."""

    NO = 0  # another instance holds it
    HELD = 1  # this instance held it already
    GAINED = 2  # this instance holds it from now on


def new_instance_id() -> str:
    """A fresh id per process start: a restarted instance is a new member, and what
    its previous life owned is taken over like any gone instance's."""
    return uuid.uuid4().hex[:12]


class Cluster(ABC):
    """Coordination between instances. `shared` is False for the single-instance one."""

    shared: bool = False

    def __init__(self, instance_id: str | None = None) -> None:
        self.instance_id = instance_id or new_instance_id()

    async def start(self, on_orphans: OrphanSink) -> None:
        """Join (heartbeat); `on_orphans` receives outbox message ids taken over."""

    async def stop(self) -> None:
        """Leave: give up leases and binds so that the others take over at once."""

    @abstractmethod
    async def try_bind(self, system_id: str, member: str, max_binds: int) -> bool:
        """Count one more bound session of `system_id`, unless `max_binds` are bound
        across the cluster. `member` names the session (unique per instance)."""

    @abstractmethod
    def unbind(self, system_id: str, member: str) -> None:
        """The session `member` is gone (fire and forget)."""

    @abstractmethod
    async def admit(self, system_id: str, rate: float) -> bool:
        """One submit under the account's `throughput` (0 = unlimited); False: throttle.
        Raises StoreUnavailable when the shared state cannot be reached."""

    def admit_now(self, system_id: str, rate: float) -> bool | None:
        """`admit` without an await when the answer is at hand (the hot path: no
        coroutine per submit); None when it is not (then await `admit`)."""
        return None

    @abstractmethod
    async def lease(self, name: str, ttl: float) -> Lease:
        """Hold the lease `name`; kept (renewed) while this instance lives."""

    async def release(self, name: str) -> None:
        """Give the lease `name` up (never raises)."""

    def holds(self, name: str) -> bool:
        """Does this instance hold the lease `name` now?"""
        return True


class LocalCluster(Cluster):
    """One instance: everything is local; binds are counted by the SessionRegistry."""

    def __init__(self, instance_id: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(instance_id)
        self._buckets: dict[str, TokenBucket] = {}
        self.clock = clock  # what the throughput buckets count time by (tests set a fake one)

    async def try_bind(self, system_id: str, member: str, max_binds: int) -> bool:
        return True

    def unbind(self, system_id: str, member: str) -> None:
        return None

    async def admit(self, system_id: str, rate: float) -> bool:
        return self.allow(system_id, rate)

    def admit_now(self, system_id: str, rate: float) -> bool:
        return self.allow(system_id, rate)

    def allow(self, system_id: str, rate: float) -> bool:
        """The token bucket of one account; a new rate (a reload) starts a new bucket."""
        if rate <= 0:  # unlimited: no bucket (a rate set again later starts a new one, as it would)
            if self._buckets:
                self._buckets.pop(system_id, None)
            return True
        now = self.clock()
        bucket = self._buckets.get(system_id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[system_id] = TokenBucket(rate, now)
        return bucket.allow(now)

    async def lease(self, name: str, ttl: float) -> Lease:
        return Lease.HELD


class ReceiptQueue(ABC):
    """Where receipts wait for a receiver. The ReceiptEngine keeps the delivery logic
    (holds, windows, retries, metrics); this decides which instance gets which receipt.

    `attach` gives it the engine's intake (`take`: receipts fetched for this instance)
    and `room` (how many more receipts an account's receivers here can take now).
    """

    def attach(self, take: Callable[[list[Receipt]], None], room: Callable[[str], int]) -> None:
        self._take = take
        self._room = room

    @abstractmethod
    def added(self, receipts: Sequence[Receipt]) -> list[Receipt]:
        """Receipts just written to the store: the ones the engine queues here now
        (a shared queue hands them out itself)."""

    @abstractmethod
    async def load(self) -> list[Receipt]:
        """At start: stored receipts to queue here."""

    @abstractmethod
    def want(self, system_id: str) -> None:
        """Receivers of `system_id` here have room: fetch what waits for them."""

    @abstractmethod
    def give_back(self, system_id: str, receipts: Sequence[Receipt]) -> bool:
        """No receiver of `system_id` here any more. True: `receipts` went back to the
        shared queue (forget them); False: keep them here until one binds."""

    @abstractmethod
    def waiting(self, system_id: str, local: int) -> int:
        """Receipts of `system_id` not yet acknowledged; `local` is this instance's count."""

    def accounts(self) -> Iterable[str]:
        """Accounts with receipts waiting elsewhere (for the gauge)."""
        return ()

    async def close(self) -> None:
        return None


class LocalReceiptQueue(ReceiptQueue):
    """One instance: every receipt is queued here; stored ones are loaded at start."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def added(self, receipts: Sequence[Receipt]) -> list[Receipt]:
        return list(receipts)

    async def load(self) -> list[Receipt]:
        return await self._store.pending_receipts(limit=10_000_000)

    def want(self, system_id: str) -> None:
        return None

    def give_back(self, system_id: str, receipts: Sequence[Receipt]) -> bool:
        return False

    def waiting(self, system_id: str, local: int) -> int:
        return local
