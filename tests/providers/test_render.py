"""Request bodies from precomputed parts (bridge/providers/render.py, wire.prepare):
byte for byte what json.dumps(fields, separators=(",", ":")) and urllib's urlencode
write (the oracle: the standard library, which is what the providers' documented
examples and strict doubles were checked against), and the same request bytes as
written out by hand from HTTP/1.1."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus, urlencode

from hypothesis import given
from hypothesis import strategies as st

from bridge.providers.render import form_encode, form_value, json_body
from bridge.providers.wire import prepare

keys = st.text(min_size=1, max_size=12)
scalars = st.one_of(st.text(), st.integers(), st.booleans())
values = st.one_of(
    scalars,
    st.none(),
    st.floats(allow_nan=False),
    st.lists(st.text(), max_size=3),
    st.dictionaries(st.text(max_size=5), scalars, max_size=3),
)


@given(st.dictionaries(keys, values, max_size=8))
def test_json_body_is_json_dumps_compact(fields: dict[str, Any]) -> None:
    assert json_body(fields) == json.dumps(fields, separators=(",", ":")).encode()


@given(st.dictionaries(keys, st.one_of(st.text(), st.integers(), st.booleans()), max_size=8))
def test_form_encode_is_urlencode(fields: dict[str, Any]) -> None:
    assert form_encode(fields) == urlencode(fields)


@given(st.text())
def test_form_value_is_quote_plus(value: str) -> None:
    assert form_value(value) == quote_plus(value)


def test_a_setting_reused_across_requests_and_a_message_value_that_changes() -> None:
    sender = "BANK"  # the same object every time, as a setting is
    for text in ("Your code is 123456", "Ñandú & ünïcode €", 'quote " and \\ backslash', "Your code is 123456"):
        fields = {"action": "sendsms", "message-text": text, "to": "+4917012345678", "from": sender}
        assert json_body(fields) == json.dumps(fields, separators=(",", ":")).encode()
        assert form_encode(fields) == urlencode(fields)


def test_a_list_changed_in_place_is_encoded_as_it_is_now() -> None:
    recipients = ["+4917012345678"]
    assert json_body({"recipients": recipients}) == b'{"recipients":["+4917012345678"]}'
    recipients.append("+4917000000000")
    assert json_body({"recipients": recipients}) == b'{"recipients":["+4917012345678","+4917000000000"]}'


def test_the_documented_skycore_example_body() -> None:
    # Document 003's request example, as compact JSON.
    fields = {"action": "sendsms", "message-text": "Hello World", "to": "+10000000001", "from": "60856"}
    assert json_body(fields) == b'{"action":"sendsms","message-text":"Hello World","to":"+10000000001","from":"60856"}'


def test_request_bytes_written_out_by_hand() -> None:
    endpoint = prepare(
        "POST", "http://api.example.com:8080/v1/HXAP/sms", "application/json", (("api-key", "k"), ("Accept", "x"))
    )
    body = b'{"to":"+4917012345678"}'
    assert endpoint.render(body) == (
        b"POST /v1/HXAP/sms HTTP/1.1\r\nHost: api.example.com:8080\r\nContent-Length: 23\r\n"
        b"Content-Type: application/json\r\napi-key: k\r\nAccept: x\r\n\r\n" + body
    )
    get = prepare("GET", "https://api.example.com/sms/status?message_ids=a%2Cb", None, ())
    assert get.origin.tls and get.origin.port == 443
    assert (
        get.render(b"")
        == b"GET /sms/status?message_ids=a%2Cb HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 0\r\n\r\n"
    )
