"""Skycore end to end over real sockets: smpplib submits, the bridge POSTs to the
Skycore double, the double POSTs its postbacks back to the bridge's callback URL,
and they come out as deliver_sm receipts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from bridge.simulators.common import wait_for
from bridge.simulators.skycore import make_app
from bridge.smpp.constants import Status
from bridge.smpp.text import gsm_encode
from tests.providers.test_skycore import DOCUMENTED_ERRORS
from tests.support.esme import Esme
from tests.support.providers import account, metric, post_json, received, udh_parts
from tests.support.running import RunningBridge
from tests.support.servers import AppThread, free_port

KEY = "sky-KEY-0123456789"
TOKEN = "postback-secret-token"
DESTINATION = "17743199144"


def provider(url: str, **settings: Any) -> dict[str, Any]:
    return {"type": "skycore", "url": url, "api_key": KEY, "from": "60856", "callback_token": TOKEN} | settings


def postback_url(http_port: int, token: str = TOKEN) -> str:
    return f"http://127.0.0.1:{http_port}/callbacks/skycore/{token}"


def double(http_port: int, **options: Any) -> web.Application:
    defaults: dict[str, Any] = {
        "api_key": KEY,
        "senders": ("60856", "12345"),
        "path": "/API/v2",
        "postback_url": postback_url(http_port),
        "sent_delay": 0.05,
        "final_delay": 0.05,
        "retry_interval": 0.1,
        "postback_timeout": 5,
    }
    return make_app(**(defaults | options))


@pytest.fixture
def skycore(serve: Callable[[web.Application], AppThread], http_port: int) -> AppThread:
    return serve(double(http_port))


def api_url(sim: AppThread) -> str:
    return sim.url + "/API/v2"


@pytest.fixture
def start(start_bridge: Callable[..., RunningBridge], http_port: int) -> Callable[..., RunningBridge]:
    """start(sim, **provider settings) -> a bridge routing everything to Skycore."""

    def run(sim: AppThread, **settings: Any) -> RunningBridge:
        return start_bridge(
            accounts=[account("skycore")],
            providers={"skycore": provider(api_url(sim), **settings)},
            http={"port": http_port, "public_url": f"http://127.0.0.1:{http_port}"},
        )

    return run


def postbacks(sim: AppThread, count: int = 0) -> list[dict[str, Any]]:
    """The double's postback attempts, once there are at least `count` (it records an
    attempt when the answer is back, which may be after the ESME got its receipt)."""
    sim.call(wait_for(sim.app, lambda: len(sim.app["postbacks"]) >= count))
    return list(sim.app["postbacks"])


def callbacks(bridge: RunningBridge, result: str) -> float:
    return metric(bridge, "smpp_bridge_callbacks_total", provider="skycore", result=result)


# -- the documented request, postbacks, receipts -------------------------------------


def test_gsm_text_request_postbacks_and_receipts(
    start: Callable[..., RunningBridge], skycore: AppThread, connect: Callable[[RunningBridge], Esme]
) -> None:
    esme = connect(start(skycore))
    text = "Your code is 1234 {ok} [x] €5"
    resp = esme.submit(destination=DESTINATION, text=gsm_encode(text), registered_delivery=0x11)
    assert resp.status == Status.ESME_ROK
    message_id = resp.message_id.decode()

    [request] = received(skycore)
    assert (request["method"], request["path"]) == ("POST", "/API/v2")
    assert request["headers"]["x-api-key"] == KEY
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert request["json"] == {"action": "sendsms", "message-text": text, "to": "+" + DESTINATION, "from": "60856"}

    receipts = esme.wait_receipts(2)
    assert [(r["id"], r["stat"], r["message_state"]) for r in receipts] == [
        (message_id, "ENROUTE", 1),
        (message_id, "DELIVRD", 2),
    ]
    assert receipts[1]["receipted_message_id"].decode() == message_id
    assert receipts[1]["err"] == "000"
    assert [(p["payload"]["code"], p["status"]) for p in postbacks(skycore, 2)] == [("N201", 200), ("N202", 200)]


def test_ucs2_text(
    start: Callable[..., RunningBridge], skycore: AppThread, connect: Callable[[RunningBridge], Esme]
) -> None:
    esme = connect(start(skycore))
    text = "Привет, мир! Ваш код: 1234 😀"
    resp = esme.submit(destination=DESTINATION, text=text.encode("utf-16-be"), data_coding=8)
    assert resp.status == Status.ESME_ROK
    [request] = received(skycore)
    assert request["json"]["message-text"] == text
    [receipt] = esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")


@pytest.mark.parametrize("data_coding", [0x10, 0xF0])
def test_flash_goes_out_as_a_normal_sms(
    start: Callable[..., RunningBridge],
    skycore: AppThread,
    connect: Callable[[RunningBridge], Esme],
    data_coding: int,
) -> None:
    """Skycore has no flash flag; flash_fallback = "normal" (the default) sends it plain."""
    esme = connect(start(skycore))
    resp = esme.submit(destination=DESTINATION, text=b"Flash code 1234", data_coding=data_coding)
    assert resp.status == Status.ESME_ROK
    [request] = received(skycore)
    assert request["json"] == {
        "action": "sendsms",
        "message-text": "Flash code 1234",
        "to": "+" + DESTINATION,
        "from": "60856",
    }
    assert esme.wait_receipts(1)[0]["id"] == resp.message_id.decode()


def test_flash_is_refused_when_flash_fallback_is_reject(
    start: Callable[..., RunningBridge], skycore: AppThread, connect: Callable[[RunningBridge], Esme]
) -> None:
    esme = connect(start(skycore, flash_fallback="reject"))
    resp = esme.submit(destination=DESTINATION, text=b"Flash code 1234", data_coding=0x10)
    assert resp.status == Status.ESME_RSUBMITFAIL
    assert received(skycore) == []
    assert esme.submit(destination=DESTINATION, text=b"Normal code 1234").status == Status.ESME_ROK


def test_three_part_udh_message_is_sent_whole_with_a_receipt_per_part(
    start: Callable[..., RunningBridge], skycore: AppThread, connect: Callable[[RunningBridge], Esme]
) -> None:
    esme = connect(start(skycore))
    chunks = [letter * 153 for letter in "xyz"]
    ids = []
    for part in udh_parts([gsm_encode(chunk) for chunk in chunks], reference=0x99):
        resp = esme.submit(destination=DESTINATION, text=part, esm_class=0x40)
        assert resp.status == Status.ESME_ROK
        ids.append(resp.message_id.decode())
    [request] = received(skycore)
    assert request["json"]["message-text"] == "".join(chunks)
    receipts = esme.wait_receipts(3)
    assert sorted(r["id"] for r in receipts) == sorted(ids)
    assert {r["stat"] for r in receipts} == {"DELIVRD"}


def test_sender_from_source_addr(
    start: Callable[..., RunningBridge], skycore: AppThread, connect: Callable[[RunningBridge], Esme]
) -> None:
    esme = connect(start(skycore, allowed_senders=["*"], campaign_ref="campaign2345"))
    assert esme.submit(destination=DESTINATION, text=b"From a number", source="12345").status == Status.ESME_ROK
    masked = esme.submit(destination="447700900123", text=b"From a mask", source="Dunder", source_addr_ton=5)
    assert masked.status == Status.ESME_ROK
    bodies = [r["json"] for r in received(skycore)]
    assert [(b["from"], b.get("from-mask"), b["campaign-ref"]) for b in bodies] == [
        ("12345", None, "campaign2345"),
        ("60856", "Dunder", "campaign2345"),
    ]
    esme.wait_receipts(2)
    assert {p["payload"].get("from-mask") for p in postbacks(skycore, 4)} == {None, "Dunder"}


# -- final states --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "stat", "message_state", "err"),
    [
        ("19990010001", "UNDELIV", 5, "202"),  # E202 Rejected
        ("19990020001", "EXPIRED", 3, "202"),  # E202 Expired
        ("19990030001", "REJECTD", 8, "201"),  # E201 Failed
    ],
)
def test_negative_postbacks_become_failure_receipts(
    start: Callable[..., RunningBridge],
    skycore: AppThread,
    connect: Callable[[RunningBridge], Esme],
    destination: str,
    stat: str,
    message_state: int,
    err: str,
) -> None:
    esme = connect(start(skycore))
    resp = esme.submit(destination=destination, text=b"Will it arrive?", registered_delivery=2)  # failures only
    assert resp.status == Status.ESME_ROK
    [receipt] = esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"], receipt["message_state"], receipt["err"]) == (
        resp.message_id.decode(),
        stat,
        message_state,
        err,
    )


def test_no_final_postback_ends_unknown_after_final_timeout(
    start: Callable[..., RunningBridge], skycore: AppThread, connect: Callable[[RunningBridge], Esme]
) -> None:
    esme = connect(start(skycore, final_timeout=0.3))
    resp = esme.submit(destination="19990040001", text=b"Carrier without DLRs")
    assert resp.status == Status.ESME_ROK
    [receipt] = esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"], receipt["message_state"]) == (resp.message_id.decode(), "UNKNOWN", 7)
    assert [p["payload"]["code"] for p in postbacks(skycore, 1)] == ["N201"]


# -- every documented error ----------------------------------------------------------


def test_every_error_code_gives_its_command_status(
    start: Callable[..., RunningBridge], skycore: AppThread, connect: Callable[[RunningBridge], Esme]
) -> None:
    """Each code of the table, answered by the double to its magic number 999000NNN.
    A good message after each shows the bridge carries on (and keeps the circuit closed)."""
    esme = connect(start(skycore))
    for code, status, _, _ in DOCUMENTED_ERRORS:
        resp = esme.submit(destination=f"999000{code[1:]}", text=b"Error please")
        assert (code, Status(resp.status)) == (code, status)
        assert esme.submit(destination=DESTINATION, text=b"All good").status == Status.ESME_ROK
    assert len(received(skycore)) == 2 * len(DOCUMENTED_ERRORS)


def test_errors_the_double_finds_itself(
    start: Callable[..., RunningBridge],
    serve: Callable[[web.Application], AppThread],
    http_port: int,
    connect: Callable[[RunningBridge], Esme],
) -> None:
    """A sender not on the account (E111), a long mask to Australia (E115), a number
    not subscribed to the campaign (E715), HTTP 429 and 5xx, and what the bridge
    refuses before calling."""
    sim = serve(double(http_port, enforce_campaign_check=True, campaigns={"camp1": ["17743199144", "61412345678"]}))
    esme = connect(start(sim, allowed_senders=["*"], campaign_ref="camp1"))
    cases: list[tuple[dict[str, Any], Status, bool]] = [
        ({"source": "55555"}, Status.ESME_RINVSRCADR, True),  # E111
        ({"destination": "61412345678", "source": "Dunder Mifflin", "source_addr_ton": 5}, Status.ESME_RINVSRCADR,
         True),  # E115
        ({"destination": "447700900123"}, Status.ESME_RSUBMITFAIL, True),  # E715 not subscribed
        ({"destination": "123456"}, Status.ESME_RINVDSTADR, False),  # not an international number
    ]  # fmt: skip
    for submit, status, reaches in cases:
        before = len(received(sim))
        resp = esme.submit(**({"destination": DESTINATION, "text": b"Hello there"} | submit))
        assert (submit, Status(resp.status)) == (submit, status)
        assert len(received(sim)) == before + int(reaches)
    for fault, status in (
        ({"status": 429, "retry_after": 2}, Status.ESME_RTHROTTLED),
        ({"status": 500}, Status.ESME_RSYSERR),
    ):
        assert post_json(sim.url + "/_sim/fail", fault) == 200
        assert Status(esme.submit(destination=DESTINATION, text=b"Hello there").status) == status
    assert esme.submit(destination=DESTINATION, text=b"Hello there").status == Status.ESME_ROK


def test_wrong_api_key(
    start: Callable[..., RunningBridge], skycore: AppThread, connect: Callable[[RunningBridge], Esme]
) -> None:
    esme = connect(start(skycore, api_key="wrong-key"))
    assert esme.submit(destination=DESTINATION, text=b"Hello").status == Status.ESME_RSYSERR  # E104
    [request] = received(skycore)
    assert request["headers"]["x-api-key"] == "wrong-key"


def test_campaign_missing(
    start: Callable[..., RunningBridge],
    serve: Callable[[web.Application], AppThread],
    http_port: int,
    connect: Callable[[RunningBridge], Esme],
) -> None:
    sim = serve(double(http_port, enforce_campaign_check=True, campaigns={"camp1": []}))
    esme = connect(start(sim))
    assert esme.submit(destination=DESTINATION, text=b"Hello").status == Status.ESME_RSUBMITFAIL  # E714
    assert received(sim)[0]["json"].get("campaign-ref") is None


# -- the postback endpoint -----------------------------------------------------------


def test_replayed_and_foreign_postbacks_change_nothing(
    start: Callable[..., RunningBridge],
    skycore: AppThread,
    connect: Callable[[RunningBridge], Esme],
    http_port: int,
) -> None:
    bridge = start(skycore)
    esme = connect(bridge)
    first = esme.submit(destination=DESTINATION, text=b"First")
    [receipt] = esme.wait_receipts(1)
    assert receipt["id"] == first.message_id.decode()
    n202 = postbacks(skycore, 2)[1]["payload"]
    assert n202["code"] == "N202"
    url = postback_url(http_port)

    assert post_json(url, n202) == 200  # Skycore sending it again
    assert callbacks(bridge, "duplicate") == 1
    assert post_json(url, n202 | {"code": "E202", "status": "Rejected"}) == 200  # late, contradicting
    assert post_json(url, n202 | {"tracking-id": "never-issued"}) == 200
    assert callbacks(bridge, "unknown_id") == 1
    mo = {"origin": "SMS_MO", "code": "N211", "from": DESTINATION, "to": "60856", "message-text": "STOP",
          "tracking-id": "smsmo09ea1b9215", "timestamp": "2021-02-01T23:35:54+00:00"}  # fmt: skip
    assert post_json(url, mo) == 200
    assert callbacks(bridge, "ignored") == 1
    assert post_json(url, b"{not json") == 400
    assert post_json(url, [1, 2]) == 400
    assert post_json(url, None, method="GET") == 405
    assert post_json(postback_url(http_port, "wrong-token"), n202) == 404

    second = esme.submit(destination=DESTINATION, text=b"Second")
    receipts = esme.wait_receipts(2)
    assert [(r["id"], r["stat"]) for r in receipts] == [
        (first.message_id.decode(), "DELIVRD"),
        (second.message_id.decode(), "DELIVRD"),
    ]


def test_double_retries_postbacks_not_answered_200(
    start: Callable[..., RunningBridge],
    serve: Callable[[web.Application], AppThread],
    http_port: int,
    connect: Callable[[RunningBridge], Esme],
) -> None:
    """Skycore's rule: no 200 -> again later, at most 5 retries. A wrong token gets
    the bridge's 404 every time."""
    sim = serve(double(http_port, postback_url=postback_url(http_port, "stale-token"), retry_interval=0.05))
    esme = connect(start(sim))
    assert esme.submit(destination=DESTINATION, text=b"Lost postbacks").status == Status.ESME_ROK
    sim.call(wait_for(sim.app, lambda: sum(p["gave_up"] for p in sim.app["postbacks"]) == 2))
    by_code: dict[str, list[dict[str, Any]]] = {}
    for record in postbacks(sim):
        by_code.setdefault(record["payload"]["code"], []).append(record)
    assert sorted(by_code) == ["N201", "N202"]
    for records in by_code.values():
        assert [(r["attempt"], r["status"]) for r in records] == [(n, 404) for n in range(6)]


def test_a_retried_postback_gets_through_once_the_url_is_right(
    start: Callable[..., RunningBridge],
    serve: Callable[[web.Application], AppThread],
    http_port: int,
    connect: Callable[[RunningBridge], Esme],
) -> None:
    sim = serve(double(http_port, postback_url=postback_url(http_port, "stale-token"), retry_interval=0.3))
    esme = connect(start(sim))
    resp = esme.submit(destination=DESTINATION, text=b"Late postbacks")
    postbacks(sim, 2)  # N201 and N202 refused once
    assert post_json(sim.url + "/_sim/settings", {"postback_url": postback_url(http_port)}) == 200
    [receipt] = esme.wait_receipts(1)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "DELIVRD")
    attempts = [(p["payload"]["code"], p["attempt"], p["status"]) for p in postbacks(sim, 4)]
    assert attempts[:2] == [("N201", 0, 404), ("N202", 0, 404)]
    assert sorted(attempts[2:]) == [("N201", 1, 200), ("N202", 1, 200)]


# -- restart -------------------------------------------------------------------------


def test_final_timeout_due_at_a_restart_ends_the_message_in_the_next_run(
    start_bridge: Callable[..., RunningBridge],
    start: Callable[..., RunningBridge],
    skycore: AppThread,
    http_port: int,
    connect: Callable[[RunningBridge], Esme],
) -> None:
    """final_timeout's due time is stored with the message: the next run ends it
    UNKNOWN at that time even though its own final_timeout is two days."""
    first = start_bridge(  # postbacks come while it runs: to a port where nobody listens
        accounts=[account("skycore")],
        providers={"skycore": provider(api_url(skycore), final_timeout=1.5)},
        http={"port": free_port(), "public_url": f"http://127.0.0.1:{http_port}"},
    )
    esme = connect(first)
    resp = esme.submit(destination="19990040001", text=b"No DLR from this carrier")
    assert resp.status == Status.ESME_ROK
    esme.unbind()
    first.stop()
    [receipt] = connect(start(skycore, final_timeout=172800)).wait_receipts(1)
    assert (receipt["id"], receipt["stat"]) == (resp.message_id.decode(), "UNKNOWN")
    assert len(received(skycore)) == 1
