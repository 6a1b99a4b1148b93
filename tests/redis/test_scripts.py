"""The store's Lua scripts against a real redis-server: their lifecycle numbers come
from the Python enum (run with every value shifted, the store still behaves), calls
name them by SHA, and a SCRIPT FLUSH or a Redis restart loses no write."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.core.cluster import OwnershipLost
from bridge.core.message import Lifecycle, Message
from bridge.smpp.constants import MessageState
from bridge.store.records import load_message
from bridge.store.redis import RedisStore, scripts
from bridge.store.redis.connection import first_reply
from bridge.store.redis.scripts import SCRIPTS, VALUES, Script
from tests.redis.support import RedisServer
from tests.support.due_store import check_upgraded
from tests.support.providers import stored_message


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis_server.client()
    yield c
    c.close()


def ids(messages: list[Message]) -> list[int]:
    return [m.id for m in messages]


# -- lifecycle numbers ------------------------------------------------------------------

SHIFT = 10
SHIFTED = {**VALUES, **{lc.name: str(int(lc) + SHIFT) for lc in Lifecycle}}


class _Shifted:
    """A script rendered with every Lifecycle value + SHIFT, called with the lifecycle
    arguments the store sends shifted alike (SAVE's ARGV[6], MESSAGES_IN's index keys):
    Redis then holds only shifted numbers, and a number a script wrote itself where the
    enum's belongs no longer matches them."""

    def __init__(self, script: Script) -> None:
        self.script = Script(script.name, script.template, SHIFTED)

    def command(self, *args: Any) -> tuple[Any, ...]:
        shifted = list(args)
        if self.script.name == "save":
            shifted[5] = int(shifted[5]) + SHIFT
        elif self.script.name == "messages_in":
            shifted[3:] = [re.sub(r"^lc:(\d+)", lambda m: f"lc:{int(m[1]) + SHIFT}", k) for k in shifted[3:]]
        return self.script.command(*shifted)


@pytest.fixture
def shifted_scripts(monkeypatch: pytest.MonkeyPatch, client: redis.Redis) -> None:
    for script in SCRIPTS:
        shifted = _Shifted(script)
        client.script_load(shifted.script.source)
        monkeypatch.setattr(scripts, script.name.upper(), shifted)


async def test_with_every_lifecycle_value_shifted_the_store_behaves_the_same(
    shifted_scripts: None, store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    queued = stored_message(1, Lifecycle.QUEUED, provider_id="")
    accepted = stored_message(10, Lifecycle.ACCEPTED)
    accepted.due_at = 5.0
    await store.insert_messages([queued, accepted])
    assert ids(await store.messages_in([Lifecycle.QUEUED, Lifecycle.SENDING])) == [1]
    assert ids(await store.messages_in([Lifecycle.ACCEPTED], provider="p")) == [10]
    assert await store.count_outbox() == {"p": 1}
    assert ids(await store.due_messages("p", 6.0)) == [10]

    queued.lifecycle = Lifecycle.SENDING  # this instance owns it: allowed
    await store.update_messages([queued])
    queued.lifecycle, queued.provider, queued.provider_ids, queued.due_at = Lifecycle.ACCEPTED, "p", ["p-1"], 7.0
    await store.update_messages([queued])
    assert await store.count_outbox() == {}
    assert ids(await store.due_messages("p", 8.0)) == [10, 1]  # by due time
    accepted.due_at = 100.0
    await store.reschedule([accepted])
    assert ids(await store.due_messages("p", 8.0)) == [1]
    assert ids(await store.due_messages("p", 200.0)) == [1, 10]

    queued.lifecycle, queued.state, queued.done_at = Lifecycle.FINAL, MessageState.DELIVERED, 9.0
    await store.update_messages([queued])
    assert client.zscore(f"{prefix}:due:p", 1) is None
    assert await store.due_messages("p", 8.0) == []
    assert ids(await store.messages_in([Lifecycle.ACCEPTED], provider="p")) == [10]
    late = stored_message(1, Lifecycle.FINAL, "p-1")  # a late report, read before it was final
    late.state = MessageState.UNDELIVERABLE
    await store.update_messages([late])
    stored = await store.get_message(1)
    assert stored is not None and stored.state is MessageState.DELIVERED
    queued.lifecycle = Lifecycle.SENDING  # a final message never goes back to the outbox
    with pytest.raises(OwnershipLost):
        await store.update_messages([queued])

    accepted_key = f"{prefix}:lc:{int(Lifecycle.ACCEPTED) + SHIFT}"
    assert set(client.scan_iter(f"{prefix}:lc:*")) == {accepted_key.encode(), f"{accepted_key}:p".encode()}
    assert client.hget(f"{prefix}:m:1", "l") == str(int(Lifecycle.FINAL) + SHIFT).encode()
    assert await store.purge(finished_before=10.0) == 1  # found among the finished


async def test_with_every_lifecycle_value_shifted_an_upgraded_store_makes_accepted_messages_due(
    shifted_scripts: None, store: RedisStore, redis_server: RedisServer, client: redis.Redis, prefix: str
) -> None:
    await store.insert_messages([stored_message(1, Lifecycle.ACCEPTED)])  # no due time
    await store.close()
    client.delete(f"{prefix}:schema:due")  # as a store from before due times
    upgraded = RedisStore(redis_server.url, prefix=prefix)
    await upgraded.open()
    await check_upgraded(upgraded)


# A lifecycle number written into a script: compared with a lifecycle (`l`, `oldl`,
# the `l` field) or naming an index key (`lc:<n>`).
_BARE_LIFECYCLE = re.compile(r"\b(?:l|oldl)\s*(?:==|~=|<=|>=|<|>)\s*'?\d|lc:'?\s*(?:\.\.\s*)?'?\d|'l'\)\s*[=~]=\s*'?\d")


@pytest.mark.parametrize(
    "lua",
    ["if oldl == 3 then", "if l <= 1 then", "P .. 'lc:2'", "'lc:' .. 2", "redis.call('HGET', key, 'l') == '2'"],
)
def test_the_check_finds_a_lifecycle_number_written_into_a_script(lua: str) -> None:
    assert _BARE_LIFECYCLE.search(lua)


def test_no_script_writes_a_lifecycle_number_of_its_own() -> None:
    assert [s.name for s in SCRIPTS if _BARE_LIFECYCLE.search(s.template)] == []
    # ... and every one that reads or writes lifecycles takes them from the enum.
    lifecycles = [s for s in SCRIPTS if "'l'" in s.template or "lc:" in s.template]
    assert sorted(s.name for s in lifecycles) == ["due_messages", "migrate_due", "reschedule", "save"]
    assert all(re.search(r"\$(QUEUED|SENDING|ACCEPTED|FINAL)\b", s.template) for s in lifecycles)


# -- by SHA, and what happens when Redis has lost the scripts ----------------------------


def _calls(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def _refused(client: redis.Redis) -> int:
    """How many commands Redis refused with NOSCRIPT since it started."""
    return int(client.info("errorstats").get("errorstat_NOSCRIPT", {}).get("count", 0))


async def test_a_write_names_its_scripts_by_sha(store: RedisStore, client: redis.Redis) -> None:
    evals, evalshas = _calls(client, "eval"), _calls(client, "evalsha")
    await store.insert_messages([stored_message(1, Lifecycle.QUEUED)])
    assert _calls(client, "evalsha") - evalshas == 2  # the message, and its destination index
    assert _calls(client, "eval") == evals


async def test_after_a_script_flush_a_batch_runs_what_redis_refused_once_more(
    store: RedisStore, client: redis.Redis
) -> None:
    r = store.connection
    message = stored_message(1, Lifecycle.QUEUED)
    await store.insert_messages([message])
    client.script_flush()
    refused, batches = _refused(client), r.batches
    counter = r.key("counter")
    store.journal.note(1, "noted")
    # Queued together, so one MULTI/EXEC: a call mixing a plain command and a script
    # (the cluster's), a write (the store's script and its history) and a read behind it.
    mixed = r.submit([("INCR", counter), scripts.LEASE.command(r.key("lease:x"), "me", 10_000)], list)
    message.lifecycle = Lifecycle.SENDING
    update = store.update_messages([message])
    read = r.submit([scripts.GET_MESSAGE.command(r.key_prefix, 1)], first_reply, write=False)
    replies, _, record = await asyncio.gather(mixed, update, read)
    assert r.batches == batches + 1
    assert _refused(client) - refused == 4  # the lease, the message, its history, the read: then run again
    assert replies == [1, 2]  # INCR once; the lease script ran again and gained the lease
    assert client.get(counter) == b"1"
    assert load_message(record).lifecycle is Lifecycle.SENDING  # the read saw the write
    assert [e.kind for e in await store.history(1)] == ["noted"]  # once
    await store.update_messages([message])  # and the scripts are there again
    assert _refused(client) - refused == 4


async def test_a_restarted_redis_has_the_scripts_before_the_first_write(tmp_path: Path, prefix: str) -> None:
    server = RedisServer(tmp_path / "redis").start()
    store = RedisStore(server.url, prefix=prefix, timeout=1.0)
    await store.open()
    try:
        message = stored_message(1, Lifecycle.QUEUED)
        await store.insert_messages([message])
        server.kill()
        server.restart()  # scripts are not persisted: this Redis has none
        assert await store.connection.probe()
        message.lifecycle = Lifecycle.SENDING
        await store.update_messages([message])
        found = await store.get_message(1)
        assert found is not None and found.lifecycle is Lifecycle.SENDING
        client = server.client()
        try:
            assert _refused(client) == 0  # loaded when the connection was made again
        finally:
            client.close()
    finally:
        await store.close()
        server.stop()
