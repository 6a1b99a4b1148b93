"""Concatenated messages: UDH (8/16-bit), SAR, message_payload, timeouts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.smpp.constants import Status
from tests.support.esme import Esme
from tests.support.records import simulator_texts
from tests.support.running import RunningBridge


@pytest.fixture
def setup(start_bridge: Callable[..., RunningBridge], tmp_path: Path) -> Iterator[tuple[Esme, Path]]:
    record = tmp_path / "sim.jsonl"
    bridge = start_bridge(
        smpp={"reassembly_timeout": 0.4},
        providers={"sim": {"type": "simulator", "delivery_delay": 0.05, "record_path": str(record)}},
    )
    client = Esme(bridge.smpp_port)
    assert client.bind().status == Status.ESME_ROK
    yield client, record
    client.close()


def udh8(ref: int, total: int, index: int) -> bytes:
    return bytes((5, 0x00, 3, ref, total, index))


def udh16(ref: int, total: int, index: int) -> bytes:
    return bytes((6, 0x08, 4, ref >> 8, ref & 0xFF, total, index))


def test_three_part_udh_message_is_sent_once_whole(setup: tuple[Esme, Path]) -> None:
    client, record = setup
    chunks = [b"A" * 153, b"B" * 153, b"C" * 10]
    ids = []
    for i, chunk in enumerate(chunks, 1):
        resp = client.submit(text=udh8(0x42, 3, i) + chunk, esm_class=0x40)
        assert resp.status == Status.ESME_ROK
        ids.append(resp.message_id.decode())
    assert len(set(ids)) == 3
    assert simulator_texts(record) == ["A" * 153 + "B" * 153 + "C" * 10]
    receipts = client.wait_receipts(3)
    assert sorted(r["id"] for r in receipts) == sorted(ids)
    assert {r["stat"] for r in receipts} == {"DELIVRD"}


def test_segments_may_arrive_out_of_order_with_16bit_reference(setup: tuple[Esme, Path]) -> None:
    client, record = setup
    for i in (2, 3, 1):
        assert client.submit(text=udh16(0x1234, 3, i) + f"<{i}>".encode(), esm_class=0x40).status == 0
    assert simulator_texts(record) == ["<1><2><3>"]


def test_sar_segments(setup: tuple[Esme, Path]) -> None:
    client, record = setup
    for i, chunk in enumerate([b"first ", b"second"], 1):
        resp = client.submit(text=chunk, sar_msg_ref_num=7, sar_total_segments=2, sar_segment_seqnum=i)
        assert resp.status == Status.ESME_ROK
    assert simulator_texts(record) == ["first second"]
    assert len(client.wait_receipts(2)) == 2


def test_ucs2_emoji_split_between_segments_is_rejoined(setup: tuple[Esme, Path]) -> None:
    client, record = setup
    data = "ab😀cd".encode("utf-16-be")  # the emoji's surrogate pair straddles the cut
    cut = 6
    client.submit(text=udh8(9, 2, 1) + data[:cut], esm_class=0x40, data_coding=8)
    client.submit(text=udh8(9, 2, 2) + data[cut:], esm_class=0x40, data_coding=8)
    assert simulator_texts(record) == ["ab😀cd"]


def test_gsm_escape_split_between_segments_is_rejoined(setup: tuple[Esme, Path]) -> None:
    client, record = setup
    client.submit(text=udh8(3, 2, 1) + b"price 5\x1b", esm_class=0x40)
    client.submit(text=udh8(3, 2, 2) + b"e", esm_class=0x40)
    assert simulator_texts(record) == ["price 5€"]


def test_message_payload_carries_a_long_text(setup: tuple[Esme, Path]) -> None:
    client, record = setup
    long_text = b"x" * 500
    resp = client.submit(text=b"", message_payload=long_text)
    assert resp.status == Status.ESME_ROK
    assert simulator_texts(record) == ["x" * 500]


def test_incomplete_set_times_out_with_a_failure_receipt(setup: tuple[Esme, Path]) -> None:
    client, record = setup
    resp = client.submit(text=udh8(77, 3, 1) + b"only the first part", esm_class=0x40)
    assert resp.status == Status.ESME_ROK
    [receipt] = client.wait_receipts(1)
    assert receipt["id"] == resp.message_id.decode()
    assert receipt["stat"] == "UNDELIV"
    assert simulator_texts(record) == []


def test_malformed_udh_is_refused(setup: tuple[Esme, Path]) -> None:
    client, _ = setup
    assert client.submit(text=bytes((9, 0, 3, 1)), esm_class=0x40).status == Status.ESME_RINVMSGLEN
    assert client.submit(text=udh8(1, 2, 3) + b"x", esm_class=0x40).status == Status.ESME_RINVESMCLASS
