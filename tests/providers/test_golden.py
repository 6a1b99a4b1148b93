"""Golden fixtures: the providers' own examples (tests/providers/fixtures/, copied
verbatim from the documents, sources.toml says where from) against the connectors.

- Each fixture is checked to be in its document, as it is.
- The connector's request, sent over real HTTP to the provider's strict double, is
  compared with the documented example request field by field.
- The documented response bytes go to the parsers unchanged; the expected results are
  written out here from the documents and PROVIDERS.md (section cited), not taken
  from the connectors' tables.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from aiohttp import web

from bridge.core.ports import Outcome
from bridge.providers import contacta, flashsms, kaleyra, skycore
from bridge.providers.contacta import Contacta
from bridge.providers.flashsms import FlashSms
from bridge.providers.http import HttpAnswer
from bridge.providers.kaleyra import Kaleyra
from bridge.providers.skycore import Skycore
from bridge.simulators import build_simulator
from bridge.smpp.constants import Status
from tests.support.providers import Reports, make_message, provider_settings

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES: dict[str, dict[str, str]] = tomllib.loads((FIXTURES / "sources.toml").read_text())
Serve = Callable[[web.Application], Awaitable[str]]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def provider_docs() -> Path | None:
    """shared/provider-docs beside the checkout (or one of its parents' checkouts)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "provider-docs"
        if candidate.is_dir():
            return candidate
    return None


def curl_json_body(text: str) -> dict[str, Any]:
    """The JSON object a curl example posts with -d '...'."""
    body: dict[str, Any] = json.loads(text[text.index("-d '") + 4 : text.rindex("}'") + 1])
    return body


def curl_headers(text: str) -> dict[str, str]:
    """-H "Name: value" (or 'Name:value') of a curl example, names lower-cased."""
    pairs = re.findall(r"-H [\"']([^:\"']+):\s*([^\"']*)[\"']", text)
    return {name.lower(): value for name, value in pairs}


def found(pattern: str, text: str) -> str:
    """The first group of `pattern` in a document's example, which must hold it."""
    match = re.search(pattern, text)
    assert match is not None, pattern
    return match.group(1)


def curl_form(text: str) -> dict[str, str]:
    """-d "name=value" fields of a curl example."""
    return dict(re.findall(r'-d "([^=]+)=([^"]*)"', text))


def answer(status: int, text: str) -> HttpAnswer:
    return HttpAnswer(status, {"Content-Type": "application/json"}, text)


async def started(provider: Any) -> Any:
    await provider.start()
    return provider


# -- the fixtures are the documents' own text -------------------------------------------


def test_every_fixture_file_is_listed_with_its_source() -> None:
    files = {p.name for p in FIXTURES.iterdir() if p.name != "sources.toml"}
    assert files == set(SOURCES)
    for name, source in SOURCES.items():
        assert source["document"][:3] == name[:3]
        assert source["section"] and source["kind"] in ("request", "response", "request template", "response template")


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_fixture_is_verbatim_from_its_document(name: str) -> None:
    docs = provider_docs()
    if docs is None:
        if os.environ.get("CI"):
            pytest.fail("shared/provider-docs not found beside the checkout")
        pytest.skip("shared/provider-docs not found beside the checkout")
    assert fixture(name) in (docs / SOURCES[name]["document"]).read_text()


@pytest.mark.parametrize("name", sorted(n for n, s in SOURCES.items() if s["kind"] == "response"))
def test_documented_responses_are_json(name: str) -> None:
    assert isinstance(json.loads(fixture(name)), dict)


# -- Contacta (document 000) ---------------------------------------------------------------


async def test_contacta_request_is_the_documented_get(serve_here: Serve) -> None:
    """Examples (curl): GET /v2/flash/send?msg=Hello+World%21&phone=8100001234&sender=AWESOMEINC&id=...
    with Accept: application/json and Basic auth."""
    example = fixture("000_request_curl.txt")
    documented = urlsplit(found(r'"(https://[^"]+)"', example))
    app = build_simulator("contacta")
    url = await serve_here(app)
    raw = {"type": "contacta", "base_url": url, "username": "contacta", "password": "contacta-key"}
    settings = provider_settings("contacta", raw | {"method": "GET", "allowed_senders": ["AWESOMEINC"]})
    connector = await started(Contacta("contacta", settings, Reports().context()))
    try:
        sent = await connector.send(make_message("Hello World!", "528100001234", source="AWESOMEINC", flash=True))
    finally:
        await connector.close()
    assert sent.outcome is Outcome.ACCEPTED
    [request] = app["received"]
    assert (request["method"], request["path"]) == ("GET", documented.path)
    documented_fields = dict(parse_qsl(documented.query))
    assert set(request["query"]) == set(documented_fields)
    for name, value in documented_fields.items():
        if name != "id":  # "External reference ID": ours is our message id
            assert request["query"][name] == value, name
            assert urlencode({name: request["query"][name]}) in documented.query  # "msg=Hello+World%21"
    headers = curl_headers(example)
    assert request["headers"]["Accept"] == headers["accept"] == "application/json"
    assert request["headers"]["Authorization"].startswith("Basic ")
    assert headers["authorization"].startswith("Basic ")


def test_contacta_documented_success_is_accepted_with_its_ids() -> None:
    """Responses > SMS sent successfully: `id` and `job_id` 199999 (PROVIDERS.md 2.2: store both)."""
    result, alert = contacta.parse_answer(answer(200, fixture("000_send_success.json")), "ref-1")
    assert (result.outcome, result.provider_ids, alert) == (Outcome.ACCEPTED, ("199999",), False)


@pytest.mark.parametrize(
    ("name", "status", "alert"),
    [  # PROVIDERS.md 2.2, "Proposed command_status" column
        ("000_error_missing_params.json", Status.ESME_RSUBMITFAIL, False),  # 0x45
        ("000_error_key_auth.json", Status.ESME_RSYSERR, True),  # 0x08 + alert operator
        ("000_error_credits.json", Status.ESME_RSUBMITFAIL, True),  # 0x45
        ("000_error_carrier.json", Status.ESME_RINVDSTADR, False),  # 0x0B
        ("000_error_queue.json", Status.ESME_RSUBMITFAIL, False),  # 0x45, do not auto-retry
        ("000_error_multi.json", Status.ESME_RINVNUMDESTS, False),  # 0x33
    ],
)
def test_contacta_documented_errors(name: str, status: Status, alert: bool) -> None:
    result, alerted = contacta.parse_answer(answer(200, fixture(name)), "ref-1")  # no HTTP status is documented
    assert (result.status, alerted) == (status, alert)
    assert result.outcome is not Outcome.ACCEPTED


# -- Kaleyra (document 001) ----------------------------------------------------------------


async def test_kaleyra_request_is_the_documented_sample(serve_here: Serve) -> None:
    """Sample Request Format: to=+91XXXXXXXXXX, sender=KLRHXA, type=MKT, body, flash=1;
    headers api-key and Content-Type: application/json. Reading chosen (docs/providers/
    kaleyra.md): the parameter table's "The only allowed value is application/json"
    decides, so the fields go as a JSON object, not as the sample's -d form fields."""
    example = fixture("001_sample_request.txt")
    documented = curl_form(example)
    sid = found(r"/v1/([^/]+)/sms", example)
    app = build_simulator("kaleyra", sid=sid, api_key="Axxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx3", senders=["KLRHXA"])
    url = await serve_here(app)
    raw = {"type": "kaleyra", "base_url": url, "sid": sid, "api_key": "Axxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx3"}
    settings = provider_settings("kaleyra", raw | {"sender": "KLRHXA", "sms_type": "MKT", "poll_interval": 3600})
    connector = await started(Kaleyra("kaleyra", settings, Reports().context()))
    try:
        text = "Hello, this is a test flash message."
        sent = await connector.send(make_message(text, "919876543210", flash=True))
    finally:
        await connector.close()
    assert sent.outcome is Outcome.ACCEPTED
    [request] = app["received"]
    assert request["path"] == f"/v1/{sid}/sms"
    headers = curl_headers(example)
    assert request["headers"]["api-key"] == headers["api-key"]
    assert request["headers"]["Content-Type"] == headers["content-type"] == "application/json"
    ours = request["json"]
    assert re.fullmatch(documented["to"].replace("+", r"\+").replace("X", r"\d"), ours["to"])
    for name in ("sender", "type", "body"):
        assert ours[name] == documented[name], name
    assert ours["flash"] == int(documented["flash"]) == 1  # "flash: Integer"
    assert set(ours) - set(documented) == {"ref_custom"}  # /sms's reference (PROVIDERS.md 3.1)


def test_kaleyra_documented_success_gives_the_per_recipient_id() -> None:
    body = fixture("001_success_response.json")
    result = kaleyra.parse_send_answer(answer(202, body))
    assert (result.outcome, result.provider_ids) == (Outcome.ACCEPTED, ("648xxx2c-xxxx-xxxx-80c5-3c2xxxb391:1",))
    assert kaleyra.recipient_ids(json.loads(body)) == {"1XXXXXXXXXX": "648xxx2c-xxxx-xxxx-80c5-3c2xxxb391:1"}


def test_kaleyra_documented_e405_is_too_many_destinations() -> None:
    """PROVIDERS.md 3.2: E404, E405 -> 0x33 ESME_RINVNUMDESTS."""
    result = kaleyra.parse_send_answer(answer(400, fixture("001_failure_e405.json")))
    assert (result.outcome, result.status) == (Outcome.REJECTED, Status.ESME_RINVNUMDESTS)


# -- FlashSMS (document 002) ---------------------------------------------------------------

GHANA_FORMS = "0201234567 +233201234567 233201234567"  # document 002: three ways to write one number


def ghana(number: str) -> str:
    """Document 002 writes one number as 0XXXXXXXXX, +233XXXXXXXXX or 233XXXXXXXXX."""
    digits = number.removeprefix("+")
    return "233" + digits[1:] if digits.startswith("0") else digits


async def test_flashsms_request_is_the_documented_send(serve_here: Serve) -> None:
    """Send SMS > Example Request: recipients, message, senderId, campaignName; Bearer key, JSON."""
    example = fixture("002_send_request.txt")
    documented = curl_json_body(example)
    key = "bms_live_your_api_key"
    app = build_simulator("flashsms", api_key=key)
    url = await serve_here(app)
    raw = {"type": "flashsms", "base_url": f"{url}/api/v1", "api_key": key, "sender": "MyBrand"}
    settings = provider_settings("flashsms", raw | {"campaign_name": "Welcome Campaign", "poll_interval": 3600})
    connector = await started(FlashSms("flashsms", settings, Reports().context()))
    try:
        messages = [
            make_message(documented["message"], ghana(n), message_id=i)
            for i, n in enumerate(["0201234567", "0241234567"])
        ]
        results = await connector.send_batch(messages)
    finally:
        await connector.close()
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    [request] = app["received"]
    assert (request["method"], request["path"]) == (
        "POST",
        urlsplit(found(r"'(https://[^']+)'", example)).path,
    )
    headers = curl_headers(example)
    assert request["headers"]["Authorization"] == headers["authorization"]
    assert request["headers"]["Content-Type"] == headers["content-type"]
    ours = request["json"]
    assert set(ours) == set(documented)
    for name in ("message", "senderId", "campaignName"):
        assert ours[name] == documented[name], name
    assert [ghana(n) for n in ours["recipients"]] == [ghana(n) for n in documented["recipients"]]
    assert {ghana(n) for n in GHANA_FORMS.split()} == {ours["recipients"][0]}


def test_flashsms_documented_send_response_is_accepted() -> None:
    result = flashsms.parse_send_answer(answer(200, fixture("002_send_response.json")), "233201234567")
    assert (result.outcome, result.provider_ids) == (Outcome.ACCEPTED, ("cmjveqxgf0001jr04abc123:233201234567",))


def test_flashsms_documented_delivery_report_gives_each_phone_its_status() -> None:
    body = json.loads(fixture("002_recipients_response.json"))
    assert flashsms.recipient_statuses(body, ["233201234567", "233241234567"]) == {
        "233201234567": "DELIVERED",
        "233241234567": "FAILED",
    }


def test_flashsms_documented_message_status_stands_for_the_phone() -> None:
    body = json.loads(fixture("002_status_response.json"))
    assert flashsms.recipient_statuses(body, ["233201234567"]) == {"233201234567": "DELIVERED"}


@pytest.mark.parametrize(
    ("http", "status", "outcome"),
    [  # Error Handling + HTTP Status Codes; PROVIDERS.md 4.2
        (400, Status.ESME_RSUBMITFAIL, Outcome.REJECTED),  # no phone/sender/length word: 0x45
        (401, Status.ESME_RSYSERR, Outcome.NOT_SENT),  # 0x08 + alert
        (403, Status.ESME_RSYSERR, Outcome.NOT_SENT),  # 0x08 + alert
        (429, Status.ESME_RTHROTTLED, Outcome.NOT_SENT),  # 0x58
        (500, Status.ESME_RSYSERR, Outcome.NOT_SENT),  # 0x08
    ],
)
def test_flashsms_documented_error_shape(http: int, status: Status, outcome: Outcome) -> None:
    result = flashsms.parse_send_answer(answer(http, fixture("002_error_response.json")), "233201234567")
    assert (result.status, result.outcome) == (status, outcome)


# -- Skycore (document 003) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "overrides", "source"),
    [
        ("003_example_1_request.txt", {}, ""),
        (
            "003_example_2_request.txt",
            {"campaign_ref": "campaign2345", "click_tracking": True, "allowed_senders": ["*"]},
            "Dunder Mifflin",
        ),
    ],
)
async def test_skycore_request_is_the_documented_example(
    serve_here: Serve, name: str, overrides: dict[str, Any], source: str
) -> None:
    """Request Examples 1 and 2, field for field: the body the connector posts is the example's."""
    example = fixture(name)
    documented = curl_json_body(example)
    key = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    campaigns = {"campaign2345": [documented["to"].removeprefix("+")]}
    app = build_simulator(
        "skycore",
        api_key=key,
        senders=["00000"],
        enforce_campaign_check="campaign-ref" in documented,
        campaigns=campaigns,
    )
    url = await serve_here(app)
    raw = {"type": "skycore", "url": f"{url}/API", "api_key": key, "from": "00000", "callback_token": "tok"}
    connector = await started(Skycore("skycore", provider_settings("skycore", raw | overrides), Reports().context()))
    try:
        message = make_message(documented["message-text"], documented["to"].removeprefix("+"), source=source)
        sent = await connector.send(message)
    finally:
        await connector.close()
    assert sent.outcome is Outcome.ACCEPTED
    [request] = app["received"]
    headers = curl_headers(example)
    assert request["headers"]["x-api-key"] == headers["x-api-key"]
    assert request["headers"]["Content-Type"] == headers["content-type"] == "application/json"
    assert request["json"] == documented


def test_skycore_documented_success_is_accepted_with_its_tracking_id() -> None:
    result, alert = skycore.parse_answer(answer(200, fixture("003_success_response.json")), "ref")
    assert (result.outcome, result.provider_ids, alert) == (Outcome.ACCEPTED, ("xxxxxxxxxxxx",), False)


def test_skycore_documented_failure_is_an_invalid_sender() -> None:
    """E111 "Invalid Sender." -> 0x0A ESME_RINVSRCADR (PROVIDERS.md 5.2)."""
    result, _ = skycore.parse_answer(answer(200, fixture("003_failure_response.json")), "ref")
    assert (result.outcome, result.status) == (Outcome.REJECTED, Status.ESME_RINVSRCADR)
