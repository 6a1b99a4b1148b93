"""destination_addr -> canonical international digits (E.164 without `+`).

TON 1 (international): the digits are already country code + national number.
TON 0/2 or other: a leading `+` or `00` marks an international number; anything
else is taken as it is (the simulator and prefix routes see what the ESME sent;
providers with a home country render national numbers themselves).
"""

from __future__ import annotations

TON_INTERNATIONAL = 1
_STRIP = str.maketrans("", "", " -.()/")


def canonical_number(addr: str, ton: int) -> str | None:
    """Digits only, or None when `addr` is not a phone number at all."""
    number = addr.translate(_STRIP)
    if number.startswith("+"):
        number = number[1:]
    elif ton != TON_INTERNATIONAL and number.startswith("00"):
        number = number[2:]
    if not number.isdigit() or not 3 <= len(number) <= 20:
        return None
    return number
