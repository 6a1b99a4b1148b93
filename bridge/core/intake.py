"""The pure part of a submit's intake: its destination read and normalised, and its
Message and Part built, as plain functions compiled with mypyc (bridge/native.py)
together with the records they build (`message.py`, `numbers.py`, `history.py`):
a compiled class is cheap to build from compiled code and dearer than a plain slots
class from interpreted code, so the objects made once per message are made here. The
pipeline (bridge/core/pipeline.py) keeps the awaits, the store and the answers.
"""

from __future__ import annotations

from bridge.core.checks import Parsed
from bridge.core.message import Address, Message, Part
from bridge.core.numbers import Number, Unusable, normalise
from bridge.smpp.receipt import ascii_safe

PREVIEW_CHARS = 20  # the first characters of the text kept for the receipt's `text:`


def destination_of(
    ton: int, npi: int, addr: str, default_country: str | None, national_first: bool
) -> tuple[Address, Number | Unusable]:
    """The destination as sent (for the receipt) and normalised once (for everything
    else, see `bridge.core.numbers`)."""
    return Address(ton, npi, addr), normalise(addr, ton, default_country, national_first)


def new_message(
    message_id: int,
    system_id: str,
    source: Address,
    destination: Address,
    number: Number,
    text: str,
    flash: bool,
    parts: list[Part],
    providers: tuple[str, ...],
    ack: str,
    now: float,
) -> Message:
    """A Message as the intake makes it: queued, its route the providers in order."""
    return Message(message_id, system_id, source, destination, number, text, flash, parts, list(providers), ack, now)


def one_part_message(
    message_id: int,
    part_id: int,
    system_id: str,
    parsed: Parsed,
    destination: Address,
    number: Number,
    text: str,
    id_format: str,
    providers: tuple[str, ...],
    ack: str,
    now: float,
) -> Message:
    """The Message of a whole submit_sm / data_sm (`part_id` its own id), or of one
    destination of a submit_multi (`part_id` the id they share), with its one Part
    (`parts[0]`)."""
    part = Part(part_id, parsed.registered_delivery, now, ascii_safe(text, PREVIEW_CHARS), id_format)
    return new_message(
        message_id, system_id, parsed.source, destination, number, text, parsed.flash, [part], providers, ack, now
    )
