"""Pipeline, fed hand-written submit_sm PDUs: an answer only once the message is
stored; the store failing is ESME_RSYSERR; stored mode hands the message to the
outbox; a receipt never overtakes its submit_sm_resp."""

from __future__ import annotations

import asyncio

from bridge.core.message import Lifecycle
from bridge.core.ports import SendResult, StatusReport, StoreUnavailable
from bridge.smpp.constants import MessageState, Status
from tests.core.fakes import FakeProvider
from tests.core.smsc_rig import (
    DELIVER_SM,
    ESME_RINVDSTADR,
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RSYSERR,
    SUBMIT_SM_RESP,
    SmscRig,
    message_id_of,
    submit_sm,
)
from tests.support.waiting import until


async def test_upstream_ack_answers_with_the_id_of_the_stored_accepted_message() -> None:
    rig = SmscRig()
    conn = await rig.bound()
    assert (await rig.answered(conn, submit_sm(2)))[-1] == (SUBMIT_SM_RESP, ESME_ROK, 2)
    message_id = int(message_id_of(conn, 2))
    stored = rig.store.committed[message_id]
    assert (stored.lifecycle, stored.provider, stored.provider_ids) == (Lifecycle.ACCEPTED, "p", [f"p-{message_id}"])
    assert stored.text == ""  # handed over: the text is not kept
    assert stored.destination.addr == "4917012345"


async def test_the_answer_waits_for_the_store_write() -> None:
    rig = SmscRig()
    conn = await rig.bound()
    rig.store.gate = asyncio.Event()  # a slow disk
    rig.feed(conn, submit_sm(2))
    assert not await rig.smsc.drain(0.05)
    conn.flush()
    assert [r for r in conn.responses() if r[0] == SUBMIT_SM_RESP] == []
    rig.store.gate.set()
    assert await rig.smsc.drain(10)
    conn.flush()
    assert conn.responses()[-1] == (SUBMIT_SM_RESP, ESME_ROK, 2)


async def test_a_store_that_fails_the_write_is_esme_rsyserr() -> None:
    rig = SmscRig()
    conn = await rig.bound()
    rig.store.fail = StoreUnavailable("disk full")  # ids still come: only the message write fails
    assert (await rig.answered(conn, submit_sm(2)))[-1] == (SUBMIT_SM_RESP, ESME_RSYSERR, 2)
    assert rig.store.committed == {}


async def test_no_route_and_a_provider_rejection_are_answered_with_their_status() -> None:
    rejecting = FakeProvider(results=[SendResult.rejected(Status.ESME_RINVDSTADR, "no such number")])
    routes = [{"name": "de", "match": {"destination_prefix": "49"}, "providers": ["p"]}]
    rig = SmscRig(providers=[rejecting], account_route=None, routes=routes)
    conn = await rig.bound()
    assert (await rig.answered(conn, submit_sm(2, destination=b"4412345678")))[-1] == (
        SUBMIT_SM_RESP,
        ESME_RINVDSTADR,
        2,
    )
    assert (await rig.answered(conn, submit_sm(3)))[-1] == (SUBMIT_SM_RESP, ESME_RINVDSTADR, 3)
    assert len(rejecting.sent) == 1 and rig.store.committed == {}


async def test_stored_ack_answers_once_stored_and_hands_the_message_to_the_outbox() -> None:
    rig = SmscRig(ack="stored")
    conn = await rig.bound()
    assert (await rig.answered(conn, submit_sm(2)))[-1] == (SUBMIT_SM_RESP, ESME_ROK, 2)
    message_id = int(message_id_of(conn, 2))
    assert rig.store.committed[message_id].lifecycle is Lifecycle.QUEUED
    assert rig.outbox.queued() == [message_id]  # its workers are not started here
    assert rig.providers["p"].sent == []


async def test_a_receipt_never_overtakes_its_submit_sm_resp() -> None:
    rig = SmscRig()
    conn = await rig.bound()
    provider = rig.providers["p"]
    rig.store.gate = asyncio.Event()  # the submit's write is slow ...
    rig.feed(conn, submit_sm(2))
    await until(lambda: provider.sent)
    # ... and the provider's final report comes meanwhile
    message_id = provider.sent[0].id
    report = asyncio.ensure_future(rig.receipts.on_report(StatusReport("p", f"p-{message_id}", MessageState.DELIVERED)))
    await asyncio.sleep(0)
    rig.store.gate.set()
    assert await asyncio.wait_for(report, 10)
    assert await rig.smsc.drain(10)
    conn.flush()
    kinds = [command_id for command_id, _, _ in conn.responses()]
    assert kinds.index(SUBMIT_SM_RESP) < kinds.index(DELIVER_SM)


async def test_stored_intake_holds_the_outbox_back_until_its_answers_are_written() -> None:
    """`ack = "stored"`: from a read's submits to their answers, intake runs (the
    outbox keeps to its share meanwhile); an upstream account's batches do not."""
    rig = SmscRig(ack="stored")
    conn = await rig.bound()
    rig.store.gate = asyncio.Event()  # the write of the batch waits
    rig.feed(conn, submit_sm(2) + submit_sm(3))
    await until(lambda: rig.store.gate is not None and rig.outbox.intake_running)
    conn.flush()
    assert [r for r in conn.responses() if r[0] == SUBMIT_SM_RESP] == []
    rig.store.gate.set()
    assert await rig.smsc.drain(10)
    conn.flush()
    assert [r[:2] for r in conn.responses() if r[0] == SUBMIT_SM_RESP] == [(SUBMIT_SM_RESP, ESME_ROK)] * 2
    assert not rig.outbox.intake_running

    upstream = SmscRig()
    conn = await upstream.bound()
    upstream.store.gate = asyncio.Event()
    upstream.feed(conn, submit_sm(2))
    await until(lambda: len(upstream.providers["p"].sent) == 1)  # sent; its store write waits
    assert not upstream.outbox.intake_running
    upstream.store.gate.set()
    assert await upstream.smsc.drain(10)


async def test_a_read_longer_than_an_id_block_gives_each_submit_an_id_of_its_own() -> None:
    """The submits of one read take their ids from the block in hand without an
    await; the one that finds it used up waits for the next block, the rest go on."""
    rig = SmscRig(ack="stored", id_block=3)
    conn = await rig.bound()
    responses = await rig.answered(conn, b"".join(submit_sm(sequence) for sequence in range(2, 9)))
    assert [r for r in responses if r[0] == SUBMIT_SM_RESP] == [(SUBMIT_SM_RESP, ESME_ROK, s) for s in range(2, 9)]
    ids = {int(message_id_of(conn, sequence)) for sequence in range(2, 9)}
    assert len(ids) == 7 and ids == set(rig.store.committed)
    assert len(rig.store.reserved) >= 3


async def test_a_read_of_stored_submits_beyond_the_outbox_room_refuses_the_ones_past_it() -> None:
    """`[outbox] limit` 3: of a read of five, the first three are stored and the last
    two answered ESME_RMSGQFUL; the next read finds the outbox full."""
    rig = SmscRig(ack="stored", outbox={"limit": 3, "concurrency": 1})
    conn = await rig.bound()
    responses = await rig.answered(conn, b"".join(submit_sm(sequence) for sequence in range(2, 7)))
    answers = {sequence: status for command_id, status, sequence in responses if command_id == SUBMIT_SM_RESP}
    assert answers == {2: ESME_ROK, 3: ESME_ROK, 4: ESME_ROK, 5: ESME_RMSGQFUL, 6: ESME_RMSGQFUL}
    assert len(rig.store.committed) == 3 and rig.outbox.size == 3
    responses = await rig.answered(conn, submit_sm(7) + submit_sm(8))
    assert [r for r in responses if r[0] == SUBMIT_SM_RESP][-2:] == [
        (SUBMIT_SM_RESP, ESME_RMSGQFUL, 7),
        (SUBMIT_SM_RESP, ESME_RMSGQFUL, 8),
    ]
    assert len(rig.store.committed) == 3 and rig.outbox.size == 3
