"""The GSM 03.38 default alphabet as the provider doubles count it.

Written out here from 3GPP TS 23.038 §6.2.1 (the default alphabet table and its
extension table) rather than imported from `bridge.smpp.text`: a double that shared
the product's character rules could not catch a mistake in them (a text the product
wrongly thinks is GSM would pass both sides). `tests/simulators/test_gsm.py` checks the
two writings agree character by character.
"""

from __future__ import annotations

# TS 23.038 §6.2.1, the 128 positions 0x00-0x7F in order (0x1B is the escape to the
# extension table, never a character of its own; written here as a space placeholder
# that BASIC excludes below).
_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"  # 0x10-0x1F
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50-0x5F
    "¿abcdefghijklmno"  # 0x60-0x6F
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)
assert len(_TABLE) == 128
BASIC = frozenset(_TABLE) - {"\x1b"}
# §6.2.1.1, the extension table: each costs the escape and itself, two septets.
EXTENSION = frozenset("\f^{}\\[~]|€")

# One SMS is 140 octets: 160 septets or 70 UCS-2 units; a part of a longer text loses
# 6 octets to its concatenation header (TS 23.040 §9.2.3.24.1).
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def septets(text: str) -> int | None:
    """Septets `text` takes in the default alphabet; None when it cannot be written in it."""
    count = 0
    for char in text:
        if char in BASIC:
            count += 1
        elif char in EXTENSION:
            count += 2
        else:
            return None
    return count


def is_gsm(text: str) -> bool:
    return septets(text) is not None


def sms_parts(text: str) -> int:
    """Parts an SMSC sends `text` in: septets when it is GSM, else UTF-16 units."""
    size = septets(text)
    if size is not None:
        return 1 if size <= GSM_SINGLE else -(-size // GSM_PART)
    units = len(text.encode("utf-16-be")) // 2
    return 1 if units <= UCS2_SINGLE else -(-units // UCS2_PART)
