"""Reports due later survive the instance that sent the message: real bridge processes
on a real redis-server, the Contacta and FlashSMS doubles over HTTP.

Instance A accepts three messages whose reports are each due seconds later from a
timer: Contacta's synthetic receipt (`receipt_timeout`), a FlashSMS status poll
(`poll_interval`) and the built-in simulator's report (`delivery_delay`). A is
SIGKILLed before any is due; B takes the providers' due-timer leases over and the
ESME, bound to B, gets every receipt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.smpp.constants import Status
from tests.redis.conftest import TTL
from tests.redis.support import DAEMON_CONFIG, RedisServer
from tests.support.daemon import Daemon
from tests.support.due import DUE_PROVIDERS, due_doubles
from tests.support.esme import Esme

DUE_IN = 4  # seconds from acceptance to each report: A is killed well before
PROVIDERS = ("sim", "contacta", "flashsms")

CONFIG = DAEMON_CONFIG + DUE_PROVIDERS


@pytest.fixture
def doubles() -> Iterator[dict[str, str]]:
    with due_doubles() as urls:
        yield urls


def test_reports_due_on_a_killed_instance_come_from_another(
    tmp_path: Path, redis_server: RedisServer, prefix: str, doubles: dict[str, str]
) -> None:
    values: dict[str, Any] = {
        "redis_url": redis_server.url,
        "prefix": prefix,
        "ttl": TTL,
        "delay": DUE_IN,
        "latency": 0,
        "record": tmp_path / "sim.jsonl",
        **doubles,
    }
    a = Daemon(tmp_path, CONFIG, "a", **values).start()  # first up: it takes every due-timer lease
    b = Daemon(tmp_path, CONFIG, "b", **values).start()
    redis = redis_server.client()
    tx = Esme(a.smpp_port, timeout=5)
    rx = Esme(b.smpp_port, timeout=5)
    try:
        assert tx.bind("transmitter", system_id="up", password="pw").status == Status.ESME_ROK
        assert rx.bind("receiver", system_id="up", password="pw").status == Status.ESME_ROK
        ids = {}
        for destination in ("4917012345", "5218100001234", "233241234567"):
            resp = tx.submit(destination=destination, text=b"Reporte pendiente")
            assert resp.status == Status.ESME_ROK
            ids[resp.message_id.decode()] = destination
        holders = {name: redis.get(f"{prefix}:lease:due:{name}") for name in PROVIDERS}
        assert len(set(holders.values())) == 1 and None not in holders.values()  # one instance, A
        assert all(redis.zcard(f"{prefix}:due:{name}") == 1 for name in PROVIDERS)

        a.kill()
        tx.close()

        receipts = rx.wait_receipts(3, timeout=30)
        assert {r["id"]: r["stat"] for r in receipts} == dict.fromkeys(ids, "DELIVRD")
        taken_over = {name: redis.get(f"{prefix}:lease:due:{name}") for name in PROVIDERS}
        assert all(taken_over[name] not in (None, holders[name]) for name in PROVIDERS)  # B's now
        assert all(redis.zcard(f"{prefix}:due:{name}") == 0 for name in PROVIDERS)
    finally:
        rx.close()
        tx.close()
        for daemon in (a, b):
            if daemon.alive:
                daemon.stop()
