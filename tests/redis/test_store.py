"""RedisStore against a real redis-server: every promise of the Store interface
(bridge/core/ports.py) that the SQLite store keeps, plus what sharing adds (a final
state is final for every instance, an outbox message has one owner)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis
import structlog

from bridge.core.cluster import OwnershipLost
from bridge.core.message import Address, Lifecycle, Message, PendingSegment, Receipt
from bridge.core.numbers import Number
from bridge.core.ports import StoreUnavailable
from bridge.smpp.constants import MessageState
from bridge.store.redis import RedisCluster, RedisStore
from tests.redis.support import RedisServer
from tests.support.due_store import check_due_times_survive_a_restart, check_upgraded
from tests.support.providers import stored_message


def message(
    message_id: int, lifecycle: Lifecycle = Lifecycle.ACCEPTED, provider_id: str = "", parts: int = 1
) -> Message:
    return stored_message(message_id, lifecycle, provider_id, parts=parts)


def receipt(m: Message, state: MessageState, part: int = 0) -> Receipt:
    return Receipt(
        id=f"{m.id}:{m.parts[part].message_id}:{int(state)}",
        system_id=m.system_id,
        message_id=m.parts[part].message_id,
        state=state,
        error=0,
        submitted_at=1.0,
        done_at=2.0,
        preview="hello",
        source=m.destination,
        destination=m.source,
        provider="p",
    )


def finish(m: Message, state: MessageState, at: float = 2.0) -> Message:
    m.lifecycle, m.state, m.done_at = Lifecycle.FINAL, state, at
    return m


async def test_writes_are_queued_in_call_order_and_reads_see_them(store: RedisStore) -> None:
    m = message(100, Lifecycle.ACCEPTED, "pid-100")
    store.insert_messages([m])  # neither awaited: their order is the call order
    store.update_messages([finish(message(100, provider_id="pid-100"), MessageState.DELIVERED)])
    found = await store.find_by_provider_id("p", "pid-100")
    assert found is not None and found.lifecycle is Lifecycle.FINAL


async def test_a_final_state_lands_with_its_receipts_and_never_changes(store: RedisStore) -> None:
    m = message(200, Lifecycle.ACCEPTED, "pid-200")
    await store.insert_messages([m])
    delivered = finish(message(200, provider_id="pid-200"), MessageState.DELIVERED)
    await store.update_messages([delivered], [receipt(delivered, MessageState.DELIVERED)])
    # A late report on another instance read the message before it was final.
    late = finish(message(200, provider_id="pid-200"), MessageState.UNDELIVERABLE)
    await store.update_messages([late], [receipt(late, MessageState.UNDELIVERABLE)])
    stored = await store.get_message(200)
    assert stored is not None and stored.state is MessageState.DELIVERED
    assert [r.state for r in await store.pending_receipts("esme1")] == [MessageState.DELIVERED]


async def test_a_receipt_id_already_stored_is_left_as_it_is(store: RedisStore) -> None:
    m = message(300)
    first = receipt(m, MessageState.DELIVERED)
    await store.add_receipts([first])
    again = receipt(m, MessageState.DELIVERED)
    again.attempts = 7
    await store.add_receipts([again])
    assert [r.attempts for r in await store.pending_receipts()] == [0]
    first.attempts = 3
    await store.update_receipt(first)
    assert [r.attempts for r in await store.pending_receipts()] == [3]
    await store.delete_receipt(first.id)
    assert await store.pending_receipts() == []


async def test_get_message_by_part_id_and_messages_in_by_lifecycle(store: RedisStore) -> None:
    await store.insert_messages([message(400, Lifecycle.QUEUED, parts=3), message(410, Lifecycle.ACCEPTED, "pid-410")])
    await store.insert_messages([message(420, Lifecycle.ACCEPTED, "pid-420"), message(430, Lifecycle.QUEUED)])
    by_part = await store.get_message(402)
    assert by_part is not None and by_part.id == 400
    queued = await store.messages_in([Lifecycle.QUEUED, Lifecycle.SENDING])
    assert [m.id for m in queued] == [400, 430]
    page = await store.messages_in([Lifecycle.ACCEPTED], provider="p", limit=1)
    assert [m.id for m in page] == [410]
    assert [m.id for m in await store.messages_in([Lifecycle.ACCEPTED], provider="p", after_id=410)] == [420]
    assert await store.messages_in([Lifecycle.ACCEPTED], provider="other") == []
    assert await store.count_outbox() == {"p": 2}


def index_entries(redis_server: RedisServer, prefix: str) -> tuple[set[bytes | str], set[bytes | str]]:
    """The part-id and provider-id index entries, read from Redis itself."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        return set(client.hkeys(f"{prefix}:parts")), set(client.hkeys(f"{prefix}:pid:p"))
    finally:
        client.close()


async def test_purge_removes_final_messages_and_their_indexes(
    store: RedisStore, redis_server: RedisServer, prefix: str
) -> None:
    await store.insert_messages([message(500, Lifecycle.ACCEPTED, "pid-500", parts=2), message(510, provider_id="x")])
    await store.update_messages([finish(message(500, provider_id="pid-500", parts=2), MessageState.DELIVERED, 10.0)])
    assert await store.purge(finished_before=5.0) == 0
    assert await store.purge(finished_before=20.0) == 1
    assert await store.get_message(500) is None
    assert await store.get_message(501) is None
    assert await store.find_by_provider_id("p", "pid-500") is None
    assert await store.get_message(510) is not None
    assert index_entries(redis_server, prefix) == (set(), {b"x"})


async def test_purge_removes_the_indexes_of_a_record_stored_before_they_were_named(
    store: RedisStore, redis_server: RedisServer, prefix: str
) -> None:
    # An older version kept no p/k/q fields: purge finds the indexes in the record.
    await store.insert_messages([message(700, Lifecycle.ACCEPTED, "pid-700", parts=3)])
    await store.update_messages([finish(message(700, provider_id="pid-700", parts=3), MessageState.DELIVERED, 10.0)])
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.hdel(f"{prefix}:m:700", "p", "k", "q")
    finally:
        client.close()
    assert index_entries(redis_server, prefix) == ({b"701", b"702"}, {b"pid-700"})
    assert await store.purge(finished_before=20.0) == 1
    assert index_entries(redis_server, prefix) == (set(), set())


async def test_purge_due_deletes_in_bounded_steps_until_nothing_is_due(store: RedisStore) -> None:
    await store.insert_messages([message(i) for i in range(1000, 1025)] + [message(1100)])
    await store.update_messages(
        [finish(message(i), MessageState.DELIVERED, float(i - 999)) for i in range(1000, 1025)]
        + [finish(message(1100), MessageState.DELIVERED, 900.0)]
    )
    assert await store.purge(finished_before=500.0, limit=10) == 10
    assert await store.purge_due(finished_before=500.0, batch=10) == 15
    assert [await store.get_message(i) for i in range(1000, 1025)] == [None] * 25
    assert await store.get_message(1100) is not None


def segment(set_key: str, index: int, total: int, at: float) -> PendingSegment:
    return PendingSegment(
        set_key=set_key,
        system_id="esme1",
        index=index,
        total=total,
        message_id=600 + index,
        data=bytes([index]) * 3 + b"\x00\xff",
        data_coding=0,
        registered_delivery=1,
        submitted_at=at,
        flash=False,
        source=Address(1, 1, "123"),
        destination=Address(1, 1, "4917012345"),
        number=Number("4917012345"),
    )


async def test_a_concatenated_set_completes_once_and_an_old_one_expires(store: RedisStore) -> None:
    assert await store.add_segment(segment("set-a", 2, 2, 1.0)) is None
    complete = await store.add_segment(segment("set-a", 1, 2, 2.0))
    assert complete is not None and [s.index for s in complete] == [1, 2]
    assert complete[0].data == b"\x01\x01\x01\x00\xff"
    assert await store.add_segment(segment("set-b", 1, 3, 5.0)) is None
    assert await store.add_segment(segment("set-b", 2, 3, 9.0)) is None
    assert await store.take_expired_segments(created_before=5.0) == []  # began at 5.0, not before
    expired = await store.take_expired_segments(created_before=6.0)
    assert sorted(s.index for s in expired) == [1, 2]
    assert await store.take_expired_segments(created_before=100.0) == []


async def test_id_blocks_never_overlap_between_instances(redis_server: RedisServer, prefix: str) -> None:
    stores = [RedisStore(redis_server.url, prefix=prefix) for _ in range(3)]
    for s in stores:
        await s.open()
    try:
        firsts = await asyncio.gather(*(s.reserve_ids(1000) for s in stores for _ in range(20)))
        ranges = sorted((first, first + 1000) for first in firsts)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))
        assert await stores[0].reserve_ids(0) == ranges[-1][1]  # 0: checks writes, takes none
    finally:
        for s in stores:
            await s.close()


async def test_an_outbox_message_taken_over_is_refused_to_its_old_owner(redis_server: RedisServer, prefix: str) -> None:
    old, new = RedisStore(redis_server.url, prefix=prefix), RedisStore(redis_server.url, prefix=prefix)
    await old.open()
    await new.open()
    adopted: list[int] = []

    async def adopt(ids: Sequence[int]) -> None:
        adopted.extend(ids)

    cluster = RedisCluster(new, ttl=1.0)
    try:
        await old.insert_messages([message(700, Lifecycle.QUEUED)])  # old's; old has no heartbeat
        await old.connection.submit([("SADD", old.connection.key("instances"), old.instance_id)])
        await cluster.start(adopt)
        cluster._connected_since = -1e9  # as if in contact for long: claim now
        await cluster._take_over()
        await cluster._adopt()
        assert adopted == [700]
        sending = message(700, Lifecycle.SENDING)
        with pytest.raises(OwnershipLost):
            await old.update_messages([sending])
        await new.update_messages([sending])  # the new owner may
    finally:
        await cluster.stop()
        await old.close()
        await new.close()


async def test_redis_away_is_store_unavailable_and_recovers(tmp_path: Path, prefix: str) -> None:
    server = RedisServer(tmp_path / "redis").start()
    s = RedisStore(server.url, prefix=prefix, timeout=1.0)
    await s.open()
    try:
        await s.insert_messages([message(800)])
        server.kill()
        with pytest.raises(StoreUnavailable):
            await s.insert_messages([message(810)])
        with pytest.raises(StoreUnavailable):
            await s.get_message(800)
        assert not s.connection.healthy
        server.restart()
        assert await s.connection.probe()
        assert s.connection.healthy
        assert (await s.get_message(800)) is not None  # acknowledged before the kill: on disk
    finally:
        await s.close()
        server.stop()


async def test_opening_without_redis_is_store_unavailable(prefix: str) -> None:
    from tests.support.servers import free_port

    with pytest.raises(StoreUnavailable):
        await RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix=prefix, timeout=1.0).open()


# -- message_id range (issue 14): [1, 2**32), wrapping, never an id still stored --------

ID_MAX = 4294967295  # 2**32 - 1: 10 decimal digits, 8 hex digits


async def test_a_counter_from_before_the_bounded_range_restarts_inside_it(store: RedisStore) -> None:
    client = store.connection.client
    assert client is not None
    await client.set(store.connection.key("next_id"), 1733500000000)  # clock x 1000, as ids were made before
    first = await store.reserve_ids(1000)
    assert first >= 1 and first + 999 <= ID_MAX


async def test_the_counter_wraps_past_ids_still_stored(store: RedisStore) -> None:
    client = store.connection.client
    assert client is not None
    await store.insert_messages([message(5), message(1498, parts=3)])
    await client.set(store.connection.key("next_id"), ID_MAX - 10)
    assert await store.reserve_ids(1000) == 6  # 1..1000 would hold message 5
    assert await store.reserve_ids(1000) == 1501  # 1006..2005 would hold parts 1499, 1500
    assert await store.reserve_ids(1000) == 2501


async def test_due_times_survive_a_restart(redis_server: RedisServer, prefix: str) -> None:
    async def open_store() -> RedisStore:
        store = RedisStore(redis_server.url, prefix=prefix)
        await store.open()
        return store

    await check_due_times_survive_a_restart(open_store)


async def test_messages_waiting_in_an_older_store_become_due_at_once(redis_server: RedisServer, prefix: str) -> None:
    """Upgrading: messages accepted before due times were stored (no `d` field, no
    `due:` entry) are due at once (UPGRADE_DUE), once per store."""
    store = RedisStore(redis_server.url, prefix=prefix)
    await store.open()
    try:
        await store.insert_messages([message(1, Lifecycle.ACCEPTED, "p-1")])  # no due time
        assert await store.due_messages("p", 1e12) == []
    finally:
        await store.close()
    redis.Redis.from_url(redis_server.url).delete(f"{prefix}:schema:due")  # as a store from before
    for _ in range(2):
        store = RedisStore(redis_server.url, prefix=prefix)
        await store.open()
        await check_upgraded(store)


# -- a bug is not an outage (issue 13 item 8): logged with its traceback, the writer lives on --


async def test_a_bug_in_the_writer_fails_its_batch_is_logged_with_its_traceback_and_the_writer_goes_on(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = store.connection.client
    assert client is not None
    working = client.pipeline

    def broken(*args: object, **kwargs: object) -> object:
        raise TypeError("a bug, not Redis away")  # failure injection: a programming error in the write path

    monkeypatch.setattr(client, "pipeline", broken)
    with structlog.testing.capture_logs() as logged, pytest.raises(StoreUnavailable, match="a bug"):
        await store.insert_messages([message(900)])
    [line] = [entry for entry in logged if entry["event"] == "store_writer_failed"]
    assert line["exc_info"] is True and line["log_level"] == "error"
    assert store.connection.healthy  # a bug is not "Redis away": /readyz does not blame Redis for it
    monkeypatch.setattr(client, "pipeline", working)
    await store.insert_messages([message(901)])  # the writer task survived its batch
    assert (await store.get_message(901)) is not None
    assert (await store.get_message(900)) is None


async def test_finishing_a_message_another_instance_is_sending_is_refused(
    redis_server: RedisServer, prefix: str
) -> None:
    """An operator's give-up through another instance, decided on a copy read before
    the owner's attempt started: refused (the store decides), so the ESME gets no
    UNDELIV for a request that went out. The owner may finish it (a failed attempt)."""
    owner, other = RedisStore(redis_server.url, prefix=prefix), RedisStore(redis_server.url, prefix=prefix)
    await owner.open()
    await other.open()
    try:
        await owner.insert_messages([message(800, Lifecycle.QUEUED)])
        await owner.update_messages([message(800, Lifecycle.SENDING)])
        given_up = finish(message(800, Lifecycle.QUEUED), MessageState.UNDELIVERABLE)
        with pytest.raises(OwnershipLost):
            await other.update_messages([given_up], [receipt(given_up, MessageState.UNDELIVERABLE)])
        found = await other.get_message(800)
        assert found is not None and found.lifecycle is Lifecycle.SENDING
        assert await other.pending_receipts("esme1") == []
        await owner.update_messages([finish(message(800, Lifecycle.SENDING), MessageState.UNDELIVERABLE)])
        found = await other.get_message(800)
        assert found is not None and found.lifecycle is Lifecycle.FINAL
    finally:
        await owner.close()
        await other.close()


async def test_the_received_event_is_read_from_the_message(store: RedisStore) -> None:
    """No `received` event is written: the message says it all (session, parts, route,
    ack, at its created_at); a message without a session (stored before) has none."""
    m = message(400, Lifecycle.QUEUED)
    m.session, m.route, m.ack, m.created_at = "i1/s3", ["sky"], "stored", 77.5
    store.journal.note(400, "attempt", provider="sky", outcome="accepted")
    await store.insert_messages([m, message(401, Lifecycle.QUEUED)])
    received, attempt = await store.history(400)
    assert (received.message_id, received.at, received.kind) == (400, 77.5, "received")
    assert received.data == {"session": "i1/s3", "parts": [400], "route": ["sky"], "ack": "stored"}
    assert (attempt.kind, attempt.data) == ("attempt", {"provider": "sky", "outcome": "accepted"})
    assert await store.history(401) == []
    found = await store.get_message(400)
    assert found is not None and found.session == "i1/s3"
