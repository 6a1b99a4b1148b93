r"""A strict HTTP double of Contacta "SMS México" (provider document 000).

`GET` (query) and `POST` (JSON, `Content-Type: application/json`) on `/v2/sms/send`
and `/v2/flash/send`, HTTP Basic auth, the documented success shape and every
documented error text. It refuses what the document does not allow, with the
document's own error: a POST body that is not JSON, a `phone` that is not 10 digits
(`^\d{10}$`; E.164 without `+` for SMS Global), a `msg` shorter than 3 or longer
than 160 characters or with a character outside GSM 03.38 ("GSM-encoded message (max
160 characters)") all answer "Missing params". Contacta has no delivery reports, so
neither has this double.

Errors are triggered by magic national numbers (`MAGIC_PHONES`), by a `phone` list
("a,b": multi messages), by wrong credentials, by running out of `credits`, or by
faults injected through the control endpoint:

    POST /_sim/fail  {"status": 500, "times": 1, "delay": 0, "retry_after": null, "error": null}
    POST /_sim/reset

`status` answers with that HTTP status (429, 5xx ...), `delay` holds the answer that
many seconds first (to make a client time out), `error` answers with one of the
documented error texts (a key of ERROR_TEXTS). Requests to the API are recorded in
`app["received"]` (bridge.simulators.common); accepted messages in `app["sent"]`.

Standalone defaults (`smpp-bridge simulate contacta`): user `contacta`, password
`contacta-key`, 10-digit national numbers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bridge.simulators.common import fault_control, hold, injected, make_double, next_fault, notify
from bridge.simulators.gsm import is_gsm, sms_parts

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
    """Everything the double holds of Contacta's own; `sent` is what tests look at."""

    username: str
    password: str
    number_format: str
    error_field: str
    error_status: int | None
    job_id_type: str
    credits: float | None
    delay: float
    next_id: int
    sent: list[dict[str, Any]] = field(default_factory=list)


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
    app = make_double(records={"sent": state.sent})
    app[STATE] = state
    for path in ("/v2/sms/send", "/v2/flash/send"):
        app.router.add_get(path, _send)
        app.router.add_post(path, _send)
    app.router.add_post("/_sim/fail", fault_control(error_key="error", errors=ERROR_TEXTS))
    return app


# -- the API -------------------------------------------------------------------------


async def _send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    fault = next_fault(request.app)
    await hold(request.app, fault.delay or state.delay)
    if fault.status:
        return injected(fault, {"message": "injected failure"})
    if fault.error:
        return _error(state, fault.error)
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
    if number is None or not 3 <= len(msg) <= 160 or not is_gsm(msg):
        return _error(state, "missing")
    if number in MAGIC_PHONES:
        return _error(state, MAGIC_PHONES[number])
    segments = sms_parts(msg)
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
    await notify(request.app)
    description = {
        "added_on": time.strftime("%Y-%m-%d %H:%M:%S"),
        "charge": charge,
        "country": _country(phone, state.number_format),
        "encoding": "gsm" if is_gsm(msg) else "unicode",
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
    if request.content_type != "application/json":
        return None
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


def _error(state: State, kind: str) -> web.Response:
    status = state.error_status or ERROR_HTTP_STATUS[kind]
    return web.json_response({"status": False, "error": True, state.error_field: ERROR_TEXTS[kind]}, status=status)
