"""Destination numbers end to end, per provider, over real sockets: smpplib submits a
number with its TON to an account with or without default_country, and the provider
double receives it in its document's form (Contacta `phone` 10 digits, FlashSMS
`233…`, Kaleyra `to` `+CC…`, Skycore `to` `+CC…`), or the ESME gets ESME_RINVDSTADR
and no request leaves the bridge.

Expected forms are typed from the documents' examples and the numbering plans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from bridge.simulators.contacta import make_app as contacta_double
from bridge.smpp.constants import Status
from bridge.smpp.pdu import SubmitSm, SubmitSmResp, encode_pdu
from tests.providers.test_contacta_e2e import PASSWORD, USER
from tests.providers.test_contacta_e2e import provider as contacta_provider
from tests.providers.test_skycore_e2e import api_url, double
from tests.providers.test_skycore_e2e import provider as skycore_provider
from tests.support.esme import Esme
from tests.support.providers import Rig, account, received
from tests.support.running import RunningBridge
from tests.support.servers import AppThread

REFUSED = None


def country(code: str | None) -> dict[str, Any]:
    return {} if code is None else {"default_country": code}


def submit(esme: Esme, addr: str, ton: int) -> Any:
    return esme.submit(destination=addr, dest_addr_ton=ton, dest_addr_npi=1, text=b"Your code is 4321")


def check(resp: Any, sends: list[dict[str, Any]], expected: str | None, field: Callable[[dict[str, Any]], Any]) -> None:
    """The answer to a submit whose HTTP call (if any) is over: refused before any request,
    or accepted with the number as the API got it."""
    if expected is REFUSED:
        assert resp.status == Status.ESME_RINVDSTADR
        assert sends == []
    else:
        assert resp.status == Status.ESME_ROK
        [request] = sends
        assert field(request) == expected


# -- Contacta: 10 national digits, Mexico only (SMS Global: E.164 without +) --------------

CONTACTA: list[tuple[str, str, int, str | None, str | None]] = [
    ("national", "5512345678", 2, "MX", "5512345678"),
    ("national", "5512345678", 2, None, "5512345678"),  # national, country unknown: SMS México's own format
    ("national", "5512345678", 0, None, "5512345678"),
    ("national", "+52 55 1234 5678", 0, None, "5512345678"),
    ("national", "00525512345678", 0, "GB", "5512345678"),
    ("national", "525512345678", 1, None, "5512345678"),
    ("national", "5215512345678", 1, None, "5512345678"),  # the obsolete mobile 1
    ("national", "447911123456", 1, None, REFUSED),  # Britain: not SMS México's
    ("national", "07911123456", 2, "GB", REFUSED),
    ("national", "551234567", 2, None, REFUSED),  # 9 digits: no Mexican number
    ("international", "5512345678", 2, "MX", "525512345678"),
    ("international", "5512345678", 2, None, "525512345678"),  # taken as Mexican, the home country
    ("international", "447911123456", 1, None, "447911123456"),  # SMS Global: any E.164 number
    ("international", "07911123456", 2, "GB", "447911123456"),
    ("international", "07911123456", 2, None, REFUSED),  # 11 national digits of no known country
]


@pytest.mark.parametrize(("number_format", "addr", "ton", "code", "expected"), CONTACTA)
def test_contacta_gets_its_phone_format(
    start_bridge: Callable[..., RunningBridge],
    serve: Callable[[web.Application], AppThread],
    connect: Callable[[RunningBridge], Esme],
    number_format: str,
    addr: str,
    ton: int,
    code: str | None,
    expected: str | None,
) -> None:
    sim = serve(contacta_double(username=USER, password=PASSWORD, number_format=number_format))
    settings = contacta_provider(sim.url, number_format=number_format)
    bridge = start_bridge(accounts=[account("contacta", **country(code))], providers={"contacta": settings})
    check(submit(connect(bridge), addr, ton), received(sim), expected, lambda r: r["json"]["phone"])


# -- FlashSMS: 233XXXXXXXXX, Ghana only ----------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ton", "code", "expected"),
    [
        ("0241234567", 2, "GH", "233241234567"),
        ("0241234567", 0, "GH", "233241234567"),
        ("0241234567", 0, None, "233241234567"),  # the document's national form, taken as Ghanaian
        ("0201234567", 2, None, "233201234567"),
        ("233241234567", 1, None, "233241234567"),
        ("+233241234567", 0, "MX", "233241234567"),
        ("5512345678", 2, "MX", REFUSED),  # Mexico
        ("447911123456", 1, None, REFUSED),
        ("024123456", 2, None, REFUSED),  # one digit short
    ],
)
def test_flashsms_gets_ghana_numbers_with_233(
    flashsms_rig_factory: Callable[..., Rig], addr: str, ton: int, code: str | None, expected: str | None
) -> None:
    rig = flashsms_rig_factory(account_settings=country(code))
    check(submit(rig.esme, addr, ton), rig.sends(), expected, lambda r: "|".join(r["json"]["recipients"]))


# -- Kaleyra: +CC…, international only -----------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ton", "code", "expected"),
    [
        ("9876543210", 2, "IN", "+919876543210"),  # the number: India, not Iran
        ("09876543210", 2, "IN", "+919876543210"),
        ("9876543210", 0, "IN", "+919876543210"),
        ("919876543210", 1, None, "+919876543210"),
        ("+919876543210", 0, None, "+919876543210"),
        ("5512345678", 2, "MX", "+525512345678"),
        ("9876543210", 2, None, REFUSED),  # national, country unknown: never guessed
        ("9876543210", 0, None, REFUSED),  # +98 76543210 is no Iranian number: national, unknown
        ("12345", 2, "IN", REFUSED),
    ],
)
def test_kaleyra_gets_plus_and_e164(
    kaleyra_rig_factory: Callable[..., Rig], addr: str, ton: int, code: str | None, expected: str | None
) -> None:
    rig = kaleyra_rig_factory(account_settings=country(code))
    check(submit(rig.esme, addr, ton), rig.sends(), expected, lambda r: (r["form"] or r["json"])["to"])


def test_kaleyra_recipients_listed_without_plus_are_matched_on_digits(kaleyra_rig_factory: Callable[..., Rig]) -> None:
    """Kaleyra's answer writes recipients as `1XXXXXXXXXX`; each message of a coalesced
    request finds its own id although the ESMEs wrote the numbers three ways."""
    rig = kaleyra_rig_factory(coalesce_window=0.3, account_settings={"default_country": "IN"})
    esme = rig.esme
    pdus = [
        SubmitSm(7000 + i, source_addr="12345", dest_addr_ton=ton, dest_addr_npi=1, destination_addr=addr,
                 registered_delivery=1, short_message=b"Your order has shipped")
        for i, (addr, ton) in enumerate([("9876543210", 2), ("+919876543211", 0), ("919876543212", 1)])
    ]  # fmt: skip
    esme.send_raw(b"".join(encode_pdu(pdu) for pdu in pdus))  # written together: one coalesced request
    answers = [esme.read_raw_until(pdu.sequence) for pdu in pdus]
    assert [answer.status for answer in answers] == [Status.ESME_ROK] * 3
    ids = {answer.message_id for answer in answers if isinstance(answer, SubmitSmResp)}
    [request] = rig.sends()
    fields = request["form"] or request["json"]
    assert sorted(fields["to"].split(",")) == ["+919876543210", "+919876543211", "+919876543212"]
    receipts = esme.wait_receipts(3, timeout=20)
    assert {r["id"] for r in receipts if r["stat"] == "DELIVRD"} == ids and len(ids) == 3
    assert sorted(r["source_addr"] for r in receipts) == [b"+919876543211", b"919876543212", b"9876543210"]


# -- Skycore: +CC…, international only -----------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ton", "code", "expected"),
    [
        ("10000000001", 1, None, "+10000000001"),  # the document's example number
        ("+10000000001", 0, None, "+10000000001"),
        ("2025550123", 2, "US", "+12025550123"),
        ("12025550123", 2, "US", "+12025550123"),  # the 1 a US caller dials before long distance
        ("7911123456", 2, None, REFUSED),  # national, country unknown
        ("07911123456", 0, None, REFUSED),
    ],
)
def test_skycore_gets_plus_and_e164(
    start_bridge: Callable[..., RunningBridge],
    serve: Callable[[web.Application], AppThread],
    connect: Callable[[RunningBridge], Esme],
    http_port: int,
    addr: str,
    ton: int,
    code: str | None,
    expected: str | None,
) -> None:
    sim = serve(double(http_port))
    bridge = start_bridge(
        accounts=[account("skycore", **country(code))],
        providers={"skycore": skycore_provider(api_url(sim))},
        http={"port": http_port, "public_url": f"http://127.0.0.1:{http_port}"},
    )
    resp = submit(connect(bridge), addr, ton)
    check(resp, [r for r in received(sim) if r["method"] == "POST"], expected, lambda r: r["json"]["to"])


def test_one_number_written_two_ways_is_not_coalesced_into_one_request(
    flashsms_rig_factory: Callable[..., Rig],
) -> None:
    """The coalescer keys recipients by the normalised number: `0241234567` (national,
    GH) and `+233241234567` are one phone, so the second starts a request of its own."""
    rig = flashsms_rig_factory(coalesce_window=0.3, account_settings={"default_country": "GH"})
    pdus = [
        SubmitSm(7100 + i, source_addr="MyBrand", source_addr_ton=5, dest_addr_ton=ton, dest_addr_npi=1,
                 destination_addr=addr, registered_delivery=1, short_message=b"Market closes at 5pm")
        for i, (addr, ton) in enumerate([("0241234567", 2), ("+233241234567", 0), ("0201234567", 2)])
    ]  # fmt: skip
    rig.esme.send_raw(b"".join(encode_pdu(pdu) for pdu in pdus))
    answers = [rig.esme.read_raw_until(pdu.sequence) for pdu in pdus]
    assert [answer.status for answer in answers] == [Status.ESME_ROK] * 3
    assert sorted(request["json"]["recipients"] for request in rig.sends()) == [
        ["233241234567"],
        ["233241234567", "233201234567"],
    ]
