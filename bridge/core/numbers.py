"""Destination numbers: (destination_addr, dest_addr_ton) -> E.164, once, at submit.

Built on `phonenumbers` (Google's libphonenumber): numbering plans, trunk prefixes
and validity are its business, not hand-written rules of ours.

- TON 1 (international): the digits are country code + national number. They are
  taken as they are, without a numbering-plan check (the ESME said what they are,
  and test or newly opened ranges must not bounce): ASCII digits only, 7 to 15 of
  them (E.164), not starting with 0; a `+` or `00` in front is tolerated.
- TON 2 (national): a number as dialled inside the account's `default_country`
  (trunk prefix and all: GB `07…`, GH `024…`), valid there per libphonenumber.
  Without `default_country` the digits stay national, country unknown: never a
  guessed country.
- TON 0 (unknown): a leading `+` or `00` is international (as TON 1); otherwise a
  number valid as international is international; otherwise a number valid as
  national in `default_country` is national. Without `default_country` it stays
  national, country unknown; with it, anything else is refused. An account may
  turn the order round (`ton0_reading = "national"`): a TON 0 number valid both
  ways is then national (many are: MX `6621234567` is also Bangkok's +66 2123 4567).
- TON 3-6 (network specific, subscriber, alphanumeric, abbreviated) and reserved
  values: a short code or a name cannot be written in E.164, so they are refused.

With TON 0, 1 or 2 a `+` in front is international: it cannot mean anything else.
Refused numbers are answered ESME_RINVDSTADR by the pipeline. NPI is not looked at.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

TON_UNKNOWN = 0
TON_INTERNATIONAL = 1
TON_NATIONAL = 2
E164_DIGITS = range(7, 16)  # country code + national number; the shortest plans (Niue, St Helena) have 7
NATIONAL_DIGITS = range(4, 16)  # a national number of unknown country, trunk prefix included
_SEPARATORS = str.maketrans("", "", " -.()/")


@dataclass(frozen=True, slots=True)
class Number:
    """A normalised destination. `international`: `digits` are E.164 (country code
    first, no `+`). Otherwise national digits, as sent, of a country nobody told us."""

    digits: str
    international: bool = True

    def __init__(self, digits: str, international: bool = True) -> None:
        # Written out (bridge/core/message.py): compiled, the generated one stays
        # interpreted, and one is made per submit. Frozen: set as the generated one does.
        object.__setattr__(self, "digits", digits)
        object.__setattr__(self, "international", international)

    @property
    def e164(self) -> str | None:
        return "+" + self.digits if self.international else None

    def __reduce__(self) -> tuple[type[Number], tuple[str, bool]]:
        # copy and pickle through the constructor: compiled (bridge/native.py), a
        # frozen class cannot be made empty and filled field by field
        return Number, (self.digits, self.international)


@dataclass(frozen=True, slots=True)
class Unusable:
    """Why a destination_addr is no phone number we can send to (for the log; the
    ESME gets ESME_RINVDSTADR)."""

    reason: str


def normalise(
    addr: str, ton: int, default_country: str | None = None, national_first: bool = False
) -> Number | Unusable:
    """The destination as E.164 (or national of unknown country), by the rules above.
    `national_first`: a TON 0 number valid as national in `default_country` is read so
    even when it is valid as international too."""
    if ton not in (TON_UNKNOWN, TON_INTERNATIONAL, TON_NATIONAL):
        return Unusable(f"dest_addr_ton {ton} has no E.164 form")
    text = addr if addr.isdigit() else addr.translate(_SEPARATORS)  # the common case: digits only
    marked = text.startswith("+")
    if marked:
        text = text[1:]
    elif ton in (TON_UNKNOWN, TON_INTERNATIONAL) and text.startswith("00"):
        text, marked = text[2:], True
    if not (text.isascii() and text.isdigit()):
        return Unusable("destination_addr is not digits")
    if marked or ton == TON_INTERNATIONAL:
        return _international(text)
    if ton == TON_UNKNOWN and national_first and default_country is not None:
        national = _valid(_parse(text, default_country))
        if national is not None:
            return national
    if ton == TON_UNKNOWN:
        valid = _valid(_parse("+" + text))
        if valid is not None:
            return valid
    if default_country is None:
        if len(text) not in NATIONAL_DIGITS:
            return Unusable("national destination_addr of impossible length")
        return Number(text, international=False)
    return _valid(_parse(text, default_country)) or Unusable(
        f"destination_addr is no valid number in {default_country}"
    )


def national_in(number: Number, country: str) -> str | None:
    """The national significant number (no trunk prefix) when `number` belongs to
    `country`'s country code, else None. A national number of unknown country is
    taken as `country`'s own: how a provider with a home country reads national
    digits (Contacta: Mexico, FlashSMS: Ghana)."""
    code = phonenumbers.country_code_for_region(country)
    if number.international:
        prefix = str(code)
        return number.digits[len(prefix) :] if number.digits.startswith(prefix) else None
    parsed = _parse(number.digits, country)
    if parsed is None or parsed.country_code != code or not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.national_significant_number(parsed)


def _international(digits: str) -> Number | Unusable:
    if len(digits) not in E164_DIGITS or digits.startswith("0"):
        return Unusable("international destination_addr is not 7 to 15 digits after a country code")
    return Number(digits)


def _parse(text: str, country: str | None = None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        return None


def _valid(parsed: phonenumbers.PhoneNumber | None) -> Number | None:
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        return None
    return Number(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:])
