"""Outbox with a fake store, fake providers and a fake clock: `concurrency` workers
drain one queue ordered by next attempt time; SENDING is committed before each
request; retries back off; stop leaves what was not sent stored."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.config import OutboxSettings
from bridge.core.message import Lifecycle, Message
from bridge.core.outbox import BURST_SHARE, BUSY_SHARE, BUSY_WINDOW, INTAKE_SHARE, CpuGauge, Outbox
from bridge.core.ports import SendResult
from bridge.core.receipts import ReceiptEngine
from bridge.core.registry import SessionRegistry
from bridge.core.sender import Sender
from bridge.metrics import Metrics
from bridge.smpp.constants import MessageState, Status
from tests.core.fakes import FakeClock, FakeProvider, FakeStore, RecordingLog
from tests.support.providers import make_message
from tests.support.waiting import until

NOT_SENT = SendResult.not_sent(Status.ESME_RSYSERR, "HTTP 503")


class Rig:
    def __init__(self, provider: FakeProvider, store: FakeStore | None = None, **settings: Any) -> None:
        self.clock = FakeClock()
        self.busy = True  # is the core busy (the CpuGauge's answer, set by the test)
        self.store = store or FakeStore()
        self.metrics = Metrics()
        self.log = RecordingLog()
        self.provider = provider
        self.sender = Sender({provider.name: provider}, self.metrics, self.log, clock=self.clock)
        self.receipts = ReceiptEngine(self.store, SessionRegistry(), lambda _: None, self.metrics, self.log, self.clock)
        self.outbox = Outbox(
            OutboxSettings(**settings),
            self.store,
            self.sender,
            self.receipts,
            self.metrics,
            self.log,
            self.clock,
            busy=lambda: self.busy,
        )
        self.sender.on_circuit_closed = self.outbox.wake

    async def stored(self, message_id: int, due: float = 0.0) -> Message:
        message = make_message(to=f"49170000{message_id:04d}", message_id=message_id, created_at=self.clock())
        message.route = [self.provider.name]
        message.ack = "stored"
        message.next_attempt_at = due
        await self.store.insert_messages([message])
        return message

    async def read(self, submits: int, first_id: int) -> None:
        """What the pipeline does for one read of `submits` stored submits: intake
        begins, each is stored and handed over, intake ends."""
        self.outbox.intake_began(submits)
        for message_id in range(first_id, first_id + submits):
            self.outbox.submit(await self.stored(message_id))
        self.outbox.intake_ended()

    def state(self, message_id: int) -> Lifecycle:
        return self.store.committed[message_id].lifecycle


async def test_workers_send_at_most_concurrency_at_once_with_no_task_per_message() -> None:
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider, concurrency=3)
    before = len(asyncio.all_tasks())
    rig.outbox.start()
    for i in range(1, 51):
        rig.outbox.submit(await rig.stored(i))
    await until(lambda: provider.in_request == 3)
    assert len(asyncio.all_tasks()) - before == 3  # the workers, whatever the queue holds
    provider.gate.set()
    await until(lambda: all(rig.state(i) is Lifecycle.ACCEPTED for i in range(1, 51)))
    assert provider.most_in_request == 3
    await rig.outbox.stop(1)


async def test_sending_is_committed_before_the_request() -> None:
    provider = FakeProvider()
    rig = Rig(provider)
    seen: list[Lifecycle] = []
    provider.on_send = lambda message: seen.append(rig.state(message.id))
    rig.outbox.start()
    rig.outbox.submit(await rig.stored(1))
    await until(lambda: rig.state(1) is Lifecycle.ACCEPTED)
    assert seen == [Lifecycle.SENDING]
    assert rig.store.committed[1].provider_ids == ["p-1"] and rig.store.committed[1].text == ""
    await rig.outbox.stop(1)


async def test_messages_go_in_order_of_their_next_attempt_time() -> None:
    provider = FakeProvider()
    rig = Rig(provider, concurrency=1)
    now = rig.clock()
    for message_id, due in ((1, now - 1), (2, now - 3), (3, now - 2)):
        rig.outbox.submit(await rig.stored(message_id, due))
    assert rig.outbox.queued() == [2, 3, 1]
    rig.outbox.start()
    await until(lambda: len(provider.sent) == 3)
    assert [m.id for m in provider.sent] == [2, 3, 1]
    await rig.outbox.stop(1)


async def test_a_failed_attempt_is_stored_with_its_backoff_and_a_provider_coming_back_wakes_it() -> None:
    provider = FakeProvider(results=[NOT_SENT], circuit_failures=1, circuit_reset=5)
    rig = Rig(provider, backoff_base=100, backoff_max=100)
    rig.outbox.start()
    rig.outbox.submit(await rig.stored(1))
    await until(lambda: rig.state(1) is Lifecycle.QUEUED and rig.outbox.queued() == [1])
    stored = rig.store.committed[1]
    assert stored.attempts == 1
    assert rig.clock() + 50 <= stored.next_attempt_at <= rig.clock() + 100  # full jitter from 100 s
    rig.clock.advance(5)  # the circuit may try again: a trial send closes it and wakes the queue
    rig.outbox.wake("p")
    await until(lambda: rig.state(1) is Lifecycle.ACCEPTED)
    assert [m.id for m in provider.sent] == [1, 1]
    await rig.outbox.stop(1)


async def test_a_definitive_rejection_ends_the_message_with_its_receipt() -> None:
    provider = FakeProvider(results=[SendResult.rejected(Status.ESME_RINVDSTADR, "no such number")])
    rig = Rig(provider)
    rig.outbox.start()
    rig.outbox.submit(await rig.stored(1))
    await until(lambda: rig.state(1) is Lifecycle.FINAL)
    assert rig.store.committed[1].state is MessageState.REJECTED
    [receipt] = rig.store.receipts.values()
    assert (receipt.message_id, receipt.state) == (1, MessageState.REJECTED)
    await rig.outbox.stop(1)


async def test_an_unknown_outcome_and_a_recovered_sending_message_count_as_possible_duplicates() -> None:
    provider = FakeProvider(results=[SendResult.unknown("read timeout")])
    rig = Rig(provider, backoff_base=100)
    crashed = await rig.stored(1)
    crashed.lifecycle = Lifecycle.SENDING  # in flight when the last run died
    await rig.store.update_messages([crashed])
    assert await rig.outbox.recover() == 1
    rig.outbox.start()
    await until(lambda: rig.state(1) is Lifecycle.QUEUED)
    assert rig.metrics.duplicates.labels("p")._value.get() == 2
    assert [f["reason"] for f in rig.log.events("possible_duplicate")] == ["in flight at the last stop", "read timeout"]
    await rig.outbox.stop(1)


async def test_stop_lets_the_request_in_flight_finish_stops_every_worker_and_leaves_the_rest_stored() -> None:
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider, concurrency=2)
    rig.outbox.start()
    for i in range(1, 11):
        rig.outbox.submit(await rig.stored(i))
    await until(lambda: provider.in_request == 2)
    stopping = asyncio.ensure_future(rig.outbox.stop(10))
    await asyncio.sleep(0)
    provider.gate.set()
    await asyncio.wait_for(stopping, 10)
    assert [m.id for m in provider.sent] == [1, 2]
    assert [rig.state(i) for i in (1, 2)] == [Lifecycle.ACCEPTED] * 2
    assert all(rig.state(i) is Lifecycle.QUEUED for i in range(3, 11))  # the next start recovers them
    assert not [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == "Outbox._work"]


async def test_stop_cancels_a_request_that_outlives_the_timeout_and_awaits_it() -> None:
    provider = FakeProvider()
    provider.gate = asyncio.Event()  # never set: the provider never answers
    rig = Rig(provider, concurrency=1)
    rig.outbox.start()
    rig.outbox.submit(await rig.stored(1))
    await until(lambda: provider.in_request == 1)
    await asyncio.wait_for(rig.outbox.stop(0.05), 10)
    assert provider.in_request == 0  # cancelled and awaited, not left running
    assert rig.state(1) is Lifecycle.SENDING  # sent again, as a possible duplicate, after a restart


async def test_while_stored_intake_runs_at_most_its_share_is_in_flight_then_all_of_concurrency() -> None:
    """Intake first: with a batch of stored submits being taken in, the outbox keeps
    INTAKE_SHARE messages in flight (it still moves), and goes back to `concurrency`
    once intake rests."""
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider, concurrency=10)
    in_flight_during_intake: list[int] = []  # at each request's start while intake runs
    sends = 0

    def on_send(_: Message) -> None:
        nonlocal sends
        sends += 1
        if rig.outbox.intake_running:
            in_flight_during_intake.append(provider.in_request)
        if sends == 12:  # from the 12th on, requests wait again (read by the request after this)
            provider.gate = asyncio.Event()

    provider.on_send = on_send
    rig.outbox.start()
    rig.outbox.intake_began()
    for i in range(1, 41):
        rig.outbox.submit(await rig.stored(i))
    await until(lambda: provider.in_request == INTAKE_SHARE)
    first_gate = provider.gate
    first_gate.set()  # those finish; the next ones go, INTAKE_SHARE at a time, until the 12th
    await until(lambda: sends >= 12 and provider.gate is not first_gate and provider.in_request == INTAKE_SHARE)
    assert sum(rig.state(i) is Lifecycle.ACCEPTED for i in range(1, 41)) >= 12 - INTAKE_SHARE  # it moved
    assert max(in_flight_during_intake) == INTAKE_SHARE
    rig.outbox.intake_ended()
    await until(lambda: provider.in_request == 10)
    provider.gate.set()
    await until(lambda: all(rig.state(i) is Lifecycle.ACCEPTED for i in range(1, 41)))
    assert provider.most_in_request == 10
    await rig.outbox.stop(1)


async def test_a_burst_holds_the_outbox_back_between_its_reads_until_intake_rests() -> None:
    """A burst (reads of many stored submits each while the outbox is behind and the
    core busy): during the reads and between them, while each waits for its commit,
    the outbox starts no send (BURST_SHARE: none), for as long as reads keep coming;
    BURST_QUIET after the last one it goes back to `concurrency` and drains the backlog."""
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider, concurrency=10)
    sent_while_held: list[int] = []  # the messages whose request started while the hold lasted

    def note_send(message: Message) -> None:
        if rig.outbox.holding_for_burst:
            sent_while_held.append(message.id)

    provider.on_send = note_send
    await rig.read(64, first_id=1)  # the workers start later: the backlog is there first
    await rig.read(64, first_id=65)
    assert rig.outbox.holding_for_burst
    rig.outbox.start()  # its workers have the whole hold (BURST_QUIET or more) to start one
    await rig.read(64, first_id=129)  # no intake running between the reads: still held
    await until(lambda: not rig.outbox.holding_for_burst)  # BURST_QUIET after the last read
    assert BURST_SHARE == 0 and sent_while_held == []
    [ended] = rig.log.events("outbox_burst_ended")
    assert ended["reason"] == "intake rests"
    await until(lambda: provider.in_request == 10)
    provider.gate.set()
    await until(lambda: all(rig.state(i) is Lifecycle.ACCEPTED for i in range(1, 193)))
    await rig.outbox.stop(1)


async def test_a_burst_ends_at_its_backlog_limit_and_the_outbox_sends_while_intake_goes_on() -> None:
    """Sustained overload is not a burst: once the backlog reaches `[outbox] burst` the
    outbox sends at full `concurrency` although large reads keep coming (no starvation;
    the outbox's `limit` is the intake's back-pressure), and holds back again only for
    a burst that starts after it has caught up."""
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider, concurrency=10, burst=100)
    await rig.read(64, first_id=1)
    await rig.read(64, first_id=65)  # held from its start; at its end the backlog is 128
    assert not rig.outbox.holding_for_burst
    [ended] = rig.log.events("outbox_burst_ended")
    assert ended["reason"] == "backlog reached [outbox] burst"
    assert [level for level, event, _ in rig.log.lines if event == "outbox_burst_ended"] == ["warning"]
    rig.outbox.start()
    await rig.read(64, first_id=129)  # a large read, and yet no new hold
    await until(lambda: provider.in_request == 10)
    assert not rig.outbox.holding_for_burst
    provider.gate.set()
    await until(lambda: all(rig.state(i) is Lifecycle.ACCEPTED for i in range(1, 193)))
    provider.gate = asyncio.Event()  # caught up: the next burst is held for again
    await rig.read(64, first_id=193)
    await rig.read(64, first_id=257)
    assert [e["backlog"] for e in rig.log.events("outbox_burst_began")] == [64, 64]
    provider.gate.set()
    await until(lambda: all(rig.state(i) is Lifecycle.ACCEPTED for i in range(193, 321)))
    await rig.outbox.stop(1)


async def test_steady_traffic_in_small_reads_is_never_held_back() -> None:
    """Reads of one submit each (steady traffic, however behind the outbox is) start no
    burst: between the reads the outbox sends at full `concurrency`."""
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider, concurrency=10)
    for message_id in range(1, 101):
        await rig.read(1, first_id=message_id)
    rig.outbox.start()
    await until(lambda: provider.in_request == 10)
    assert not rig.outbox.holding_for_burst
    assert not rig.log.events("outbox_burst_began")
    provider.gate.set()
    await until(lambda: all(rig.state(i) is Lifecycle.ACCEPTED for i in range(1, 101)))
    await rig.outbox.stop(1)


async def test_a_burst_ends_when_the_reads_get_small() -> None:
    """Reads of few submits after a burst's large ones (the clients' windows are no
    longer full): the hold ends while intake goes on, and the outbox sends at full
    `concurrency` between the reads."""
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider, concurrency=10)
    await rig.read(64, first_id=1)
    await rig.read(64, first_id=65)
    assert rig.outbox.holding_for_burst
    message_id = 129
    while rig.outbox.holding_for_burst and message_id < 200:
        await rig.read(1, first_id=message_id)
        message_id += 1
    [ended] = rig.log.events("outbox_burst_ended")
    assert ended["reason"] == "reads got small"
    rig.outbox.start()
    await until(lambda: provider.in_request == 10)
    provider.gate.set()
    await until(lambda: all(rig.state(i) is Lifecycle.ACCEPTED for i in range(1, message_id)))
    await rig.outbox.stop(1)


async def test_a_burst_is_not_held_for_while_the_core_has_room_and_a_hold_ends_when_it_gets_room() -> None:
    """Large reads while the outbox is behind, but the process is not busy (the outbox
    waits on its providers, not on the core): holding it back would give the intake
    nothing, so it is not held. A hold that began with the core busy ends once it
    is not."""
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider, concurrency=10)
    rig.busy = False
    await rig.read(64, first_id=1)
    await rig.read(64, first_id=65)
    assert not rig.outbox.holding_for_burst
    rig.busy = True
    await rig.read(64, first_id=129)
    assert rig.outbox.holding_for_burst
    rig.busy = False
    await rig.read(64, first_id=193)
    assert not rig.outbox.holding_for_burst
    [ended] = rig.log.events("outbox_burst_ended")
    assert ended["reason"] == "core not busy"
    rig.outbox.start()
    await until(lambda: provider.in_request == 10)
    provider.gate.set()
    await until(lambda: all(rig.state(i) is Lifecycle.ACCEPTED for i in range(1, 257)))
    await rig.outbox.stop(1)


def test_the_cpu_gauge_says_busy_from_busy_share_of_a_core_over_the_last_window() -> None:
    wall, cpu = [0.0], [0.0]
    gauge = CpuGauge(clock=lambda: wall[0], cpu=lambda: cpu[0])
    assert not gauge.busy()
    wall[0] += BUSY_WINDOW
    cpu[0] += BUSY_WINDOW * (BUSY_SHARE + 0.1)
    assert gauge.busy()
    wall[0] += BUSY_WINDOW / 2  # within a window nothing is measured: what the last one said
    assert gauge.busy()
    wall[0] += BUSY_WINDOW
    cpu[0] += BUSY_WINDOW * 1.5 * (BUSY_SHARE - 0.1)
    assert not gauge.busy()
    wall[0] += BUSY_WINDOW * 2
    cpu[0] += BUSY_WINDOW * 2 * 0.9
    assert gauge.busy()
