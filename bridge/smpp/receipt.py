"""Delivery receipt text (SMPP v3.4 Appendix B), as every client we tried accepts it.

`id:<id> sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD
err:000 text:<first 20 characters>` with 10-digit dates in UTC and a `text:` that
is plain ASCII without the characters GSM 03.38 maps elsewhere (`@ $ _ [ ] { } \\ ^
~ |`), so that it reads the same in ASCII and in the GSM default alphabet.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from bridge.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT, Command, MessageState, Tag
from bridge.smpp.pdu import EncodedRequest, tlv

TEXT_CHARS = 20
# `err:` has three digits: a code above 999 is reported as 999 ("see network_error_code",
# which carries it in two octets, 65535 at most), never as another code (1234 -> 234).
ERR_MAX = 999
NETWORK_ERROR_MAX = 0xFFFF
_UNSAFE = set("@$_[]{}\\^~|`")
_SAFE = frozenset(chr(code) for code in range(0x20, 0x7F) if chr(code) not in _UNSAFE)
_UNSAFE_ASCII = str.maketrans({chr(code): "?" for code in range(0x80) if chr(code) not in _SAFE})


@lru_cache(maxsize=4)
def _minute(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%y%m%d%H%M")


def receipt_date(timestamp: float) -> str:
    """YYMMDDhhmm in UTC (cached per minute: every receipt formats two)."""
    return _minute(int(timestamp // 60))


def ascii_safe(text: str, limit: int = TEXT_CHARS) -> str:
    """The first `limit` characters, with anything outside the safe ASCII set as `?`."""
    head = text[:limit]
    if _SAFE.issuperset(head):  # the common case (a preview was made safe at intake)
        return head
    if not head.isascii():
        head = "".join(char if char.isascii() else "?" for char in head)
    return head.translate(_UNSAFE_ASCII)


# The fixed pieces of the text, made once rather than formatted for every receipt.
_DLVRD = {state: f"sub:001 dlvrd:{1 if state is MessageState.DELIVERED else 0:03d} " for state in MessageState}
_STAT = {state: f"stat:{state.stat} " for state in MessageState}
_ERR = [f"err:{error:03d} text:" for error in range(ERR_MAX + 1)]


def format_receipt(
    message_id: str,
    state: MessageState,
    submitted_at: float,
    done_at: float,
    error: int = 0,
    text: str = "",
) -> str:
    return (
        f"id:{message_id} {_DLVRD[state]}submit date:{receipt_date(submitted_at)} done date:{receipt_date(done_at)} "
        f"{_STAT[state]}{_ERR[error] if 0 <= error <= ERR_MAX else f'err:{min(error, ERR_MAX):03d} text:'}"
        f"{ascii_safe(text)}"
    )


# The deliver_sm body after esm_class, all empty or zero for a receipt: protocol_id,
# priority_flag, schedule_delivery_time "", validity_period "", registered_delivery,
# replace_if_present_flag, data_coding (0: the default alphabet; the text is ASCII-safe),
# sm_default_msg_id.
_AFTER_ESM_CLASS = bytes(8)
_MESSAGE_STATE_TLVS = {state: tlv(Tag.MESSAGE_STATE, bytes((state,))) for state in MessageState}


def receipt_deliver_sm(
    message_id: str,
    state: MessageState,
    submitted_at: float,
    done_at: float,
    error: int,
    text: str,
    source: tuple[int, int, str],
    destination: tuple[int, int, str],
    esm_class: int = ESM_CLASS_DELIVERY_RECEIPT,
) -> EncodedRequest:
    """The deliver_sm of a receipt, encoded (the session numbers it): one is made for
    every message, so its bytes are written directly rather than through a DeliverSm
    and `encode_pdu`. `source` is the handset (the original destination),
    `destination` the ESME's original source address (each cut to the field's 20
    characters); `esm_class` 0x04 (delivery receipt) or, for an intermediate state,
    0x20 if the account asks. TLVs: receipted_message_id, message_state and, for an
    error, network_error_code."""
    short_message = format_receipt(message_id, state, submitted_at, done_at, error, text).encode("ascii")
    body = b"".join(
        (
            b"\x00",  # service_type ""
            bytes((source[0], source[1])),
            source[2][:20].encode("latin-1"),
            b"\x00",
            bytes((destination[0], destination[1])),
            destination[2][:20].encode("latin-1"),
            b"\x00",
            bytes((esm_class,)),
            _AFTER_ESM_CLASS,
            bytes((len(short_message),)),
            short_message,
        )
    )
    tlvs = tlv(Tag.RECEIPTED_MESSAGE_ID, message_id.encode("ascii") + b"\x00") + _MESSAGE_STATE_TLVS[state]
    if error:
        # network_error_code: type 3 (GSM), then the error in two octets.
        tlvs += tlv(Tag.NETWORK_ERROR_CODE, bytes((3,)) + min(error, NETWORK_ERROR_MAX).to_bytes(2, "big"))
    return EncodedRequest(Command.DELIVER_SM, body, tlvs)


_RECEIPT = re.compile(
    r"id:(?P<id>\S+) sub:(?P<sub>\d+) dlvrd:(?P<dlvrd>\d+) submit date:(?P<submit>\d{10,12}) "
    r"done date:(?P<done>\d{10,12}) stat:(?P<stat>\w+) err:(?P<err>\w+)(?: [Tt]ext:(?P<text>.*))?",
    re.DOTALL,
)


def parse_receipt(text: str) -> dict[str, str] | None:
    """The fields of a receipt text, or None. For tests and the load generator."""
    match = _RECEIPT.match(text)
    return match.groupdict() if match else None
