"""The due-timer loop (bridge/core/due.py) with an in-memory store, a fake clock and a
fake connector: what is due goes to the connector, what it answers is stored, a
failure loses nothing, and only the lease holder acts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bridge.core.cluster import Lease, LocalCluster
from bridge.core.due import RETRY_AFTER_FAILURE, DueTimer
from bridge.core.message import Lifecycle, Message
from bridge.core.ports import Provider, SendResult, StoreUnavailable
from tests.core.fakes import FakeStore, RecordingLog, provider_settings
from tests.support.clock import Clock
from tests.support.providers import Reports, stored_message

IDLE = 30.0
TTL = 10.0


class Timed(Provider):
    """Due 60 s after acceptance; `on_due` answers `answers` (message id -> next due
    time) and records what it was handed."""

    kind = "timed"

    def __init__(self) -> None:
        super().__init__("timed", provider_settings(), Reports().context())
        self.answers: dict[int, float | None] = {}
        self.handed: list[list[tuple[int, int]]] = []
        self.fail: Exception | None = None
        self.called = asyncio.Event()

    async def send(self, message: Message) -> SendResult:
        return SendResult.accepted(f"t-{message.id}")

    def due_after(self, message: Message) -> float | None:
        return 60.0

    async def on_due(self, messages: Sequence[Message]) -> list[float | None]:
        self.handed.append([(m.id, m.polls) for m in messages])
        self.called.set()
        if self.fail is not None:
            raise self.fail
        return [self.answers.get(m.id) for m in messages]


class Other(LocalCluster):
    """A cluster where another instance holds the lease until `free` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.free = False
        self.asked: list[str] = []

    async def lease(self, name: str, ttl: float) -> Lease:
        self.asked.append(name)
        return Lease.GAINED if self.free else Lease.NO

    def holds(self, name: str) -> bool:
        return False


async def accept(store: FakeStore, message_id: int, due_at: float, provider: str = "timed") -> Message:
    message = stored_message(message_id, Lifecycle.ACCEPTED, f"t-{message_id}")
    message.provider, message.due_at = provider, due_at
    await store.insert_messages([message])
    return message


def timer(store: FakeStore, provider: Timed, clock: Clock, cluster: LocalCluster | None = None) -> DueTimer:
    return DueTimer(
        "timed",
        {"timed": provider},
        store,
        cluster or LocalCluster(),
        RecordingLog(),
        lease_ttl=TTL,
        idle=IDLE,
        clock=clock,
    )


async def test_due_messages_go_to_the_connector_and_their_next_due_times_are_stored() -> None:
    store, provider, clock = FakeStore(), Timed(), Clock(1000.0)
    await accept(store, 1, 1000.0)
    await accept(store, 2, 990.0)
    await accept(store, 3, 1020.0)  # not due yet
    provider.answers = {1: 1240.0, 2: None}
    due = timer(store, provider, clock)
    assert await due.step() == 0.0  # acted: look again at once
    assert provider.handed == [[(2, 0), (1, 0)]]  # the earliest first, with their poll counts
    stored = store.committed
    assert (stored[1].due_at, stored[1].polls) == (1240.0, 1)
    assert (stored[2].due_at, stored[2].polls) == (None, 1)  # nothing more to do
    assert await due.step() == 20.0  # nothing due: wait for message 3
    clock.now = 1020.0
    await due.step()
    assert provider.handed[-1] == [(3, 0)]
    clock.now = 1240.0
    await due.step()
    assert provider.handed[-1] == [(1, 1)]


async def test_a_message_that_became_final_meanwhile_keeps_no_due_time() -> None:
    store, provider, clock = FakeStore(), Timed(), Clock(1000.0)
    message = await accept(store, 1, 1000.0)
    original = provider.on_due

    async def final_meanwhile(messages: Sequence[Message]) -> list[float | None]:
        message.lifecycle = Lifecycle.FINAL  # a callback's final state, committed meanwhile
        await store.update_messages([message])
        return await original(messages)

    provider.on_due = final_meanwhile  # type: ignore[method-assign]  # a callback's final state lands meanwhile
    provider.answers = {1: 1100.0}
    await timer(store, provider, clock).step()
    assert store.committed[1].due_at is None and await store.next_due("timed") is None


async def test_a_connector_that_fails_gets_the_same_messages_again_later() -> None:
    store, provider, clock = FakeStore(), Timed(), Clock(1000.0)
    await accept(store, 1, 1000.0)
    provider.fail = RuntimeError("connector bug")
    due = timer(store, provider, clock)
    await due.step()
    stored = store.committed[1]
    assert (stored.due_at, stored.polls) == (1000.0 + RETRY_AFTER_FAILURE, 0)  # not counted as acted on
    assert due._log.with_traceback("due_work_failed")
    provider.fail = None
    clock.now += RETRY_AFTER_FAILURE
    await due.step()
    assert provider.handed[-1] == [(1, 0)]


async def test_a_store_that_is_away_is_tried_again_and_nothing_is_lost() -> None:
    store, provider, clock = FakeStore(), Timed(), Clock(1000.0)
    await accept(store, 1, 1000.0)
    due = timer(store, provider, clock)
    store.fail = StoreUnavailable("disk full")
    assert await due.step() == RETRY_AFTER_FAILURE  # the reschedule failed: logged, stored due time kept
    assert store.committed[1].due_at == 1000.0
    store.fail = None
    provider.answers = {1: 2000.0}
    await due.step()
    assert store.committed[1].due_at == 2000.0


async def test_only_the_lease_holder_acts_and_a_new_holder_goes_on_from_the_store() -> None:
    store, provider, clock, cluster = FakeStore(), Timed(), Clock(1000.0), Other()
    await accept(store, 1, 900.0)  # due while the holder was gone
    due = timer(store, provider, clock, cluster)
    assert await due.step() == TTL / 2
    assert provider.handed == [] and cluster.asked == ["due:timed"]
    cluster.free = True  # the holder died: its lease lapsed
    await due.step()
    assert provider.handed == [[(1, 0)]]


async def test_an_idle_timer_looks_again_within_its_idle_time() -> None:
    store, provider, clock = FakeStore(), Timed(), Clock(1000.0)
    assert await timer(store, provider, clock).step() == IDLE  # nothing due ever
    await accept(store, 1, 5000.0)
    assert await timer(store, provider, clock).step() == IDLE  # due later than the idle time


async def test_an_acceptance_wakes_the_sleeping_timer_when_it_is_due_sooner() -> None:
    store, provider, clock = FakeStore(), Timed(), Clock(1000.0)
    due = timer(store, provider, clock)
    running = asyncio.ensure_future(due.run())
    try:
        await asyncio.sleep(0)  # it read the store (nothing) and sleeps for IDLE seconds
        await accept(store, 1, 1000.0)
        due.wake(1000.0)
        await asyncio.wait_for(provider.called.wait(), 5)
        assert provider.handed == [[(1, 0)]]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_timer_woken_as_it_is_cancelled_still_stops() -> None:
    """Stop (`DueTimers.stop` cancels each timer) can come in the very loop turn an
    acceptance wakes the timer; the cancellation must not be lost in that race, or
    the bridge's stop waits for a timer that goes on looping."""
    store, provider, clock = FakeStore(), Timed(), Clock(1000.0)
    due = timer(store, provider, clock)
    asked = asyncio.Event()
    next_due = store.next_due

    async def noted(provider: str) -> float | None:
        asked.set()
        return await next_due(provider)

    store.next_due = noted  # type: ignore[method-assign]  # a spy: when the timer asks
    running = asyncio.ensure_future(due.run())
    await asyncio.wait_for(asked.wait(), 5)  # its first round is done: it sleeps now
    due.wake(clock.now)  # an acceptance wakes it ...
    running.cancel()  # ... in the same turn as the stop
    done, _ = await asyncio.wait([running], timeout=5)
    assert running in done and running.cancelled()
