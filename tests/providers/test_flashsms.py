"""FlashSMS connector, piece by piece: number rendering, request builder, answer parser
and status mapping (each table walked row by row), then the poller, the rate limit and
the 429 pause over real HTTP on 127.0.0.1 against the FlashSMS simulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.config import ConfigError, parse_config
from bridge.config import FlashSmsProvider as FlashSmsSettings
from bridge.core.message import Message
from bridge.core.numbers import Number
from bridge.core.ports import Outcome
from bridge.providers.flashsms import (
    FlashSms,
    map_status,
    parse_send_answer,
    phone_key,
    recipient_statuses,
    render_number,
    status_for_400,
)
from bridge.simulators import build_simulator
from bridge.simulators.flashsms import cuid, ghana_number
from bridge.smpp.constants import MessageState, Status
from tests.support import providers as support
from tests.support.due import DueRig
from tests.support.providers import Reports, answer, provider_settings

KEY = "bms_live_test_key"
PHONE = "233201234567"


# -- helpers ------------------------------------------------------------------------------


def flashsms_settings(**overrides: Any) -> FlashSmsSettings:
    values: dict[str, Any] = {"type": "flashsms", "base_url": "http://127.0.0.1:9/api/v1", "api_key": KEY}
    settings: FlashSmsSettings = provider_settings("flashsms", values | overrides)
    return settings


def make_message(text: str = "Hello", to: str = PHONE, **fields: Any) -> Message:
    return support.make_message(text, to, **fields)


def connector(**overrides: Any) -> FlashSms:
    return FlashSms("flashsms", flashsms_settings(**overrides), Reports().context())


def test_a_request_carries_at_most_max_recipients() -> None:
    assert connector().max_batch == 1000  # document 002: "recipients" takes up to 1000 numbers
    assert connector(max_recipients=50).max_batch == 50


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "rendered"),
    [
        (Number("233201234567"), "233201234567"),
        (Number("233541234567"), "233541234567"),
        (Number("0201234567", international=False), "233201234567"),  # national, country unknown: Ghana's form
        (Number("23320123456"), None),  # one digit short
        (Number("2332012345678"), None),  # one digit long
        (Number("233001234567"), None),  # no national number starts with 0
        (Number("4917012345"), None),  # not Ghana
        (Number("14155550100"), None),
        (Number("4917012345", international=False), None),  # national digits in no Ghanaian form
    ],
)
def test_render_number(number: Number, rendered: str | None) -> None:
    assert render_number(number) == rendered


@pytest.mark.parametrize("written", ["233201234567", "+233201234567", "0201234567", "233 20 123 4567"])
def test_phone_key_reads_every_documented_form(written: str) -> None:
    assert phone_key(written) == PHONE


def test_non_ghana_numbers_are_rejected_before_any_request() -> None:
    result = connector().check(make_message(to="4917012345"))
    assert result is not None and (result.outcome, result.status) == (Outcome.REJECTED, Status.ESME_RINVDSTADR)


# -- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "text", "status"),
    [
        ({}, "a" * 918, None),
        ({}, "a" * 919, Status.ESME_RINVMSGLEN),
        ({}, "ж" * 918, None),  # the document gives one limit for all text
        ({"max_chars_unicode": 402}, "ж" * 403, Status.ESME_RINVMSGLEN),
        ({"max_chars_unicode": 402}, "a" * 918, None),
        ({"max_chars_unicode": 0}, "ж", Status.ESME_RINVDCS),
        ({"max_chars": 160}, "a" * 161, Status.ESME_RINVMSGLEN),
        ({}, "", Status.ESME_RINVMSGLEN),
    ],
)
def test_text_limits(overrides: dict[str, Any], text: str, status: Status | None) -> None:
    result = connector(**overrides).check(make_message(text=text))
    assert (result.status if result else None) == status


# -- the request ---------------------------------------------------------------------------


def test_request_body() -> None:
    body = connector(sender="MyBrand").build_request(make_message(text="Hi €", message_id=77))
    assert body == {"recipients": [PHONE], "message": "Hi €", "senderId": "MyBrand", "campaignName": "bridge-77"}


def test_no_sender_and_no_campaign_leave_the_fields_out() -> None:
    body = connector(campaign_name="").build_request(make_message(to="0201234567", ton=2))
    assert body == {"recipients": [PHONE], "message": "Hello"}


@pytest.mark.parametrize(
    ("allowed", "source", "sender"),
    [
        ([], "Other", "Default"),
        (["Other"], "Other", "Other"),
        (["*"], "Any", "Any"),
        (["X"], "Other", "Default"),
        (["*"], "", "Default"),
    ],
)
def test_sender_id_is_source_addr_only_when_allowed(allowed: list[str], source: str, sender: str) -> None:
    body = connector(sender="Default", allowed_senders=allowed).build_request(make_message(source=source))
    assert body["senderId"] == sender


def test_auth_header_forms() -> None:
    assert connector()._http._headers["Authorization"] == f"Bearer {KEY}"
    assert connector(auth_header="x-api-key")._http._headers["X-API-Key"] == KEY


# -- the answer ----------------------------------------------------------------------------

SUCCESS: dict[str, Any] = {
    "success": True,
    "data": {
        "messageId": "cmjveqxgf0001jr04abc123",
        "recipientsSent": 1,
        "invalidRecipients": [],
        "creditsUsed": 1,
        "remainingCredits": 998,
        "scheduled": False,
        "scheduleDate": None,
    },
}


def test_success_stores_message_id_and_phone() -> None:
    result = parse_send_answer(answer(200, SUCCESS), PHONE)
    assert result.outcome is Outcome.ACCEPTED
    assert result.provider_ids == (f"cmjveqxgf0001jr04abc123:{PHONE}",)


@pytest.mark.parametrize(
    "data",
    [
        {"recipientsSent": 0, "invalidRecipients": []},
        {"recipientsSent": 1, "invalidRecipients": ["0201234567"]},
        {"recipientsSent": 0, "invalidRecipients": ["+233201234567"]},
    ],
)
def test_an_invalid_recipient_is_an_invalid_destination(data: dict[str, Any]) -> None:
    body = {"success": True, "data": {**SUCCESS["data"], **data}}
    result = parse_send_answer(answer(200, body), PHONE)
    assert (result.outcome, result.status) == (Outcome.REJECTED, Status.ESME_RINVDSTADR)


@pytest.mark.parametrize(
    ("http", "status", "outcome"),
    [  # PROVIDERS.md 4.2 ("HTTP Status Codes" of document 002); outcomes from docs/providers/flashsms.md
        (402, Status.ESME_RSUBMITFAIL, Outcome.REJECTED),  # insufficient credits: 0x45
        (404, Status.ESME_RSYSERR, Outcome.NOT_SENT),  # not found on send: our base_url
        (401, Status.ESME_RSYSERR, Outcome.NOT_SENT),  # 0x08 + alert
        (403, Status.ESME_RSYSERR, Outcome.NOT_SENT),  # 0x08 + alert
        (429, Status.ESME_RTHROTTLED, Outcome.NOT_SENT),  # 0x58
        (500, Status.ESME_RSYSERR, Outcome.NOT_SENT),  # 0x08
    ],
)
def test_every_http_error_maps(http: int, status: Status, outcome: Outcome) -> None:
    result = parse_send_answer(answer(http, {"success": False, "error": "whatever"}), PHONE)
    assert (result.status, result.outcome) == (status, outcome)


def test_402_status_is_configurable() -> None:
    result = parse_send_answer(answer(402, {"success": False, "error": "x"}), PHONE, Status.ESME_RX_T_APPN)
    assert (result.status, result.outcome) == (Status.ESME_RX_T_APPN, Outcome.REJECTED)


@pytest.mark.parametrize(
    ("word", "status"),
    [  # PROVIDERS.md 4.2, HTTP 400: "text mentions phone/recipient -> 0x0B; sender -> 0x0A; message/length -> 0x01"
        ("phone", Status.ESME_RINVDSTADR),
        ("recipient", Status.ESME_RINVDSTADR),
        ("number", Status.ESME_RINVDSTADR),
        ("sender", Status.ESME_RINVSRCADR),
        ("message", Status.ESME_RINVMSGLEN),
        ("length", Status.ESME_RINVMSGLEN),
        ("characters", Status.ESME_RINVMSGLEN),
        ("parameters", Status.ESME_RSUBMITFAIL),  # "else 0x45"
    ],
)
def test_every_400_word_maps(word: str, status: Status) -> None:
    result = parse_send_answer(answer(400, {"success": False, "error": f"Invalid {word.upper()} given"}), PHONE)
    assert (result.status, result.outcome) == (status, Outcome.REJECTED)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Invalid phone number: 233200000410", Status.ESME_RINVDSTADR),
        ("No valid recipients. Use Ghana phone numbers", Status.ESME_RINVDSTADR),
        ("Sender ID 'X' is not approved", Status.ESME_RINVSRCADR),
        ("Message exceeds maximum length of 918 characters", Status.ESME_RINVMSGLEN),
        ("message is required", Status.ESME_RINVMSGLEN),
        ("Invalid request parameters", Status.ESME_RSUBMITFAIL),
        ("", Status.ESME_RSUBMITFAIL),
    ],
)
def test_400_texts_the_simulator_uses(text: str, status: Status) -> None:
    assert status_for_400(text) == status


@pytest.mark.parametrize(
    ("http", "body", "status", "outcome"),
    [
        (401, {"success": False, "error": "Invalid or expired API key"}, Status.ESME_RSYSERR, Outcome.NOT_SENT),
        (403, {"success": False, "error": "API key lacks sms:send"}, Status.ESME_RSYSERR, Outcome.NOT_SENT),
        (429, {"success": False, "error": "Rate limit"}, Status.ESME_RTHROTTLED, Outcome.NOT_SENT),
        (500, {"success": False, "error": "Internal"}, Status.ESME_RSYSERR, Outcome.NOT_SENT),
        (502, "<html>", Status.ESME_RSYSERR, Outcome.NOT_SENT),
        (200, {"success": False, "error": "Invalid phone"}, Status.ESME_RINVDSTADR, Outcome.REJECTED),
        (200, {"success": True, "data": {}}, Status.ESME_RSYSERR, Outcome.UNKNOWN),
        (200, "not json", Status.ESME_RSYSERR, Outcome.UNKNOWN),
        (409, {"success": False, "error": "?"}, Status.ESME_RSUBMITFAIL, Outcome.REJECTED),
    ],
)
def test_other_answers(http: int, body: Any, status: Status, outcome: Outcome) -> None:
    result = parse_send_answer(answer(http, body), PHONE)
    assert (result.status, result.outcome) == (status, outcome)


def test_reasons_never_carry_the_provider_text() -> None:
    result = parse_send_answer(answer(400, {"success": False, "error": "Invalid phone number: 233201234567"}), PHONE)
    assert "1234567" not in result.reason


# -- reports -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "state", "error"),
    [  # document 002 "Status Values"; PROVIDERS.md 4.3 "Mapping"
        ("PENDING", MessageState.ENROUTE, 0),  # queued: intermediate only
        ("SENT", MessageState.ENROUTE, 0),  # sent to carrier: intermediate only
        ("DELIVERED", MessageState.DELIVERED, 0),
        ("FAILED", MessageState.UNDELIVERABLE, 1),  # "err e.g. 001"
        ("Delivered", MessageState.DELIVERED, 0),
    ],
)
def test_every_status_maps(word: str, state: MessageState, error: int) -> None:
    body = {"success": True, "data": {"status": word, "recipients": [{"phone": PHONE, "status": word}]}}
    [read] = recipient_statuses(body, [PHONE]).values()
    assert map_status(read) == (state, error)


def test_unknown_status_words_map_to_nothing() -> None:
    assert map_status("TELEPORTED") is None


def test_recipients_are_matched_by_phone_and_the_overall_status_stands_in() -> None:
    body = {
        "success": True,
        "data": {
            "status": "SENT",
            "recipients": [
                {"phone": "0201234567", "status": "DELIVERED", "sentAt": "2024-12-21T10:30:00Z"},
                {"phone": "233241234567", "status": "FAILED", "sentAt": None},
            ],
        },
    }
    assert recipient_statuses(body, [PHONE, "233241234567", "233541111111"]) == {
        PHONE: "DELIVERED",
        "233241234567": "FAILED",
        "233541111111": "SENT",
    }
    assert recipient_statuses({"success": False, "error": "x"}, [PHONE]) == {}


# -- the simulator's own helpers ------------------------------------------------------------


def test_simulator_ids_look_like_cuids() -> None:
    ids = {cuid() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 25 and i.startswith("c") and i.isalnum() and i.islower() for i in ids)


@pytest.mark.parametrize(
    ("written", "number"),
    [("0201234567", PHONE), ("+233201234567", PHONE), (PHONE, PHONE), ("233101234567", None), ("020123456", None)],
)
def test_simulator_validates_ghana_numbers(written: str, number: str | None) -> None:
    assert ghana_number(written) == number


# -- over real HTTP against the simulator ---------------------------------------------------


@pytest.fixture
async def simulator(serve_here: Callable[[web.Application], Awaitable[str]]) -> tuple[web.Application, str]:
    app = build_simulator("flashsms", api_key=KEY, sent_after=0.05, final_after=0.1)
    return app, await serve_here(app) + "/api/v1"


async def sim_call(url: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession() as http, http.request(method, url + path, headers=headers, **kwargs) as r:
        return r.status, await r.json()


async def test_simulator_endpoints_answer_the_documented_shapes(simulator: tuple[web.Application, str]) -> None:
    _, url = simulator
    status, sent = await sim_call(url, "POST", "/sms/send", json={"recipients": ["0201234567"], "message": "Hi"})
    assert status == 200 and sent["success"] is True
    message_id = sent["data"]["messageId"]
    assert set(sent["data"]) == {
        "messageId",
        "recipientsSent",
        "invalidRecipients",
        "creditsUsed",
        "remainingCredits",
        "scheduled",
        "scheduleDate",
    }
    status, body = await sim_call(url, "GET", f"/sms/status/{message_id}")
    assert status == 200 and body["data"]["id"] == message_id and body["data"]["senderId"] == "FlashSMS"
    status, body = await sim_call(url, "GET", f"/sms/{message_id}/recipients")
    assert body["data"]["recipients"][0]["phone"] == PHONE
    assert set(body["data"]["stats"]) == {"delivered", "failed", "pending", "deliveryRate"}
    status, body = await sim_call(url, "GET", "/balance")
    assert body["data"]["balance"] == 999 and body["data"]["currency"] == "credits"
    status, body = await sim_call(url, "POST", "/sms/estimate", json={"message": "ж" * 71, "recipientCount": 3})
    assert body["data"]["message"] == {"length": 71, "parts": 2, "encoding": "UCS-2"}
    assert body["data"]["creditsRequired"] == 3
    status, body = await sim_call(url, "GET", "/sms?limit=5")
    assert body["data"]["pagination"]["total"] == 1
    status, body = await sim_call(url, "GET", "/sms/status/cnotthere")
    assert (status, body) == (404, {"success": False, "error": "Message not found"})
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/balance", headers={"X-API-Key": KEY}) as response:
            assert response.status == 200
        async with http.get(url + "/balance") as response:
            assert (response.status, await response.json()) == (401, {"success": False, "error": "Missing API key"})
        async with http.get(url + "/balance", headers={"Authorization": "Bearer bms_live_nope"}) as response:
            assert response.status == 401


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"data": '{"recipients": ["0201234567"], "message": "Hi"}'}, "Content-Type must be application/json"),
        ({"json": {"recipients": ["0201234567"], "message": "Hi", "flash": True}}, "Unknown parameter: flash"),
        ({"json": {"recipients": ["0201234567"], "message": "a" * 919}}, "Message exceeds maximum length of 918"),
        ({"json": {"recipients": ["0201234567"] * 1001, "message": "Hi"}}, None),  # duplicates are removed first
        ({"json": {"recipients": [f"02012{n:05d}" for n in range(1001)], "message": "Hi"}}, "Maximum 1000 recipients"),
        ({"json": {"recipients": ["4917012345"], "message": "Hi"}}, "No valid recipients"),
        ({"json": {"recipients": ["0201234567"]}}, "message is required"),
    ],
)
async def test_the_double_refuses_what_document_002_does_not_allow(
    simulator: tuple[web.Application, str], kwargs: dict[str, Any], error: str | None
) -> None:
    _, url = simulator
    status, body = await sim_call(url, "POST", "/sms/send", **kwargs)
    if error is None:
        assert (status, body["data"]["recipientsSent"]) == (200, 1)
    else:
        assert (status, body["success"]) == (400, False) and body["error"].startswith(error)


async def test_simulator_scopes_and_rate_limit(serve_here: Callable[[web.Application], Awaitable[str]]) -> None:
    app = build_simulator("flashsms", api_key=KEY, scopes=["sms:send"], rate_limit=2, retry_after=9)
    url = await serve_here(app) + "/api/v1"
    status, body = await sim_call(url, "GET", "/balance")
    assert (status, body["error"]) == (403, "API key lacks the required permission: balance:read")
    await sim_call(url, "GET", "/balance")
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + "/balance", headers={"Authorization": f"Bearer {KEY}"}) as response,
    ):
        assert response.status == 429
        assert response.headers["Retry-After"] == "9"


async def test_polls_until_delivered_with_an_intermediate_first(simulator: tuple[web.Application, str]) -> None:
    app, url = simulator
    reports = Reports()
    flashsms = FlashSms("flashsms", flashsms_settings(base_url=url, poll_interval=0.02), reports.context())
    await flashsms.start()
    try:
        async with DueRig(flashsms) as rig:
            result = await rig.send(make_message())
            [final] = await reports.wait_final()
        assert result.outcome is Outcome.ACCEPTED
        [provider_id] = result.provider_ids
        message_id, phone = provider_id.split(":")
        assert phone == PHONE and app["messages"][message_id]["campaignName"] == "bridge-4242"
        assert (final.provider_id, final.state, final.error) == (provider_id, MessageState.DELIVERED, 0)
        assert reports.items[0].state is MessageState.ENROUTE  # PENDING (or SENT) came first
        words = [r.detail for r in reports.items]
        assert len(words) == len(set(words))  # a status is reported once, not at every poll
        poll = next(r for r in app["received"] if r["method"] == "GET")
        assert poll["path"] == f"/api/v1/sms/{message_id}/recipients"
        assert poll["headers"]["Authorization"] == f"Bearer {KEY}"
        assert await rig.store.next_due("flashsms") is None  # final: polled no more
    finally:
        await flashsms.close()


async def test_failed_is_undeliverable_with_err_1(simulator: tuple[web.Application, str]) -> None:
    _, url = simulator
    reports = Reports()
    flashsms = FlashSms(
        "flashsms", flashsms_settings(base_url=url, poll_interval=0.02, poll_endpoint="status"), reports.context()
    )
    await flashsms.start()
    try:
        async with DueRig(flashsms) as rig:
            result = await rig.send(make_message(to="233200000901"))
            [final] = await reports.wait_final()
        assert (final.provider_id, final.state, final.error) == (result.provider_ids[0], MessageState.UNDELIVERABLE, 1)
    finally:
        await flashsms.close()


@pytest.mark.parametrize(("setting", "state"), [("EXPIRED", MessageState.EXPIRED), ("UNKNOWN", MessageState.UNKNOWN)])
async def test_still_pending_after_max_age(
    simulator: tuple[web.Application, str], setting: str, state: MessageState
) -> None:
    _, url = simulator
    reports = Reports()
    settings = flashsms_settings(
        base_url=url, poll_interval=0.02, pending_max_age=0.2, pending_final_state=setting, poll_interval_max=0.05
    )
    flashsms = FlashSms("flashsms", settings, reports.context())
    await flashsms.start()
    try:
        async with DueRig(flashsms) as rig:
            result = await rig.send(make_message(to="233200000801"))  # stays PENDING
            [final] = await reports.wait_final()
        assert (final.provider_id, final.state) == (result.provider_ids[0], state)
    finally:
        await flashsms.close()


async def test_one_poll_per_message_id_for_the_messages_of_one_request(
    simulator: tuple[web.Application, str],
) -> None:
    """A coalesced request gives its messages one messageId: one poll answers for
    all of them, each phone's status going to its own message, and each message's
    next poll backs off from its own poll count."""
    app, url = simulator
    reports = Reports()
    flashsms = FlashSms("flashsms", flashsms_settings(base_url=url, poll_interval=30), reports.context())
    await flashsms.start()
    try:
        rig = DueRig(flashsms)
        batch = [make_message(to=to, message_id=n) for n, to in enumerate(["233200000801", PHONE], start=1)]
        results = await flashsms.send_batch(batch)
        for message, result in zip(batch, results, strict=True):
            await rig.accepted(message, result, now=1000.0)
        [pending, delivered] = batch
        message_id = delivered.provider_ids[0].split(":")[0]
        control = f"{url.removesuffix('/api/v1')}/_sim/messages/{message_id}/status"
        async with aiohttp.ClientSession() as http, http.post(control, json={"status": "DELIVERED", "phone": PHONE}):
            pass
        pending.polls = 2  # polled twice already: the next wait is 8 x 30 s
        due = await flashsms.on_due(batch)
    finally:
        await flashsms.close()
    polls = [r for r in app["received"] if r["method"] == "GET"]
    assert len(polls) == 1 and pending.provider_ids[0].split(":")[0] == delivered.provider_ids[0].split(":")[0]
    assert {r.provider_id: r.state for r in reports.items} == {
        pending.provider_ids[0]: MessageState.ENROUTE,
        delivered.provider_ids[0]: MessageState.DELIVERED,
    }
    now = reports.items[0].at
    assert due[1] is None and due[0] is not None and due[0] - now == pytest.approx(240, abs=5)


def test_two_entries_cannot_share_one_key() -> None:
    """Document 002 limits requests per API key; the window is kept per provider entry."""
    raw = {"type": "flashsms", "base_url": "http://127.0.0.1:9/api/v1", "api_key": KEY}
    with pytest.raises(ConfigError) as error:
        parse_config({"providers": {"gh1": raw, "gh2": raw | {"sender": "Other"}}})
    assert error.value.problems == [
        "providers.gh2.api_key: the same key as providers.gh1; FlashSMS allows 100 requests a minute per key "
        "and each provider entry counts only its own"
    ]
    parse_config({"providers": {"gh1": raw, "gh2": raw | {"api_key": "bms_live_other"}}})


async def test_local_rate_limit_answers_throttled_without_a_request(simulator: tuple[web.Application, str]) -> None:
    app, url = simulator
    flashsms = FlashSms(
        "flashsms",
        flashsms_settings(base_url=url, requests_per_minute=2, rate_limit_wait=0, poll_interval=3600),
        Reports().context(),
    )
    await flashsms.start()
    try:
        results = [await flashsms.send(make_message(message_id=n)) for n in range(3)]
        assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.NOT_SENT]
        assert (results[2].status, results[2].metric) == (Status.ESME_RTHROTTLED, "throttled")
        assert len(app["received"]) == 2
    finally:
        await flashsms.close()


async def test_a_429_pauses_every_request_and_honours_retry_after(
    serve_here: Callable[[web.Application], Awaitable[str]],
) -> None:
    app = build_simulator("flashsms", api_key=KEY, rate_limit=1, retry_after=30)
    url = await serve_here(app) + "/api/v1"
    flashsms = FlashSms("flashsms", flashsms_settings(base_url=url, poll_interval=3600), Reports().context())
    await flashsms.start()
    try:
        assert (await flashsms.send(make_message())).outcome is Outcome.ACCEPTED
        throttled = await flashsms.send(make_message())  # the simulator's bucket is empty: HTTP 429
        assert (throttled.outcome, throttled.status) == (Outcome.NOT_SENT, Status.ESME_RTHROTTLED)
        assert throttled.retry_after == 30.0
        paused = await flashsms.send(make_message())  # not even tried while paused
        assert (paused.outcome, paused.status) == (Outcome.NOT_SENT, Status.ESME_RTHROTTLED)
        assert paused.retry_after is not None and 0 < paused.retry_after <= 30
        assert len(app["received"]) == 2
    finally:
        await flashsms.close()
