"""Instances and Redis going away: real bridge processes (`python -m bridge run`) on a
real redis-server, SIGKILLed under load; real smpplib ESMEs that reconnect to
whichever instance is up, as they would behind a load balancer.

- a killed instance's outbox is finished by another (and its bind slots free up);
- the same set of acknowledged messages reaches the provider, each with its receipt,
  when an instance is killed under load and comes back;
- Redis killed and restarted: the bridges answer errors and fail /readyz meanwhile,
  do not crash, and lose nothing Redis had acknowledged.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.smpp.constants import Status
from tests.redis.conftest import TTL
from tests.redis.support import Daemon, RedisServer
from tests.support.esme import Esme
from tests.support.records import simulator_texts
from tests.support.waiting import wait_for


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.alive:
            daemon.stop()


def bind(daemon: Daemon, system_id: str, kind: str = "transceiver") -> Esme:
    client = Esme(daemon.smpp_port, timeout=5)
    try:
        resp = client.bind(kind, system_id=system_id, password="pw")
        assert resp.status == Status.ESME_ROK, resp.status
    except BaseException:
        client.close()
        raise
    return client


def test_a_killed_instance_outbox_is_finished_by_another(
    tmp_path: Path, redis_server: RedisServer, prefix: str, daemons: list[Daemon]
) -> None:
    record = tmp_path / "provider.jsonl"
    # a's provider never answers: what it takes stays in its outbox, in flight.
    a = Daemon(tmp_path, "a", redis_server.url, prefix, record, ttl=TTL, latency=3600).start()
    b = Daemon(tmp_path, "b", redis_server.url, prefix, record, ttl=TTL).start()
    daemons.extend([a, b])
    tx, limited = bind(a, "st", "transmitter"), bind(a, "lim")
    acked = {}
    for i in range(5):
        resp = tx.submit(text=f"outbox-{i}".encode())
        assert resp.status == Status.ESME_ROK
        acked[resp.message_id.decode()] = f"outbox-{i}"
    redis = redis_server.client()
    wait_for(lambda: redis.zcard(f"{prefix}:lc:1") == 5)  # all five SENDING on a
    refused = Esme(b.smpp_port, timeout=5)
    assert refused.bind(system_id="lim", password="pw").status == Status.ESME_RBINDFAIL  # max_binds = 1, on a
    refused.close()

    a.kill()
    tx.close()
    limited.close()

    rx = bind(b, "st", "receiver")
    try:
        receipts = rx.wait_receipts(5, timeout=30)
        assert {r["id"]: r["stat"] for r in receipts} == dict.fromkeys(acked, "DELIVRD")
        assert set(acked.values()) <= set(simulator_texts(record))
        assert len(b.events("possible_duplicate")) == 5  # in flight on a when it died
        assert sum(e["messages"] for e in b.events("outbox_adopted")) == 5
    finally:
        rx.close()
    # a's bind slot expires with its heartbeat: the account can bind on b again.
    wait_for(lambda: binds(b, "lim"), timeout=10)


def binds(daemon: Daemon, system_id: str) -> bool:
    client = Esme(daemon.smpp_port, timeout=5)
    try:
        return bool(client.bind(system_id=system_id, password="pw").status == Status.ESME_ROK)
    finally:
        client.close()


def test_receipts_a_killed_instance_had_read_go_out_from_another(
    tmp_path: Path, redis_server: RedisServer, prefix: str, daemons: list[Daemon]
) -> None:
    record = tmp_path / "provider.jsonl"
    a = Daemon(tmp_path, "a", redis_server.url, prefix, record, ttl=TTL).start()
    b = Daemon(tmp_path, "b", redis_server.url, prefix, record, ttl=TTL).start()
    daemons.extend([a, b])
    silent = bind(a, "up", "receiver")  # takes the receipts, never answers them (never reads)
    tx = bind(b, "up", "transmitter")
    ids = [tx.submit(text=f"read-by-a-{i}".encode()).message_id.decode() for i in range(3)]
    redis = redis_server.client()
    wait_for(lambda: redis.xpending(f"{prefix}:rq:up", "receipts")["pending"] == 3)  # read by a, in flight
    a.kill()
    silent.close()
    rx = bind(b, "up", "receiver")
    try:
        assert sorted(r["id"] for r in rx.wait_receipts(3, timeout=20)) == sorted(ids)
        wait_for(lambda: b.events("cluster_instance_gone"))  # logged once the takeover is complete
        assert sum(e["receipts"] for e in b.events("cluster_instance_gone")) == 3
    finally:
        rx.close()
        tx.close()


@dataclass
class Load:
    """What the ESMEs saw: acknowledged texts by id, receipts by id, per account."""

    acked: dict[str, dict[str, str]] = field(default_factory=lambda: {"up": {}, "st": {}})
    receipts: dict[str, dict[str, str]] = field(default_factory=lambda: {"up": {}, "st": {}})
    ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.ids)

    def collect(self, client: Esme, account: str) -> None:
        with self.lock:
            for receipt in client.receipts():
                self.receipts[account][receipt["id"]] = receipt["stat"]
        client.delivered.clear()


def esme_worker(instances: list[Daemon], account: str, worker: int, load: Load, stop: threading.Event) -> None:
    """Submit unique texts to one instance; when it goes away, carry on with the next
    (a load balancer's behaviour); collect receipts as they come."""
    turn = itertools.count(worker)
    client: Esme | None = None
    n = 0
    while not stop.is_set():
        try:
            if client is None:
                daemon = instances[next(turn) % len(instances)]
                client = bind(daemon, account)
            text = f"{account}-{worker}-{n}"
            n += 1
            resp = client.submit(text=text.encode(), registered_delivery=1)
            load.collect(client, account)
            if resp.status == Status.ESME_ROK:
                with load.lock:
                    load.acked[account][resp.message_id.decode()] = text
                    load.ids.append(resp.message_id.decode())
        except Exception:
            if client is not None:
                load.collect(client, account)
                client.close()
            client = None
            stop.wait(0.05)
    if client is not None:
        load.collect(client, account)
        client.close()


def test_no_acknowledged_message_is_lost_when_an_instance_is_killed_under_load(
    tmp_path: Path, redis_server: RedisServer, prefix: str, daemons: list[Daemon]
) -> None:
    record = tmp_path / "provider.jsonl"
    a = Daemon(tmp_path, "a", redis_server.url, prefix, record, ttl=TTL, delay=0.1).start()
    b = Daemon(tmp_path, "b", redis_server.url, prefix, record, ttl=TTL, delay=0.1).start()
    daemons.extend([a, b])
    load = Load()
    stop = threading.Event()
    workers = [
        threading.Thread(target=esme_worker, args=([a, b], account, w, load, stop), daemon=True)
        for account in ("up", "st")
        for w in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: load.count() >= 60, timeout=30)
        a.kill()  # SIGKILL under load: its ESMEs move to b
        seen = load.count()
        wait_for(lambda: load.count() >= seen + 60, timeout=30)
        a.start()  # back as a new instance
        seen = load.count()
        wait_for(lambda: load.count() >= seen + 60, timeout=30)
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)

    readers = [bind(b, account, "receiver") for account in ("up", "st")]
    deadline = time.monotonic() + 60
    try:
        for account, reader in zip(("up", "st"), readers, strict=True):
            while not set(load.acked[account]) <= set(load.receipts[account]) and time.monotonic() < deadline:
                reader.read_one(min(deadline, time.monotonic() + 0.2))
                load.collect(reader, account)
    finally:
        for reader in readers:
            reader.close()

    provider = Counter(simulator_texts(record))
    acked_texts = {text for per_account in load.acked.values() for text in per_account.values()}
    assert all(acked_texts), "no load"
    assert sorted(acked_texts - set(provider)) == []  # every acknowledged message reached the provider
    duplicates = {text: n for text, n in provider.items() if n > 1}
    assert all(text.startswith("st-") for text in duplicates)  # only the outbox ever sends again
    counted = len(a.events("possible_duplicate")) + len(b.events("possible_duplicate"))
    assert sum(n - 1 for n in duplicates.values()) <= counted
    for account in ("up", "st"):
        missing = set(load.acked[account]) - set(load.receipts[account])
        assert not missing, f"{account}: {len(missing)} acknowledged messages without a receipt"
        assert {load.receipts[account][i] for i in load.acked[account]} == {"DELIVRD"}
    assert len(load.ids) == len(set(load.ids))  # no message_id handed out twice
    assert [a.stop(), b.stop()] == [0, 0]


def test_a_redis_restart_is_survived(tmp_path: Path, prefix: str, daemons: list[Daemon]) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        record = tmp_path / "provider.jsonl"
        a = Daemon(tmp_path, "a", server.url, prefix, record, ttl=TTL).start()
        b = Daemon(tmp_path, "b", server.url, prefix, record, ttl=TTL).start()
        daemons.extend([a, b])
        tx = bind(a, "up", "transmitter")
        before = [tx.submit(text=f"before-{i}".encode()).message_id.decode() for i in range(3)]
        redis = server.client()
        wait_for(lambda: redis.xlen(f"{prefix}:rq:up") == 3)  # receipts waiting in Redis, no receiver yet

        server.kill()
        # No crash: errors to the ESME, /readyz fails on both instances.
        statuses = {tx.submit(text=f"during-{i}".encode()).status for i in range(3)}
        assert statuses <= {Status.ESME_RSYSERR, Status.ESME_RMSGQFUL}
        wait_for(lambda: a.ready() == 503 and b.ready() == 503, timeout=20)
        refused = Esme(b.smpp_port, timeout=5)
        assert refused.bind("receiver", system_id="up", password="pw").status != Status.ESME_ROK
        refused.close()
        assert a.alive and b.alive

        server.restart()  # same port, same append-only file
        wait_for(lambda: a.ready() == 200 and b.ready() == 200, timeout=30)
        after = tx.submit(text=b"after").message_id.decode()
        rx = bind(b, "up", "receiver")
        try:
            receipts = rx.wait_receipts(4, timeout=20)
            assert sorted(r["id"] for r in receipts) == sorted([*before, after])
        finally:
            rx.close()
            tx.close()
        assert [a.stop(), b.stop()] == [0, 0]
    finally:
        server.stop()
