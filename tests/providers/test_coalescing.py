"""Bulk coalescing over real sockets: the same text from one account to many
destinations shares one multi-recipient request, while every message keeps its own
message_id, provider id and receipt."""

from __future__ import annotations

from collections.abc import Callable

from bridge.smpp.constants import Status
from bridge.smpp.pdu import SubmitSm, SubmitSmResp, encode_pdu
from tests.support.esme import Esme
from tests.support.providers import Rig


def burst(esme: Esme, destinations: list[str], text: bytes, first_sequence: int = 7000) -> list[str]:
    """submit_sm to each destination in one write (they arrive together); the message_ids."""
    pdus = [
        SubmitSm(first_sequence + i, source_addr_ton=5, source_addr="MyBrand", dest_addr_ton=1, dest_addr_npi=1,
                 destination_addr=destination, registered_delivery=1, short_message=text)
        for i, destination in enumerate(destinations)
    ]  # fmt: skip
    esme.send_raw(b"".join(encode_pdu(pdu) for pdu in pdus))
    answers = [esme.read_raw_until(pdu.sequence) for pdu in pdus]
    assert [answer.status for answer in answers] == [Status.ESME_ROK] * len(pdus)
    assert all(isinstance(answer, SubmitSmResp) for answer in answers)
    return [answer.message_id for answer in answers if isinstance(answer, SubmitSmResp)]


def test_flashsms_sends_one_request_for_many_recipients(flashsms_rig_factory: Callable[..., Rig]) -> None:
    rig = flashsms_rig_factory(coalesce_window=0.3)
    phones = [f"23320123456{i}" for i in range(5)]
    ids = burst(rig.esme, phones, b"Market closes at 5pm")
    [request] = rig.sends()
    assert sorted(request["json"]["recipients"]) == sorted(phones)
    assert len(set(ids)) == 5
    receipts = rig.esme.wait_receipts(5, timeout=20)
    assert {r["id"] for r in receipts if r["stat"] == "DELIVRD"} == set(ids)


def test_kaleyra_sends_comma_separated_recipients_and_maps_each_id(kaleyra_rig_factory: Callable[..., Rig]) -> None:
    rig = kaleyra_rig_factory(coalesce_window=0.3)
    numbers = [f"9198765432{i}" for i in range(3)]
    ids = burst(rig.esme, numbers, b"Your order has shipped")
    [request] = rig.sends()
    fields = request["form"] or request["json"]
    assert sorted(fields["to"].split(",")) == sorted(f"+{n}" for n in numbers)
    receipts = rig.esme.wait_receipts(3, timeout=20)
    assert {r["id"] for r in receipts if r["stat"] == "DELIVRD"} == set(ids)


def test_different_texts_and_repeated_destinations_are_not_merged(flashsms_rig_factory: Callable[..., Rig]) -> None:
    rig = flashsms_rig_factory(coalesce_window=0.3)
    burst(rig.esme, ["233201234560", "233201234561"], b"first text", 7100)
    burst(rig.esme, ["233201234560"], b"second text", 7200)
    burst(rig.esme, ["233201234560", "233201234560"], b"twice to one number", 7300)
    sends = rig.sends()
    by_text: dict[str, list[list[str]]] = {}
    for request in sends:
        by_text.setdefault(request["json"]["message"], []).append(request["json"]["recipients"])
    assert by_text["first text"] == [["233201234560", "233201234561"]]
    assert by_text["second text"] == [["233201234560"]]
    assert by_text["twice to one number"] == [["233201234560"], ["233201234560"]]
