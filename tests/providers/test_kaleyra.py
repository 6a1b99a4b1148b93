"""Kaleyra connector, piece by piece: request builder, answer parser and report mapping
(each table walked row by row), number rendering, the callback handler and the poller
over real HTTP on 127.0.0.1 against the Kaleyra simulator."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from bridge.config import ConfigError
from bridge.config import KaleyraProvider as KaleyraSettings
from bridge.core.message import Message
from bridge.core.numbers import Number
from bridge.core.ports import CallbackRequest, Outcome
from bridge.providers.kaleyra import (
    Kaleyra,
    form_fields,
    map_report,
    normalise_status,
    parse_send_answer,
    parse_timestamp,
    render_number,
)
from bridge.simulators import build_simulator
from bridge.smpp.constants import MessageState, Status
from tests.support.due import DueRig
from tests.support.providers import Reports, answer, make_message, provider_settings

SID = "HXAP16XXXXXX97IN"
KEY = "kaleyra-test-key"
TOKEN = "cb-token-0123456789"
PUBLIC_URL = "http://127.0.0.1:9"  # the discard port: simulator callbacks in these tests go nowhere
CALLBACK_URL = f"{PUBLIC_URL}/callbacks/kaleyra/{TOKEN}"
PROFILE = "IN_09b3"


# -- helpers ------------------------------------------------------------------------------


def kaleyra_settings(**overrides: Any) -> KaleyraSettings:
    """Valid settings (/sms, a callback profile, no polling), changed by `overrides`; an
    override of None leaves the key out."""
    values: dict[str, Any] = {
        "type": "kaleyra",
        "base_url": "http://127.0.0.1:9",
        "sid": SID,
        "api_key": KEY,
        "sender": "KLRHXA",
        "sms_type": "TXN",
        "callback_token": TOKEN,
        "callback_profile_id": PROFILE,
        "poll_interval": 0,
    }
    values |= overrides
    settings: KaleyraSettings = provider_settings("kaleyra", {k: v for k, v in values.items() if v is not None})
    return settings


def connector(reports: Reports | None = None, **overrides: Any) -> Kaleyra:
    return Kaleyra("kaleyra", kaleyra_settings(**overrides), (reports or Reports()).context(PUBLIC_URL))


# -- numbers and text ----------------------------------------------------------------------

NUMBERS = [
    (Number("919876543210"), "+919876543210"),  # the document's +91XXXXXXXXXX
    (Number("14155550100"), "+14155550100"),
    (Number("233201234567"), "+233201234567"),
    (Number("4917012345"), "+4917012345"),
    (Number("09876543210", international=False), None),  # national, country unknown: no country code to give
    (Number("9876543210", international=False), None),
]


@pytest.mark.parametrize(("number", "rendered"), NUMBERS)
def test_render_number(number: Number, rendered: str | None) -> None:
    assert render_number(number) == rendered


def test_numbers_kaleyra_cannot_take_are_rejected_before_any_request() -> None:
    result = connector().check(make_message(to="9876543210", ton=2))
    assert result is not None
    assert (result.outcome, result.status) == (Outcome.REJECTED, Status.ESME_RINVDSTADR)


def test_max_parts_refuses_long_text_before_sending() -> None:
    kaleyra = connector(max_parts=2)
    assert kaleyra.check(make_message(text="a" * 306)) is None
    result = kaleyra.check(make_message(text="a" * 307))
    assert result is not None and result.status is Status.ESME_RINVMSGLEN
    assert connector().check(make_message(text="a" * 5000)) is None  # 0 = the account's own limit decides


# -- the request ---------------------------------------------------------------------------


def test_request_fields_for_a_gsm_message() -> None:
    """/sms takes ref_custom (a list) and callback_profile_id (PROVIDERS.md 3.1)."""
    fields = connector().build_request(make_message(text="Hello [world]", message_id=987))
    assert fields == {
        "to": "+919876543210",
        "sender": "KLRHXA",
        "type": "TXN",
        "body": "Hello [world]",
        "ref_custom": ["987"],
        "callback_profile_id": "IN_09b3",
    }


def test_unicode_and_flash_flags_are_json_integers() -> None:
    fields = connector().build_request(make_message(text="Привет", flash=True))
    assert (fields["unicode"], fields["flash"]) == (1, 1)
    plain = connector().build_request(make_message(text="Hi €"))
    assert "unicode" not in plain and "flash" not in plain


def test_the_form_body_flattens_the_same_parameters() -> None:
    kaleyra = connector(endpoint="messages", callback_profile_id="", body_format="form")
    fields = form_fields(kaleyra.build_request(make_message(text="ж", flash=True, message_id=5)))
    assert fields == {
        "to": "+919876543210",
        "sender": "KLRHXA",
        "type": "TXN",
        "body": "ж",
        "flash": "1",
        "unicode": "1",
        "ref": "5",
        "callback": '{"url":"http://127.0.0.1:9/callbacks/kaleyra/cb-token-0123456789","method":"POST"}',
    }
    assert form_fields({"ref_custom": ["5", "6"]}) == {"ref_custom": "5,6"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, {"callback_profile_id": "IN_09b3"}),
        ({"callback_profile_id": "", "poll_interval": 60}, {}),
        ({"endpoint": "messages", "callback_profile_id": ""}, {"callback": {"url": CALLBACK_URL, "method": "POST"}}),
        (
            {"endpoint": "messages", "callback_profile_id": "", "callback_method": "GET"},
            {"callback": {"url": CALLBACK_URL, "method": "GET"}},
        ),
        ({"endpoint": "messages", "callback_mode": "profile"}, {"callback_profile_id": "IN_09b3"}),
    ],
)
def test_callback_parameters_per_endpoint(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    fields = connector(**overrides).build_request(make_message())
    assert {k: v for k, v in fields.items() if k.startswith("callback")} == expected


def test_without_callbacks_there_is_no_callback_route() -> None:
    assert connector(callback_profile_id="", poll_interval=60).callback_token() is None
    assert connector().callback_token() == TOKEN


@pytest.mark.parametrize(
    ("overrides", "poll_interval"),
    [
        ({"callback_profile_id": ""}, 30.0),  # no callback will come: poll soon
        ({}, 300.0),  # a profile calls back; polling is the fallback
        ({"endpoint": "messages", "callback_profile_id": ""}, 300.0),
        ({"callback_profile_id": "", "poll_interval": 120}, 120.0),
    ],
)
def test_poll_interval_default_depends_on_callbacks(overrides: dict[str, Any], poll_interval: float) -> None:
    assert kaleyra_settings(**({"poll_interval": None} | overrides)).poll_interval == poll_interval


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"callback_mode": "profile", "callback_profile_id": ""}, "callback_profile_id"),
        ({"callback_mode": "object"}, "callback_mode: the inline callback object is a /messages parameter"),
        ({"callback_mode": "url"}, "callback_mode"),
        ({"reference_field": "ref"}, "reference_field: 'ref' is not a parameter of /sms"),
        ({"endpoint": "messages", "reference_field": "ref_custom"}, "reference_field: 'ref_custom'"),
        ({"callback_profile_id": "", "poll_interval": 0}, "poll_interval: without callbacks"),
        ({"callback_token": None}, "callback_token: needed"),
        ({"sms_type": "TNX"}, "misspells"),
        ({"sms_type": "DEFAULT", "base_url": "https://api.in.kaleyra.io"}, "sms_type: 'DEFAULT' is not a route type"),
        ({"sms_type": "MKT", "base_url": "https://api.eu.kaleyra.io"}, "sms_type: 'MKT' is not a route type"),
        ({"sms_type": "TXN", "base_url": "https://api.na.kaleyra.ai"}, "sms_type: 'TXN'"),
        ({"sms_type": "PROMO"}, "sms_type: 'PROMO'"),
        ({"sms_type": None}, "sms_type"),
    ],
)
def test_combinations_the_document_does_not_allow_are_refused_at_load(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        kaleyra_settings(**overrides)


@pytest.mark.parametrize(
    ("base_url", "sms_type"),
    [
        ("https://api.in.kaleyra.io", "TXN"),
        ("https://api.in.kaleyra.io", "txnd"),
        ("https://api.ap.kaleyra.io", "DEFAULT"),
        ("https://api.eu.kaleyra.io/", "OTP"),
        ("https://api.na.kaleyra.ai", "DEFAULT"),
        ("http://127.0.0.1:8099", "DEFAULT"),  # not a known pod: any documented type
    ],
)
def test_route_types_of_each_pod(base_url: str, sms_type: str) -> None:
    assert kaleyra_settings(base_url=base_url, sms_type=sms_type).sms_type == sms_type.upper()


@pytest.mark.parametrize(
    ("overrides", "reference"),
    [({}, {"ref_custom": ["77"]}), ({"endpoint": "messages"}, {"ref": "77"}), ({"reference_field": "none"}, {})],
)
def test_reference_field_per_endpoint(overrides: dict[str, Any], reference: dict[str, Any]) -> None:
    fields = connector(**overrides).build_request(make_message(message_id=77))
    assert {k: v for k, v in fields.items() if k.startswith("ref")} == reference


@pytest.mark.parametrize(
    ("allowed", "source", "sender"),
    [
        ([], "MYBRAND", "KLRHXA"),
        (["MYBRAND"], "MYBRAND", "MYBRAND"),
        (["OTHER"], "MYBRAND", "KLRHXA"),
        (["*"], "ANY", "ANY"),
        (["*"], "", "KLRHXA"),
    ],
)
def test_sender_is_source_addr_only_when_allowed(allowed: list[str], source: str, sender: str) -> None:
    fields = connector(allowed_senders=allowed).build_request(make_message(source=source))
    assert fields["sender"] == sender


def test_sms_type_and_endpoint_come_from_the_settings() -> None:
    kaleyra = connector(sms_type="OTP", endpoint="messages", base_url="https://api.in.kaleyra.io/")
    assert kaleyra.build_request(make_message())["type"] == "OTP"
    assert kaleyra.max_batch == 1  # E404: OTP takes exactly one number
    assert connector().max_batch == 100  # document 001: not more than 100 numbers in a single API call
    assert kaleyra.send_url == f"https://api.in.kaleyra.io/v1/{SID}/messages"
    assert kaleyra.status_url == f"https://api.in.kaleyra.io/v1/{SID}/messages/status"


# -- the answer ----------------------------------------------------------------------------

SUCCESS = {
    "id": "648a2c1e-0000-4000-80c5-3c2a8cb391aa",
    "sender": "KLRHXA",
    "type": "MKT",
    "flash": 1,
    "body": "Hello",
    "createdDateTime": "2019-11-04 10:42:23+00:00",
    "totalCount": 1,
    "data": [{"message_id": "648a2c1e-0000-4000-80c5-3c2a8cb391aa:1", "recipient": "919876543210"}],
    "dlrurl": None,
    "error": {},
}


@pytest.mark.parametrize("status", [200, 201, 202])
def test_success_gives_the_per_recipient_ids(status: int) -> None:
    result = parse_send_answer(answer(status, SUCCESS))
    assert result.outcome is Outcome.ACCEPTED
    assert result.provider_ids == ("648a2c1e-0000-4000-80c5-3c2a8cb391aa:1",)


@pytest.mark.parametrize("code", ["E100", "E101", "E620", "E626"])  # PROVIDERS.md 3.2: success/accepted/validated
def test_success_codes_next_to_data_are_success(code: str) -> None:
    assert parse_send_answer(answer(200, {**SUCCESS, "code": code})).outcome is Outcome.ACCEPTED


# PROVIDERS.md 3.2, "Proposed status" column; the outcome (may another provider or a
# later attempt send it?) from docs/providers/kaleyra.md's "failover / outbox retry?".
SYSERR, NOT_SENT, REJECTED = Status.ESME_RSYSERR, Outcome.NOT_SENT, Outcome.REJECTED
DOCUMENTED_ERRORS: list[tuple[str, Status, Outcome]] = [
    ("E102", SYSERR, NOT_SENT),  # no queue medium
    ("E103", SYSERR, NOT_SENT),  # internal error
    ("E403", Status.ESME_RX_T_APPN, NOT_SENT),  # "try again later": 0x64
    ("E400", Status.ESME_RSUBMITFAIL, REJECTED),  # bulk needs type MKT: 0x45
    ("E401", Status.ESME_RINVMSGLEN, REJECTED),  # length exceeds max: 0x01
    ("E402", Status.ESME_RINVSCHED, REJECTED),  # schedule window: 0x61
    ("E404", Status.ESME_RINVNUMDESTS, REJECTED),  # OTP 1 number: 0x33
    ("E405", Status.ESME_RINVNUMDESTS, REJECTED),  # TXN <= 100: 0x33
    ("E406", Status.ESME_RINVDSTADR, REJECTED),  # no valid mobile numbers: 0x0B
    ("E407", SYSERR, REJECTED),  # JSON-API node errors: 0x08 (bridge bug)
    ("E408", SYSERR, REJECTED),
    ("E409", SYSERR, REJECTED),
    ("E410", Status.ESME_RINVDSTADR, REJECTED),  # `to` missing/commas: 0x0B
    ("E411", Status.ESME_RINVDSTADR, REJECTED),
    ("E412", SYSERR, REJECTED),
    ("E600", Status.ESME_RINVDSTADR, REJECTED),
    ("E601", Status.ESME_RINVMSGLEN, REJECTED),  # body empty: 0x01
    ("E618", Status.ESME_RINVMSGLEN, REJECTED),
    ("E602", Status.ESME_RINVSRCADR, REJECTED),  # sender missing/invalid: 0x0A
    ("E616", Status.ESME_RINVSRCADR, REJECTED),
    ("E619", Status.ESME_RINVSRCADR, REJECTED),
    ("E621", Status.ESME_RINVSRCADR, REJECTED),
    ("E622", Status.ESME_RINVSRCADR, REJECTED),
    *[(f"E{n}", SYSERR, REJECTED) for n in (*range(603, 616), 617)],  # E603-E615, E617: bad params, 0x08
    ("E623", Status.ESME_RSUBMITFAIL, REJECTED),  # TXN/DEFAULT/MKT route not enabled: 0x45
    ("E624", Status.ESME_RSUBMITFAIL, REJECTED),
    ("E625", Status.ESME_RSUBMITFAIL, REJECTED),
]


@pytest.mark.parametrize(("code", "status", "outcome"), DOCUMENTED_ERRORS)
def test_every_error_code_maps_to_its_status(code: str, status: Status, outcome: Outcome) -> None:
    result = parse_send_answer(answer(400, {"code": code, "message": "text", "error": {"x": "text"}}))
    assert (result.status, result.outcome) == (status, outcome)
    assert result.reason == code


@pytest.mark.parametrize(
    ("field", "status"),  # PROVIDERS.md 3.2, E413: by `error` key
    [
        ("to", Status.ESME_RINVDSTADR),
        ("sender", Status.ESME_RINVSRCADR),
        ("body", Status.ESME_RINVMSGLEN),
        ("time", Status.ESME_RINVSCHED),
        ("type", Status.ESME_RSUBMITFAIL),  # "else 0x45"
    ],
)
def test_e413_maps_by_the_offending_field(field: str, status: Status) -> None:
    result = parse_send_answer(answer(400, {"code": "E413", "message": "Validation error", "error": {field: "bad"}}))
    assert (result.status, result.outcome) == (status, Outcome.REJECTED)


def test_the_documented_e405_example() -> None:
    text = "If Type is TXN then mobile numbers should not be more than 100."
    result = parse_send_answer(answer(400, {"code": "E405", "message": text, "error": {"time": text}}))
    assert (result.status, result.outcome) == (Status.ESME_RINVNUMDESTS, Outcome.REJECTED)


@pytest.mark.parametrize(
    ("http", "body", "status", "outcome"),
    [
        (401, {"message": "Unauthorized"}, Status.ESME_RSYSERR, Outcome.NOT_SENT),
        (403, "", Status.ESME_RSYSERR, Outcome.NOT_SENT),
        (404, "<html>", Status.ESME_RSYSERR, Outcome.NOT_SENT),
        (429, "", Status.ESME_RTHROTTLED, Outcome.NOT_SENT),
        (500, {"code": "E103"}, Status.ESME_RSYSERR, Outcome.NOT_SENT),
        (503, "", Status.ESME_RSYSERR, Outcome.NOT_SENT),
        (400, {"code": "E999", "message": "new"}, Status.ESME_RSUBMITFAIL, Outcome.REJECTED),
        (422, "not json", Status.ESME_RSUBMITFAIL, Outcome.REJECTED),
        (202, {"id": "x", "data": []}, Status.ESME_RSYSERR, Outcome.UNKNOWN),
    ],
)
def test_http_level_answers(http: int, body: Any, status: Status, outcome: Outcome) -> None:
    result = parse_send_answer(answer(http, body))
    assert (result.status, result.outcome) == (status, outcome)


def test_429_honours_retry_after() -> None:
    result = parse_send_answer(answer(429, {}, {"Retry-After": "12"}))
    assert result.retry_after == 12.0 and result.metric == "throttled"


def test_reasons_never_carry_the_provider_text() -> None:
    text = "Invalid number +919876543210"
    result = parse_send_answer(answer(400, {"code": "E406", "message": text, "error": {"to": text}}))
    assert "9876543210" not in result.reason


# -- reports -------------------------------------------------------------------------------


NO_TRACE = 1  # err of a failure without a known trace (docs/providers/kaleyra.md: "none or another: 001")


@pytest.mark.parametrize(
    ("word", "state", "error"),
    [  # PROVIDERS.md 3.3, "Mapping" (the words as Kaleyra writes them, callbacks and polling)
        ("Delivered", MessageState.DELIVERED, 0),
        ("DELIVRD", MessageState.DELIVERED, 0),
        ("DELIVERED", MessageState.DELIVERED, 0),
        ("Sent", MessageState.ENROUTE, 0),  # intermediate only
        ("SENT", MessageState.ENROUTE, 0),
        ("SUBMITTED", MessageState.ENROUTE, 0),
        ("ENROUTE", MessageState.ENROUTE, 0),
        ("SENT - NO DLR", MessageState.UNKNOWN, NO_TRACE),
        ("NotSent", MessageState.REJECTED, NO_TRACE),
        ("NOT-SENT", MessageState.REJECTED, NO_TRACE),
        ("Not Sent", MessageState.REJECTED, NO_TRACE),  # docs/providers/kaleyra.md
        ("UnDelivered", MessageState.UNDELIVERABLE, NO_TRACE),
        ("UNDELIVERED", MessageState.UNDELIVERABLE, NO_TRACE),
        ("Undelivered", MessageState.UNDELIVERABLE, NO_TRACE),
        ("Failed", MessageState.UNDELIVERABLE, NO_TRACE),
        ("UNDELIV", MessageState.UNDELIVERABLE, NO_TRACE),
        ("FAILED", MessageState.UNDELIVERABLE, NO_TRACE),
        ("EXPIRED", MessageState.EXPIRED, NO_TRACE),
        ("Rejected", MessageState.REJECTED, NO_TRACE),  # docs/providers/kaleyra.md
        ("REJECTD", MessageState.REJECTED, NO_TRACE),
    ],
)
def test_every_status_word_maps(word: str, state: MessageState, error: int) -> None:
    assert map_report(word) == (state, error)


# PROVIDERS.md 3.3 lists the traces under their status (NOT-SENT: never handed on, so
# REJECTD whatever the word; UNDELIVERED); trace EXPIRED -> EXPIRED, REJECTED -> REJECTD.
# The err codes are the bridge's, published in docs/providers/kaleyra.md.
NOT_SENT_TRACES = [
    ("NOT-ALLOWED", 101),
    ("NO-CREDITS", 102),
    ("SERIES-BLOCK", 103),
    ("KLR-INV-NUMBER", 104),
    ("SPAM", 105),
    ("BLACKLIST", 106),
    ("CON-DND", 107),
    ("INV-MOB-PATTRN", 108),
    ("TEMPLATE-NOT-FOUND", 109),
    ("INV-TEMPLATE-MATCH", 110),
    ("SENDER-ID-NOT-FOUND", 111),
    ("NOT-OPTIN", 112),
    ("OUTPUT-REJ", 113),
    ("OPT-OUT", 114),
    ("REJECTED-MULTIPART", 115),
    ("DND-NUMB", 116),
]
UNDELIVERED_TRACES = [
    ("INV-NUMBER", 201, None),
    ("SERVER-ERR", 202, None),
    ("SNDRID-NOT-ALLOTED", 203, None),
    ("INVALID-SUB", 204, None),
    ("ABSENT-SUB", 205, None),
    ("HANDSET-ERR", 206, None),
    ("BARRED", 207, None),
    ("NET-ERR", 208, None),
    ("MEM-EXEC", 209, None),
    ("FAILED", 210, None),
    ("MOB-OFF", 211, None),
    ("HANDSET-BUSY", 212, None),
    ("SERIES-BLK", 213, None),
    ("EXPIRED", 214, MessageState.EXPIRED),
    ("REJECTED", 215, MessageState.REJECTED),
]


@pytest.mark.parametrize(("trace", "error"), NOT_SENT_TRACES)
def test_not_sent_traces_are_rejected_whatever_the_word(trace: str, error: int) -> None:
    for word in ("Undelivered", "Failed", "NotSent"):
        assert map_report(word, trace) == (MessageState.REJECTED, error)
    assert map_report("Failed", trace.lower()) == (MessageState.REJECTED, error)
    assert map_report("Delivered", trace) == (MessageState.DELIVERED, 0)  # a trace never spoils a delivery
    assert map_report("Sent", trace) == (MessageState.ENROUTE, 0)


@pytest.mark.parametrize(("trace", "error", "state"), UNDELIVERED_TRACES)
def test_undelivered_traces_give_their_error_code(trace: str, error: int, state: MessageState | None) -> None:
    assert map_report("Undelivered", trace) == (state or MessageState.UNDELIVERABLE, error)
    assert map_report("Failed", trace.lower()) == (state or MessageState.UNDELIVERABLE, error)
    assert map_report("NotSent", trace) == (state or MessageState.REJECTED, error)
    assert map_report("Delivered", trace) == (MessageState.DELIVERED, 0)
    assert map_report("Sent", trace) == (MessageState.ENROUTE, 0)


@pytest.mark.parametrize(
    ("word", "normalised"),
    [
        ("UnDelivered", "UNDELIVERED"),
        ("not_sent", "NOT-SENT"),
        (" Sent  - No DLR ", "SENT - NO DLR"),
        ("Not Sent", "NOT SENT"),
    ],
)
def test_status_words_are_normalised(word: str, normalised: str) -> None:
    assert normalise_status(word) == normalised
    assert map_report(word) is not None


def test_unknown_status_words_map_to_nothing() -> None:
    assert map_report("Queued somewhere") is None


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        ("2024-07-13T12:58:00+04:30", 1720859280.0),
        ("2019-11-04 10:42:23+00:00", 1572864143.0),
        ("2019-11-04T10:42:23Z", 1572864143.0),
        ("1572864143", 1572864143.0),
        ("1572864143000", 1572864143.0),
        ("2019-11-04 10:42:23", None),  # no zone: the arrival time is used instead
        ("garbage", None),
    ],
)
def test_callback_timestamps(value: str, epoch: float | None) -> None:
    assert parse_timestamp(value) == epoch


# -- callbacks, as the HTTP intake hands them over (hand-written bodies) -----------------------

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def callbacks() -> AsyncIterator[tuple[Kaleyra, Reports]]:
    reports = Reports()
    kaleyra = Kaleyra(
        "kaleyra", kaleyra_settings(callback_fields={"id": ["dlr_ref"]}), reports.context("http://127.0.0.1:1")
    )
    await kaleyra.start()
    yield kaleyra, reports
    await kaleyra.close()


def callback(method: str = "POST", query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
             body: bytes = b"") -> CallbackRequest:  # fmt: skip
    return CallbackRequest(method, f"/callbacks/kaleyra/{TOKEN}", query or {}, headers or {}, body, "127.0.0.1")


async def test_callback_by_get_query(callbacks: tuple[Kaleyra, Reports]) -> None:
    kaleyra, reports = callbacks
    query = {"id": "abc:1", "status": "Undelivered", "status_trace": "ABSENT-SUB", "recipient": "919876543210"}
    answer = await kaleyra.handle_callback(callback("GET", query))
    assert (answer.status, answer.body) == (200, "OK")
    [report] = reports.items
    assert (report.provider, report.provider_id, report.state, report.error) == (
        "kaleyra",
        "abc:1",
        MessageState.UNDELIVERABLE,
        205,
    )
    assert report.detail == "Undelivered"


async def test_callback_by_post_json_and_form(callbacks: tuple[Kaleyra, Reports]) -> None:
    kaleyra, reports = callbacks
    requests = [
        callback(
            headers=JSON, body=b'{"message_id":"j:1","status":"Delivered","timestamp":"2024-07-13T12:58:00+04:30"}'
        ),
        callback(headers=FORM, body=b"id=f%3A1&status=EXPIRED"),
        callback(headers={"content-type": "application/json; charset=utf-8"},
                 body=b'[{"id":"l:1","status":"Sent"},{"id":"l:2","status":"Failed"}]'),
        callback("PUT", headers=FORM, body=b"dlr_ref=custom%3A1&status=Delivered"),
        callback(  # multipart/form-data (RFC 7578), as a form post may come
            headers={"content-type": "multipart/form-data; boundary=XyZ"},
            body=b'--XyZ\r\nContent-Disposition: form-data; name="id"\r\n\r\nm:1\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="status"\r\n\r\nDelivered\r\n--XyZ--\r\n',
        ),
    ]  # fmt: skip
    for request in requests:
        assert (await kaleyra.handle_callback(request)).status == 200
    by_id = {r.provider_id: r for r in reports.items}
    assert by_id["j:1"].state is MessageState.DELIVERED and by_id["j:1"].at == 1720859280.0
    assert by_id["f:1"].state is MessageState.EXPIRED
    assert by_id["l:1"].state is MessageState.ENROUTE
    assert (by_id["l:2"].state, by_id["l:2"].error) == (MessageState.UNDELIVERABLE, NO_TRACE)
    assert by_id["custom:1"].state is MessageState.DELIVERED  # a name added in callback_fields
    assert by_id["m:1"].state is MessageState.DELIVERED


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (callback(query={"status": "Delivered"}), 400),  # no id
        (callback(query={"id": "x:1"}), 400),  # no status
        (callback(headers=JSON, body=b"{not json"), 400),
        (callback(headers=JSON, body=b"[1, 2]"), 400),
        (callback(headers={"content-type": "application/json; charset=nope"}, body=b"{}"), 400),
        (callback(query={"id": "x:1", "status": "Teleported"}), 200),  # unknown word: ignored, not retried forever
    ],
)
async def test_bad_callbacks_change_nothing(
    callbacks: tuple[Kaleyra, Reports], request_: CallbackRequest, status: int
) -> None:
    kaleyra, reports = callbacks
    assert (await kaleyra.handle_callback(request_)).status == status
    assert reports.items == []


async def test_a_callback_for_an_unknown_id_is_answered_200(callbacks: tuple[Kaleyra, Reports]) -> None:
    kaleyra, reports = callbacks
    reports.known = False
    assert (await kaleyra.handle_callback(callback("GET", {"id": "nope:1", "status": "Delivered"}))).status == 200
    assert len(reports.items) == 1  # not ours, not one we just sent: not retried


# -- send and poll against the simulator over real HTTP ---------------------------------------


@pytest.fixture
async def simulator(serve_here: Callable[[web.Application], Awaitable[str]]) -> tuple[web.Application, str]:
    profiles = {PROFILE: {"url": CALLBACK_URL, "method": "POST"}}  # the discard port: callbacks go nowhere
    app = build_simulator("kaleyra", sid=SID, api_key=KEY, sent_delay=0.0, final_delay=0.05, profiles=profiles)
    return app, await serve_here(app)


async def test_send_then_poll_until_final(simulator: tuple[web.Application, str]) -> None:
    app, url = simulator
    reports = Reports()
    kaleyra = Kaleyra("kaleyra", kaleyra_settings(base_url=url, poll_interval=0.05), reports.context())
    await kaleyra.start()
    try:
        async with DueRig(kaleyra) as rig:
            result = await rig.send(make_message(to="999501234567"))  # this number never calls back
            final = (await reports.wait_final())[0]
        assert result.outcome is Outcome.ACCEPTED
        [provider_id] = result.provider_ids
        assert (final.provider_id, final.state, final.error) == (provider_id, MessageState.DELIVERED, 0)
        polls = [r for r in app["received"] if r["method"] == "GET"]
        assert polls[0]["path"] == f"/v1/{SID}/sms/status"
        assert polls[0]["query"] == {"message_ids": provider_id}
        assert polls[0]["headers"]["api-key"] == KEY
    finally:
        await kaleyra.close()


async def test_poll_batches_ids_in_one_request(simulator: tuple[web.Application, str]) -> None:
    app, url = simulator
    reports = Reports()
    kaleyra = Kaleyra("kaleyra", kaleyra_settings(base_url=url, poll_interval=3600), reports.context())
    await kaleyra.start()
    try:
        ids: list[str] = []
        messages: list[Message] = []
        for n in range(3):
            message = make_message(to=f"99950123456{n}", message_id=n + 1)
            result = await kaleyra.send(message)
            message.provider_ids = list(result.provider_ids)
            ids.extend(result.provider_ids)
            messages.append(message)
        await kaleyra.on_due(messages)
        polls = [r for r in app["received"] if r["method"] == "GET"]
        assert [p["query"]["message_ids"].split(",") for p in polls] == [ids]
    finally:
        await kaleyra.close()


async def test_a_still_sent_message_backs_off_from_its_stored_poll_count(
    simulator: tuple[web.Application, str],
) -> None:
    """The poll count comes with the message (from the store): after its third poll
    a message still Sent waits 2**3 poll_intervals, capped at poll_interval_max, and
    its Sent is reported once, not at every poll."""
    app, url = simulator
    reports = Reports()
    kaleyra = Kaleyra(
        "kaleyra", kaleyra_settings(base_url=url, poll_interval=30, poll_interval_max=300), reports.context()
    )
    await kaleyra.start()
    try:
        message = make_message(to="999601234567")  # stays Sent
        message.provider_ids = list((await kaleyra.send(message)).provider_ids)
        message.polls = 2
        [due] = await kaleyra.on_due([message])
        message.state = reports.items[-1].state  # the bridge applied the Sent
        message.polls = 3
        [capped] = await kaleyra.on_due([message])
    finally:
        await kaleyra.close()
    assert [r.state for r in reports.items] == [MessageState.ENROUTE]
    assert due is not None and due - reports.items[0].at == pytest.approx(240, abs=5)
    assert capped is not None and capped - reports.items[0].at == pytest.approx(300, abs=5)
    assert len([r for r in app["received"] if r["method"] == "GET"]) == 2


async def test_messages_without_a_final_state_give_up_after_max_age(simulator: tuple[web.Application, str]) -> None:
    _, url = simulator
    reports = Reports()
    kaleyra = Kaleyra(
        "kaleyra",
        kaleyra_settings(base_url=url, poll_interval=0.05, pending_max_age=0.3, pending_final_state="EXPIRED"),
        reports.context(),
    )
    await kaleyra.start()
    try:
        async with DueRig(kaleyra) as rig:
            result = await rig.send(make_message(to="999601234567"))  # stays Sent
            final = (await reports.wait_final())[0]
        assert (final.provider_id, final.state) == (result.provider_ids[0], MessageState.EXPIRED)
    finally:
        await kaleyra.close()


async def test_transport_failure_before_sending_is_not_sent() -> None:
    kaleyra = Kaleyra("kaleyra", kaleyra_settings(base_url="http://127.0.0.1:1"), Reports().context())
    await kaleyra.start()
    try:
        result = await kaleyra.send(make_message())
        assert (result.outcome, result.status) == (Outcome.NOT_SENT, Status.ESME_RSYSERR)
    finally:
        await kaleyra.close()
