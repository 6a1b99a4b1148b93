"""Request bodies and query strings as bytes, from precomputed parts: what the
connectors' builders put in a dict, encoded exactly as `json.dumps(fields,
separators=(",", ":"))` and `urllib.parse.urlencode(fields)` would (the providers'
documents and strict doubles are the oracle; tests/providers/test_render.py checks
the identity), at a fraction of the cost on the per-message path.

Why not json.dumps / urlencode: `json.dumps` with separators builds a new encoder per
call, and urlencode quotes every key and value through Python-level byte loops; in
profiles the request build was ~8 % of the bridge's CPU. Here each key's `"key":`
(or `key=`) is encoded once and kept, a value that is the same object as the last
one under its key (a setting: sender, type, route) reuses its encoding, and only the
message's own values (text, number, id) are encoded per request, by the C string
escaper json itself uses. Pure logic: compiled with the hot path (bridge/native.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii
from typing import Any, Final
from urllib.parse import quote_plus

# Anything json_body has no fast path for (lists, objects, floats, None) goes through
# the same encoder json.dumps(fields, separators=(",", ":")) would build.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))
_CACHE_LIMIT: Final = 1024  # keys kept; our builders use a few dozen names in all

# urlencode's quote_plus: these stay, a space is "+", any other octet is %XX (upper
# case) of its UTF-8 encoding. The table covers ASCII; anything else takes quote_plus.
_ALWAYS_SAFE: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_FORM_TABLE: Final = str.maketrans(
    {chr(n): ("+" if n == 32 else f"%{n:02X}") for n in range(128) if chr(n) not in _ALWAYS_SAFE}
)


def json_value(value: object) -> str:
    """One value as json.dumps writes it (ensure_ascii, no spaces)."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)  # type: ignore[arg-type]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    return _ENCODER.encode(value)


def json_body(fields: Mapping[str, Any]) -> bytes:
    """`json.dumps(fields, separators=(",", ":")).encode()`, for a dict of str keys."""
    return ("{" + ",".join(_JSON.pairs(fields)) + "}").encode("ascii")


def form_value(value: str) -> str:
    """`urllib.parse.quote_plus(value)`."""
    if value.isascii():
        return value.translate(_FORM_TABLE)
    return quote_plus(value)


def form_encode(fields: Mapping[str, Any]) -> str:
    """`urllib.parse.urlencode(fields)`: `key=value` pairs joined by `&`, each side
    `str()` and quote_plus'd (a form body, or a query string)."""
    return "&".join(_FORM.pairs(fields))


class _Parts:
    """One format's kept parts: each key's rendered prefix, and per key the last str
    value with its encoding (a str is immutable: the same object, the same encoding)."""

    def __init__(self, key: Callable[[str], str], text: Callable[[str], str], other: Callable[[Any], str]) -> None:
        self.key = key
        self.text = text
        self.other = other
        self.prefixes: dict[str, str] = {}
        self.last: dict[str, tuple[str, str]] = {}

    def pairs(self, fields: Mapping[str, Any]) -> list[str]:
        out: list[str] = []
        for key, value in fields.items():
            prefix = self.prefixes.get(key)
            if prefix is None:
                prefix = self.key(key)
                if len(self.prefixes) < _CACHE_LIMIT:
                    self.prefixes[key] = prefix
            if type(value) is str:
                last = self.last.get(key)
                if last is not None and last[0] is value:
                    encoded = last[1]
                else:
                    encoded = self.text(value)
                    if len(self.last) < _CACHE_LIMIT or key in self.last:
                        self.last[key] = (value, encoded)
            else:
                encoded = self.other(value)
            out.append(prefix + encoded)
        return out


_JSON: Final = _Parts(lambda key: encode_basestring_ascii(key) + ":", encode_basestring_ascii, json_value)
_FORM: Final = _Parts(lambda key: form_value(str(key)) + "=", form_value, lambda value: form_value(str(value)))
