"""Contacta connector, unit level: request builder, number rendering, text checks,
the answer parser and its error table row by row, synthetic receipts."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from bridge.config import ConfigError, ContactaProvider
from bridge.core.message import UPGRADE_DUE, Message
from bridge.core.numbers import Number
from bridge.providers.base import Outcome
from bridge.providers.contacta import (
    Contacta,
    Request,
    basic_auth,
    build_request,
    choose_sender,
    error_rule,
    parse_answer,
    render_phone,
    text_refusal,
)
from bridge.simulators.contacta import make_app
from bridge.smpp.constants import MessageState, Status
from bridge.store.base import StoreUnavailable
from tests.support.providers import Reports, answer, make_message, provider_settings
from tests.support.servers import AppThread

# The success example of document 000.
DESCRIPTION: dict[str, Any] = {
    "added_on": "2023-09-20 16:47:15",
    "charge": 0.99,
    "country": {"country": "MEXICO", "iso_code": "MX", "type": "MOVIL"},
    "encoding": "gsm",
    "id": 199999,
    "job_id": 199999,
    "length": 12,
    "message": "Hello World!",
    "number": "8100001234",
    "segments": 1,
    "sender": "AWESOMEINC",
}
SUCCESS = {"status": True, "error": False, "description": DESCRIPTION}


def settings(**overrides: Any) -> ContactaProvider:
    raw = {"type": "contacta", "base_url": "https://api.example.com/", "username": "user", "password": "key"}
    provider: ContactaProvider = provider_settings("contacta", raw | overrides)
    return provider


def message(text: str = "Hello World!", destination: str = "528100001234", **fields: Any) -> Message:
    return make_message(text, destination, **({"source": "AWESOMEINC"} | fields))


# -- numbers -------------------------------------------------------------------------


NATIONAL = {"international": False}  # a national number of unknown country (no default_country)


@pytest.mark.parametrize(
    ("number", "number_format", "expected"),
    [
        (Number("528100001234"), "national", "8100001234"),  # +52 and 10 digits: the document's phone
        (Number("5218100001234"), "national", "8100001234"),  # the obsolete mobile 1
        (Number("8100001234", **NATIONAL), "national", "8100001234"),  # taken as Mexican: Contacta's home
        (Number("8100001234"), "national", None),  # +81: Japan, not Mexico
        (Number("4917012345678"), "national", None),  # another country
        (Number("52810000123"), "national", None),  # one digit short
        (Number("81000012345", **NATIONAL), "national", None),  # 11 national digits: no Mexican number
        (Number("528100001234"), "international", "528100001234"),
        (Number("5218100001234"), "international", "528100001234"),
        (Number("8100001234", **NATIONAL), "international", "528100001234"),
        (Number("4917012345678"), "international", "4917012345678"),  # SMS Global: any E.164
        (Number("0123456789012", **NATIONAL), "international", None),  # not Mexican, and no country code
    ],
)
def test_render_phone(number: Number, number_format: str, expected: str | None) -> None:
    assert render_phone(number, number_format) == expected


# -- text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unit", "refused"),
    [
        ("Hey", "septets", False),
        ("Hi", "septets", True),  # minLength 3
        ("x" * 160, "septets", False),
        ("x" * 161, "septets", True),
        ("x" * 159 + "€", "septets", True),  # € costs two septets: 161
        ("x" * 159 + "€", "characters", False),  # ... but it is 160 characters
        ("Привет", "septets", True),  # not GSM 03.38
        ("¡Hola señor! ¿Qué tal? àèìòù ÄÖÑÜ", "septets", False),  # all in GSM 03.38
    ],
)
def test_text_refusal(text: str, unit: str, refused: bool) -> None:
    result = text_refusal(text, unit)
    if refused:
        assert result is not None
        assert result.outcome is Outcome.REJECTED
        assert result.status is Status.ESME_RINVMSGLEN
    else:
        assert result is None


# -- sender and request --------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "allowed", "expected"),
    [
        ("AWESOMEINC", [], "DEFAULT"),  # nothing allowed: the configured sender
        ("AWESOMEINC", ["*"], "AWESOMEINC"),
        ("AWESOMEINC", ["OTHER"], "DEFAULT"),
        ("AWESOMEINC", ["AWESOMEINC"], "AWESOMEINC"),
        ("TOO LONG SENDER", ["*"], "DEFAULT"),  # not a sender ID
        ("12345", ["*"], "12345"),
        ("", ["*"], "DEFAULT"),
    ],
)
def test_choose_sender(source: str, allowed: list[str], expected: str) -> None:
    assert choose_sender(source, allowed, "DEFAULT") == expected


def test_post_request_is_json_with_the_documented_fields() -> None:
    request = build_request(settings(allowed_senders=["*"]), message())
    assert request == Request(
        "POST",
        "/v2/sms/send",
        {"msg": "Hello World!", "phone": "8100001234", "sender": "AWESOMEINC", "id": "4242"},
    )
    assert request.http_kwargs() == {"json": request.fields}


def test_get_request_uses_the_query_string_and_flash_its_own_path() -> None:
    request = build_request(settings(method="GET"), message(flash=True))
    assert isinstance(request, Request)
    assert (request.method, request.path) == ("GET", "/v2/flash/send")
    assert request.http_kwargs() == {"params": {"msg": "Hello World!", "phone": "8100001234", "id": "4242"}}


def test_request_takes_the_configured_sender_and_sms_global_numbers() -> None:
    request = build_request(settings(sender="BRIDGE", number_format="international"), message())
    assert isinstance(request, Request)
    assert request.fields == {"msg": "Hello World!", "phone": "528100001234", "sender": "BRIDGE", "id": "4242"}


def test_request_refused_before_any_call() -> None:
    bad_number = build_request(settings(), message(destination="4917012345678"))
    assert not isinstance(bad_number, Request)
    assert (bad_number.outcome, bad_number.status) == (Outcome.REJECTED, Status.ESME_RINVDSTADR)
    too_long = build_request(settings(), message(text="x" * 161))
    assert not isinstance(too_long, Request)
    assert too_long.status is Status.ESME_RINVMSGLEN


def test_basic_auth_header() -> None:
    assert basic_auth("user", "key") == "Basic dXNlcjprZXk="


# -- answers -------------------------------------------------------------------------


def test_success_gives_job_id_and_id_as_provider_ids() -> None:
    result, alert = parse_answer(answer(200, SUCCESS), "4242")
    assert (result.outcome, result.status, result.provider_ids, alert) == (
        Outcome.ACCEPTED,
        Status.ESME_ROK,
        ("199999",),
        False,
    )


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({"id": 199999, "job_id": "199999"}, ("199999",)),  # the schema's string job_id
        ({"id": 7, "job_id": 8}, ("8", "7")),
        ({"id": "abc"}, ("abc",)),
        ({}, ("4242",)),  # neither: our own reference, the `id` we sent
        ({"id": True, "job_id": None}, ("4242",)),
    ],
)
def test_success_ids_as_int_or_string(ids: dict[str, Any], expected: tuple[str, ...]) -> None:
    description = {k: v for k, v in DESCRIPTION.items() if k not in ("id", "job_id")} | ids
    result, _ = parse_answer(answer(200, {"status": True, "error": False, "description": description}), "4242")
    assert result.provider_ids == expected


def test_the_headings_typographic_apostrophe_reads_the_same() -> None:
    """The document's heading writes the apostrophe as U+2019, its example as an ASCII one."""
    text = "Your account don\u2019t have enabled for send multi messages"
    result, _ = parse_answer(answer(200, {"status": False, "error": True, "description": text}), "1")
    assert result.status is Status.ESME_RINVNUMDESTS
    assert error_rule(text) is not None


# Document 000, "Failed to append to the queue, no need to resend > Example".
QUEUE_FAILED = "Failed to append to the queue, no need to resend"
QUEUE_FAILED_EXAMPLE = {"status": False, "error": True, "description": QUEUE_FAILED}


@pytest.mark.parametrize("http_status", [500, 502, 503, 504])
def test_queue_error_with_a_5xx_is_unknown_never_resent_blindly(http_status: int) -> None:
    """ "No need to resend": Contacta may have queued the message after all. Other 5xx
    answers say it was not sent (failover, re-send); this one must not be re-sent
    blindly, so it is UNKNOWN (a possible duplicate if the outbox tries again)."""
    result, alerted = parse_answer(answer(http_status, QUEUE_FAILED_EXAMPLE), "1")
    assert (result.outcome, result.status, alerted) == (Outcome.UNKNOWN, Status.ESME_RSYSERR, False)
    assert result.provider_ids == () and QUEUE_FAILED not in result.reason
    other, _ = parse_answer(answer(http_status, {"status": False, "error": True, "description": "kaboom"}), "1")
    assert other.outcome is Outcome.NOT_SENT


# PROVIDERS.md 2.2, "Proposed command_status" (and "+ alert operator" for the key); the
# outcome (may another provider send it?) from docs/providers/contacta.md.
DOCUMENTED_ERROR_RULES = [
    ("Missing params, please verify or contact to support", Status.ESME_RSUBMITFAIL, Outcome.REJECTED, False),
    (
        "Your key auth is not valid, please check with your administrator to get the new key",
        Status.ESME_RSYSERR,
        Outcome.NOT_SENT,  # our credentials: another provider may send it
        True,
    ),
    (
        "Your account dont have credits availables for send this, please contact your administrator",
        Status.ESME_RSUBMITFAIL,
        Outcome.REJECTED,
        True,
    ),
    (
        "Country or carrier not reachable or assigned to your account, please contact an administrator or support",
        Status.ESME_RINVDSTADR,
        Outcome.REJECTED,
        False,
    ),
    # "no need to resend": 0x45, not re-sent, not failed over
    (QUEUE_FAILED, Status.ESME_RSUBMITFAIL, Outcome.REJECTED, False),
    (
        "Your account don't have enabled for send multi messages, please contact your administrator",
        Status.ESME_RINVNUMDESTS,
        Outcome.REJECTED,
        False,
    ),
]


@pytest.mark.parametrize(("text", "status", "outcome", "alert"), DOCUMENTED_ERROR_RULES)
@pytest.mark.parametrize("field", ["description", "message"])
@pytest.mark.parametrize("http_status", [200, 400, 401, 402, 500])
def test_error_table_row_by_row(
    text: str, status: Status, outcome: Outcome, alert: bool, field: str, http_status: int
) -> None:
    """Each documented error, whichever field carries the text and whatever the HTTP
    status below 500 (not documented): the documented text decides. A 5xx goes by its
    status (DESIGN.md: not sent), whatever the text, but for the queue error."""
    result, alerted = parse_answer(answer(http_status, {"status": False, "error": True, field: text}), "1")
    if http_status >= 500 and text == QUEUE_FAILED:
        status, outcome, alert = Status.ESME_RSYSERR, Outcome.UNKNOWN, False  # see below
    elif http_status >= 500:
        status, outcome, alert = Status.ESME_RSYSERR, Outcome.NOT_SENT, False
    assert (result.outcome, result.status, alerted) == (outcome, status, alert)
    assert result.provider_ids == ()
    assert text not in result.reason


@pytest.mark.parametrize(
    ("http_status", "body", "headers", "outcome", "status", "alert"),
    [
        (429, "", {"Retry-After": "7"}, Outcome.NOT_SENT, Status.ESME_RTHROTTLED, False),
        (503, "<html>down</html>", {}, Outcome.NOT_SENT, Status.ESME_RSYSERR, False),
        (500, {"status": False, "error": True, "description": "kaboom"}, {}, Outcome.NOT_SENT, Status.ESME_RSYSERR,
         False),
        (401, "Unauthorized", {}, Outcome.NOT_SENT, Status.ESME_RSYSERR, True),
        (403, "", {}, Outcome.NOT_SENT, Status.ESME_RSYSERR, True),
        (200, "not json", {}, Outcome.UNKNOWN, Status.ESME_RSYSERR, False),
        (200, {"status": "ok"}, {}, Outcome.UNKNOWN, Status.ESME_RSYSERR, False),
        (400, "bad", {}, Outcome.REJECTED, Status.ESME_RSUBMITFAIL, False),
        (200, {"status": False, "error": True, "description": "Something new"}, {}, Outcome.REJECTED,
         Status.ESME_RSUBMITFAIL, False),
    ],
)  # fmt: skip
def test_answers_without_a_documented_shape(
    http_status: int, body: Any, headers: dict[str, str], outcome: Outcome, status: Status, alert: bool
) -> None:
    result, alerted = parse_answer(answer(http_status, body, headers), "1")
    assert (result.outcome, result.status, alerted) == (outcome, status, alert)


def test_throttled_answer_honours_retry_after() -> None:
    result, _ = parse_answer(answer(429, "", {"Retry-After": "7"}), "1")
    assert result.retry_after == 7.0
    assert result.metric == "throttled"


# -- synthetic receipts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state"),
    [  # PROVIDERS.md 1: receipt stat text -> message_state
        ("UNKNOWN", MessageState.UNKNOWN),
        ("ACCEPTD", MessageState.ACCEPTED),
        ("DELIVRD", MessageState.DELIVERED),
    ],
)
async def test_receipt_states_row_by_row(name: str, state: MessageState) -> None:
    sink = Reports()
    provider = Contacta("contacta", settings(receipt_timeout=600, receipt_state=name), sink.context())
    due = message(created_at=0.0)
    due.provider_ids, due.due_at = ["p1"], 600.0
    assert provider.due_after(due) == 600
    assert await provider.on_due([due]) == [None]  # done: nothing more is due
    [report] = sink.items
    assert (report.provider_id, report.state, report.state.stat, report.error) == ("p1", state, name, 0)
    assert report.provider == "contacta" and report.detail.startswith("synthetic")


async def test_a_receipt_that_could_not_be_stored_is_due_again() -> None:
    async def store_away(report: Any) -> bool:
        raise StoreUnavailable("disk full")

    provider = Contacta("contacta", settings(receipt_timeout=600), Reports().context())
    provider.context.report = store_away
    due = message(created_at=0.0)
    due.provider_ids, due.due_at = ["p1"], 600.0
    [again] = await provider.on_due([due])
    assert again is not None and again > time.time()


async def test_a_message_from_before_due_times_waits_for_receipt_timeout_from_its_creation() -> None:
    """An upgrade makes every waiting message due at once (UPGRADE_DUE): one taken
    less than receipt_timeout ago gets its receipt at creation + receipt_timeout."""
    sink = Reports()
    provider = Contacta("contacta", settings(receipt_timeout=600, receipt_state="DELIVRD"), sink.context())
    young, old = message(created_at=time.time() - 100), message(created_at=time.time() - 700)
    for m, pid in ((young, "young"), (old, "old")):
        m.provider_ids, m.due_at = [pid], UPGRADE_DUE
    later, done = await provider.on_due([young, old])
    assert later == young.created_at + 600 and done is None
    assert [r.provider_id for r in sink.items] == ["old"]


async def test_no_receipts_when_receipt_timeout_is_zero() -> None:
    sink = Reports()
    provider = Contacta("contacta", settings(receipt_timeout=0), sink.context())
    stale = message(created_at=0.0)
    stale.provider_ids = ["x"]
    assert provider.due_after(stale) is None
    assert await provider.on_due([stale]) == [None]
    assert sink.items == []


# -- settings ------------------------------------------------------------------------


def test_settings_defaults_and_validation() -> None:
    s = settings()
    assert (s.base_url, s.method, s.number_format, s.receipt_timeout, s.receipt_state) == (
        "https://api.example.com",
        "POST",
        "national",
        600,
        "UNKNOWN",
    )
    assert s.allowed_senders == [] and s.length_unit == "septets"
    with pytest.raises(ConfigError) as error:
        settings(base_url="api.example.com", method="PUT", receipt_timeout=-1)
    problems = "\n".join(error.value.problems)
    assert "providers.contacta.base_url" in problems
    assert "providers.contacta.method" in problems
    assert "providers.contacta.receipt_timeout" in problems


# -- the double, as Contacta validates ------------------------------------------------


def call(url: str, body: dict[str, Any] | None = None, auth: tuple[str, str] = ("contacta", "contacta-key")) -> Any:
    """(HTTP status, JSON body) of one request to the double: POST JSON, or GET without a body."""
    headers = {"Authorization": basic_auth(*auth), "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_double_checks_like_contacta() -> None:
    with AppThread(make_app(credits=1.5, job_id_type="str")) as sim:
        send = sim.url + "/v2/sms/send"
        ok = {"msg": "Hello World!", "phone": "8100001234", "sender": "AWESOMEINC", "id": "ref-1"}
        status, body = call(send, ok)
        assert status == 200
        assert body["status"] is True and body["error"] is False
        assert set(body["description"]) == set(DESCRIPTION)
        assert body["description"]["job_id"] == str(body["description"]["id"])
        assert (body["description"]["number"], body["description"]["sender"]) == ("8100001234", "AWESOMEINC")
        expectations = [
            (ok, ("contacta", "wrong"), 401, "Your key auth is not valid"),
            ({"phone": "8100001234"}, None, 400, "Missing params"),
            (ok | {"phone": "+528100001234"}, None, 400, "Missing params"),  # not ^\d{10}$
            (ok | {"msg": "Hi"}, None, 400, "Missing params"),  # minLength 3
            (ok | {"msg": "x" * 161}, None, 400, "Missing params"),  # max 160 characters
            (ok | {"msg": "Привет мир"}, None, 400, "Missing params"),  # "GSM-encoded message"
            (ok | {"phone": "81000012345"}, None, 400, "Missing params"),  # 11 digits
            (ok | {"phone": "8100001234,8100001235"}, None, 403, "Your account don't have enabled for send multi"),
            (ok, None, 402, "Your account dont have credits availables"),  # 1.5 credits: one SMS only
        ]
        for request_body, auth, http_status, text in expectations:
            status, body = call(send, request_body, auth or ("contacta", "contacta-key"))
            assert (status, body["status"], body["error"]) == (http_status, False, True)
            assert body["description"].startswith(text)
        form = urllib.request.Request(
            send,
            data=b"msg=Hello&phone=8100001234",
            headers={"Authorization": basic_auth("contacta", "contacta-key"), "Content-Type": "text/plain"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:  # POST takes a JSON body only
            urllib.request.urlopen(form, timeout=5)
        assert json.loads(refused.value.read())["description"].startswith("Missing params")
        status, body = call(sim.url + "/v2/flash/send?msg=Hello+World%21&phone=8100001234&id=x")
        assert status == 402  # GET works alike (and the credits are still gone)
        assert sim.app["received"][-1]["query"] == {"msg": "Hello World!", "phone": "8100001234", "id": "x"}
        assert [s["flash"] for s in sim.app["sent"]] == [False]
