"""Skycore connector, unit level: request builder, number rendering, the answer
parser and its error table row by row, the postback mapping row by row."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from bridge.config import ConfigError, SkycoreProvider
from bridge.core.message import Message
from bridge.core.numbers import Number
from bridge.core.ports import (
    CallbackAnswer,
    CallbackRequest,
    Outcome,
    ProviderContext,
    StatusReport,
    StoreUnavailable,
)
from bridge.metrics import Metrics
from bridge.providers.skycore import (
    Skycore,
    build_body,
    parse_answer,
    postback_state,
    postback_time,
    render_to,
    senders,
)
from bridge.simulators.skycore import ERROR_INFO, make_app
from bridge.smpp.constants import MessageState, Status
from tests.support.providers import Reports, answer, make_message, provider_settings
from tests.support.servers import AppThread


def settings(**overrides: Any) -> SkycoreProvider:
    raw = {
        "type": "skycore",
        "url": "https://api.skycore.example/API",
        "api_key": "k3y",
        "from": "60856",
        "callback_token": "tok",
    }
    provider: SkycoreProvider = provider_settings("skycore", raw | overrides)
    return provider


def message(text: str = "Hello", destination: str = "17743199144", source: str = "12345", ton: int = 1) -> Message:
    return make_message(text, destination, source=source, message_id=99, ton=ton)


# -- request -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "plus", "expected"),
    [
        (Number("10000000001"), True, "+10000000001"),  # the document's examples
        (Number("17743199144"), True, "+17743199144"),
        (Number("6831234"), True, "+6831234"),  # 7 digits: the shortest E.164 numbers
        (Number("17743199144"), False, "17743199144"),  # plus_prefix = false: the v2 intro's digits
        (Number("7743199144", international=False), True, None),  # national, country unknown
    ],
)
def test_render_to(number: Number, plus: bool, expected: str | None) -> None:
    assert render_to(number, plus) == expected


def test_body_is_the_documented_json() -> None:
    assert build_body(settings(), message("Hi there")) == {
        "action": "sendsms",
        "message-text": "Hi there",
        "to": "+17743199144",  # document 003: every request example is "to": "+10000000001"
        "from": "60856",
    }


def test_body_with_every_optional_field() -> None:
    s = settings(from_mask="Dunder", campaign_ref="campaign2345", click_tracking=True)
    assert build_body(s, message("Visit https://example.com")) == {
        "action": "sendsms",
        "message-text": "Visit https://example.com",
        "to": "+17743199144",
        "from": "60856",
        "from-mask": "Dunder",
        "campaign-ref": "campaign2345",
        "click-tracking": True,
    }


@pytest.mark.parametrize(
    ("source", "allowed", "expected"),
    [
        ("12345", [], ("60856", "MASK")),  # nothing allowed: the configured pair
        ("12345", ["*"], ("12345", "MASK")),  # a number: the `from`
        ("Dunder Mifflin", ["*"], ("60856", "Dunder Mifflin")),  # letters: the mask
        ("12345", ["777"], ("60856", "MASK")),
        ("777", ["777"], ("777", "MASK")),
        ("no!good", ["*"], ("60856", "MASK")),
        ("", ["*"], ("60856", "MASK")),
    ],
)
def test_senders(source: str, allowed: list[str], expected: tuple[str, str]) -> None:
    assert senders(source, settings(allowed_senders=allowed, from_mask="MASK")) == expected


def test_refusals_before_any_call() -> None:
    bad_number = build_body(settings(), message(destination="7743199144", ton=2))
    assert not isinstance(bad_number, dict)
    assert (bad_number.outcome, bad_number.status) == (Outcome.REJECTED, Status.ESME_RINVDSTADR)
    too_long = build_body(settings(max_parts=2), message("x" * 307))
    assert not isinstance(too_long, dict)
    assert too_long.status is Status.ESME_RINVMSGLEN
    assert isinstance(build_body(settings(max_parts=0), message("x" * 5000)), dict)  # 0: no limit


def test_no_flash_flag() -> None:
    assert Skycore.supports_flash is False


# -- answers -------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["Success", "success", "SUCCESS"])
def test_success_gives_the_tracking_id(word: str) -> None:
    body = {
        "status": word,
        "tracking-id": "abc123def456",
        "to": "+10000000001",
        "from": "00000",
        "status-details": "SMS request accepted and queued for delivery",
    }
    result, alert = parse_answer(answer(200, body), "99")
    assert (result.outcome, result.status, result.provider_ids, alert) == (
        Outcome.ACCEPTED,
        Status.ESME_ROK,
        ("abc123def456",),
        False,
    )


def test_success_without_tracking_id_is_accepted_under_our_id() -> None:
    result, alert = parse_answer(answer(200, {"status": "Success"}), "99")
    assert (result.outcome, result.provider_ids, alert) == (Outcome.ACCEPTED, ("99",), True)


# PROVIDERS.md 5.2, "Proposed status" column ("+ alert" where it says so); the outcome
# (may another provider send it?) and the error log from docs/providers/skycore.md.
SYSERR, THROTTLED = Status.ESME_RSYSERR, Status.ESME_RTHROTTLED
NOT_SENT, REJECTED = Outcome.NOT_SENT, Outcome.REJECTED
DOCUMENTED_ERRORS: list[tuple[str, Status, Outcome, bool]] = [
    ("E100", SYSERR, NOT_SENT, True),  # invalid request: bridge bug
    ("E101", SYSERR, NOT_SENT, True),  # invalid action
    ("E102", SYSERR, NOT_SENT, True),  # key missing: + alert
    ("E103", SYSERR, NOT_SENT, True),  # API blocked: + alert
    ("E104", SYSERR, NOT_SENT, True),  # authentication failed: + alert
    ("E105", SYSERR, NOT_SENT, True),  # no API rights: + alert
    ("E106", THROTTLED, NOT_SENT, False),  # call interval: 0x58
    ("E107", SYSERR, NOT_SENT, True),  # action not allowed
    ("E108", SYSERR, NOT_SENT, True),  # JSON parse error: bridge bug
    ("E109", SYSERR, NOT_SENT, True),  # API not activated: + alert
    ("E110", Status.ESME_RINVDSTADR, REJECTED, False),  # invalid receiver: 0x0B
    ("E111", Status.ESME_RINVSRCADR, REJECTED, False),  # invalid sender: 0x0A
    ("E112", SYSERR, NOT_SENT, True),  # IP not allow-listed: + alert
    ("E113", THROTTLED, NOT_SENT, False),  # throughput exceeded: 0x58
    ("E114", Status.ESME_RINVDSTADR, REJECTED, False),  # blacklisted: 0x0B
    ("E115", Status.ESME_RINVSRCADR, REJECTED, False),  # mask too long (AU): 0x0A
    ("E120", THROTTLED, NOT_SENT, False),  # request limit: 0x58
    ("E201", Status.ESME_RINVDSTADR, REJECTED, False),  # missing receiver: 0x0B
    ("E503", SYSERR, NOT_SENT, False),  # internal error: 0x08
    ("E712", Status.ESME_RINVMSGLEN, REJECTED, False),  # text required: 0x01
    ("E713", Status.ESME_RSUBMITFAIL, REJECTED, True),  # billing problem: 0x45, error log
    ("E714", Status.ESME_RSUBMITFAIL, REJECTED, True),  # campaign missing/invalid: 0x45, error log
    ("E715", Status.ESME_RSUBMITFAIL, REJECTED, False),  # not subscribed: 0x45
]


@pytest.mark.parametrize(("code", "status", "outcome", "alert"), DOCUMENTED_ERRORS)
@pytest.mark.parametrize("word", ["Failure", "failure"])  # the document writes both
def test_error_table_row_by_row(code: str, status: Status, outcome: Outcome, alert: bool, word: str) -> None:
    body = {"status": word, "error-code": code, "error-info": ERROR_INFO[code], "to": "10000000001"}
    result, alerted = parse_answer(answer(200, body), "99")
    assert (result.outcome, result.status, alerted) == (outcome, status, alert)
    assert result.metric == ("throttled" if status is THROTTLED else "rejected")
    assert code in result.reason


def test_the_double_knows_every_documented_code() -> None:
    assert {code for code, *_ in DOCUMENTED_ERRORS} == set(ERROR_INFO)


@pytest.mark.parametrize(
    ("http_status", "body", "outcome", "status", "alert"),
    [
        (200, {"status": "Failure", "error-code": "E999", "error-info": "new"}, Outcome.REJECTED,
         Status.ESME_RSUBMITFAIL, False),
        (200, {"status": "Failure"}, Outcome.REJECTED, Status.ESME_RSUBMITFAIL, False),
        # a 5xx goes by its status whatever the body says (DESIGN.md: not sent)
        (500, {"status": "Failure", "error-code": "E110"}, Outcome.NOT_SENT, Status.ESME_RSYSERR, False),
        (500, {"status": "Success", "tracking-id": "t1"}, Outcome.NOT_SENT, Status.ESME_RSYSERR, False),
        (429, "", Outcome.NOT_SENT, Status.ESME_RTHROTTLED, False),
        (502, "Bad gateway", Outcome.NOT_SENT, Status.ESME_RSYSERR, False),
        (401, "", Outcome.NOT_SENT, Status.ESME_RSYSERR, True),
        (200, "<html></html>", Outcome.UNKNOWN, Status.ESME_RSYSERR, False),
        (404, "not here", Outcome.REJECTED, Status.ESME_RSUBMITFAIL, False),
    ],
)  # fmt: skip
def test_answers_off_the_documented_path(
    http_status: int, body: Any, outcome: Outcome, status: Status, alert: bool
) -> None:
    result, alerted = parse_answer(answer(http_status, body), "99")
    assert (result.outcome, result.status, alerted) == (outcome, status, alert)


# -- postbacks -----------------------------------------------------------------------

N201 = {
    "origin": "SMS_MT",
    "code": "N201",
    "sent-as": "SMS",
    "status": "Sent",
    "from": "000000",
    "to": "10000000000",
    "tracking-id": "xxxxxxxxxxxx",
    "operator-id": "0001470",
    "operator-name": "AT&T",
    "timestamp": "2021-01-26T18:00:07.990498+00:00",
}
STATUS_WORDS = {"N201": "Sent", "N202": "Delivered", "E201": "Failed", "E202": "Rejected"}


@pytest.mark.parametrize(
    ("code", "state", "error"),
    [  # PROVIDERS.md 5.3 "Proposed state / stat"; err codes from docs/providers/skycore.md
        ("N201", MessageState.ENROUTE, 0),  # Sent: submitted to carrier, intermediate
        ("N202", MessageState.DELIVERED, 0),  # Delivered: carrier DLR positive
        ("E201", MessageState.REJECTED, 201),  # Failed: submission to carrier failed
        ("E202", MessageState.UNDELIVERABLE, 202),  # Rejected: negative DLR
    ],
)
def test_postback_states_row_by_row(code: str, state: MessageState, error: int) -> None:
    payload = N201 | {"code": code, "status": STATUS_WORDS[code]}
    assert postback_state(payload) == (code, (state, error))


@pytest.mark.parametrize("status", ["Expired", "Message Sent/Expired", "EXPIRED"])
def test_rejected_postback_saying_expired_is_expired(status: str) -> None:
    """PROVIDERS.md 5.3: E202 "3 EXPIRED if a text says Expired"."""
    assert postback_state(N201 | {"code": "E202", "status": status}) == ("E202", (MessageState.EXPIRED, 202))


@pytest.mark.parametrize(
    ("word", "code"),
    [("sent", "N201"), ("delivered", "N202"), ("failed", "E201"), ("rejected", "E202"), ("expired", "E202")],
)
def test_postback_without_code_maps_its_status_word(word: str, code: str) -> None:
    """PROVIDERS.md 5.3 pairs each code with its status word."""
    payload = {k: v for k, v in N201.items() if k != "code"} | {"status": word.capitalize()}
    mapped = postback_state(payload)
    assert mapped is not None
    assert mapped[0] == code


@pytest.mark.parametrize(
    "payload",
    [
        {"origin": "SMS_MO", "code": "N211", "from": "10000000000", "to": "00000", "tracking-id": "smsmo1"},
        {"origin": "MMS_MT", "code": "N101", "tracking-id": "mms1"},
        {"origin": "MMS_MT", "code": "E102", "tracking-id": "mms1"},  # an MMS code, not our E-table
        {"origin": "SMS_MT", "code": "N299", "status": "Odd", "tracking-id": "x"},
    ],
)
def test_other_postbacks_are_not_mapped(payload: dict[str, Any]) -> None:
    assert postback_state(payload) is None


def test_postback_time() -> None:
    assert postback_time(N201, 0.0) == pytest.approx(1611684007.990498)
    assert postback_time({"timestamp": "2021-02-01T23:35:54+00:00"}, 0.0) == 1612222554.0
    assert postback_time({"timestamp": "2021-02-01T23:35:54"}, 0.0) == 1612222554.0  # naive: UTC
    assert postback_time({"timestamp": "yesterday"}, 5.0) == 5.0
    assert postback_time({}, 5.0) == 5.0


def postback(method: str = "POST", body: bytes = b"") -> CallbackRequest:
    headers = {"content-type": "application/json"}
    return CallbackRequest(method, "/callbacks/skycore/tok", {}, headers, body, "127.0.0.1")


async def test_postbacks_as_the_intake_hands_them_over() -> None:
    reports = Reports()
    skycore = Skycore("skycore", settings(), reports.context())
    documented = json.dumps(N201).encode()  # the document's N201 example
    assert await skycore.handle_callback(postback(body=documented)) == CallbackAnswer(200, "OK")
    assert await skycore.handle_callback(postback(body=documented)) == CallbackAnswer(200, "OK")  # again: once
    [report] = reports.items
    assert (report.provider_id, report.state, report.detail) == ("xxxxxxxxxxxx", MessageState.ENROUTE, "Sent")
    wrong_method = await skycore.handle_callback(postback("GET"))
    assert (wrong_method.status, wrong_method.headers) == (405, {"Allow": "POST"})
    assert (await skycore.handle_callback(postback(body=b"[1]"))).status == 400
    assert (await skycore.handle_callback(postback(body=b"{not json"))).status == 400
    mo = json.dumps({"origin": "SMS_MO", "code": "N101"}).encode()
    assert (await skycore.handle_callback(postback(body=mo))).status == 200  # not ours: ignored
    assert len(reports.items) == 1


async def test_a_postback_the_store_cannot_take_is_answered_503() -> None:
    async def store_away(report: StatusReport) -> bool:
        raise StoreUnavailable("disk full")

    skycore = Skycore("skycore", settings(), ProviderContext(store_away, Metrics(), "http://127.0.0.1:9"))
    body = json.dumps(N201 | {"code": "N202", "status": "Delivered"}).encode()
    assert (await skycore.handle_callback(postback(body=body))).status == 503


# -- settings ------------------------------------------------------------------------


def test_settings_defaults_and_validation() -> None:
    s = settings()
    assert (s.from_, s.from_mask, s.plus_prefix, s.max_parts, s.final_timeout) == ("60856", "", True, 10, 172800)
    assert s.allowed_senders == [] and s.flash_fallback == "normal"
    with pytest.raises(ConfigError) as error:
        settings(**{"from": "shortcode", "from_mask": "Far too long a mask", "url": "ftp://x"})
    problems = "\n".join(error.value.problems)
    for key in ("providers.skycore.from", "providers.skycore.from_mask", "providers.skycore.url"):
        assert key in problems


# -- the double, as Skycore validates -------------------------------------------------


def call(url: str, body: Any, key: str | None = "skycore-test-key") -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"} | ({"x-api-key": key} if key is not None else {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_the_double_checks_like_skycore() -> None:
    ok = {"action": "sendsms", "message-text": "Hi", "to": "+10000000001", "from": "60856"}
    with AppThread(make_app()) as sim:
        api = sim.url + "/API"
        status, body = call(api, ok | {"action": "SendSMS"})  # action is case-insensitive
        assert status == 200
        assert set(body) == {"status", "tracking-id", "to", "from", "status-details"}
        assert (body["status"], body["to"], body["from"]) == ("Success", "+10000000001", "60856")
        assert body["status-details"] == "SMS request accepted and queued for delivery"
        expectations: list[tuple[Any, str | None, str]] = [
            (ok, None, "E102"),
            (ok, "wrong-key", "E104"),
            (b"{oops", "skycore-test-key", "E100"),
            (ok | {"action": "sendmms"}, "skycore-test-key", "E101"),
            ({k: v for k, v in ok.items() if k != "to"}, "skycore-test-key", "E201"),
            (ok | {"to": "12-34"}, "skycore-test-key", "E110"),
            (ok | {"to": "10000000001"}, "skycore-test-key", "E110"),  # without the + of every example
            (ok | {"flash": 1}, "skycore-test-key", "E100"),  # not a parameter of the document
            (ok | {"click-tracking": "yes"}, "skycore-test-key", "E100"),
            (ok | {"from": "00000"}, "skycore-test-key", "E111"),
            (ok | {"message-text": ""}, "skycore-test-key", "E712"),
            (ok | {"to": "+61412345678", "from-mask": "Dunder Mifflin"}, "skycore-test-key", "E115"),
            (ok | {"to": "+999000713"}, "skycore-test-key", "E713"),
        ]
        for request_body, key, code in expectations:
            status, body = call(api, request_body, key)
            assert (status, body["status"], body["error-code"]) == (200, "Failure", code)  # HTTP 200 all the same
            assert body["error-info"] == ERROR_INFO[code]
        # A mask is cut at 11 characters elsewhere, as the document says.
        assert call(api, ok | {"from-mask": "Dunder Mifflin"})[1]["status"] == "Success"
        assert [r["json"] for r in sim.app["received"]][:1] == [ok | {"action": "SendSMS"}]
        assert call(sim.url + "/_sim/fail", {"error-code": "E503"}, key=None)[0] == 200
        assert call(api, ok)[1]["error-code"] == "E503"
