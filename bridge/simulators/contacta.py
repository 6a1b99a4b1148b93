"""A faithful HTTP double of Contacta "SMS México" (provider document 000).

`GET` (query) and `POST` (JSON) on `/v2/sms/send` and `/v2/flash/send`, HTTP Basic
auth, the documented success shape and every documented error text. Contacta has
no delivery reports, so neither has this double.

Errors are triggered by magic national numbers (`MAGIC_PHONES`), by a `phone` list
("a,b": multi messages), by wrong credentials, by running out of `credits`, or by
faults injected through the control endpoint:

    POST /_sim/fail  {"status": 500, "times": 1, "delay": 0, "retry_after": null, "error": null}
    POST /_sim/reset

`status` answers with that HTTP status (429, 5xx ...), `delay` holds the answer that
many seconds first (to make a client time out), `error` answers with one of the
documented error texts (a key of ERROR_TEXTS). Requests to the API are recorded in
`app["received"]`; accepted messages in `app["sent"]`.

Standalone defaults (`smpp-bridge simulate contacta`): user `contacta`, password
`contacta-key`, 10-digit national numbers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import re
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bridge.smpp.text import gsm_septets

DEFAULT_USERNAME = "contacta"
DEFAULT_PASSWORD = "contacta-key"

# The documented error texts, verbatim (examples of document 000).
ERROR_TEXTS = {
    "missing": "Missing params, please verify or contact to support",
    "auth": "Your key auth is not valid, please check with your administrator to get the new key",
    "credits": "Your account dont have credits availables for send this, please contact your administrator",
    "carrier": (
        "Country or carrier not reachable or assigned to your account, please contact an administrator or support"
    ),
    "queue": "Failed to append to the queue, no need to resend",
    "multi": "Your account don't have enabled for send multi messages, please contact your administrator",
}
# The document shows no HTTP status for its errors; these are the double's guesses
# (`error_status` makes every error answer one status instead, e.g. 200).
ERROR_HTTP_STATUS = {"missing": 400, "auth": 401, "credits": 402, "carrier": 400, "queue": 500, "multi": 403}
# National numbers that trigger an error (PROVIDERS.md 2.4: 0000000000 = carrier unreachable).
MAGIC_PHONES = {
    "0000000000": "carrier",
    "0000000001": "missing",
    "0000000002": "credits",
    "0000000003": "queue",
    "0000000004": "multi",
}
CHARGE_PER_SEGMENT = 0.99
NATIONAL = re.compile(r"^\d{10}$")
INTERNATIONAL = re.compile(r"^[1-9]\d{7,14}$")


@dataclass
class State:
    """Everything the double holds; `received` and `sent` are what tests look at."""

    username: str
    password: str
    number_format: str
    error_field: str
    error_status: int | None
    job_id_type: str
    credits: float | None
    delay: float
    next_id: int
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    released: asyncio.Event = field(default_factory=asyncio.Event)


STATE = web.AppKey("contacta_state", State)


def make_app(
    *,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    number_format: str = "national",
    error_field: str = "description",
    error_status: int | None = None,
    job_id_type: str = "int",
    credits: float | None = None,
    delay: float = 0.0,
    first_id: int = 199999,
) -> web.Application:
    """The double. `number_format`: "national" (SMS México, 10 digits) or
    "international" (SMS Global, 52XXXXXXXXXX); `error_field`: "description" (the
    examples) or "message" (the schema); `job_id_type`: "int" (the example) or "str"
    (the schema); `credits`: None = unlimited; `delay`: seconds before every answer."""
    state = State(username, password, number_format, error_field, error_status, job_id_type, credits, delay, first_id)
    app = web.Application(middlewares=[_record])
    app[STATE] = state
    with warnings.catch_warnings():  # plain keys: the names tests use, app["received"]
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app["received"] = state.received
        app["sent"] = state.sent
    for path in ("/v2/sms/send", "/v2/flash/send"):
        app.router.add_get(path, _send)
        app.router.add_post(path, _send)
    app.router.add_post("/_sim/fail", _fail)
    app.router.add_post("/_sim/reset", _reset)
    app.on_shutdown.append(_release)
    return app


async def wait_for(app: web.Application, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Block until `condition()` holds (checked whenever the double records something).
    Runs on the double's loop (AppThread.call)."""
    changed = app[STATE].changed
    async with changed:
        await asyncio.wait_for(changed.wait_for(condition), timeout)


# -- recording -----------------------------------------------------------------------


@web.middleware
async def _record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """Every API request into app["received"] (method, path, headers, query, json, form)."""
    if not request.path.startswith("/_sim/"):
        raw = await request.read()
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "headers": dict(request.headers),
            "query": dict(request.query),
            "json": None,
            "form": None,
        }
        if raw and request.content_type == "application/json":
            with contextlib.suppress(ValueError):
                entry["json"] = json.loads(raw)
        elif raw and request.content_type == "application/x-www-form-urlencoded":
            entry["form"] = dict(parse_qsl(raw.decode("utf-8", "replace")))
        state = request.app[STATE]
        state.received.append(entry)
        await _notify(state)
    return await handler(request)


async def _notify(state: State) -> None:
    async with state.changed:
        state.changed.notify_all()


# -- the API -------------------------------------------------------------------------


async def _send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    fault = state.faults.pop(0) if state.faults else {}
    delay = fault.get("delay") or state.delay
    if delay:
        await _hold(state, delay)
    if fault.get("status"):
        retry_after = fault.get("retry_after")
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return web.json_response({"message": "injected failure"}, status=fault["status"], headers=headers)
    if fault.get("error"):
        return _error(state, fault["error"])
    if not _authorised(request, state.username, state.password):
        return _error(state, "auth")
    fields = await _fields(request)
    if fields is None:
        return _error(state, "missing")
    msg, phone, sender = fields.get("msg"), fields.get("phone"), fields.get("sender", "")
    if not isinstance(msg, str) or not isinstance(phone, str) or not isinstance(sender, str):
        return _error(state, "missing")
    if "," in phone:
        return _error(state, "multi")
    number = _national(phone, state.number_format)
    if number is None or not 3 <= len(msg) <= 160:
        return _error(state, "missing")
    if number in MAGIC_PHONES:
        return _error(state, MAGIC_PHONES[number])
    septets = gsm_septets(msg)
    segments = _segments(septets, len(msg))
    charge = round(CHARGE_PER_SEGMENT * segments, 2)
    if state.credits is not None:
        if state.credits < charge:
            return _error(state, "credits")
        state.credits -= charge
    record_id = state.next_id
    state.next_id += 1
    flash = request.path.startswith("/v2/flash/")
    state.sent.append(
        {"id": record_id, "msg": msg, "phone": phone, "sender": sender, "reference": fields.get("id"), "flash": flash}
    )
    await _notify(state)
    description = {
        "added_on": time.strftime("%Y-%m-%d %H:%M:%S"),
        "charge": charge,
        "country": _country(phone, state.number_format),
        "encoding": "gsm" if septets is not None else "unicode",
        "id": record_id,
        "job_id": record_id if state.job_id_type == "int" else str(record_id),
        "length": len(msg),
        "message": msg,
        "number": phone,
        "segments": segments,
        "sender": sender,
    }
    return web.json_response({"status": True, "error": False, "description": description})


def _authorised(request: web.Request, username: str, password: str) -> bool:
    """`Authorization: Basic base64(username:password)`, nothing else."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        return False
    return hmac.compare_digest(given, f"{username}:{password}".encode())


async def _fields(request: web.Request) -> dict[str, Any] | None:
    if request.method == "GET":
        return dict(request.query)
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _national(phone: str, number_format: str) -> str | None:
    """The 10 national digits the magic table is keyed on, None if `phone` is malformed."""
    if number_format == "national":
        return phone if NATIONAL.match(phone) else None
    if not INTERNATIONAL.match(phone):
        return None
    return phone[2:] if phone.startswith("52") and len(phone) == 12 else phone


def _country(phone: str, number_format: str) -> dict[str, str]:
    if number_format == "national" or phone.startswith("52"):
        return {"country": "MEXICO", "iso_code": "MX", "type": "MOVIL"}
    return {"country": "INTERNATIONAL", "iso_code": "", "type": "MOVIL"}


def _segments(septets: int | None, chars: int) -> int:
    if septets is not None:
        return 1 if septets <= 160 else -(-septets // 153)
    return 1 if chars <= 70 else -(-chars // 67)


def _error(state: State, kind: str) -> web.Response:
    status = state.error_status or ERROR_HTTP_STATUS[kind]
    return web.json_response({"status": False, "error": True, state.error_field: ERROR_TEXTS[kind]}, status=status)


async def _hold(state: State, seconds: float) -> None:
    """Wait `seconds`, or less if the double shuts down meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.released.wait(), seconds)


# -- control -------------------------------------------------------------------------


async def _fail(request: web.Request) -> web.Response:
    """Queue faults for the next API requests: {"status", "times", "delay", "retry_after", "error"}."""
    spec = await request.json()
    if spec.get("error") is not None and spec["error"] not in ERROR_TEXTS:
        raise web.HTTPBadRequest(text=f"error must be one of {sorted(ERROR_TEXTS)}")
    fault = {key: spec.get(key) for key in ("status", "delay", "retry_after", "error")}
    state = request.app[STATE]
    state.faults.extend([fault] * int(spec.get("times", 1)))
    return web.json_response({"queued": len(state.faults)})


async def _reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    for records in (state.received, state.sent, state.faults):
        records.clear()
    return web.json_response({"reset": True})


async def _release(app: web.Application) -> None:
    app[STATE].released.set()
