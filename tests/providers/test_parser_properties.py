"""Hypothesis: every provider answer and report parser takes any input a provider
(or an attacker with the callback token) could send, and answers with a result or a
documented refusal, never an unexpected exception. Whatever the body says, the HTTP
status bounds the outcome: only a 2xx can be ACCEPTED, and a 5xx or 429 (the
provider's trouble, not the message's) is never REJECTED either."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.ports import Outcome, SendResult
from bridge.providers import contacta, flashsms, kaleyra, skycore
from bridge.providers.http import HttpAnswer
from bridge.smpp.constants import MessageState

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=30,
)
# Objects with the keys the parsers look for, holding anything.
KEYS = [
    "status",
    "error",
    "description",
    "message",
    "id",
    "job_id",
    "data",
    "code",
    "message_id",
    "recipient",
    "success",
    "messageId",
    "invalidRecipients",
    "recipientsSent",
    "recipients",
    "phone",
    "tracking-id",
    "error-code",
    "error-info",
    "origin",
    "timestamp",
    "status_trace",
    "stats",
]
SHAPED = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8)
BODIES = st.one_of(
    JSON.map(lambda value: json.dumps(value)),
    SHAPED.map(lambda value: json.dumps(value)),
    st.text(max_size=200),
)
# Bodies a provider sends when it took or refused a message (shaped as its document
# shows), so that a parser trusting the body over the HTTP status is found out.
DOCUMENTED = st.sampled_from(
    [
        {"status": True, "error": False, "description": {"job_id": 199999, "id": 1}},  # Contacta
        {"status": False, "error": True, "description": "Country or carrier not reachable or assigned"},
        {"id": "k1", "data": [{"message_id": "k1:1", "recipient": "919876543210"}], "error": {}},  # Kaleyra
        {"code": "E413", "message": "Validation error", "error": {"to": "bad"}},
        {"success": True, "data": {"messageId": "f1", "recipientsSent": 1, "invalidRecipients": []}},  # FlashSMS
        {"success": False, "error": "Invalid phone number"},
        {"status": "Success", "tracking-id": "s1", "status-details": "queued"},  # Skycore
        {"status": "Failure", "error-code": "E110", "error-info": "Invalid number"},
    ]
).map(json.dumps)
ANSWERS = st.builds(HttpAnswer, st.integers(100, 599), st.just({}), BODIES | DOCUMENTED)
EXAMPLES = settings(max_examples=150, deadline=None)


def assert_bounded_by_status(result: SendResult, answer: HttpAnswer) -> None:
    """The invariants every connector's answer parser keeps (see the module docstring)."""
    assert isinstance(result, SendResult)
    if not 200 <= answer.status < 300:
        assert result.outcome is not Outcome.ACCEPTED, (answer, result)
    if answer.status >= 500 or answer.status == 429:
        assert result.outcome is not Outcome.REJECTED, (answer, result)


@EXAMPLES
@given(ANSWERS)
def test_contacta_answers(answer: HttpAnswer) -> None:
    result, alert = contacta.parse_answer(answer, "123")
    assert isinstance(alert, bool)
    assert_bounded_by_status(result, answer)


@EXAMPLES
@given(ANSWERS)
def test_kaleyra_answers(answer: HttpAnswer) -> None:
    assert_bounded_by_status(kaleyra.parse_send_answer(answer), answer)


@EXAMPLES
@given(ANSWERS, st.text(max_size=15))
def test_flashsms_answers(answer: HttpAnswer, phone: str) -> None:
    assert_bounded_by_status(flashsms.parse_send_answer(answer, phone), answer)


@EXAMPLES
@given(ANSWERS)
def test_skycore_answers(answer: HttpAnswer) -> None:
    result, alert = skycore.parse_answer(answer, "123")
    assert isinstance(alert, bool)
    assert_bounded_by_status(result, answer)


@EXAMPLES
@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=40))
def test_kaleyra_reports(status: str, trace: str, timestamp: str) -> None:
    mapped = kaleyra.map_report(status, trace)
    assert mapped is None or (isinstance(mapped[0], MessageState) and 0 <= mapped[1] <= 999)
    parsed = kaleyra.parse_timestamp(timestamp)
    assert parsed is None or isinstance(parsed, float)


@EXAMPLES
@given(st.dictionaries(st.text(max_size=20), JSON, max_size=8) | SHAPED, st.lists(st.text(max_size=15), max_size=3))
def test_flashsms_poll_answers(body: Any, phones: list[str]) -> None:
    statuses = flashsms.recipient_statuses(body, phones)
    assert isinstance(statuses, dict)


@EXAMPLES
@given(SHAPED | st.dictionaries(st.text(max_size=20), JSON, max_size=8))
def test_skycore_postbacks(payload: dict[str, Any]) -> None:
    mapped = skycore.postback_state(payload)
    assert mapped is None or isinstance(mapped[1].state, MessageState)
    assert isinstance(skycore.postback_time(payload, 1.0), float)
