"""The doubles' GSM 03.38 table (bridge/simulators/gsm.py) and the product's
(bridge/smpp/text.py) are two independent writings of TS 23.038 §6.2.1: they must
agree on every character, or one of them is wrong and a double could wave through a
text the product mis-encodes."""

from __future__ import annotations

import sys

from bridge.simulators import gsm
from bridge.smpp.text import gsm_septets, sms_parts


def test_the_doubles_alphabet_is_the_spec_table() -> None:
    # TS 23.038 §6.2.1: 127 characters (128 positions, one the escape) and 10 in the extension
    assert len(gsm.BASIC) == 127 and len(gsm.EXTENSION) == 10
    assert gsm.septets("@£$¥èéùìòÇ") == 10 and gsm.septets("€") == 2 and gsm.septets("`") is None


def test_both_writings_agree_on_every_character() -> None:
    disagree = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and gsm.septets(chr(code)) != gsm_septets(chr(code))
    ]
    assert disagree == []


# (text, parts) from TS 23.040 §9.2.3.24.1: 160 septets or 70 UCS-2 units in one SMS,
# 153 / 67 per part of a longer one; an extension character is 2 septets, an emoji 2 units.
PARTS = [
    ("a" * 160, 1),
    ("a" * 161, 2),
    ("€" * 80, 1),
    ("€" * 81, 2),
    ("a" * 306, 2),
    ("a" * 307, 3),
    ("ж" * 70, 1),
    ("ж" * 71, 2),
    ("😀" * 35, 1),
    ("😀" * 36, 2),
]


def test_both_count_the_parts_the_spec_gives() -> None:
    assert [(gsm.sms_parts(text), sms_parts(text)) for text, _ in PARTS] == [(n, n) for _, n in PARTS]
