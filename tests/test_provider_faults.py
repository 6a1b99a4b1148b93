"""Provider faults are not bridge faults: each fault injected through a real HTTP
double (the Skycore simulator, or a small garbage-answering server), with one
`ack = "stored"` account that the bridge owns messages for and one `ack = "upstream"`
account, while a third account on another provider keeps working.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from bridge.simulators import skycore as skycore_double
from bridge.smpp.constants import Status
from tests.support.esme import Esme
from tests.support.running import RunningBridge
from tests.support.servers import AppThread, free_port

KEY, TOKEN = "skycore-key", "postback-token"
DESTINATION = "4917012345"


def accounts() -> list[dict[str, Any]]:
    common = {"password": "secret1", "throughput": 0}
    return [
        {"system_id": "stored", "ack": "stored", "route": "sky", **common},
        {"system_id": "upstream", "ack": "upstream", "route": "sky", **common},
        {"system_id": "other", "route": "sim", **common},
    ]


@pytest.fixture
def ports() -> tuple[int, int]:
    return free_port(), free_port()  # bridge HTTP (postbacks), provider


def skycore_app(http_port: int) -> web.Application:
    return skycore_double.make_app(
        api_key=KEY,
        postback_url=f"http://127.0.0.1:{http_port}/callbacks/sky/{TOKEN}",
        sent_delay=0.02,
        final_delay=0.02,
    )


@pytest.fixture
def bridge(start_bridge: Callable[..., RunningBridge], ports: tuple[int, int]) -> RunningBridge:
    http_port, provider_port = ports
    return start_bridge(
        http={"port": http_port, "public_url": f"http://127.0.0.1:{http_port}"},
        accounts=accounts(),
        outbox={"backoff_base": 0.05, "backoff_max": 0.5},
        providers={
            "sim": {"type": "simulator", "delivery_delay": 0.02},
            "sky": {
                "type": "skycore",
                "url": f"http://127.0.0.1:{provider_port}/API",
                "api_key": KEY,
                "from": "60856",
                "callback_token": TOKEN,
                "timeout": 0.5,
                "connect_timeout": 0.5,
                "circuit_failures": 3,
                "circuit_reset": 0.3,
            },
        },
    )


@pytest.fixture
def esmes(bridge: RunningBridge) -> Iterator[dict[str, Esme]]:
    clients = {}
    for account in accounts():
        client = Esme(bridge.smpp_port)
        assert client.bind(system_id=account["system_id"]).status == Status.ESME_ROK
        clients[account["system_id"]] = client
    yield clients
    for client in clients.values():
        client.close()


def inject(sim: AppThread, **fault: Any) -> None:
    request = urllib.request.Request(
        f"{sim.url}/_sim/fail", data=json.dumps(fault).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def metric(bridge: RunningBridge, line_start: str) -> float:
    assert bridge.bridge is not None
    for line in bridge.bridge.metrics.exposition().decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def delivered(client: Esme, ids: list[str], timeout: float = 20) -> None:
    client.wait_until(lambda: {r["id"] for r in client.receipts() if r["stat"] == "DELIVRD"} >= set(ids), timeout)


def test_provider_down_for_a_while_then_back(
    bridge: RunningBridge, esmes: dict[str, Esme], ports: tuple[int, int]
) -> None:
    http_port, provider_port = ports  # nothing listens on provider_port yet: connections are refused
    stored, upstream, other = esmes["stored"], esmes["upstream"], esmes["other"]
    ids = [stored.submit(destination=DESTINATION).message_id.decode() for _ in range(10)]
    assert upstream.submit(destination=DESTINATION).status == Status.ESME_RSYSERR
    # The bridge stays responsive, and the other provider's traffic is unaffected.
    assert stored.send("enquire_link").status == Status.ESME_ROK
    other_id = other.submit().message_id.decode()
    delivered(other, [other_id])
    assert metric(bridge, 'smpp_bridge_outbox_messages{provider="sky"}') > 0
    with AppThread(skycore_app(http_port), port=provider_port):
        delivered(stored, ids)  # the backlog drains once the provider is back
        assert upstream.submit(destination=DESTINATION).status == Status.ESME_ROK
    assert metric(bridge, 'smpp_bridge_upstream_requests_total{outcome="circuit_open",provider="sky"}') > 0


def test_5xx_and_429_with_retry_after_are_retried_for_stored_messages(
    bridge: RunningBridge, esmes: dict[str, Esme], ports: tuple[int, int]
) -> None:
    http_port, provider_port = ports
    with AppThread(skycore_app(http_port), port=provider_port) as sim:
        inject(sim, status=503, times=2)
        first = esmes["stored"].submit(destination=DESTINATION).message_id.decode()
        delivered(esmes["stored"], [first])
        inject(sim, status=429, times=1, retry_after=1)
        second = esmes["stored"].submit(destination=DESTINATION).message_id.decode()
        delivered(esmes["stored"], [second])
        inject(sim, status=500, times=1)
        assert esmes["upstream"].submit(destination=DESTINATION).status == Status.ESME_RSYSERR
        inject(sim, status=429, times=1, retry_after=1)
        assert esmes["upstream"].submit(destination=DESTINATION).status == Status.ESME_RTHROTTLED
    assert metric(bridge, 'smpp_bridge_upstream_requests_total{outcome="throttled",provider="sky"}') == 2
    assert metric(bridge, 'smpp_bridge_throttled_total{reason="upstream",system_id="upstream"}') == 1


def test_a_slow_provider_is_unknown_never_blindly_resent_upstream_and_retried_when_stored(
    bridge: RunningBridge, esmes: dict[str, Esme], ports: tuple[int, int]
) -> None:
    http_port, provider_port = ports
    with AppThread(skycore_app(http_port), port=provider_port) as sim:
        inject(sim, delay=2.0, times=1)  # longer than the connector's 0.5 s read timeout
        assert esmes["upstream"].submit(destination=DESTINATION).status == Status.ESME_RSYSERR
        inject(sim, delay=2.0, times=1)
        message_id = esmes["stored"].submit(destination=DESTINATION).message_id.decode()
        delivered(esmes["stored"], [message_id])
        assert esmes["stored"].send("enquire_link").status == Status.ESME_ROK
    assert metric(bridge, 'smpp_bridge_upstream_requests_total{outcome="timeout",provider="sky"}') == 2
    assert metric(bridge, 'smpp_bridge_possible_duplicates_total{provider="sky"}') == 1


def test_malformed_answers_are_unknown(bridge: RunningBridge, esmes: dict[str, Esme], ports: tuple[int, int]) -> None:
    _, provider_port = ports
    app = web.Application()

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(status=200, text="<html>{not json", content_type="application/json")

    app.router.add_post("/API", garbage)
    with AppThread(app, port=provider_port):
        assert esmes["upstream"].submit(destination=DESTINATION).status == Status.ESME_RSYSERR
        assert esmes["upstream"].send("enquire_link").status == Status.ESME_ROK
    assert metric(bridge, 'smpp_bridge_submits_total{command_status="ESME_RSYSERR",flash="false",provider="sky"') == 1
