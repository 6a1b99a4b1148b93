"""The operator's view of a cluster: any instance answers for any message, from the
history and indexes in the shared Redis; an action taken through one instance holds
for a message another instance owns."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from bridge.smpp.constants import Status
from tests.support.esme import Esme
from tests.support.running import RunningBridge
from tests.support.servers import free_port
from tests.support.waiting import wait_for

Start = Callable[..., RunningBridge]
TOKEN = "cluster-admin-token-0123"
NUMBER = "4917055512345"


def accounts() -> list[dict[str, Any]]:
    base = {"password": "secret1", "allowed_networks": ["127.0.0.0/8"], "throughput": 0}
    return [
        {**base, "system_id": "esme1", "route": "sim"},
        {**base, "system_id": "st", "ack": "stored", "route": "down"},
    ]


def providers() -> dict[str, Any]:
    return {
        "sim": {"type": "simulator", "delivery_delay": 0.05},
        "down": {
            "type": "contacta",
            "base_url": f"http://127.0.0.1:{free_port()}",  # refuses connections: the outbox retries
            "username": "u",
            "password": "p",
            "number_format": "international",
            "circuit_failures": 1000,
        },
    }


def start(start_cluster_bridge: Start) -> RunningBridge:
    return start_cluster_bridge(
        http={"admin_token": TOKEN},
        accounts=accounts(),
        providers=providers(),
        outbox={"backoff_base": 0.2, "backoff_max": 0.5},
    )


def admin(bridge: RunningBridge, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        bridge.http_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def delivered(bridge: RunningBridge) -> str:
    """One message submitted on `bridge`, its receipt received; its message_id."""
    esme = Esme(bridge.smpp_port)
    try:
        assert esme.bind("transceiver").status == Status.ESME_ROK
        message_id: str = esme.submit(destination=NUMBER, text=b"cluster").message_id.decode()
        esme.wait_receipts(1)
    finally:
        esme.close()
    return message_id


def kinds(view: dict[str, Any]) -> list[str]:
    return [e["event"] for e in view["history"]]


def view_when(bridge: RunningBridge, message_id: str, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def holds() -> bool:
        status, view = admin(bridge, f"/admin/messages/{message_id}")
        if status == 200:
            seen.update(view)
        return status == 200 and condition(view)

    wait_for(holds, timeout=15, interval=0.05)
    return seen


def test_any_instance_answers_for_any_message(start_cluster_bridge: Start) -> None:
    a, b = start(start_cluster_bridge), start(start_cluster_bridge)
    message_id = delivered(a)
    on_b = view_when(b, message_id, lambda v: "receipt_sent" in kinds(v))
    assert kinds(on_b) == ["received", "attempt", "report", "receipt_sent"]
    assert on_b["state"] == "DELIVRD" and on_b["destination"] == "*********2345"
    status, found = admin(b, "/admin/messages?to=" + NUMBER + "&since=1h")
    assert status == 200 and [m["message_id"] for m in found["messages"]] == [message_id]
    assert admin(a, f"/admin/messages/{message_id}")[1]["history"] == on_b["history"]


def test_giving_up_through_another_instance_stops_the_owners_outbox(start_cluster_bridge: Start) -> None:
    a, b = start(start_cluster_bridge), start(start_cluster_bridge)
    esme = Esme(a.smpp_port)
    try:
        assert esme.bind("transceiver", system_id="st").status == Status.ESME_ROK
        message_id = esme.submit(destination=NUMBER, text=b"owned by a").message_id.decode()
        view_when(b, message_id, lambda v: "retry_scheduled" in kinds(v))
        status, queues = admin(b, "/admin/queues")
        assert status == 200 and [(o["provider"], o["messages"]) for o in queues["outbox"]] == [("down", 1)]

        def given_up() -> bool:  # refused while an attempt is in flight on a
            return admin(b, f"/admin/messages/{message_id}/give-up", {"reason": "operator"})[0] == 200

        wait_for(given_up, timeout=15, interval=0.05)
        receipt = esme.wait_receipts(1)[0]
        assert receipt["id"] == message_id and receipt["stat"] == "UNDELIV"
        final = view_when(b, message_id, lambda v: v["lifecycle"] == "final")
        attempts = len([e for e in final["history"] if e["event"] == "attempt"])
        # a's outbox lets the message go at its next turn instead of sending it again.
        inner = a.bridge
        assert inner is not None
        wait_for(lambda: a.run(lambda: inner.outbox.size) == 0, timeout=15)
        later = admin(b, f"/admin/messages/{message_id}")[1]
        assert len([e for e in later["history"] if e["event"] == "attempt"]) == attempts
        assert admin(b, "/admin/queues")[1]["outbox"] == []
    finally:
        esme.close()


def test_history_expires_with_retention_in_redis(start_cluster_bridge: Start, redis_server: Any, prefix: str) -> None:
    a = start_cluster_bridge(
        http={"admin_token": TOKEN}, accounts=accounts(), providers=providers(), store={"retention": 3600}
    )
    message_id = delivered(a)
    view_when(a, message_id, lambda v: "receipt_sent" in kinds(v))
    client = redis_server.client()
    for key in (f"{prefix}:h:{message_id}", f"{prefix}:to:{NUMBER}"):
        assert 3500_000 < client.pttl(key) <= 3600_000
