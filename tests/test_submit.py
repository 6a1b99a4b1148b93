"""submit_sm and friends over real sockets: text, flash, answers, simulator outcomes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import smpplib.gsm

from bridge.core.cluster import LocalCluster
from bridge.smpp.constants import Command, Status
from bridge.smpp.pdu import (
    CancelSm,
    DistributionList,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
)
from tests.support.clock import Clock
from tests.support.esme import Esme
from tests.support.records import simulator_records
from tests.support.running import RunningBridge


@pytest.fixture
def recording(start_bridge: Callable[..., RunningBridge], tmp_path: Path) -> tuple[RunningBridge, Path]:
    record = tmp_path / "sim.jsonl"
    bridge = start_bridge(providers={"sim": {"type": "simulator", "delivery_delay": 0.05, "record_path": str(record)}})
    return bridge, record


def bound(bridge: RunningBridge, kind: str = "transceiver") -> Esme:
    client = Esme(bridge.smpp_port)
    assert client.bind(kind).status == Status.ESME_ROK
    return client


@pytest.mark.parametrize(
    ("short_message", "data_coding", "text"),
    [
        (b"Hello world", 0, "Hello world"),
        (b"Price: 5\x1be \x00 100%", 0, "Price: 5€ @ 100%"),
        ("Grüße 😀 مرحبا".encode("utf-16-be"), 8, "Grüße 😀 مرحبا"),
        ("Olá, ação".encode("latin-1"), 3, "Olá, ação"),
        (b"plain ascii", 1, "plain ascii"),
    ],
    ids=["gsm", "gsm-euro", "ucs2-emoji", "latin1", "ascii"],
)
def test_text_reaches_the_provider_decoded(
    recording: tuple[RunningBridge, Path], short_message: bytes, data_coding: int, text: str
) -> None:
    bridge, record = recording
    client = bound(bridge)
    try:
        resp = client.submit(text=short_message, data_coding=data_coding)
        assert resp.status == Status.ESME_ROK
        [row] = simulator_records(record)
        assert row["text"] == text
        assert row["flash"] is False
        assert row["to"] == "4917012345"
    finally:
        client.close()


@pytest.mark.parametrize("data_coding", [0x10, 0x18, 0xF0])
def test_message_class_0_is_flash(recording: tuple[RunningBridge, Path], data_coding: int) -> None:
    bridge, record = recording
    client = bound(bridge)
    try:
        text = "Flash!".encode("utf-16-be") if data_coding == 0x18 else b"Flash!"
        assert client.submit(text=text, data_coding=data_coding).status == Status.ESME_ROK
        [row] = simulator_records(record)
        assert row["flash"] is True
        assert row["text"] == "Flash!"
    finally:
        client.close()
    exposition = bridge.call(_scrape(bridge))
    assert (
        'smpp_bridge_submits_total{command_status="ESME_ROK",flash="true",provider="sim",system_id="esme1"} 1.0'
        in exposition
    )


def test_dest_addr_subunit_1_is_flash(recording: tuple[RunningBridge, Path]) -> None:
    bridge, record = recording
    client = bound(bridge)
    try:
        assert client.submit(dest_addr_subunit=1).status == Status.ESME_ROK
        assert simulator_records(record)[0]["flash"] is True
    finally:
        client.close()


async def _scrape(bridge: RunningBridge) -> str:
    assert bridge.bridge is not None
    return bridge.bridge.metrics.exposition().decode()


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data_coding": 0x04, "text": b"\x01\x02"}, Status.ESME_RSUBMITFAIL),
        ({"data_coding": 0x02, "text": b"\x01\x02"}, Status.ESME_RSUBMITFAIL),
        ({"data_coding": 0x20, "text": b"x"}, Status.ESME_RSUBMITFAIL),
        ({"data_coding": 8, "text": b"\x00A\x00"}, Status.ESME_RINVMSGLEN),
        ({"data_coding": 8, "text": b"\xd8\x3d\x00A"}, Status.ESME_RSUBMITFAIL),
        ({"data_coding": 0, "text": b"\xc3\xa9"}, Status.ESME_RSUBMITFAIL),
        ({"destination": "not-a-number"}, Status.ESME_RINVDSTADR),
        ({"destination": "9991234567"}, Status.ESME_RINVDSTADR),
        ({"text": b""}, Status.ESME_RINVMSGLEN),
        ({"esm_class": 0x04}, Status.ESME_RINVESMCLASS),
        ({"schedule_delivery_time": "991231235959000+"}, Status.ESME_RINVSCHED),
        ({"schedule_delivery_time": "garbage"}, Status.ESME_RINVSCHED),
        ({"validity_period": "garbage"}, Status.ESME_RINVEXPIRY),
    ],
    ids=[
        "binary-0x04",
        "binary-0x02",
        "compressed",
        "ucs2-odd",
        "ucs2-lone-surrogate",
        "gsm-8bit-octet",
        "alpha-destination",
        "simulator-reject",
        "empty",
        "esm-class-receipt",
        "scheduled",
        "bad-schedule",
        "bad-validity",
    ],
)
def test_refusals_carry_a_precise_status(esme: Esme, kwargs: dict[str, Any], status: Status) -> None:
    # smpplib binds as v3.4: a data_coding refusal is ESME_RSUBMITFAIL (0x45), not the
    # v5.0-only ESME_RINVDCS (0x104) that v3.4 decoders cannot name.
    assert esme.submit(**kwargs).status == status
    assert esme.submit().status == Status.ESME_ROK  # the session stays healthy


@pytest.mark.parametrize(("interface_version", "status"), [(0x33, 0x45), (0x34, 0x45), (0x50, 0x104)])
def test_data_coding_refusal_depends_on_the_bind_version(
    bridge: RunningBridge, interface_version: int, status: int
) -> None:
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind("transceiver", interface_version=interface_version).status == Status.ESME_ROK
        answer = client.exchange_bytes(
            SubmitSm(
                77,
                destination_addr="4917012345",
                dest_addr_ton=1,
                dest_addr_npi=1,
                data_coding=0x02,
                short_message=b"\x01\x02",
            )
        )
        # submit_sm_resp with an error: the bare header (v3.4 4.4.2)
        assert answer == (16).to_bytes(4, "big") + bytes.fromhex("80000004") + status.to_bytes(4, "big") + (
            77
        ).to_bytes(4, "big")
    finally:
        client.close()
    # the metric counts what the ESME was told
    told, other = ("ESME_RSUBMITFAIL", "ESME_RINVDCS") if status == 0x45 else ("ESME_RINVDCS", "ESME_RSUBMITFAIL")
    exposition = bridge.call(_scrape(bridge))
    assert f'command_status="{told}"' in exposition
    assert f'command_status="{other}"' not in exposition


def test_validity_period_is_accepted_and_ignored(esme: Esme) -> None:
    assert esme.submit(validity_period="000001000000000R").status == Status.ESME_ROK


def test_no_route_is_rinvdstadr(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(
        accounts=[{"system_id": "esme1", "password": "secret1"}],
        routes=[{"name": "mx", "match": {"destination_prefix": "52"}, "providers": ["sim"]}],
    )
    client = bound(bridge)
    try:
        assert client.submit(destination="4917012345").status == Status.ESME_RINVDSTADR
        assert client.submit(destination="5215512345678").status == Status.ESME_ROK
    finally:
        client.close()


def test_hex_message_ids_are_the_same_string_everywhere(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(
        accounts=[{"system_id": "esme1", "password": "secret1", "route": "sim", "message_id_format": "hex"}]
    )
    client = bound(bridge)
    try:
        # 16 ids: one alone may be all digits in hex too (0x50908766), but 16 in a row
        # cover every last hex digit, so at least one shows a-f.
        message_ids = [client.submit().message_id.decode() for _ in range(16)]
        for message_id in message_ids:
            int(message_id, 16)
        assert any(not message_id.isdigit() for message_id in message_ids)
        receipts = client.wait_receipts(16)
        assert sorted(receipt["id"] for receipt in receipts) == sorted(message_ids)
        assert sorted(receipt["receipted_message_id"].decode() for receipt in receipts) == sorted(message_ids)
    finally:
        client.close()


def test_message_ids_are_unique_across_restarts(start_bridge: Callable[..., RunningBridge]) -> None:
    first = start_bridge()
    client = bound(first)
    ids = {client.submit().message_id for _ in range(5)}
    client.close()
    first.stop()
    second = start_bridge()
    client = bound(second)
    try:
        ids2 = {client.submit().message_id for _ in range(5)}
    finally:
        client.close()
    assert len(ids) == 5 and len(ids2) == 5 and not ids & ids2


def test_account_throughput_limit_throttles_and_recovers(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(accounts=[{"system_id": "esme1", "password": "secret1", "route": "sim", "throughput": 2}])
    assert bridge.bridge is not None and isinstance(bridge.bridge.cluster, LocalCluster)
    clock = Clock()
    bridge.bridge.cluster.clock = clock  # the bucket's time moves only when the test moves it
    client = bound(bridge)

    def statuses(count: int) -> list[int]:
        return [client.submit(registered_delivery=0).status for _ in range(count)]

    try:
        # 2/s: a burst of one second's worth, then throttled while no time passes.
        assert statuses(5) == [Status.ESME_ROK] * 2 + [Status.ESME_RTHROTTLED] * 3
        assert client.send("enquire_link").status == Status.ESME_ROK  # the session itself is not slowed
        clock.now += 0.5  # one token back
        assert statuses(2) == [Status.ESME_ROK, Status.ESME_RTHROTTLED]
        clock.now += 60  # a long pause refills only the burst
        assert statuses(3) == [Status.ESME_ROK] * 2 + [Status.ESME_RTHROTTLED]
    finally:
        client.close()


def test_query_sm_reports_the_state(esme: Esme) -> None:
    message_id = esme.submit().message_id
    esme.wait_receipts(1)
    resp = esme.send(
        "query_sm", message_id=message_id.decode(), source_addr_ton=1, source_addr_npi=1, source_addr="12345"
    )
    assert resp.status == Status.ESME_ROK
    assert resp.message_state == 2
    assert resp.message_id == message_id
    unknown = esme.send("query_sm", message_id="12", source_addr="12345")
    assert unknown.status == Status.ESME_RQUERYFAIL


def test_cancel_and_replace_say_not_possible(esme: Esme) -> None:
    message_id = esme.submit().message_id.decode()
    cancel = esme.exchange(CancelSm(900001, message_id=message_id, source_addr="12345", destination_addr="4917012345"))
    assert (cancel.command, cancel.status) == (Command.CANCEL_SM_RESP, Status.ESME_RCANCELFAIL)
    replace = esme.exchange(ReplaceSm(900002, message_id=message_id, source_addr="12345", short_message=b"x"))
    assert (replace.command, replace.status) == (Command.REPLACE_SM_RESP, Status.ESME_RREPLACEFAIL)


def test_submit_multi_sends_each_destination_and_lists_failures(recording: tuple[RunningBridge, Path]) -> None:
    bridge, record = recording
    client = bound(bridge)
    dests: list[SmeAddress | DistributionList] = [
        SmeAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="4917011111"),
        SmeAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="9990000000"),
        DistributionList(dl_name="friends"),
        SmeAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="4917022222"),
    ]
    try:
        resp = client.exchange(
            SubmitMulti(
                900003,
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr="12345",
                dest_addresses=dests,
                registered_delivery=1,
                data_coding=0,
                short_message=b"to many",
            )
        )
        assert isinstance(resp, SubmitMultiResp)
        assert resp.status == Status.ESME_ROK
        message_id = resp.message_id
        failures = {u.destination_addr: u.error_status_code for u in resp.unsuccess_smes}
        assert failures == {"9990000000": Status.ESME_RINVDSTADR, "friends": Status.ESME_RINVDLNAME}
        assert sorted(row["to"] for row in simulator_records(record)) == ["4917011111", "4917022222"]
        receipts = client.wait_receipts(2)
        assert {r["id"] for r in receipts} == {message_id}
    finally:
        client.close()


def test_data_sm_is_sent_like_submit_sm(recording: tuple[RunningBridge, Path]) -> None:
    bridge, record = recording
    client = bound(bridge)
    try:
        resp = client.send(
            "data_sm",
            source_addr="12345",
            dest_addr_ton=1,
            destination_addr="4917012345",
            data_coding=0,
            registered_delivery=1,
            message_payload=b"payload text",
        )
        assert resp.status == Status.ESME_ROK
        assert simulator_records(record)[0]["text"] == "payload text"
        [receipt] = client.wait_receipts(1)
        assert receipt["id"] == resp.message_id.decode()
    finally:
        client.close()


def test_long_gsm_text_split_by_smpplib_arrives_whole(recording: tuple[RunningBridge, Path]) -> None:
    bridge, record = recording
    client = bound(bridge)
    text = "Long message with € signs " * 12
    parts, data_coding, esm_class = smpplib.gsm.make_parts(text)
    try:
        ids = [client.submit(text=part, data_coding=data_coding, esm_class=esm_class).message_id for part in parts]
        assert len(parts) >= 2 and len(set(ids)) == len(parts)
        [row] = simulator_records(record)
        assert row["text"] == text
        receipts = client.wait_receipts(len(parts))
        assert sorted(r["id"] for r in receipts) == sorted(i.decode() for i in ids)
    finally:
        client.close()
