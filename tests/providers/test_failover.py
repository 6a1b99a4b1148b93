"""Failover on a route `providers = ["contacta", "skycore"]`, over real sockets with
both doubles: what is known about the primary's attempt decides (DESIGN.md).

- not sent (HTTP 5xx, connection refused, HTTP 429) -> the secondary sends it and
  its receipt comes back;
- rejected (a definitive answer: invalid number) -> no failover, the mapped status;
- unknown (the request was written, then the read timed out) -> with
  `ack = "upstream"` ESME_RSYSERR and nothing goes to the secondary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from bridge.simulators import contacta as contacta_double
from bridge.simulators import skycore as skycore_double
from bridge.smpp.constants import Status
from tests.support.esme import Esme
from tests.support.providers import account, post_json, received
from tests.support.running import RunningBridge
from tests.support.servers import AppThread, free_port

USER, PASSWORD, KEY, TOKEN = "bridge", "contacta-pw", "skycore-key", "postback-token"
DESTINATION = "528100001234"  # Mexico: Contacta takes 8100001234, Skycore +528100001234


@pytest.fixture
def contacta(serve: Callable[[web.Application], AppThread]) -> AppThread:
    return serve(contacta_double.make_app(username=USER, password=PASSWORD))


@pytest.fixture
def skycore(serve: Callable[[web.Application], AppThread], http_port: int) -> AppThread:
    app = skycore_double.make_app(
        api_key=KEY,
        postback_url=f"http://127.0.0.1:{http_port}/callbacks/skycore/{TOKEN}",
        sent_delay=0.05,
        final_delay=0.05,
    )
    return serve(app)


@pytest.fixture
def start(
    start_bridge: Callable[..., RunningBridge], http_port: int, skycore: AppThread
) -> Callable[..., RunningBridge]:
    """start(contacta_url, **contacta settings) -> a bridge with the failover route."""

    def run(contacta_url: str, **contacta_settings: Any) -> RunningBridge:
        return start_bridge(
            accounts=[account("mexico", ack="upstream")],
            providers={
                "contacta": {
                    "type": "contacta",
                    "base_url": contacta_url,
                    "username": USER,
                    "password": PASSWORD,
                    "receipt_timeout": 0.2,
                    "receipt_state": "DELIVRD",
                }
                | contacta_settings,
                "skycore": {
                    "type": "skycore",
                    "url": skycore.url + "/API",
                    "api_key": KEY,
                    "from": "60856",
                    "callback_token": TOKEN,
                },
            },
            routes=[{"name": "mexico", "match": {"destination_prefix": "52"}, "providers": ["contacta", "skycore"]}],
            http={"port": http_port, "public_url": f"http://127.0.0.1:{http_port}"},
        )

    return run


def inject(sim: AppThread, fault: dict[str, Any]) -> None:
    assert post_json(sim.url + "/_sim/fail", fault) == 200


def test_both_doubles_take_the_route_normally(
    start: Callable[..., RunningBridge],
    contacta: AppThread,
    skycore: AppThread,
    connect: Callable[[RunningBridge], Esme],
) -> None:
    esme = connect(start(contacta.url))
    resp = esme.submit(destination=DESTINATION, text=b"Primary path")
    assert resp.status == Status.ESME_ROK
    assert [r["json"]["phone"] for r in received(contacta)] == ["8100001234"]
    assert received(skycore) == []
    assert esme.wait_receipts(1)[0]["id"] == resp.message_id.decode()


@pytest.mark.parametrize(
    "fault", [{"status": 500}, {"status": 503}, {"status": 429, "retry_after": 30}], ids=["500", "503", "429"]
)
def test_primary_not_sent_fails_over_to_the_secondary(
    start: Callable[..., RunningBridge],
    contacta: AppThread,
    skycore: AppThread,
    connect: Callable[[RunningBridge], Esme],
    fault: dict[str, Any],
) -> None:
    esme = connect(start(contacta.url))
    inject(contacta, fault)
    resp = esme.submit(destination=DESTINATION, text=b"Via the secondary")
    assert resp.status == Status.ESME_ROK
    assert len(received(contacta)) == 1
    [request] = received(skycore)
    assert request["json"] == {
        "action": "sendsms",
        "message-text": "Via the secondary",
        "to": "+" + DESTINATION,
        "from": "60856",
    }
    [receipt] = esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")
    assert contacta.app["sent"] == []


def test_primary_refusing_connections_fails_over(
    start: Callable[..., RunningBridge], skycore: AppThread, connect: Callable[[RunningBridge], Esme]
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    esme = connect(start(nobody_listens))
    resp = esme.submit(destination=DESTINATION, text=b"Primary is down")
    assert resp.status == Status.ESME_ROK
    assert [r["json"]["message-text"] for r in received(skycore)] == ["Primary is down"]
    [receipt] = esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")


def test_definitive_rejection_does_not_fail_over(
    start: Callable[..., RunningBridge],
    contacta: AppThread,
    skycore: AppThread,
    connect: Callable[[RunningBridge], Esme],
) -> None:
    esme = connect(start(contacta.url))
    resp = esme.submit(destination="520000000000", text=b"Unreachable carrier")  # the double's magic number
    assert resp.status == Status.ESME_RINVDSTADR
    assert len(received(contacta)) == 1
    assert received(skycore) == []


def test_read_timeout_on_the_primary_is_not_resent(
    start: Callable[..., RunningBridge],
    contacta: AppThread,
    skycore: AppThread,
    connect: Callable[[RunningBridge], Esme],
) -> None:
    """The double holds its answer beyond the connector's timeout: the request was
    written, so Contacta may have the message. ESME_RSYSERR, and no second send."""
    esme = connect(start(contacta.url, timeout=0.3))
    inject(contacta, {"delay": 30})
    resp = esme.submit(destination=DESTINATION, text=b"Maybe sent")
    assert resp.status == Status.ESME_RSYSERR
    assert len(received(contacta)) == 1
    assert received(skycore) == []
