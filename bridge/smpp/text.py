"""Text in SMPP: data_coding (DCS) -> charset and message class, and the charsets.

The DCS rules are one table (`DCS_TABLE`, all 256 values) built from SMPP v3.4
5.2.19 (0x00-0x0F) and 3GPP TS 23.038 section 4 (the GSM coding groups). Message
class 0 is "flash" (shown at once, not stored by the handset).

GSM 03.38 is ours rather than the `gsm0338` package's: that codec decodes one
character at a time with string concatenation (slow on the per-message path) and
silently drops a dangling escape. The tests check our tables against it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bridge.smpp.constants import Status


class Charset(enum.Enum):
    # Hashed as any object (members are singletons, equal only to themselves):
    # `enum.Enum.__hash__` is Python code, and the charset is looked up per submit.
    __hash__ = object.__hash__

    DEFAULT = "default"  # DCS 0: the SMSC default alphabet, per account
    GSM0338 = "gsm0338"
    ASCII = "ascii"
    LATIN1 = "latin1"
    UCS2 = "ucs2"
    CYRILLIC = "iso8859_5"
    HEBREW = "iso8859_8"
    BINARY = "binary"  # 8-bit data: not text, refused
    UNSUPPORTED = "unsupported"  # compressed, reserved, or a charset we do not carry


@dataclass(frozen=True, slots=True)
class Coding:
    charset: Charset
    message_class: int | None = None

    @property
    def is_flash(self) -> bool:
        return self.message_class == 0


class TextError(Exception):
    """Text that cannot be decoded as declared; `status` is the submit_sm_resp answer."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# -- the DCS table -------------------------------------------------------------------

_SMPP_CODINGS: dict[int, Charset] = {
    0x00: Charset.DEFAULT,
    0x01: Charset.ASCII,
    0x02: Charset.BINARY,
    0x03: Charset.LATIN1,
    0x04: Charset.BINARY,
    0x06: Charset.CYRILLIC,
    0x07: Charset.HEBREW,
    0x08: Charset.UCS2,
}
# Alphabet bits (3-2) of the GSM general coding groups. 8-bit data there is binary
# (23.038 4: "8 bit data"), not Latin-1 text: refused like DCS 0x02/0x04, because an
# HTTP API would send it as text, i.e. something else than was submitted.
_GENERAL_ALPHABET = (Charset.GSM0338, Charset.BINARY, Charset.UCS2, Charset.UNSUPPORTED)


def _coding_for(dcs: int) -> Coding:
    group = dcs & 0xF0
    if dcs < 0x10:
        return Coding(_SMPP_CODINGS.get(dcs, Charset.UNSUPPORTED))
    if group in (0x10, 0x50):
        # General data coding with the class bit set (0x50: "marked for automatic
        # deletion", same layout).
        return Coding(_GENERAL_ALPHABET[(dcs >> 2) & 3], dcs & 3)
    if group == 0x40:
        return Coding(_GENERAL_ALPHABET[(dcs >> 2) & 3])
    if group in (0xC0, 0xD0):  # message waiting indication, GSM 7-bit text
        return Coding(Charset.GSM0338)
    if group == 0xE0:  # message waiting indication, UCS-2 text
        return Coding(Charset.UCS2)
    if group == 0xF0:  # data coding / message class; bit 3 is reserved
        if dcs & 0x08:
            return Coding(Charset.UNSUPPORTED)
        return Coding(Charset.BINARY if dcs & 0x04 else Charset.GSM0338, dcs & 3)
    return Coding(Charset.UNSUPPORTED)  # 0x20-0x3F, 0x60-0x7F compressed; 0x80-0xBF reserved


DCS_TABLE: tuple[Coding, ...] = tuple(_coding_for(dcs) for dcs in range(256))

FLASH_DATA_CODINGS = frozenset(dcs for dcs, coding in enumerate(DCS_TABLE) if coding.is_flash)


def coding_of(data_coding: int) -> Coding:
    return DCS_TABLE[data_coding & 0xFF]


# -- GSM 03.38 (3GPP TS 23.038 6.2.1), unpacked: one septet per octet -------------------

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
ESCAPE = 0x1B
assert len(GSM_BASIC) == 128

_BASIC_DECODE = {code: char for code, char in enumerate(GSM_BASIC)}
_GSM_ENCODE: dict[str, bytes] = {char: bytes((code,)) for code, char in enumerate(GSM_BASIC)}
del _GSM_ENCODE["\x1b"]
_GSM_ENCODE.update({char: bytes((ESCAPE, code)) for code, char in GSM_EXTENSION.items()})
_ESCAPED_DECODE = {code: GSM_EXTENSION.get(code, GSM_BASIC[code]) for code in range(128)}
# 0x1B 0x1B points at a further extension table we do not have: shown as a space.
_ESCAPED_DECODE[ESCAPE] = " "
# The codes whose GSM character is the ASCII one of the same code (letters, digits,
# most punctuation, LF, CR): text of these alone decodes as ASCII, in C, without the
# translation's lookup per character (most submits are such text).
_AS_ASCII = bytes(code for code, char in enumerate(GSM_BASIC) if char == chr(code) and code != ESCAPE)


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM 03.38 -> str. An escape followed by a code with no extension
    character gives the basic character (23.038 6.2.1.1); a dangling final escape
    is dropped. Octets above 0x7F are not GSM 7-bit: TextError."""
    if not data.isascii():
        raise TextError(Status.ESME_RINVDCS, "octet above 0x7F in GSM 7-bit text")
    if not data.translate(None, _AS_ASCII):
        return data.decode("ascii")
    if ESCAPE not in data:
        return data.decode("latin-1").translate(_BASIC_DECODE)
    out: list[str] = []
    i, end = 0, len(data)
    while i < end:
        code = data[i]
        if code == ESCAPE:
            if i + 1 < end:
                out.append(_ESCAPED_DECODE[data[i + 1]])
            i += 2
        else:
            out.append(GSM_BASIC[code])
            i += 1
    return "".join(out)


def gsm_encode(text: str) -> bytes:
    """str -> unpacked GSM 03.38; TextError if a character has no GSM code."""
    try:
        return b"".join([_GSM_ENCODE[char] for char in text])
    except KeyError as exc:
        raise TextError(Status.ESME_RINVDCS, "character not in GSM 03.38") from exc


def gsm_septets(text: str) -> int | None:
    """Septets `text` needs in GSM 03.38 (escapes count 2), or None if it cannot."""
    try:
        return sum(len(_GSM_ENCODE[char]) for char in text)
    except KeyError:
        return None


def is_gsm(text: str) -> bool:
    return gsm_septets(text) is not None


# -- SMS parts (3GPP TS 23.040 9.2.3.24.1): what a text costs ------------------------

# One SMS carries 140 octets: 160 GSM septets or 70 UCS-2 units; a part of a longer
# text loses 6 octets to its concatenation UDH (7 septets, 3 units).
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def sms_parts(text: str) -> int:
    """SMS parts `text` needs: GSM 03.38 septets (escapes count 2) when it can be GSM,
    otherwise UCS-2 units (a character outside the BMP counts 2)."""
    septets = gsm_septets(text)
    if septets is not None:
        return 1 if septets <= GSM_SINGLE else -(-septets // GSM_PART)
    units = len(text.encode("utf-16-be")) // 2
    return 1 if units <= UCS2_SINGLE else -(-units // UCS2_PART)


# -- decoding by charset -------------------------------------------------------------


def _ucs2_decode(data: bytes) -> str:
    if len(data) % 2:
        raise TextError(Status.ESME_RINVMSGLEN, "UCS-2 text with an odd number of octets")
    return data.decode("utf-16-be")  # surrogate pairs become one character; lone ones fail


_DECODERS = {
    Charset.GSM0338: gsm_decode,
    Charset.ASCII: lambda data: data.decode("ascii"),
    Charset.LATIN1: lambda data: data.decode("latin-1"),
    Charset.UCS2: _ucs2_decode,
    Charset.CYRILLIC: lambda data: data.decode("iso8859_5"),
    Charset.HEBREW: lambda data: data.decode("iso8859_8"),
}


# Octets that are control characters in ASCII but letters in GSM 03.38 (@ £ $ ¥ è …,
# the escape): IA5 text (data_coding 1) holding them was really written in GSM 03.38.
_GSM_ONLY_OCTETS = re.compile(rb"[\x00-\x09\x0b\x0c\x0e-\x1f]")


def ia5_charset(data: bytes, mode: str) -> Charset:
    """The charset of data_coding 1 octets: "ascii", "gsm0338", or "auto" (GSM 03.38
    when GSM-only codes appear, ASCII otherwise; both agree on letters and digits)."""
    if mode == "gsm0338" or (mode == "auto" and _GSM_ONLY_OCTETS.search(data)):
        return Charset.GSM0338
    return Charset.ASCII


def decode_text(data: bytes, charset: Charset) -> str:
    """Bytes in `charset` -> str, or TextError with the status to answer.

    `charset` must already be resolved (DEFAULT replaced by the account's charset)."""
    decoder = _DECODERS.get(charset)
    if decoder is None:
        if charset is Charset.BINARY:
            raise TextError(Status.ESME_RINVDCS, "binary data_coding is not text")
        raise TextError(Status.ESME_RINVDCS, f"data_coding not supported ({charset.value})")
    try:
        return decoder(data)
    except UnicodeDecodeError as exc:
        raise TextError(Status.ESME_RINVDCS, f"invalid {charset.value} text") from exc


def encode_text(text: str, charset: Charset) -> bytes:
    """str -> bytes in `charset` (for deliver_sm receipts and the load generator)."""
    if charset is Charset.GSM0338:
        return gsm_encode(text)
    if charset is Charset.UCS2:
        return text.encode("utf-16-be")
    codec = {Charset.ASCII: "ascii", Charset.LATIN1: "latin-1"}.get(charset, charset.value)
    return text.encode(codec)
