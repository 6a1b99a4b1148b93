"""Several bridge instances on one real redis-server: receipts cross instances, ids
stay unique, max_binds and throughput hold cluster-wide, polling runs on one instance.

The instances are in-process `RunningBridge`s (each on its own event loop and ports);
the ESMEs are real smpplib clients, the providers real simulators over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import structlog

from bridge.core.cluster import Lease
from bridge.simulators import build_simulator
from bridge.smpp.constants import Status
from bridge.smpp.pdu import SubmitSm, encode_pdu
from bridge.store.redis import RedisCluster, RedisStore, scripts
from tests.redis.support import RedisServer
from tests.support.esme import Esme
from tests.support.running import RunningBridge
from tests.support.servers import AppThread, free_port
from tests.support.waiting import until, wait_for

Start = Callable[..., RunningBridge]


def bound(bridge: RunningBridge, kind: str = "transceiver", system_id: str = "esme1") -> Esme:
    client = Esme(bridge.smpp_port)
    resp = client.bind(kind, system_id=system_id)
    assert resp.status == Status.ESME_ROK, resp.status
    return client


def account(**settings: Any) -> list[dict[str, Any]]:
    base = {
        "system_id": "esme1",
        "password": "secret1",
        "allowed_networks": ["127.0.0.0/8"],
        "max_binds": 4,
        "throughput": 0,
        "route": "sim",
    }
    return [base | settings]


def counter(bridge: RunningBridge, name: str, labels: dict[str, str]) -> float:
    """A counter's value as the bridge's /metrics would show it (0 when absent)."""

    async def read() -> float:
        assert bridge.bridge is not None
        return bridge.bridge.metrics.registry.get_sample_value(name, labels) or 0.0

    return bridge.call(read())


def test_a_receipt_crosses_instances(start_cluster_bridge: Start, redis_server: RedisServer, prefix: str) -> None:
    a, b = start_cluster_bridge(), start_cluster_bridge()
    tx, rx = bound(a, "transmitter"), bound(b, "receiver")
    try:
        ids = [tx.submit(text=f"cross {i}".encode()).message_id.decode() for i in range(5)]
        receipts = rx.wait_receipts(5)
        assert sorted(r["id"] for r in receipts) == sorted(ids)
        assert {r["stat"] for r in receipts} == {"DELIVRD"}
        tx.assert_no_deliver_sm()
        # Acknowledged receipts leave nothing behind in Redis.
        client = redis_server.client()
        wait_for(lambda: not client.keys(f"{prefix}:r:*") and client.xlen(f"{prefix}:rq:esme1") == 0)
    finally:
        tx.close()
        rx.close()


def test_receipts_wait_in_redis_for_a_receiver_on_any_instance(
    start_cluster_bridge: Start, redis_server: RedisServer, prefix: str
) -> None:
    a = start_cluster_bridge()
    tx = bound(a, "transmitter")
    ids = [tx.submit().message_id.decode() for _ in range(3)]
    client = redis_server.client()
    wait_for(lambda: client.xlen(f"{prefix}:rq:esme1") == 3)
    tx.close()
    a.stop()  # the instance that made them is gone; they are in Redis
    b = start_cluster_bridge()
    rx = bound(b, "receiver")
    try:
        assert sorted(r["id"] for r in rx.wait_receipts(3)) == sorted(ids)
    finally:
        rx.close()


def test_a_callback_on_one_instance_reaches_the_esme_on_another(start_cluster_bridge: Start) -> None:
    a_http = free_port()
    # The callback profile (registered with Kaleyra) names a's callback URL.
    profile = {"url": f"http://127.0.0.1:{a_http}/callbacks/kaleyra/cluster-token", "method": "POST"}
    double = build_simulator("kaleyra", api_key="k-key", sent_delay=0.05, final_delay=0.1, profiles={"P1": profile})
    sim = AppThread(double).start()
    try:
        kaleyra = {
            "type": "kaleyra",
            "base_url": sim.url,
            "sid": "HXAP16XXXXXX97IN",
            "api_key": "k-key",
            "sender": "KLRHXA",
            "sms_type": "TXN",
            "callback_token": "cluster-token",
            "callback_profile_id": "P1",
            "poll_interval": 0,
        }
        common = {"accounts": account(route="kaleyra"), "providers": {"kaleyra": kaleyra}}
        a = start_cluster_bridge(http={"port": a_http, "public_url": f"http://127.0.0.1:{a_http}"}, **common)
        # b sends; the callback profile it names calls a.
        b = start_cluster_bridge(http={"public_url": f"http://127.0.0.1:{a_http}"}, **common)
        esme = bound(b)
        try:
            resp = esme.submit(destination="4917012345", text=b"via b, reported to a")
            assert resp.status == Status.ESME_ROK
            [receipt] = [r for r in esme.wait_receipts(1)]
            assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")
            assert counter(a, "smpp_bridge_callbacks_total", {"provider": "kaleyra", "result": "accepted"}) >= 1
            assert counter(b, "smpp_bridge_callbacks_total", {"provider": "kaleyra", "result": "accepted"}) == 0
        finally:
            esme.close()
    finally:
        sim.stop()


def test_message_ids_are_unique_across_instances(start_cluster_bridge: Start) -> None:
    bridges = [start_cluster_bridge() for _ in range(3)]
    clients = [bound(bridge, "transmitter") for bridge in bridges]
    try:
        ids = [clients[i % 3].submit(registered_delivery=0).message_id.decode() for i in range(60)]
        assert len(set(ids)) == 60
    finally:
        for client in clients:
            client.close()


def test_query_sm_is_answered_by_any_instance(start_cluster_bridge: Start) -> None:
    a, b = start_cluster_bridge(), start_cluster_bridge()
    on_a, on_b = bound(a), bound(b, "transmitter")  # the receipt can only go to a
    try:
        message_id = on_a.submit().message_id.decode()
        on_a.wait_receipts(1)
        resp = on_b.send("query_sm", message_id=message_id, source_addr_ton=1, source_addr_npi=1, source_addr="12345")
        assert (resp.status, resp.message_state) == (Status.ESME_ROK, 2)  # DELIVERED
    finally:
        on_a.close()
        on_b.close()


def test_a_concatenated_message_split_across_instances_is_sent_once(start_cluster_bridge: Start, tmp_path: Any) -> None:
    record = tmp_path / "provider.jsonl"
    providers = {"sim": {"type": "simulator", "delivery_delay": 0.05, "record_path": str(record)}}
    a, b = start_cluster_bridge(providers=providers), start_cluster_bridge(providers=providers)
    on_a, on_b = bound(a), bound(b)
    try:
        udh = b"\x05\x00\x03\x2a\x02"
        first = on_a.submit(text=udh + b"\x01Hello ", esm_class=0x40)
        second = on_b.submit(text=udh + b"\x02world", esm_class=0x40)
        assert first.status == second.status == Status.ESME_ROK
        wanted = {first.message_id.decode(), second.message_id.decode()}
        deadline = time.monotonic() + 10
        got: set[str] = set()
        while got != wanted and time.monotonic() < deadline:
            for client in (on_a, on_b):
                client.read_one(time.monotonic() + 0.05)
            got = {r["id"] for client in (on_a, on_b) for r in client.receipts()}
        assert got == wanted
        lines = record.read_text().splitlines()
        assert len(lines) == 1 and '"text": "Hello world"' in lines[0]
    finally:
        on_a.close()
        on_b.close()


def test_max_binds_holds_across_instances(start_cluster_bridge: Start, redis_server: RedisServer, prefix: str) -> None:
    a, b = start_cluster_bridge(accounts=account(max_binds=2)), start_cluster_bridge(accounts=account(max_binds=2))
    first, second = bound(a), bound(b)
    extra = [Esme(a.smpp_port), Esme(b.smpp_port)]
    try:
        assert [client.bind("transceiver").status for client in extra] == [Status.ESME_RBINDFAIL] * 2
        assert first.unbind().status == Status.ESME_ROK
        client = redis_server.client()
        wait_for(lambda: client.zcard(f"{prefix}:binds:esme1") == 1)
        again = Esme(b.smpp_port)
        extra.append(again)
        assert again.bind("transceiver").status == Status.ESME_ROK
    finally:
        for c in [first, second, *extra]:
            c.close()


def test_throughput_holds_across_instances(start_cluster_bridge: Start) -> None:
    # So slow a rate that the bucket cannot refill while the test runs (one token per
    # 10,000 s: far beyond any test's timeout): one bucket for the cluster lets exactly
    # its burst (1) through, two per-instance buckets would let one through on each,
    # however slow the machine.
    rate = 0.0001  # submit_sm/s for the account; the burst is max(rate, 1) = 1
    a = start_cluster_bridge(accounts=account(throughput=rate))
    b = start_cluster_bridge(accounts=account(throughput=rate))
    clients = [bound(a), bound(b)]
    params: dict[str, Any] = {
        "source_addr": "1",
        "dest_addr_ton": 1,
        "destination_addr": "4917012345",
        "short_message": b"t",
    }
    try:
        for client in clients:  # one burst per instance, all read before any is answered
            client.send_raw(b"".join(encode_pdu(SubmitSm(100 + i, **params)) for i in range(15)))
        statuses = [client.read_raw_until(100 + i).status for client in clients for i in range(15)]
        assert statuses.count(Status.ESME_ROK) == 1
        assert statuses.count(Status.ESME_RTHROTTLED) == 29
    finally:
        for client in clients:
            client.close()


def pollers(requests: list[dict[str, Any]]) -> set[str]:
    """How the status polls among `requests` authenticated (each instance its own way)."""
    return {"bearer" if "Authorization" in r["headers"] else "x-api-key" for r in requests if r["method"] == "GET"}


def test_status_polling_runs_on_one_instance_and_moves_when_it_stops(start_cluster_bridge: Start) -> None:
    """FlashSMS has no callbacks: every status comes from polling. Each instance
    authenticates its own way, so the simulator's log tells who polled."""
    sim = AppThread(build_simulator("flashsms", api_key="f-key", sent_after=0.1, final_after=1.0)).start()
    try:

        def flashsms(auth: str) -> dict[str, Any]:
            settings = {
                "type": "flashsms",
                "base_url": f"{sim.url}/api/v1",
                "api_key": "f-key",
                "sender": "MyBrand",
                "poll_interval": 0.2,
                "poll_interval_max": 0.3,
                "auth_header": auth,
            }
            return {"accounts": account(route="flashsms"), "providers": {"flashsms": settings}}

        a, b = start_cluster_bridge(**flashsms("bearer")), start_cluster_bridge(**flashsms("x-api-key"))
        on_a, on_b = bound(a), bound(b)
        try:
            ids = [c.submit(destination="233241234567").message_id.decode() for c in (on_a, on_b, on_a, on_b)]
            deadline = time.monotonic() + 15
            while len({r["id"] for c in (on_a, on_b) for r in c.receipts()}) < 4 and time.monotonic() < deadline:
                for c in (on_a, on_b):
                    c.read_one(time.monotonic() + 0.05)
            assert {r["id"] for c in (on_a, on_b) for r in c.receipts()} == set(ids)
            assert len(pollers(sim.app["received"])) == 1  # one instance polled every message
            if pollers(sim.app["received"]) == {"bearer"}:
                holder, holder_client, other_client, other_style = a, on_a, on_b, "x-api-key"
            else:
                holder, holder_client, other_client, other_style = b, on_b, on_a, "bearer"

            # The poller stops: the other instance takes polling over.
            holder_client.close()
            holder.stop()
            before = len(sim.app["received"])
            late = other_client.submit(destination="233241234567").message_id.decode()
            other_client.wait_until(lambda: any(r["id"] == late for r in other_client.receipts()), timeout=15)
            assert pollers(sim.app["received"][before:]) == {other_style}
        finally:
            on_a.close()
            on_b.close()
    finally:
        sim.stop()


async def adopt_nothing(orphans: Sequence[int]) -> None:
    """An instance with nothing to adopt (none die in this test)."""


async def test_a_bug_in_leases_and_heartbeat_is_logged_with_its_traceback_and_the_lease_kept(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 item 8: Redis away is said once per outage; anything else is a bug,
    logged with its traceback, and whoever held a lease goes on holding it."""
    store = RedisStore(redis_server.url, prefix=prefix)
    await store.open()
    cluster = RedisCluster(store, ttl=0.4)
    try:
        await cluster.start(adopt_nothing)
        assert await cluster.lease("poll:p", 5.0) == Lease.GAINED

        class BrokenLease:
            def command(self, *args: object) -> object:
                raise TypeError("a bug, not Redis away")  # failure injection

        monkeypatch.setattr(scripts, "LEASE", BrokenLease())
        with structlog.testing.capture_logs() as logged:
            assert await cluster.lease("poll:p", 5.0) == Lease.HELD
            assert await cluster.lease("poll:q", 5.0) == Lease.NO
            await until(lambda: any(e["event"] == "cluster_heartbeat_failed" for e in logged))
        failed = [e for e in logged if e["event"] == "lease_failed"]
        assert [e["lease"] for e in failed] == ["poll:p", "poll:q"]
        assert all(e["exc_info"] is True and e["log_level"] == "error" for e in failed)
        beat = next(e for e in logged if e["event"] == "cluster_heartbeat_failed")
        assert beat["exc_info"] is True and "a bug" in beat["error"]
    finally:
        await cluster.stop()
        await store.close()
