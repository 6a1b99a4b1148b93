"""A faithful HTTP double of Kaleyra's SMS API v1 (kaleyra.io), as documented.

Serves `POST /v1/{sid}/sms` and `/v1/{sid}/messages` (form or JSON; header `api-key`),
answering 202 with the documented success shape (`data[].message_id` = `<uuid>:<n>`)
or `{"code": "E4xx", "message", "error": {field: text}}`; `GET /v1/{sid}/sms/status`
(and `/messages/status`) with `message_ids=`; and fires callbacks to the URL a send
asked for (`callback` object or URL, or a `callback_profile_id` from `profiles`): first
`Sent`, then the final status.

Errors are triggered the way Kaleyra would (wrong key -> HTTP 401, no sender -> E602,
body over `max_length` -> E401, type OTP with two numbers -> E404, ...) and by magic
destination numbers (`SEND_ERRORS`, `OUTCOMES`); `POST /_sim/fail-next` makes the next
sends answer a given HTTP status, `POST /_sim/report` sets a message's status and fires
its callback now. Every request is recorded in `app["received"]`
(bridge.simulators.common), every callback fired in `app["callbacks"]`.

Defaults for `smpp-bridge simulate kaleyra`: SID `HXAP16XXXXXX97IN`, api-key
`kaleyra-sim-key`, any sender.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

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
SMS_TYPES = frozenset({"OTP", "TXN", "TNX", "TXND", "MKT", "DEFAULT"})

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
    "E405": "If Type is TXN then mobile numbers should not be more than 100.",
    "E406": "No valid mobile numbers found.",
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


def _outcome(digits: str) -> tuple[str, str, str, bool]:
    return by_prefix(OUTCOMES, digits, DELIVERED)


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def make_app(
    *,
    sid: str = DEFAULT_SID,
    api_key: str = DEFAULT_API_KEY,
    senders: Iterable[str] | None = None,
    max_length: int = 1000,
    sent_delay: float = 0.2,
    final_delay: float = 0.5,
    callbacks: bool = True,
    callback_body: str = "json",
    default_callback_method: str = "POST",
    profiles: dict[str, dict[str, str]] | None = None,
    error_status: int = 400,
    retry_after: int | None = 7,
) -> web.Application:
    """Options: `senders` approved sender ids (None = any); `max_length` longest body
    (E401 beyond); `sent_delay`/`final_delay` seconds to the Sent and final callbacks;
    `callbacks` False = never call back (poll only); `callback_body` "json" or "form"
    for POST callbacks; `profiles` {callback_profile_id: {"url", "method"}};
    `error_status` the HTTP status of E-code answers; `retry_after` on HTTP 429."""
    approved = None if senders is None else frozenset(senders)
    app = make_double(records={"callbacks": []}, state={"messages": {}})
    profiles = profiles or {}

    def authorised(request: web.Request) -> bool:
        return request.match_info["sid"] == sid and request.headers.get("api-key") == api_key

    def error(code: str, field: str, status: int | None = None) -> web.Response:
        text = ERROR_TEXTS.get(code, "Error.")
        body = {"code": code, "message": text, "error": {field: text} if field else {}}
        return web.json_response(body, status=status or error_status)

    async def send(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return web.json_response({"message": "Unauthorized: invalid api-key or SID.", "error": {}}, status=401)
        fault = next_fault(app)
        await hold(app, fault.delay)
        if fault.status:
            return injected(fault, {"message": "injected"} if fault.error is None else fault.error)
        try:
            fields = await _fields(request)
        except ValueError:
            return error("E413", "body")
        to = [n.strip() for n in str(fields.get("to", "")).split(",") if n.strip()]
        if not to:
            return error("E600", "to")
        digits = [n.lstrip("+") for n in to]
        if digits[0] == HANG_NUMBER:
            await hold(app, 60)
            return error("E403", "to")
        magic = SEND_ERRORS.get(digits[0])
        if magic is not None:
            status, code, field = magic
            if not code:
                headers = {"Retry-After": str(retry_after)} if status == 429 and retry_after else None
                return web.json_response({"message": f"HTTP {status}"}, status=status, headers=headers)
            return error(code, field, status)
        body = str(fields.get("body", ""))
        if not body and not fields.get("template_id"):
            return error("E601", "body")
        sender = str(fields.get("sender", ""))
        if not sender or (approved is not None and sender not in approved):
            return error("E602", "sender")
        sms_type = str(fields.get("type", "DEFAULT")).upper()
        if sms_type not in SMS_TYPES:
            return error("E413", "type")
        flash = str(fields.get("flash", "0"))
        if flash not in ("0", "1"):
            return error("E413", "flash")
        if sms_type == "OTP" and len(to) > 1:
            return error("E404", "to")
        if sms_type in ("TXN", "TNX") and len(to) > 100:
            return error("E405", "time")
        valid = [n for n in digits if n.isdigit() and 8 <= len(n) <= 15 and not n.startswith("0")]
        if not valid:
            return error("E406", "to")
        if len(body) > max_length:
            return error("E401", "body")
        ref = fields.get("ref")
        if ref is not None and not str(ref).isalnum():
            return error("E608", "ref")
        target = _callback_target(fields, profiles, default_callback_method)
        batch = str(uuid.uuid4())
        data = []
        for n, number in enumerate(valid, start=1):
            message_id = f"{batch}:{n}"
            outcome = _outcome(number)
            app["messages"][message_id] = {
                "recipient": number,
                "sender": sender,
                "body": body,
                "status": "Sent",
                "trace": "SENT",
                "outcome": outcome,
                "callback": target if (callbacks and outcome[3]) else None,
            }
            data.append({"message_id": message_id, "recipient": number})
            _schedule(app, message_id, sent_delay, final_delay, callback_body)
        answer: dict[str, Any] = {
            "id": batch,
            "sender": sender,
            "type": sms_type,
            "flash": int(flash),
        }
        if "unicode" in fields:
            answer["unicode"] = 1 if str(fields["unicode"]) in ("1", "auto", "Auto") else 0
        answer.update(
            {
                "body": body,
                "createdDateTime": f"{_now_text()}+00:00",
                "totalCount": len(data),
                "data": data,
                "dlrurl": None,
                "error": {},
            }
        )
        return web.json_response(answer, status=202)

    async def status(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"message": "Unauthorized: invalid api-key or SID.", "error": {}}, status=401)
        wanted = [i for i in request.query.get("message_ids", "").split(",") if i]
        data = []
        for message_id in wanted:
            message = app["messages"].get(message_id)
            if message is not None:
                data.append(
                    {"campaign_id": message_id, "status": _poll_word(message), "status_details": message["trace"]}
                )
        if not data:
            return web.json_response({"code": "E104", "message": "No records found.", "data": [], "error": {}})
        return web.json_response({"data": data, "error": {}})

    async def report(request: web.Request) -> web.Response:
        """Set a message's status and fire its callback now (also to replay one)."""
        body = await request.json()
        message = app["messages"].get(body["message_id"])
        if message is None:
            raise web.HTTPNotFound()
        message["status"] = body["status"]
        message["trace"] = body.get("status_trace", "")
        if body.get("poll_status"):
            message["poll_status"] = body["poll_status"]
        target = message["callback"] or _callback_target(body, profiles, default_callback_method)
        if target is not None:
            await _fire(app, body["message_id"], message, target, callback_body)
        return web.json_response({"ok": True})

    async def messages(request: web.Request) -> web.Response:
        return web.json_response(app["messages"])

    for endpoint in ("sms", "messages"):
        app.router.add_post(f"/v1/{{sid}}/{endpoint}", send)
        app.router.add_get(f"/v1/{{sid}}/{endpoint}/status", status)
    app.router.add_post("/_sim/fail-next", fault_control(error_key="body", count_key="count"))
    app.router.add_post("/_sim/report", report)
    app.router.add_get("/_sim/messages", messages)
    return app


def _poll_word(message: dict[str, Any]) -> str:
    """Polling speaks Delivered / UnDelivered / NotSent / Sent."""
    if message.get("poll_status"):
        return str(message["poll_status"])
    if message["status"] == "Sent":
        return "Sent"
    return str(message["outcome"][2]) if message["status"] == message["outcome"][0] else str(message["status"])


def _callback_target(fields: dict[str, Any], profiles: dict[str, dict[str, str]], method: str) -> dict[str, str] | None:
    """Where a send asked to be called back: `callback` (object, JSON text or URL) or a profile."""
    callback = fields.get("callback")
    if isinstance(callback, str) and callback.strip().startswith("{"):
        with contextlib.suppress(ValueError):
            callback = json.loads(callback)
    if isinstance(callback, dict) and callback.get("url"):
        return {"url": str(callback["url"]), "method": str(callback.get("method", method)).upper()}
    if isinstance(callback, str) and callback.startswith(("http://", "https://")):
        return {"url": callback, "method": method}
    profile = profiles.get(str(fields.get("callback_profile_id", "")))
    if profile is not None:
        return {"url": profile["url"], "method": profile.get("method", method).upper()}
    return None


def _schedule(app: web.Application, message_id: str, sent_delay: float, final_delay: float, body: str) -> None:
    message = app["messages"][message_id]

    async def sent() -> None:
        if message["callback"] is not None:
            await _fire(app, message_id, message, message["callback"], body)

    async def final() -> None:
        status, trace, _, _ = message["outcome"]
        if not status or message["status"] != "Sent":
            return  # stays Sent, or already set through /_sim/report
        message["status"], message["trace"] = status, trace
        if message["callback"] is not None:
            await _fire(app, message_id, message, message["callback"], body)

    later(app, sent_delay, sent)
    later(app, final_delay, final)


async def _fire(
    app: web.Application, message_id: str, message: dict[str, Any], target: dict[str, str], body: str
) -> None:
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
    elif body == "form":
        kwargs = {"data": payload}
    else:
        kwargs = {"json": payload}
    try:
        async with client(app).request(target["method"], target["url"], **kwargs) as response:
            record["status"] = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        record["status"] = None
        record["error"] = type(exc).__name__
    app["callbacks"].append(record)
    await notify(app)


async def _fields(request: web.Request) -> dict[str, Any]:
    """Form or JSON body, whatever the Content-Type claims (the samples mix them up)."""
    raw = await request.text()
    if raw.lstrip().startswith("{"):
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ValueError("bad JSON") from exc
        if not isinstance(body, dict):
            raise ValueError("not an object")
        return body
    return dict(parse_qsl(raw, keep_blank_values=True))
