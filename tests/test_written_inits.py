"""The dataclasses that write their own `__init__` (compiled with mypyc, a generated one
stays interpreted: bridge/core/message.py): each takes its fields in declaration
order with the declared defaults, so positional construction, copy and pickle (which
rebuild through it) give back the same record. Runs in both modes of the suite
(compiled and SMPP_BRIDGE_PURE=1)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from bridge.core.checks import Parsed
from bridge.core.history import HistoryEvent
from bridge.core.message import Address, Lifecycle, Message, Part, Receipt
from bridge.core.numbers import Number
from bridge.smpp.constants import MessageState
from bridge.smpp.pdu import DataSmResp, DeliverSm, DeliverSmResp, SubmitSm, SubmitSmResp
from bridge.smpp.session import RequestReceived
from bridge.smpp.text import Charset
from bridge.smpp.udh import Segment

A, B = Address(1, 2, "a"), Address(3, 4, "b")
SUBMIT = (7, 0x45, {0x0424: b"x"}, "CMT", 1, 2, "src", 3, 4, "dst", 0x40, 3, 2, "s1", "v1", 1, 1, 8, 5, b"hi")
ID_RESP = (7, 0x45, {0x001E: b"y"}, "abc")
# Each class's fields in declaration order, every value unlike its default (written
# out: a compiled class keeps no field types to derive them from).
SAMPLES: dict[type, tuple[Any, ...]] = {
    Address: (1, 2, "a"),
    Number: ("491701", False),
    RequestReceived: (SubmitSm(*SUBMIT),),
    Part: (5, 1, 1.5, "pre", "hex"),
    Message: (
        *(1, "s", A, B, Number("491701", False), "t", True, [Part(1, 1, 1.5, "p", "hex")], ["x", "y"], "stored"),
        *(1.5, Lifecycle.FINAL, "prov", ["i1"], MessageState.DELIVERED, 7, 3, 2.5, 3.5, 4.5, 2, "s9"),
    ),
    Receipt: ("s", 5, MessageState.UNDELIVERABLE, 9, 1.5, 2.5, "pre", A, B, "prov", "1:5:2", 4, 6.5, "hex"),
    HistoryEvent: (5, 1.5, "received", {"session": "c1"}),
    Parsed: (A, b"hi", Segment(9, 2, 1, "udh8"), 8, Charset.UCS2, True, 1),
    SubmitSm: SUBMIT,
    DeliverSm: SUBMIT,
    SubmitSmResp: ID_RESP,
    DeliverSmResp: ID_RESP,
    DataSmResp: ID_RESP,
}
RECORDS = [Address, Part, Message, Receipt, HistoryEvent]


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_positional_arguments_are_the_fields_in_order(cls: type) -> None:
    fields = dataclasses.fields(cls)
    values = SAMPLES[cls]
    assert len(values) == len(fields)
    record = cls(*values)
    assert [getattr(record, f.name) for f in fields] == list(values)
    assert all(getattr(record, f.name) != f.default for f in fields if f.default is not dataclasses.MISSING)


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_keyword_arguments_and_defaults_are_the_declared_ones(cls: type) -> None:
    fields = dataclasses.fields(cls)
    factories = [(f, f.default_factory) for f in fields if f.default_factory is not dataclasses.MISSING]
    required = {
        f.name: value
        for f, value in zip(fields, SAMPLES[cls], strict=True)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    record, other = cls(**required), cls(**required)
    for f in fields:
        if f.name in required:
            assert getattr(record, f.name) == required[f.name]
        elif f.default is not dataclasses.MISSING:
            assert getattr(record, f.name) == f.default, f.name
    for f, factory in factories:  # a new one each time
        assert getattr(record, f.name) == factory()
        assert getattr(record, f.name) is not getattr(other, f.name)


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_copies_and_pickles_are_equal_records(cls: type) -> None:
    record = cls(*SAMPLES[cls])
    for twin in (copy.copy(record), copy.deepcopy(record), pickle.loads(pickle.dumps(record))):
        assert twin == record and twin is not record
    deep = copy.deepcopy(record)
    mutable = [f.name for f in dataclasses.fields(cls) if isinstance(getattr(record, f.name), (list, dict))]
    assert all(getattr(deep, name) is not getattr(record, name) for name in mutable)


def test_a_number_copies_and_pickles() -> None:
    for number in (Number("4917012345678"), Number("0241234567", international=False)):
        for twin in (copy.copy(number), copy.deepcopy(number), pickle.loads(pickle.dumps(number))):
            assert twin == number and hash(twin) == hash(number)
