"""Destination numbers: every TON, with and without an account's default_country, made
E.164 once at submit; prefix routing on E.164 digits; receipts that give back the
destination exactly as sent; store records written before numbers were normalised.

Expected E.164 values are typed from the numbering plans (Mexico +52 and 10 digits,
Ghana +233 and 9, Great Britain +44 and 10, India +91 and 10), never computed by
phonenumbers or by the module under test.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, parse_config
from bridge.core.message import Address
from bridge.core.numbers import Number, Unusable, national_in, normalise
from bridge.core.router import Router
from bridge.smpp.constants import Status
from bridge.smpp.pdu import DistributionList, SmeAddress, SubmitMulti, SubmitMultiResp
from bridge.store.records import dump_message, dump_segment, load_message, load_segment
from bridge.store.sqlite import SCHEMA
from tests.support.esme import Esme
from tests.support.providers import account
from tests.support.records import simulator_records
from tests.support.running import RunningBridge
from tests.support.waiting import wait_for

REFUSED = None


def shown(result: Number | Unusable) -> str | None:
    """`+E.164` for an international number, the bare digits of a national number of
    unknown country, None for a refusal."""
    if isinstance(result, Unusable):
        return REFUSED
    return result.e164 or result.digits


# -- the rules, row by row -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ton", "country", "expected"),
    [
        # TON 1, international: the digits as sent, no numbering-plan check.
        ("525512345678", 1, None, "+525512345678"),
        ("525512345678", 1, "GB", "+525512345678"),  # default_country does not apply
        ("5512345678", 1, "MX", "+5512345678"),  # the ESME said international: Brazil's code, not re-read
        ("+525512345678", 1, None, "+525512345678"),  # a + in front is tolerated
        ("00525512345678", 1, None, "+525512345678"),  # so is 00
        ("52 55 1234-5678", 1, None, "+525512345678"),  # separators are dropped
        ("9991234567", 1, None, "+9991234567"),  # no such country code, still digits (the simulator's ranges)
        ("6831234", 1, None, "+6831234"),  # 7 digits: Niue, the shortest plans
        ("123456789012345", 1, None, "+123456789012345"),  # 15: the longest E.164 number
        ("683123", 1, None, REFUSED),  # 6 digits
        ("1234567890123456", 1, None, REFUSED),  # 16 digits
        ("05512345678", 1, None, REFUSED),  # no country code starts with 0
        ("5255l2345678", 1, None, REFUSED),  # a letter
        ("\uff15\uff12\uff15\uff15\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", 1, None, REFUSED),  # fullwidth
        ("BANK", 1, None, REFUSED),
        ("", 1, None, REFUSED),
        # TON 2, national: dialled inside default_country, trunk prefix and all.
        ("5512345678", 2, "MX", "+525512345678"),  # Mexico City
        ("8100001234", 2, "MX", "+528100001234"),  # the Contacta document's number
        ("07911123456", 2, "GB", "+447911123456"),  # trunk prefix 0
        ("0241234567", 2, "GH", "+233241234567"),  # trunk prefix 0
        ("0201234567", 2, "GH", "+233201234567"),
        ("9876543210", 2, "IN", "+919876543210"),  # the number: India, never Iran (+98)
        ("09876543210", 2, "IN", "+919876543210"),  # with India's trunk prefix
        ("0044 7911 123456", 2, "GB", "+447911123456"),  # 00 is how one dials abroad from Britain
        ("+525512345678", 2, "GB", "+525512345678"),  # a + is international whatever the TON
        ("015512345678", 2, "MX", REFUSED),  # Mexico dropped its 01 trunk prefix in 2019
        ("12345", 2, "MX", REFUSED),  # no Mexican number
        ("0000000000", 2, "GH", REFUSED),  # not a valid Ghanaian number
        ("055123456789", 2, "GB", REFUSED),  # too long for Britain
        # TON 2 without default_country: national digits of an unknown country, never guessed.
        ("9876543210", 2, None, "9876543210"),
        ("5512345678", 2, None, "5512345678"),
        ("0201234567", 2, None, "0201234567"),
        ("020-123 4567", 2, None, "0201234567"),
        ("123", 2, None, REFUSED),  # too short to be any national number
        ("1234567890123456", 2, None, REFUSED),  # too long
        ("98765x3210", 2, None, REFUSED),
        # TON 0, unknown: marked international, else valid international, else national.
        ("+525512345678", 0, None, "+525512345678"),
        ("00525512345678", 0, None, "+525512345678"),
        ("525512345678", 0, None, "+525512345678"),  # valid as +52 55 1234 5678
        ("233241234567", 0, "MX", "+233241234567"),  # valid international wins over default_country
        ("447911123456", 0, "GB", "+447911123456"),
        ("5512345678", 0, "MX", "+525512345678"),  # +55 12345678 is no Brazilian number: national
        ("0241234567", 0, "GH", "+233241234567"),
        ("9876543210", 0, "IN", "+919876543210"),  # +98 76543210 is no Iranian number
        ("6621234567", 0, "MX", "+6621234567"),  # Hermosillo's 662 also reads as Bangkok, +66 2123 4567:
        ("6621234567", 2, "MX", "+526621234567"),  # valid international wins with TON 0; TON 2 says national
        ("12345", 0, "MX", REFUSED),  # neither
        ("5512345678", 0, None, "5512345678"),  # national, country unknown
        ("0201234567", 0, None, "0201234567"),
        ("9876543210", 0, None, "9876543210"),
        ("+0201234567", 0, None, REFUSED),  # marked international, but a 0 where the country code goes
        ("12", 0, None, REFUSED),
        ("not-a-number", 0, None, REFUSED),
        # TON 3-6 and reserved values: no E.164 number can be made of them.
        ("5512345678", 3, "MX", REFUSED),  # network specific
        ("5512345678", 4, "MX", REFUSED),  # subscriber number (no area code)
        ("BANK", 5, "MX", REFUSED),  # alphanumeric
        ("5512345678", 5, "MX", REFUSED),
        ("1234", 6, "MX", REFUSED),  # abbreviated (short code)
        ("5512345678", 6, None, REFUSED),
        ("+525512345678", 6, None, REFUSED),  # a + does not make a short code international
        ("525512345678", 7, None, REFUSED),  # reserved
    ],
)
def test_destination_rules(addr: str, ton: int, country: str | None, expected: str | None) -> None:
    assert shown(normalise(addr, ton, country)) == expected


@pytest.mark.parametrize(
    ("addr", "ton", "country", "expected"),
    [
        ("6621234567", 0, "MX", "+526621234567"),  # Hermosillo, not Bangkok
        ("4771234567", 0, "MX", "+524771234567"),  # León, not Norway
        ("525512345678", 0, "MX", "+525512345678"),  # 12 digits: no Mexican national number, so international
        ("233241234567", 0, "MX", "+233241234567"),
        ("+6621234567", 0, "MX", "+6621234567"),  # marked international stays international
        ("6621234567", 0, None, "+6621234567"),  # no default_country: nothing to prefer, valid international
        ("6621234567", 1, "MX", "+6621234567"),  # TON 1 is international whatever the account prefers
    ],
)
def test_ton0_read_national_first(addr: str, ton: int, country: str | None, expected: str | None) -> None:
    """`ton0_reading = "national"`: a TON 0 number valid both ways is the account's own."""
    assert shown(normalise(addr, ton, country, national_first=True)) == expected


def test_a_refusal_says_why_without_the_number() -> None:
    refusal = normalise("12345", 2, "MX")
    assert isinstance(refusal, Unusable)
    assert refusal.reason == "destination_addr is no valid number in MX"
    assert "12345" not in refusal.reason


@pytest.mark.parametrize(
    ("number", "country", "expected"),
    [
        (Number("525512345678"), "MX", "5512345678"),
        (Number("233241234567"), "MX", None),
        (Number("233241234567"), "GH", "241234567"),
        (Number("5512345678", international=False), "MX", "5512345678"),  # taken as the home country's
        (Number("0241234567", international=False), "GH", "241234567"),  # Ghana's trunk prefix goes
        (Number("55123456789", international=False), "MX", None),  # 11 digits: no Mexican number
    ],
)
def test_national_in_a_home_country(number: Number, country: str, expected: str | None) -> None:
    assert national_in(number, country) == expected


# -- configuration -------------------------------------------------------------------------


def config(account_overrides: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "accounts": [{"system_id": "esme1", "password": "secret1", "route": "sim"} | (account_overrides or {})],
        "providers": {"sim": {"type": "simulator"}},
    }
    return raw | extra


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, {})
    return info.value.problems


def test_default_country_is_optional_and_read_in_any_case() -> None:
    assert parse_config(config(), {}).accounts[0].default_country is None
    assert parse_config(config({"default_country": "MX"}), {}).accounts[0].default_country == "MX"
    assert parse_config(config({"default_country": "gh"}), {}).accounts[0].default_country == "GH"


@pytest.mark.parametrize("code", ["MEX", "XX", "", "52", "UK"])
def test_default_country_must_be_a_country_with_a_numbering_plan(code: str) -> None:
    [problem] = problems(config({"default_country": code}))
    assert problem.startswith("accounts[0].default_country: ")
    assert "ISO 3166-1 alpha-2" in problem


def test_destination_prefix_is_e164_digits() -> None:
    routes = [{"name": "mx", "match": {"destination_prefix": ["+52", "1"]}, "providers": ["sim"]}]
    assert parse_config(config(routes=routes), {}).routes[0].match.prefixes == ("52", "1")
    routes = [{"name": "mx", "match": {"destination_prefix": "055"}, "providers": ["sim"]}]
    assert parse_config(config(routes=routes), {}).routes[0].match.prefixes == ("055",)
    routes = [{"name": "mx", "match": {"destination_prefix": "52-55"}, "providers": ["sim"]}]
    [problem] = problems(config(routes=routes))
    assert problem.startswith("routes[0].match.destination_prefix: ")


# -- routing -------------------------------------------------------------------------------

ROUTES = [
    {"name": "brazil", "match": {"destination_prefix": "55"}, "providers": ["brazil"]},
    {"name": "mexico", "match": {"destination_prefix": "52"}, "providers": ["mexico"]},
]


def routed_config(tmp_path: Path, country: str | None, route: str | None = "fallback") -> dict[str, Any]:
    """Three recording simulators: `brazil` (prefix 55), `mexico` (prefix 52) and
    `fallback`, the account's own route."""
    extra = {} if country is None else {"default_country": country}
    providers = {
        name: {"type": "simulator", "delivery_delay": 0.05, "record_path": str(tmp_path / f"{name}.jsonl")}
        for name in ("brazil", "mexico", "fallback")
    }
    owner = account(route or "fallback", **extra) | ({} if route else {"route": None})
    return {"accounts": [owner], "providers": providers, "routes": ROUTES}


@pytest.mark.parametrize(
    ("country", "addr", "ton", "route"),
    [
        ("MX", "5512345678", 2, "mexico"),  # Mexico City, not Brazil
        ("MX", "5512345678", 0, "mexico"),
        (None, "5512345678", 2, "fallback"),  # a national number of unknown country matches no prefix
        (None, "5512345678", 0, "fallback"),
        (None, "525512345678", 1, "mexico"),
        (None, "551123456789", 1, "brazil"),
        ("MX", "+5511234567890", 2, "brazil"),  # + is international
        ("MX", "5511234567890", 1, "brazil"),  # TON 1 is international, default_country or not
    ],
)
def test_routes_match_prefixes_on_e164_digits(tmp_path: Path, country: str | None, addr: str, ton: int,
                                              route: str) -> None:  # fmt: skip
    parsed = parse_config(routed_config(tmp_path, country), {})
    number = normalise(addr, ton, parsed.accounts[0].default_country)
    assert isinstance(number, Number)
    resolved = Router(parsed).resolve(parsed.accounts[0], number, False)
    assert resolved is not None and resolved.name == route


def bound(bridge: RunningBridge) -> Esme:
    client = Esme(bridge.smpp_port)
    assert client.bind("transceiver").status == Status.ESME_ROK
    return client


def test_a_national_number_is_routed_by_its_country_over_smpp(
    start_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    bridge = start_bridge(**routed_config(tmp_path, "MX"))
    client = bound(bridge)
    try:
        resp = client.submit(destination="5512345678", dest_addr_ton=2, dest_addr_npi=1, text=b"Mexico City")
        assert resp.status == Status.ESME_ROK
        [record] = simulator_records(tmp_path / "mexico.jsonl")
        assert (record["to"], record["text"]) == ("525512345678", "Mexico City")
        assert simulator_records(tmp_path / "brazil.jsonl") == []
    finally:
        client.close()


def test_an_account_may_read_ambiguous_ton0_numbers_as_national(
    start_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    """Hermosillo's `6621234567` with TON 0 is also Bangkok's +66 2123 4567: an account
    with `ton0_reading = "national"` sends it to Mexico, one without to Thailand."""
    settings = routed_config(tmp_path, "MX")
    settings["accounts"].append(account("fallback", system_id="thai", default_country="MX"))
    settings["accounts"][0]["ton0_reading"] = "national"
    bridge = start_bridge(**settings)
    national, literal = bound(bridge), Esme(bridge.smpp_port)
    try:
        assert literal.bind("transceiver", system_id="thai").status == Status.ESME_ROK
        for client, text in ((national, b"Hermosillo"), (literal, b"Bangkok")):
            resp = client.submit(destination="6621234567", dest_addr_ton=0, dest_addr_npi=1, text=text)
            assert resp.status == Status.ESME_ROK
        [mexican] = simulator_records(tmp_path / "mexico.jsonl")
        assert (mexican["to"], mexican["text"]) == ("526621234567", "Hermosillo")
        [thai] = simulator_records(tmp_path / "fallback.jsonl")
        assert (thai["to"], thai["text"]) == ("6621234567", "Bangkok")
    finally:
        national.close()
        literal.close()


def test_without_default_country_a_national_number_takes_no_prefix_route(
    start_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    bridge = start_bridge(**routed_config(tmp_path, None, route=None))
    client = bound(bridge)
    try:
        assert client.submit(destination="5512345678", dest_addr_ton=2).status == Status.ESME_RINVDSTADR
        assert client.submit(destination="5512345678", dest_addr_ton=0).status == Status.ESME_RINVDSTADR
        assert client.submit(destination="525512345678", dest_addr_ton=1).status == Status.ESME_ROK
        assert [r["to"] for r in simulator_records(tmp_path / "mexico.jsonl")] == ["525512345678"]
        assert simulator_records(tmp_path / "brazil.jsonl") == []
    finally:
        client.close()


# -- receipts: the destination exactly as sent ---------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ton", "npi"),
    [
        ("5512345678", 2, 1),  # national in MX: sent to +525512345678
        ("+525512345678", 0, 1),
        ("00525512345678", 1, 1),
        ("525512345678", 1, 0),  # an NPI the bridge does not look at is given back as it came
    ],
)
def test_receipt_source_addr_is_the_destination_as_sent(
    start_bridge: Callable[..., RunningBridge], tmp_path: Path, addr: str, ton: int, npi: int
) -> None:
    bridge = start_bridge(**routed_config(tmp_path, "MX"))
    client = bound(bridge)
    try:
        resp = client.submit(destination=addr, dest_addr_ton=ton, dest_addr_npi=npi, text=b"Your code is 4321")
        assert resp.status == Status.ESME_ROK
        [receipt] = client.wait_receipts(1)
        assert receipt["id"] == resp.message_id.decode()
        [pdu] = client.delivered
        assert (pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr) == (ton, npi, addr.encode())
        assert [r["to"] for r in simulator_records(tmp_path / "mexico.jsonl")] == ["525512345678"]
    finally:
        client.close()


def test_submit_multi_normalises_each_destination(start_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    bridge = start_bridge(**routed_config(tmp_path, "MX"))
    client = bound(bridge)
    dests: list[SmeAddress | DistributionList] = [
        SmeAddress(dest_addr_ton=2, dest_addr_npi=1, destination_addr="5512345678"),
        SmeAddress(dest_addr_ton=2, dest_addr_npi=1, destination_addr="12345"),  # no MX number
        SmeAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="551123456789"),
        SmeAddress(dest_addr_ton=5, dest_addr_npi=0, destination_addr="BANK"),
    ]
    try:
        multi = SubmitMulti(
            900100, source_addr="12345", dest_addresses=dests, registered_delivery=1, short_message=b"all"
        )
        resp = client.exchange(multi)
        assert isinstance(resp, SubmitMultiResp)
        assert resp.status == Status.ESME_ROK
        failures = {u.destination_addr: u.error_status_code for u in resp.unsuccess_smes}
        assert failures == {"12345": Status.ESME_RINVDSTADR, "BANK": Status.ESME_RINVDSTADR}
        assert [r["to"] for r in simulator_records(tmp_path / "mexico.jsonl")] == ["525512345678"]
        assert [r["to"] for r in simulator_records(tmp_path / "brazil.jsonl")] == ["551123456789"]
        receipts = client.wait_receipts(2)
        sources = sorted(pdu.source_addr for pdu in client.delivered)
        assert sources == [b"551123456789", b"5512345678"] and len(receipts) == 2
    finally:
        client.close()


def test_data_sm_is_normalised_like_submit_sm(start_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    bridge = start_bridge(**routed_config(tmp_path, "MX"))
    client = bound(bridge)
    try:
        fields = {"source_addr": "12345", "dest_addr_ton": 2, "dest_addr_npi": 1, "data_coding": 0}
        resp = client.send("data_sm", destination_addr="5512345678", message_payload=b"by data sm", **fields)
        assert resp.status == Status.ESME_ROK
        [record] = simulator_records(tmp_path / "mexico.jsonl")
        assert (record["to"], record["text"]) == ("525512345678", "by data sm")
        refused = client.send("data_sm", destination_addr="12345", message_payload=b"no number", **fields)
        assert refused.status == Status.ESME_RINVDSTADR
    finally:
        client.close()


# -- store records written before numbers were normalised ----------------------------------


def old_message(message_id: int, destination: list[Any], lifecycle: int = 0, ack: str = "stored") -> str:
    """A message record exactly as the bridge wrote it before numbers were normalised
    (no number at the end)."""
    part = [message_id, 1, 1700000000.0, "Your code is 4321"]
    return json.dumps([1, message_id, "esme1", [1, 1, "12345"], destination, "Your code is 4321", False, [part],
                       ["sim"], ack, 1700000000.0, lifecycle, None, [], None, 0, 0, 0.0, None])  # fmt: skip


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ([1, 1, "525512345678"], "+525512345678"),
        ([0, 1, "525512345678"], "+525512345678"),  # the old format stored "+52…" without its +
        ([0, 1, "5512345678"], "5512345678"),  # national, country unknown: Contacta still takes it
        ([0, 0, "0201234567"], "0201234567"),  # and FlashSMS this one
        ([2, 1, "9876543210"], "9876543210"),
        ([5, 0, "BANK"], "BANK"),  # nothing normalises it: kept, a provider refuses it
    ],
)
def test_older_message_records_load_with_a_number(destination: list[Any], expected: str) -> None:
    message = load_message(old_message(5001, destination))
    assert message.destination == Address(*destination)
    number = message.number
    assert (number.e164 or number.digits) == expected
    again = load_message(dump_message(message))
    assert (again.destination, again.number) == (message.destination, message.number)


@pytest.mark.parametrize("later_fields", [[], ["hex"]], ids=["first-format", "with-id-format"])
def test_older_segment_records_load_with_a_number(later_fields: list[Any]) -> None:
    record = json.dumps([1, "set", "esme1", 2, 3, 6001, 0, 1, 1700000000.0, False, [1, 1, "12345"],
                         [0, 1, "+525512345678"], *later_fields])  # fmt: skip
    segment = load_segment(record, b"abc")
    assert segment.destination == Address(0, 1, "+525512345678")
    assert segment.number.e164 == "+525512345678"
    again = load_segment(dump_segment(segment), b"abc")
    assert (again.destination, again.number) == (segment.destination, segment.number)
    assert again.id_format == segment.id_format == "".join(later_fields)


def test_a_queued_message_of_the_old_format_is_sent_after_the_upgrade(
    start_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    """A message the old version stored (ack = "stored", still in the outbox) goes out
    after a restart on the new version, and its receipt carries the old destination."""
    database = sqlite3.connect(tmp_path / "bridge.db")
    database.executescript(SCHEMA)
    database.execute(
        "INSERT INTO messages (id, lifecycle, first_provider, provider, done_at, record) VALUES (?, 0, 'mexico',"
        " NULL, NULL, ?)",
        (5001, old_message(5001, [0, 1, "525512345678"]).replace('["sim"]', '["mexico"]')),
    )
    database.commit()
    database.close()
    bridge = start_bridge(**routed_config(tmp_path, None))
    wait_for(lambda: simulator_records(tmp_path / "mexico.jsonl") != [])
    [record] = simulator_records(tmp_path / "mexico.jsonl")
    assert (record["message_id"], record["to"], record["text"]) == (5001, "525512345678", "Your code is 4321")
    client = bound(bridge)
    try:
        [receipt] = client.wait_receipts(1)
        assert (receipt["id"], receipt["stat"]) == ("5001", "DELIVRD")
        assert receipt["source_addr"] == b"525512345678"
    finally:
        client.close()
