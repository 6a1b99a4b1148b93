"""A strict HTTP double of Kaleyra's SMS API v1 (kaleyra.io), as document 001 and
PROVIDERS.md section 3 describe it: it refuses what they do not allow, so a connector
that gets the format wrong fails its tests.

Serves `POST /v1/{sid}/sms` and `/v1/{sid}/messages` (header `api-key`, a JSON body
with `Content-Type: application/json`, "the only allowed value"), answering 202 with
the documented success shape (`data[].message_id` = `<uuid>:<n>`) or the document's
error shape `{"code": "E4xx", "message", "error": {field: text}}`; and
`GET /v1/{sid}/sms/status` (and `/messages/status`) with `message_ids=`.

What it refuses, in this order: a wrong SID or api-key (HTTP 401); another content
type (E413 `content-type`); a body that is not a JSON object (E407); a parameter the
endpoint does not take (E413 keyed by it: `ref`, `ref1`, `ref2` and the inline
`callback` object are /messages parameters, `ref_custom` a /sms one); no `to` (E600),
a number that is not `+` and 7-15 digits (E413 `to`), no `sender` or one not approved
(E602), no `type` or one the pod (`region`) does not take (E413 `type`), no `body`
without `template_id` (E601), `flash` other than 0/1 (E413 `flash`), OTP with more than
one number (E404), more than 100 numbers (E405, keyed `time` as in the document), a
body over `max_length` (E401), `ref` not alphanumeric (E608), a `callback` that is not
an object with a URL (E413 `callback`), an unknown `callback_profile_id` (E413).

Callbacks go only where a send asked for them in a documented way: the inline
`callback` object of /messages, or a callback profile (`profiles`) named by
`callback_profile_id`; first `Sent`, then the final status. A send that asked for
none gets none: its receipts must be polled.

Magic destination digits (`SEND_ERRORS`, `OUTCOMES`) trigger every documented error
and outcome; `POST /_sim/fail-next` makes the next sends answer a given HTTP status,
`POST /_sim/report` sets a message's status and fires its callback now. Every request
is recorded in `app["received"]` (bridge.simulators.common), every callback fired in
`app["callbacks"]`.

Defaults for `smpp-bridge simulate kaleyra`: SID `HXAP16XXXXXX97IN`, api-key
`kaleyra-sim-key`, any sender, the IN pod's route types.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from bridge.simulators.common import (
    by_prefix,
    client,
    fault_control,
    hold,
    injected,
    later,
    make_double,
    next_fault,
    notify,
)

DEFAULT_SID = "HXAP16XXXXXX97IN"
DEFAULT_API_KEY = "kaleyra-sim-key"
MAX_NUMBERS = 100  # document 001: "You cannot pass more than 100 numbers in a single API call."
# Route types per pod, written here from document 001 (not imported from the
# connector's config: a double shares nothing with what it tests). The document
# spells the transactional type "TNX" once; the API value is TXN (PROVIDERS.md 3.1).
POD_TYPES: dict[str, frozenset[str]] = {
    "IN": frozenset({"OTP", "TXN", "TXND", "MKT"}),
    "SG": frozenset({"OTP", "DEFAULT"}),
    "EU": frozenset({"OTP", "DEFAULT"}),
    "NA": frozenset({"OTP", "DEFAULT"}),
}
NUMBER = re.compile(r"^\+[1-9]\d{6,14}$")  # "+91XXXXXXXXXX": `+` and the E.164 digits

# Parameters each endpoint takes (document 001's tables; PROVIDERS.md 3.1 for the rest).
COMMON_FIELDS = frozenset(
    {
        "to",
        "sender",
        "type",
        "body",
        "flash",
        "unicode",
        "template_id",
        "time",
        "prefix",
        "source",
        "campaign_name",
        "duplicate",
        "port",
        "callback_profile_id",
    }
)
ENDPOINT_FIELDS = {
    "sms": COMMON_FIELDS | {"ref_custom"},
    "messages": COMMON_FIELDS | {"ref", "ref1", "ref2", "callback"},
}

# Magic destination digits (without `+`) -> (HTTP status, error code, offending field).
SEND_ERRORS: dict[str, tuple[int, str, str]] = {
    "9990000400": (400, "E400", "type"),
    "9990000401": (400, "E401", "body"),
    "9990000402": (400, "E402", "time"),
    "9990000403": (400, "E403", "to"),
    "9990000404": (400, "E404", "to"),
    "9990000405": (400, "E405", "time"),  # the document really puts it under "time"
    "9990000406": (400, "E406", "to"),
    "9990000413": (400, "E413", "to"),
    "9990000414": (400, "E413", "sender"),
    "9990000415": (400, "E413", "body"),
    "9990000416": (400, "E413", "time"),
    "9990000417": (400, "E413", "type"),
    "9990000600": (400, "E600", "to"),
    "9990000602": (400, "E602", "sender"),
    "9990000603": (400, "E603", "port"),
    "9990000623": (400, "E623", "type"),
    "9990000103": (500, "E103", ""),
    "9990000429": (429, "", ""),
    "9990000500": (500, "", ""),
    "9990000503": (503, "", ""),
}
HANG_NUMBER = "9990000408"  # answers only when the client has given up (a read timeout)

ERROR_TEXTS: dict[str, str] = {
    "E103": "Internal error, please try again later.",
    "E400": "Bulk messages are allowed with type MKT only.",
    "E401": "Message length exceeds the maximum allowed.",
    "E402": "Schedule time must be at least 15 minutes ahead and within 3 months.",
    "E403": "Could not process the request, try again later.",
    "E404": "If Type is OTP then only one mobile number is allowed.",
    # Verbatim from document 001:
    "E405": "If Type is TXN then mobile numbers should not be more than 100.",
    "E406": "No valid mobile numbers found.",
    "E407": "Invalid JSON.",
    "E413": "Validation error.",
    "E600": "Mobile number is mandatory.",
    "E601": "Message body is mandatory.",
    "E602": "Sender is mandatory or not approved.",
    "E603": "Invalid port.",
    "E608": "ref must be alphanumeric.",
    "E623": "TXN route is not enabled for this account.",
}

# Destination prefix -> (callback status, status_trace, poll status, fire callbacks).
# Anything else: Sent, then Delivered.
OUTCOMES: dict[str, tuple[str, str, str, bool]] = {
    "99910": ("Undelivered", "ABSENT-SUB", "UnDelivered", True),
    "99911": ("Undelivered", "EXPIRED", "UnDelivered", True),
    "99912": ("Failed", "DND-NUMB", "NotSent", True),
    "99913": ("Failed", "", "UnDelivered", True),
    "99950": ("Delivered", "DELIVERED", "Delivered", False),  # never calls back: polling only
    "99960": ("", "", "Sent", True),  # stays Sent
}
DELIVERED = ("Delivered", "DELIVERED", "Delivered", True)


class Refused(Exception):
    """A send the document does not allow: answered with the error shape."""

    def __init__(self, code: str, field: str, text: str | None = None, status: int | None = None) -> None:
        super().__init__(code)
        self.code, self.field, self.text, self.status = code, field, text, status


@dataclass
class State:
    """Everything the double holds of Kaleyra's own; `messages` and `callbacks` are what tests look at."""

    sid: str
    api_key: str
    senders: frozenset[str] | None
    sms_types: frozenset[str]
    max_length: int
    sent_delay: float
    final_delay: float
    callbacks_on: bool
    callback_body: str
    profiles: dict[str, dict[str, str]]
    error_status: int
    retry_after: int | None
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    callbacks: list[dict[str, Any]] = field(default_factory=list)


STATE = web.AppKey("kaleyra_state", State)


def make_app(
    *,
    sid: str = DEFAULT_SID,
    api_key: str = DEFAULT_API_KEY,
    senders: Iterable[str] | None = None,
    region: str = "IN",
    max_length: int = 1000,
    sent_delay: float = 0.2,
    final_delay: float = 0.5,
    callbacks: bool = True,
    callback_body: str = "json",
    profiles: dict[str, dict[str, str]] | None = None,
    error_status: int = 400,
    retry_after: int | None = 7,
) -> web.Application:
    """Options: `senders` approved sender ids (None = any); `region` the pod (IN, SG,
    EU, NA: which `type` values it takes); `max_length` longest body (E401 beyond);
    `sent_delay`/`final_delay` seconds to the Sent and final callbacks; `callbacks`
    False = never call back, whatever the send asked (the account's callbacks are
    broken: poll only); `callback_body` "json" or "form" for POST callbacks;
    `profiles` {callback_profile_id: {"url", "method"}}; `error_status` the HTTP status
    of E-code answers; `retry_after` on HTTP 429."""
    state = State(
        sid,
        api_key,
        None if senders is None else frozenset(senders),
        POD_TYPES[region],
        max_length,
        sent_delay,
        final_delay,
        callbacks,
        callback_body,
        dict(profiles or {}),
        error_status,
        retry_after,
    )
    app = make_double(records={"callbacks": state.callbacks}, state={"messages": state.messages})
    app[STATE] = state
    app.router.add_post("/v1/{sid}/sms", _send_sms)
    app.router.add_post("/v1/{sid}/messages", _send_messages)
    app.router.add_get("/v1/{sid}/sms/status", _status)
    app.router.add_get("/v1/{sid}/messages/status", _status)
    app.router.add_post("/_sim/fail-next", fault_control(error_key="body", count_key="count"))
    app.router.add_post("/_sim/report", _sim_report)
    app.router.add_get("/_sim/messages", _sim_messages)
    return app


# -- the API -------------------------------------------------------------------------


def _error(state: State, code: str, field: str, text: str | None = None, status: int | None = None) -> web.Response:
    """The document's error shape: `error` keyed by the offending parameter."""
    message = ERROR_TEXTS.get(code, "Error.")
    body = {"code": code, "message": message, "error": {field: text or message} if field else {}}
    return web.json_response(body, status=status or state.error_status)


def _unauthorised(request: web.Request, state: State) -> web.Response | None:
    if request.match_info["sid"] == state.sid and request.headers.get("api-key") == state.api_key:
        return None
    text = "Unauthorized: invalid api-key or SID."
    return web.json_response({"message": text, "error": {"api-key": text}}, status=401)


async def _send_sms(request: web.Request) -> web.StreamResponse:
    return await _send(request, "sms")


async def _send_messages(request: web.Request) -> web.StreamResponse:
    return await _send(request, "messages")


async def _send(request: web.Request, endpoint: str) -> web.StreamResponse:
    app = request.app
    state = app[STATE]
    refused = _unauthorised(request, state)
    if refused is not None:
        return refused
    fault = next_fault(app)
    await hold(app, fault.delay)
    if fault.status:
        return injected(fault, {"message": "injected"} if fault.error is None else fault.error)
    try:
        fields = await _json_fields(request)
        numbers = _check(state, endpoint, fields)
        magic = await _magic(app, numbers[0])
        if magic is not None:
            return magic
        target = _callback_target(state, fields)
    except Refused as refusal:
        return _error(state, refusal.code, refusal.field, refusal.text, refusal.status)
    return web.json_response(_accept(app, fields, numbers, target), status=202)


async def _json_fields(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Refused("E413", "content-type", "The only allowed value is application/json.")
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Refused("E407", "body", "The request body must be a JSON object.")
    return body


def _check(state: State, endpoint: str, fields: dict[str, Any]) -> list[str]:
    """The numbers (digits) of a send the document allows; Refused otherwise."""
    for name in sorted(fields):
        if name not in ENDPOINT_FIELDS[endpoint]:
            raise Refused("E413", name, f"{name} is not a parameter of /{endpoint}.")
    to = fields.get("to")
    if not isinstance(to, str) or not to.strip():
        raise Refused("E600", "to")
    numbers = [n.strip() for n in to.split(",")]
    if not all(NUMBER.match(n) for n in numbers):
        raise Refused("E413", "to", "Numbers must be + and the country code, comma-separated.")
    sender = fields.get("sender")
    if not isinstance(sender, str) or not sender or (state.senders is not None and sender not in state.senders):
        raise Refused("E602", "sender")
    sms_type = fields.get("type")
    if sms_type not in state.sms_types:
        raise Refused("E413", "type", f"type must be one of {', '.join(sorted(state.sms_types))}.")
    body = fields.get("body")
    if not fields.get("template_id") and (not isinstance(body, str) or not body):
        raise Refused("E601", "body")
    if fields.get("flash", 0) not in (0, 1, "0", "1"):
        raise Refused("E413", "flash", 'Acceptable values are "0" or "1".')
    if fields.get("unicode", 0) not in (0, 1, "0", "1", "auto", "Auto"):
        raise Refused("E413", "unicode")
    if sms_type == "OTP" and len(numbers) > 1:
        raise Refused("E404", "to")
    if len(numbers) > MAX_NUMBERS:
        raise Refused("E405", "time")
    if isinstance(body, str) and len(body) > state.max_length:
        raise Refused("E401", "body")
    for name in ("ref", "ref1", "ref2"):
        if name in fields and not str(fields[name]).isalnum():
            raise Refused("E608", name)
    ref_custom = fields.get("ref_custom")
    if ref_custom is not None and not (isinstance(ref_custom, list) and all(isinstance(r, str) for r in ref_custom)):
        raise Refused("E413", "ref_custom", "ref_custom must be a list of strings.")
    return [n[1:] for n in numbers]


async def _magic(app: web.Application, first: str) -> web.Response | None:
    """The answer a magic number asks for, if `first` is one."""
    state = app[STATE]
    if first == HANG_NUMBER:
        await hold(app, 60)
        return _error(state, "E403", "to")
    magic = SEND_ERRORS.get(first)
    if magic is None:
        return None
    status, code, field = magic
    if code:
        return _error(state, code, field, status=status)
    headers = {"Retry-After": str(state.retry_after)} if status == 429 and state.retry_after else None
    return web.json_response({"message": f"HTTP {status}"}, status=status, headers=headers)


def _callback_target(state: State, fields: dict[str, Any]) -> dict[str, str] | None:
    """Where a send asked to be called back, in a documented way: the /messages
    `callback` object, or a known `callback_profile_id`. Refused for a malformed one."""
    if "callback" in fields:
        callback = fields["callback"]
        if not isinstance(callback, dict) or not str(callback.get("url", "")).startswith(("http://", "https://")):
            raise Refused("E413", "callback", "callback must be an object with a url.")
        method = str(callback.get("method", "POST")).upper()
        if method not in ("GET", "POST"):
            raise Refused("E413", "callback", "callback method must be GET or POST.")
        return {"url": str(callback["url"]), "method": method}
    if "callback_profile_id" in fields:
        profile = state.profiles.get(str(fields["callback_profile_id"]))
        if profile is None:
            raise Refused("E413", "callback_profile_id", "No such callback profile.")
        return {"url": profile["url"], "method": profile.get("method", "POST").upper()}
    return None


def _accept(app: web.Application, fields: dict[str, Any], numbers: list[str], target: Any) -> dict[str, Any]:
    """Take the message for each number; the documented success answer."""
    state = app[STATE]
    batch = str(uuid.uuid4())
    data = []
    for n, number in enumerate(numbers, start=1):
        message_id = f"{batch}:{n}"
        outcome = by_prefix(OUTCOMES, number, DELIVERED)
        state.messages[message_id] = {
            "recipient": number,
            "sender": fields["sender"],
            "body": fields.get("body", ""),
            "status": "Sent",
            "trace": "SENT",
            "outcome": outcome,
            "callback": target if (state.callbacks_on and outcome[3]) else None,
        }
        data.append({"message_id": message_id, "recipient": number})
        _schedule(app, message_id)
    answer: dict[str, Any] = {"id": batch, "sender": fields["sender"], "type": fields["type"]}
    answer["flash"] = int(fields.get("flash", 0))
    if "unicode" in fields:
        answer["unicode"] = 0 if str(fields["unicode"]) == "0" else 1
    answer.update(
        {
            "body": fields.get("body", ""),
            "createdDateTime": f"{_now_text()}+00:00",
            "totalCount": len(data),
            "data": data,
            "dlrurl": None,
            "error": {},
        }
    )
    return answer


async def _status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    refused = _unauthorised(request, state)
    if refused is not None:
        return refused
    wanted = [i for i in request.query.get("message_ids", "").split(",") if i]
    data = []
    for message_id in wanted:
        message = state.messages.get(message_id)
        if message is not None:
            data.append({"campaign_id": message_id, "status": _poll_word(message), "status_details": message["trace"]})
    if not data:
        return web.json_response({"code": "E104", "message": "No records found.", "data": [], "error": {}})
    return web.json_response({"data": data, "error": {}})


def _poll_word(message: dict[str, Any]) -> str:
    """Polling speaks Delivered / UnDelivered / NotSent / Sent."""
    if message.get("poll_status"):
        return str(message["poll_status"])
    if message["status"] == "Sent":
        return "Sent"
    return str(message["outcome"][2]) if message["status"] == message["outcome"][0] else str(message["status"])


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


# -- callbacks -----------------------------------------------------------------------


def _schedule(app: web.Application, message_id: str) -> None:
    state = app[STATE]
    message = state.messages[message_id]

    async def sent() -> None:
        if message["callback"] is not None:
            await _fire(app, message_id, message, message["callback"])

    async def final() -> None:
        status, trace, _, _ = message["outcome"]
        if not status or message["status"] != "Sent":
            return  # stays Sent, or already set through /_sim/report
        message["status"], message["trace"] = status, trace
        if message["callback"] is not None:
            await _fire(app, message_id, message, message["callback"])

    later(app, state.sent_delay, sent)
    later(app, state.final_delay, final)


async def _fire(app: web.Application, message_id: str, message: dict[str, Any], target: dict[str, str]) -> None:
    """One callback the way a Kaleyra callback profile renders it."""
    payload = {
        "id": message_id,
        "recipient": message["recipient"],
        "source": message["sender"],
        "status": message["status"],
        "status_trace": message["trace"],
        "timestamp": _now_text(),
    }
    record: dict[str, Any] = {"url": target["url"], "method": target["method"], "payload": payload}
    kwargs: dict[str, Any]
    if target["method"] == "GET":
        kwargs = {"params": payload}
    elif app[STATE].callback_body == "form":
        kwargs = {"data": payload}
    else:
        kwargs = {"json": payload}
    try:
        async with client(app).request(target["method"], target["url"], **kwargs) as response:
            record["status"] = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        record["status"] = None
        record["error"] = type(exc).__name__
    app[STATE].callbacks.append(record)
    await notify(app)


# -- control -------------------------------------------------------------------------


async def _sim_report(request: web.Request) -> web.Response:
    """Set a message's status and fire its callback now (also to replay one). A
    message whose send asked for no callback gets none (a `callback` object in the
    control request names a URL to call anyway)."""
    state = request.app[STATE]
    body = await request.json()
    message = state.messages.get(body["message_id"])
    if message is None:
        raise web.HTTPNotFound()
    message["status"] = body["status"]
    message["trace"] = body.get("status_trace", "")
    if body.get("poll_status"):
        message["poll_status"] = body["poll_status"]
    target = message["callback"] or (_callback_target(state, body) if "callback" in body else None)
    if target is not None:
        await _fire(request.app, body["message_id"], message, target)
    return web.json_response({"ok": True})


async def _sim_messages(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].messages)
