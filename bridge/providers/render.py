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
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii
from typing import Any, Final
from urllib.parse import quote_plus

# Anything json_body has no fast path for (lists, objects, floats, None) goes through
# the same encoder json.dumps(fields, separators=(",", ":")) would build.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))
_CACHE_LIMIT: Final = 1024  # keys kept; our builders use a few dozen names in all

_json_keys: dict[str, str] = {}
_json_last: dict[str, tuple[object, str]] = {}
_form_keys: dict[str, str] = {}
_form_last: dict[str, tuple[object, str]] = {}

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
    parts: list[str] = []
    for key, value in fields.items():
        prefix = _json_keys.get(key)
        if prefix is None:
            prefix = encode_basestring_ascii(key) + ":"
            if len(_json_keys) < _CACHE_LIMIT:
                _json_keys[key] = prefix
        if type(value) is str:  # immutable: the same object means the same encoding
            last = _json_last.get(key)
            if last is not None and last[0] is value:
                encoded = last[1]
            else:
                encoded = encode_basestring_ascii(value)
                if len(_json_last) < _CACHE_LIMIT or key in _json_last:
                    _json_last[key] = (value, encoded)
        else:
            encoded = json_value(value)
        parts.append(prefix + encoded)
    return ("{" + ",".join(parts) + "}").encode("ascii")


def form_value(value: str) -> str:
    """`urllib.parse.quote_plus(value)`."""
    if value.isascii():
        return value.translate(_FORM_TABLE)
    return quote_plus(value)


def form_encode(fields: Mapping[str, Any]) -> str:
    """`urllib.parse.urlencode(fields)`: `key=value` pairs joined by `&`, each side
    `str()` and quote_plus'd (a form body, or a query string)."""
    parts: list[str] = []
    for key, value in fields.items():
        prefix = _form_keys.get(key)
        if prefix is None:
            prefix = form_value(str(key)) + "="
            if len(_form_keys) < _CACHE_LIMIT:
                _form_keys[key] = prefix
        if type(value) is str:  # immutable: the same object means the same encoding
            last = _form_last.get(key)
            if last is not None and last[0] is value:
                encoded = last[1]
            else:
                encoded = form_value(value)
                if len(_form_last) < _CACHE_LIMIT or key in _form_last:
                    _form_last[key] = (value, encoded)
        else:
            encoded = form_value(str(value))
        parts.append(prefix + encoded)
    return "&".join(parts)
