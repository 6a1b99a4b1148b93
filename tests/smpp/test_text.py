"""Text codecs (testing level 1): the DCS table against 3GPP TS 23.038 section 4 and
SMPP v3.4 5.2.19, GSM 03.38 against the `gsm0338` package, UCS-2, Latin-1, ASCII."""

from __future__ import annotations

import codecs

import gsm0338  # noqa: F401  (registers the 'gsm03.38' codec)
import pytest
from gsm0338.charset import BASIC_CHARACTER_SET_EXTENSION

from bridge.smpp.constants import Status
from bridge.smpp.text import (
    DCS_TABLE,
    ESCAPE,
    FLASH_DATA_CODINGS,
    GSM_BASIC,
    GSM_EXTENSION,
    Charset,
    Coding,
    TextError,
    coding_of,
    decode_text,
    encode_text,
    gsm_decode,
    gsm_encode,
    gsm_septets,
    is_gsm,
    sms_parts,
)

# SMPP v3.4 5.2.19: data_coding 0x00-0x0F.
SMPP_CODINGS = {
    0x00: Charset.DEFAULT,  # SMSC default alphabet
    0x01: Charset.ASCII,  # IA5 (CCITT T.50) / ASCII (ANSI X3.4)
    0x02: Charset.BINARY,  # octet unspecified (8-bit binary)
    0x03: Charset.LATIN1,  # ISO-8859-1
    0x04: Charset.BINARY,  # octet unspecified (8-bit binary)
    0x05: Charset.UNSUPPORTED,  # JIS (X 0208-1990)
    0x06: Charset.CYRILLIC,  # ISO-8859-5
    0x07: Charset.HEBREW,  # ISO-8859-8
    0x08: Charset.UCS2,  # UCS2 (ISO/IEC-10646)
    0x09: Charset.UNSUPPORTED,  # pictogram encoding
    0x0A: Charset.UNSUPPORTED,  # ISO-2022-JP (music codes)
    0x0B: Charset.UNSUPPORTED,  # reserved
    0x0C: Charset.UNSUPPORTED,  # reserved
    0x0D: Charset.UNSUPPORTED,  # extended Kanji JIS (X 0212-1990)
    0x0E: Charset.UNSUPPORTED,  # KS C 5601
    0x0F: Charset.UNSUPPORTED,  # reserved
}
# 23.038 alphabet bits 3..2: GSM 7-bit default, 8-bit data, UCS2, reserved. 8-bit data
# is binary: refused, never sent on as Latin-1 text (issue 14).
ALPHABET = {0: Charset.GSM0338, 1: Charset.BINARY, 2: Charset.UCS2, 3: Charset.UNSUPPORTED}


def expected_coding(dcs: int) -> tuple[Charset, int | None]:
    """(charset, message class) for one data_coding value, from the two specs."""
    if dcs <= 0x0F:
        return SMPP_CODINGS[dcs], None
    if dcs <= 0x7F:  # 00xx xxxx general data coding, 01xx xxxx automatic deletion
        compressed = bool(dcs & 0b0010_0000)
        has_class = bool(dcs & 0b0001_0000)
        if compressed:
            return Charset.UNSUPPORTED, None
        return ALPHABET[(dcs >> 2) & 0b11], (dcs & 0b11) if has_class else None
    if dcs <= 0xBF:  # 1000..1011: reserved coding groups
        return Charset.UNSUPPORTED, None
    if dcs <= 0xDF:  # 1100 discard / 1101 store message: message waiting, GSM 7-bit
        return Charset.GSM0338, None
    if dcs <= 0xEF:  # 1110 store message: message waiting, UCS2
        return Charset.UCS2, None
    # 1111: data coding / message class; bit 3 reserved (must be 0), bit 2 alphabet
    if dcs & 0b1000:
        return Charset.UNSUPPORTED, None
    return (Charset.BINARY if dcs & 0b100 else Charset.GSM0338), dcs & 0b11


@pytest.mark.parametrize("dcs", range(256), ids=lambda d: f"0x{d:02X}")
def test_dcs_table_row(dcs: int) -> None:
    charset, message_class = expected_coding(dcs)
    assert DCS_TABLE[dcs] == Coding(charset, message_class)
    assert coding_of(dcs) is DCS_TABLE[dcs]


def test_dcs_table_has_every_value() -> None:
    assert len(DCS_TABLE) == 256


def test_flash_is_exactly_message_class_0() -> None:
    class_0 = {dcs for dcs in range(256) if expected_coding(dcs)[1] == 0}
    assert class_0 >= {0x10, 0x14, 0x18, 0x50, 0x54, 0x58, 0xF0, 0xF4}
    assert set(FLASH_DATA_CODINGS) == class_0
    assert {dcs for dcs in range(256) if coding_of(dcs).is_flash} == class_0
    for dcs in (0x00, 0x08, 0x11, 0x12, 0x13, 0xF1, 0xF5, 0xC0, 0x40):
        assert not coding_of(dcs).is_flash


@pytest.mark.parametrize(
    ("dcs", "charset", "flash"),
    [
        (0x10, Charset.GSM0338, True),  # Kannel mclass=0 with coding=0 elsewhere
        (0xF0, Charset.GSM0338, True),  # Kannel mclass=0
        (0x18, Charset.UCS2, True),  # Kannel mclass=0 coding=2
        (0xF4, Charset.BINARY, True),  # 8-bit data, class 0: refused
        (0x14, Charset.BINARY, True),
        (0x11, Charset.GSM0338, False),
        (0xF1, Charset.GSM0338, False),
        (0x08, Charset.UCS2, False),
    ],
)
def test_well_known_data_codings(dcs: int, charset: Charset, flash: bool) -> None:
    assert coding_of(dcs).charset is charset
    assert coding_of(dcs).is_flash is flash


def test_coding_of_uses_the_low_octet() -> None:
    assert coding_of(0x1F0) is DCS_TABLE[0xF0]


# -- GSM 03.38 against the gsm0338 package -----------------------------------------


@pytest.mark.parametrize("code", [c for c in range(128) if c != ESCAPE], ids=lambda c: f"0x{c:02X}")
def test_gsm_basic_table_character(code: int) -> None:
    reference = codecs.decode(bytes((code,)), "gsm03.38")
    assert GSM_BASIC[code] == reference
    assert gsm_decode(bytes((code,))) == reference
    assert gsm_encode(reference) == codecs.encode(reference, "gsm03.38") == bytes((code,))


@pytest.mark.parametrize("code", sorted(BASIC_CHARACTER_SET_EXTENSION), ids=lambda c: f"0x{c:02X}")
def test_gsm_extension_table_character(code: int) -> None:
    reference = codecs.decode(bytes((ESCAPE, code)), "gsm03.38")
    assert GSM_EXTENSION[code] == reference
    assert gsm_decode(bytes((ESCAPE, code))) == reference
    assert gsm_encode(reference) == codecs.encode(reference, "gsm03.38") == bytes((ESCAPE, code))


def test_gsm_extension_table_has_exactly_the_reference_codes() -> None:
    assert set(GSM_EXTENSION) == set(BASIC_CHARACTER_SET_EXTENSION)


def test_gsm_whole_alphabet_round_trip_matches_reference() -> None:
    text = "".join(c for c in GSM_BASIC if c != "\x1b") + "".join(GSM_EXTENSION.values())
    encoded = gsm_encode(text)
    assert encoded == codecs.encode(text, "gsm03.38")
    assert gsm_decode(encoded) == codecs.decode(encoded, "gsm03.38") == text


@pytest.mark.parametrize(
    "encoded",
    [
        b"Your code is 123456. Do not share it!",  # each octet its ASCII character (the fast way)
        b"line one\r\nline (two) = 'x' + \"y\"; 50% & more?",
        b"a@b",  # 0x40 is not "@" in GSM
        b"price 5\x02 for \x00home_",  # differ from ASCII: $ (0x02), @ (0x00)
        b"{curly}",  # 0x7B 0x7D: GSM letters with diaeresis
    ],
)
def test_gsm_text_decodes_as_the_reference_does(encoded: bytes) -> None:
    assert gsm_decode(encoded) == codecs.decode(encoded, "gsm03.38")


def test_dangling_final_escape_is_dropped() -> None:
    assert gsm_decode(b"abc\x1b") == "abc"
    assert gsm_decode(b"\x1b") == ""


def test_escape_escape_is_shown_as_a_space() -> None:
    assert gsm_decode(b"a\x1b\x1bb") == "a b"


@pytest.mark.parametrize("code", [c for c in range(128) if c not in GSM_EXTENSION and c != ESCAPE])
def test_escape_before_a_code_without_extension_gives_the_basic_character(code: int) -> None:
    assert gsm_decode(bytes((ESCAPE, code))) == GSM_BASIC[code]


@pytest.mark.parametrize("data", [b"\x80", b"abc\xff", b"\x1b\x80", b"\x1b\xe5"])
def test_octets_above_0x7f_are_refused(data: bytes) -> None:
    with pytest.raises(TextError) as info:
        gsm_decode(data)
    assert info.value.status is Status.ESME_RINVDCS


def test_gsm_decode_mixed_text() -> None:
    data = b"Price: \x1be5 \x02 \x00 [\x1b<x\x1b>] \x0a\x0d"
    # 0x5B and 0x5D are Ä and Ñ in the basic table; [ and ] need the escape
    assert gsm_decode(data) == "Price: €5 $ @ Ä[x]Ñ \n\r"


def test_gsm_encode() -> None:
    assert gsm_encode("") == b""
    assert gsm_encode("@£$") == b"\x00\x01\x02"
    assert gsm_encode("{€}") == b"\x1b\x28\x1b\x65\x1b\x29"
    assert gsm_encode("\x0c") == b"\x1b\x0a"


@pytest.mark.parametrize("text", ["ç", "á", "\x1b", "👋", "Ж", "`"])
def test_gsm_encode_refuses_characters_outside_the_alphabet(text: str) -> None:
    with pytest.raises(TextError) as info:
        gsm_encode("ok " + text)
    assert info.value.status is Status.ESME_RINVDCS
    assert gsm_septets(text) is None
    assert not is_gsm(text)


def test_gsm_septets_counts_escapes_twice() -> None:
    assert gsm_septets("") == 0
    assert gsm_septets("hello") == 5
    assert gsm_septets("€") == 2
    assert gsm_septets("[a]") == 5
    assert gsm_septets("a" * 160) == 160
    assert is_gsm("Grüße")


# -- SMS parts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # escapes cost two septets: 160
        ("€" * 81, 2),
        ("ж" * 70, 1),  # not GSM: UCS-2
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        ("a" * 69 + "ж", 1),  # one character outside GSM makes the whole text UCS-2
        ("a" * 70 + "ж", 2),
        ("😀" * 35, 1),  # surrogate pairs: two UCS-2 units each
        ("😀" * 36, 2),
    ],
)
def test_sms_parts(text: str, parts: int) -> None:
    assert sms_parts(text) == parts


# -- other charsets ------------------------------------------------------------------


def test_ucs2_with_surrogate_pairs_is_decoded() -> None:
    text = "Hola 👋 مرحبا 你好"
    assert decode_text(text.encode("utf-16-be"), Charset.UCS2) == text
    assert decode_text(b"\xd8\x3d\xde\x00", Charset.UCS2) == "😀"


@pytest.mark.parametrize("data", [b"\xd8\x3d", b"\x00a\xdc\x00", b"\xd8\x3d\x00a"])
def test_ucs2_lone_surrogate_is_refused(data: bytes) -> None:
    with pytest.raises(TextError) as info:
        decode_text(data, Charset.UCS2)
    assert info.value.status is Status.ESME_RINVDCS


def test_ucs2_odd_length_is_refused() -> None:
    with pytest.raises(TextError) as info:
        decode_text(b"\x00a\x00", Charset.UCS2)
    assert info.value.status is Status.ESME_RINVMSGLEN


def test_latin1_decodes_every_octet() -> None:
    data = bytes(range(256))
    assert decode_text(data, Charset.LATIN1) == data.decode("latin-1")
    assert decode_text("Café".encode("latin-1"), Charset.LATIN1) == "Café"


def test_ascii() -> None:
    assert decode_text(b"plain text 123", Charset.ASCII) == "plain text 123"
    with pytest.raises(TextError) as info:
        decode_text("Café".encode("latin-1"), Charset.ASCII)
    assert info.value.status is Status.ESME_RINVDCS


def test_cyrillic_and_hebrew() -> None:
    assert decode_text("Привет".encode("iso8859_5"), Charset.CYRILLIC) == "Привет"
    assert decode_text("שלום".encode("iso8859_8"), Charset.HEBREW) == "שלום"
    with pytest.raises(TextError) as info:
        decode_text(b"\xa1", Charset.HEBREW)  # not assigned in ISO-8859-8
    assert info.value.status is Status.ESME_RINVDCS


@pytest.mark.parametrize("charset", [Charset.BINARY, Charset.UNSUPPORTED, Charset.DEFAULT])
def test_binary_and_unsupported_are_refused_clearly(charset: Charset) -> None:
    with pytest.raises(TextError) as info:
        decode_text(b"\x01\x02hello", charset)
    assert info.value.status is Status.ESME_RINVDCS
    assert info.value.reason
    assert str(info.value) == info.value.reason


def test_binary_refusal_says_so() -> None:
    with pytest.raises(TextError, match="binary"):
        decode_text(b"\x00", Charset.BINARY)


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        (Charset.GSM0338, "Hi {there} €"),
        (Charset.UCS2, "Hola 👋"),
        (Charset.ASCII, "plain"),
        (Charset.LATIN1, "Café"),
        (Charset.CYRILLIC, "Привет"),
        (Charset.HEBREW, "שלום"),
    ],
)
def test_encode_text_round_trips(charset: Charset, text: str) -> None:
    assert decode_text(encode_text(text, charset), charset) == text


def test_encode_text_gsm_refuses_with_text_error() -> None:
    with pytest.raises(TextError):
        encode_text("ç", Charset.GSM0338)
