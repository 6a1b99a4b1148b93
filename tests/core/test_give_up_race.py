"""An operator's give-up racing the outbox (issue 17, D1): the give-up and the check
that no attempt is in flight are one step on the object the attempt marks, so the
ESME never gets UNDELIV for a message whose request still goes out, and a message
that finished is never made unfinished by its attempt's answer."""

from __future__ import annotations

import asyncio
import copy

import pytest

from bridge.core.actions import ActionRefused, Actions
from bridge.core.lookup import Lookup
from bridge.core.message import Lifecycle, Message
from bridge.smpp.constants import MessageState
from tests.core.fakes import FakeProvider, FakeStore
from tests.core.test_outbox import Rig
from tests.support.waiting import until


class CopyingStore(FakeStore):
    """As RedisStore: every read hands out a fresh copy of what is stored (never the
    outbox's object). Reads after the first `free_reads` wait for `reads_go`, so a
    test can start an attempt inside an action that reads twice."""

    def __init__(self) -> None:
        super().__init__()
        self.free_reads = 1_000_000
        self.reads_go = asyncio.Event()
        self.held_reads = 0

    async def get_message(self, message_id: int) -> Message | None:
        if self.free_reads <= 0:
            self.held_reads += 1
            await self.reads_go.wait()
        self.free_reads -= 1
        stored = self.committed.get(message_id)
        return copy.deepcopy(stored) if stored is not None else None


def actions_of(rig: Rig) -> Actions:
    return Actions(Lookup(rig.store), rig.outbox, rig.receipts, rig.log, rig.clock)


def undeliv_receipts(store: FakeStore) -> list[str]:
    return [r.id for r in store.receipts.values() if r.state is MessageState.UNDELIVERABLE]


async def test_a_give_up_read_before_an_attempt_starts_never_lets_the_request_go_out_after_undeliv() -> None:
    """The give-up reads the message (waiting in the outbox), then an attempt falls
    due while the give-up is still between its reads: either the give-up is refused
    (in flight) and the message is sent, or it holds and nothing is sent. Never both."""
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    store = CopyingStore()
    rig = Rig(provider, store)
    actions = actions_of(rig)
    rig.outbox.start()
    rig.outbox.submit(await rig.stored(1, due=rig.clock() + 60))  # waits for its next attempt
    store.free_reads = 1  # the give-up's look-up; a second read waits
    give_up = asyncio.ensure_future(actions.give_up("1", "127.0.0.1", "customer cancelled"))
    await until(lambda: give_up.done() or store.held_reads)
    rig.outbox.retry_now(lambda m: True)  # the attempt is due now
    await until(lambda: provider.in_request == 1 or rig.outbox.size == 0)
    store.reads_go.set()
    provider.gate.set()
    try:
        await give_up
        given_up = True
    except ActionRefused as refused:
        assert (refused.status, refused.reason) == (409, "an attempt is in flight: try again when it has an answer")
        given_up = False
    await until(lambda: rig.outbox.size == 0)
    await rig.outbox.stop(1)
    if given_up:
        assert provider.sent == []
        assert rig.state(1) is Lifecycle.FINAL
        assert len(undeliv_receipts(store)) == 1
    else:
        assert [m.id for m in provider.sent] == [1]
        assert rig.state(1) is Lifecycle.ACCEPTED
        assert undeliv_receipts(store) == []


async def test_a_give_up_on_a_copy_reaches_the_outbox_which_sends_nothing() -> None:
    """With a store that hands out copies (Redis; SQLite beyond what it keeps in
    memory), the give-up acts on the outbox's own object: the worker that takes the
    message next finds it final and sends nothing."""
    provider = FakeProvider()
    store = CopyingStore()
    rig = Rig(provider, store)
    actions = actions_of(rig)
    rig.outbox.start()
    rig.outbox.submit(await rig.stored(1, due=rig.clock() + 60))
    answer = await actions.give_up("1", "127.0.0.1", "customer cancelled")
    assert answer == {"action": "give_up", "message_id": "1", "stat": "UNDELIV"}
    await until(lambda: rig.outbox.size == 0)
    await rig.outbox.stop(1)
    assert provider.sent == []
    assert rig.state(1) is Lifecycle.FINAL
    assert len(undeliv_receipts(store)) == 1


async def test_a_give_up_while_the_request_is_in_flight_is_refused_and_changes_nothing() -> None:
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider)
    actions = actions_of(rig)
    rig.outbox.start()
    rig.outbox.submit(await rig.stored(1))
    await until(lambda: provider.in_request == 1)
    with pytest.raises(ActionRefused) as refused:
        await actions.give_up("1", "127.0.0.1", "customer cancelled")
    assert (refused.value.status, refused.value.reason) == (
        409,
        "an attempt is in flight: try again when it has an answer",
    )
    provider.gate.set()
    await until(lambda: rig.state(1) is Lifecycle.ACCEPTED)
    await rig.outbox.stop(1)
    assert rig.store.receipts == {}


async def test_an_answer_for_a_message_that_finished_during_its_attempt_is_counted_and_ignored() -> None:
    """Whatever finished it meanwhile, the attempt's ACCEPTED answer does not make it
    accepted again (a later report would then send a second final receipt)."""
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    rig = Rig(provider)
    rig.outbox.start()
    message = await rig.stored(1)
    rig.outbox.submit(message)
    await until(lambda: provider.in_request == 1)
    assert await rig.receipts.apply_to(message, MessageState.UNDELIVERABLE, 69, rig.clock())
    provider.gate.set()
    await until(lambda: rig.outbox.size == 0)
    await rig.outbox.stop(1)
    assert rig.state(1) is Lifecycle.FINAL and message.lifecycle is Lifecycle.FINAL
    assert rig.store.committed[1].provider_ids == []
    assert rig.metrics.registry.get_sample_value("smpp_bridge_answers_after_final_total", {"provider": "p"}) == 1
    assert [e["message_id"] for e in rig.log.events("outbox_answer_after_final")] == [1]
    assert [level for level, event, _ in rig.log.lines if event == "outbox_answer_after_final"] == ["debug"]
