"""A faithful HTTP double of the FlashSMS API (Ghana), as its documentation describes it.

Under `/api/v1`: `POST /sms/send`, `GET /sms/status/:id`, `GET /sms/:id/recipients`,
`GET /sms` (history), `GET /balance`, `POST /sms/estimate`, `GET /sender-ids`.
Auth by `Authorization: Bearer <key>` or `X-API-Key: <key>`, with scopes (403 when one
is missing); at most `rate_limit` requests in any `rate_window` seconds (60: "100
requests per minute per API key"), counted exactly over a sliding window, every
endpoint together (429 beyond); POST bodies as `application/json` with only the
documented fields; Ghana numbers only (0XXXXXXXXX, 233XXXXXXXXX, +233XXXXXXXXX);
messages up to 918 characters; at most 1,000 recipients; errors as
`{"success": false, "error": "<text>"}`.

Recipients go PENDING -> SENT (after `sent_after` s) -> DELIVERED or FAILED (after
`final_after` s), or stay PENDING with `progress="manual"` until
`POST /_sim/messages/{id}/status` sets them. Magic numbers (`SEND_ERRORS`, `OUTCOMES`)
trigger every documented error and outcome; `POST /_sim/fail-next` makes the next
requests fail. Every API request is recorded in `app["received"]`
(bridge.simulators.common), every request refused by the rate limit in `app["throttled"]`.

Defaults for `smpp-bridge simulate flashsms`: key `bms_live_sim_key`, all scopes,
approved sender ids `FlashSMS` and `MyBrand`, 1,000 credits, 100 requests in any 60 s.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bridge.simulators.common import by_prefix, fault_control, hold, injected, make_double, next_fault
from bridge.simulators.gsm import GSM_PART, GSM_SINGLE, UCS2_PART, UCS2_SINGLE, is_gsm

DEFAULT_API_KEY = "bms_live_sim_key"
ALL_SCOPES = frozenset(
    {
        "sms:send",
        "sms:read",
        "balance:read",
        "contacts:read",
        "contacts:write",
        "senders:read",
        "templates:read",
        "templates:write",
        "transactions:read",
    }
)
MAX_CHARS = 918
MAX_RECIPIENTS = 1000
# The body parameters document 002 lists for POST /sms/send; anything else is refused.
SEND_FIELDS = frozenset(
    {
        "recipients",
        "groupId",
        "groupIds",
        "contactIds",
        "sendToAllContacts",
        "message",
        "senderId",
        "campaignName",
        "isScheduled",
        "scheduleDate",
    }
)
RATE_LIMITED = "Rate limit exceeded. Please retry later."

# Magic recipient (233 form) -> (HTTP status, error text); 200 = accepted but listed invalid.
SEND_ERRORS: dict[str, tuple[int, str]] = {
    "233200000401": (401, "Invalid or expired API key"),
    "233200000402": (402, "Insufficient SMS credits"),
    "233200000403": (403, "API key lacks the required permission: sms:send"),
    "233200000410": (400, "Invalid phone number: 233200000410"),
    "233200000411": (400, "Sender ID is not approved for this account"),
    "233200000412": (400, "Message contains blocked content"),
    "233200000413": (200, ""),
    "233200000414": (400, "Invalid request parameters"),
    "233200000429": (429, RATE_LIMITED),
    "233200000500": (500, "Internal server error"),
}
HANG_NUMBER = "233200000408"  # answers only when the client has given up (a read timeout)
# Recipient prefix (233 form) -> final status; None = never leaves the previous state.
OUTCOMES: dict[str, tuple[str, str | None]] = {
    "2332000009": ("SENT", "FAILED"),
    "2332000008": ("PENDING", None),  # stays PENDING
    "2332000007": ("SENT", None),  # stays SENT
}
_GHANA = re.compile(r"^233[25]\d{8}$")  # mobile ranges start with 2 or 5
_counter = itertools.count()
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def ghana_number(value: Any) -> str | None:
    """0XXXXXXXXX / 233XXXXXXXXX / +233XXXXXXXXX -> 233XXXXXXXXX; None if not a Ghana mobile."""
    text = str(value).strip().replace(" ", "")
    if text.startswith("+"):
        text = text[1:]
    if re.fullmatch(r"0\d{9}", text):
        text = "233" + text[1:]
    return text if _GHANA.match(text) else None


def cuid() -> str:
    """A cuid-like id: c + time + counter + fingerprint + random, lowercase base36."""

    def base36(number: int, width: int) -> str:
        out = ""
        while number:
            number, digit = divmod(number, 36)
            out = _BASE36[digit] + out
        return out.rjust(width, "0")[-width:]

    random = int.from_bytes(os.urandom(6), "big")
    return (
        "c"
        + base36(int(time.time() * 1000), 8)
        + base36(next(_counter), 4)
        + base36(os.getpid(), 4)
        + base36(random, 8)
    )


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(moment * 1000) % 1000:03d}Z"


def _estimate(message: str) -> dict[str, Any]:
    """Parts counted in characters, as FlashSMS states its limits (not in septets or UCS-2
    units, as `sms_parts` counts what an SMSC sends)."""
    gsm = is_gsm(message)
    length = len(message)
    single, part = (GSM_SINGLE, GSM_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    parts = 1 if length <= single else math.ceil(length / part)
    return {"length": length, "parts": parts, "encoding": "GSM-7" if gsm else "UCS-2"}


@dataclass
class State:
    """Everything the double holds of FlashSMS's own; `messages` and `throttled` are what tests look at."""

    api_key: str
    scopes: frozenset[str]
    senders: list[str]
    account: dict[str, int]  # {"balance": credits}
    rate_limit: int
    rate_window: float
    sent_after: float
    final_after: float
    progress: str
    all_invalid: str
    retry_after: int | None
    account_name: str
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    throttled: list[dict[str, Any]] = field(default_factory=list)
    arrivals: dict[str, deque[float]] = field(default_factory=dict)  # per API key: when its recent requests came


STATE = web.AppKey("flashsms_state", State)
Handler = Callable[[web.Request], Awaitable[web.Response]]


def make_app(
    *,
    api_key: str = DEFAULT_API_KEY,
    scopes: Iterable[str] = ALL_SCOPES,
    senders: Iterable[str] = ("FlashSMS", "MyBrand"),
    balance: int = 1000,
    rate_limit: int = 100,
    rate_window: float = 60.0,
    sent_after: float = 0.5,
    final_after: float = 1.5,
    progress: str = "time",
    all_invalid: str = "400",
    retry_after: int | None = None,
    account_name: str = "Simulated Account",
) -> web.Application:
    """Options: `api_key`, its `scopes`, approved `senders`, starting `balance` (credits),
    `rate_limit` requests in any `rate_window` seconds per key, `sent_after`/`final_after`
    seconds from PENDING to SENT and to the final status, `progress` "time" or "manual"
    (statuses change only through /_sim/), `all_invalid` "400" (no valid recipient ->
    HTTP 400) or "200" (accepted with recipientsSent 0), `retry_after` header on 429
    (None = none)."""
    state = State(
        api_key,
        frozenset(scopes),
        list(senders),
        {"balance": balance},
        rate_limit,
        rate_window,
        sent_after,
        final_after,
        progress,
        all_invalid,
        retry_after,
        account_name,
    )
    app = make_double(
        records={"throttled": state.throttled}, state={"messages": state.messages, "account": state.account}
    )
    app[STATE] = state
    api = "/api/v1"
    app.router.add_post(f"{api}/sms/send", _send)
    app.router.add_get(f"{api}/sms/status/{{message_id}}", _status)
    app.router.add_get(f"{api}/sms/{{message_id}}/recipients", _recipients)
    app.router.add_get(f"{api}/sms", _history)
    app.router.add_get(f"{api}/balance", _balance)
    app.router.add_post(f"{api}/sms/estimate", _estimate_cost)
    app.router.add_get(f"{api}/sender-ids", _sender_ids)
    app.router.add_post("/_sim/messages/{message_id}/status", _sim_status)
    app.router.add_post("/_sim/fail-next", fault_control(error_key="error", count_key="count"))
    app.router.add_get("/_sim/messages", _sim_messages)
    return app


# -- what every endpoint does first ----------------------------------------------------


def _fail(status: int, text: str, retry: int | None = None) -> web.Response:
    """Document 002's error shape."""
    headers = {"Retry-After": str(retry)} if retry else None
    return web.json_response({"success": False, "error": text}, status=status, headers=headers)


def _ok(data: Any) -> web.Response:
    return web.json_response({"success": True, "data": data})


def _throttled(state: State, key: str) -> bool:
    """True when `key` already made `rate_limit` requests in the last `rate_window`
    seconds (an exact sliding window); a refused request does not count."""
    now = time.monotonic()
    recent = state.arrivals.setdefault(key, deque())
    while recent and recent[0] <= now - state.rate_window:
        recent.popleft()
    if len(recent) >= state.rate_limit:
        return True
    recent.append(now)
    return False


def _guarded(scope: str) -> Callable[[Handler], Handler]:
    """Key, rate limit, scope, content type, injected failures: in the order the API
    applies them, before the endpoint's own handler."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.Response:
            app = request.app
            state = app[STATE]
            header = request.headers.get("Authorization", "")
            key = header[7:].strip() if header.startswith("Bearer ") else request.headers.get("X-API-Key")
            if not key:
                return _fail(401, "Missing API key")
            if key != state.api_key:
                return _fail(401, "Invalid or expired API key")
            if _throttled(state, key):
                state.throttled.append({"path": request.path, "at": time.time()})
                return _fail(429, RATE_LIMITED, state.retry_after)
            if scope not in state.scopes:
                return _fail(403, f"API key lacks the required permission: {scope}")
            if request.method == "POST" and request.content_type != "application/json":
                return _fail(400, "Content-Type must be application/json")
            fault = next_fault(app)
            await hold(app, fault.delay)
            if fault.status:
                return injected(fault, {"success": False, "error": fault.error or "Injected failure"})
            return await handler(request)

        return guarded

    return wrap


# -- messages and their recipients -------------------------------------------------------


def _state_of(state: State, message: dict[str, Any], phone: str) -> str:
    entry = message["recipients"][phone]
    if entry["override"]:
        return str(entry["override"])
    if state.progress == "manual":
        return "PENDING"
    elapsed = time.monotonic() - message["started"]
    hold_in, final = entry["outcome"]
    if elapsed < state.sent_after or (hold_in == "PENDING" and final is None):
        return "PENDING"
    if elapsed < state.final_after or final is None:
        return "SENT"
    return str(final)


def _overall(state: State, message: dict[str, Any]) -> str:
    states = [_state_of(state, message, phone) for phone in message["recipients"]]
    if any(s == "PENDING" for s in states):
        return "PENDING"
    if any(s == "SENT" for s in states):
        return "SENT"
    return "FAILED" if all(s == "FAILED" for s in states) else "DELIVERED"


def _sent_at(state: State, message: dict[str, Any], status: str) -> str | None:
    return None if status in ("PENDING", "FAILED") else _iso(message["created"] + state.sent_after)


def _find(request: web.Request) -> dict[str, Any]:
    message = request.app[STATE].messages.get(request.match_info["message_id"])
    if message is None:
        raise web.HTTPNotFound(
            text=json.dumps({"success": False, "error": "Message not found"}), content_type="application/json"
        )
    return dict(message)


def _summary(state: State, message: dict[str, Any]) -> dict[str, Any]:
    status = _overall(state, message)
    return {
        "id": message["id"],
        "status": status,
        "recipientCount": len(message["recipients"]),
        "message": message["message"],
        "senderId": message["senderId"],
        "creditsUsed": message["creditsUsed"],
        "scheduledAt": None,
        "sentAt": _sent_at(state, message, status),
        "createdAt": _iso(message["created"]),
    }


def _outcome(number: str) -> tuple[str, str | None]:
    return by_prefix(OUTCOMES, number, ("SENT", "DELIVERED"))


# -- the API -----------------------------------------------------------------------------


@_guarded("sms:send")
async def _send(request: web.Request) -> web.Response:
    app = request.app
    state = app[STATE]
    try:
        body = await request.json()
    except ValueError:
        return _fail(400, "Invalid JSON body")
    if not isinstance(body, dict):
        return _fail(400, "Invalid JSON body")
    unknown = sorted(set(body) - SEND_FIELDS)
    if unknown:
        return _fail(400, f"Unknown parameter: {unknown[0]}")
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        return _fail(400, "message is required")
    if len(message) > MAX_CHARS:
        return _fail(400, f"Message exceeds maximum length of {MAX_CHARS} characters")
    recipients = body.get("recipients")
    sources = ("groupId", "groupIds", "contactIds", "sendToAllContacts")  # contacts are not simulated
    if recipients is None and not any(body.get(k) for k in sources):
        return _fail(400, "At least one of recipients, groupId, groupIds, contactIds or sendToAllContacts is required")
    if recipients is not None and (not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients)):
        return _fail(400, "recipients must be an array of phone numbers")
    recipients = list(dict.fromkeys(recipients or []))
    if len(recipients) > MAX_RECIPIENTS:
        return _fail(400, f"Maximum {MAX_RECIPIENTS} recipients per request")
    sender = body.get("senderId") or (state.senders[0] if state.senders else None)
    if sender is None or sender not in state.senders:
        return _fail(400, f"Sender ID '{sender}' is not approved")
    valid: list[str] = []
    invalid: list[str] = []
    for raw in recipients:
        number = ghana_number(raw)
        if number is None:
            invalid.append(raw)
        elif number not in valid:
            valid.append(number)
    for number in valid:
        if number == HANG_NUMBER:
            await hold(app, 60)
            return _fail(500, "Internal server error")
        magic = SEND_ERRORS.get(number)
        if magic is not None and magic[0] != 200:
            status, text = magic
            return _fail(status, text, state.retry_after if status == 429 else None)
        if magic is not None:
            invalid.append(number)
    valid = [n for n in valid if n not in invalid]
    if not valid and state.all_invalid == "400":
        return _fail(400, "No valid recipients. Use Ghana phone numbers (0XXXXXXXXX or 233XXXXXXXXX)")
    cost = len(valid)  # "Each message costs 1 credit per recipient."
    if cost > state.account["balance"]:
        return _fail(402, "Insufficient SMS credits")
    state.account["balance"] -= cost
    message_id = cuid()
    state.messages[message_id] = {
        "id": message_id,
        "message": message,
        "senderId": sender,
        "campaignName": body.get("campaignName"),
        "created": time.time(),
        "started": time.monotonic(),
        "creditsUsed": cost,
        "recipients": {
            number: {"outcome": _outcome(number), "override": None, "order": i} for i, number in enumerate(valid)
        },
    }
    return _ok(
        {
            "messageId": message_id,
            "recipientsSent": len(valid),
            "invalidRecipients": invalid,
            "creditsUsed": cost,
            "remainingCredits": state.account["balance"],
            "scheduled": False,
            "scheduleDate": None,
        }
    )


@_guarded("sms:read")
async def _status(request: web.Request) -> web.Response:
    return _ok(_summary(request.app[STATE], _find(request)))


@_guarded("sms:read")
async def _recipients(request: web.Request) -> web.Response:
    state = request.app[STATE]
    message = _find(request)
    rows = []
    for phone in message["recipients"]:
        status = _state_of(state, message, phone)
        rows.append({"phone": phone, "status": status, "sentAt": _sent_at(state, message, status)})
    delivered = sum(r["status"] == "DELIVERED" for r in rows)
    failed = sum(r["status"] == "FAILED" for r in rows)
    stats = {
        "delivered": delivered,
        "failed": failed,
        "pending": len(rows) - delivered - failed,
        "deliveryRate": round(100.0 * delivered / len(rows), 1) if rows else 0.0,
    }
    return _ok(
        {
            "messageId": message["id"],
            "status": _overall(state, message),
            "recipientCount": len(rows),
            "recipients": rows,
            "stats": stats,
        }
    )


@_guarded("sms:read")
async def _history(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        page = max(1, int(request.query.get("page", 1)))
        limit = min(100, max(1, int(request.query.get("limit", 20))))
    except ValueError:
        return _fail(400, "page and limit must be numbers")
    wanted = request.query.get("status")
    rows = [_summary(state, m) for m in reversed(list(state.messages.values()))]
    rows = [r for r in rows if not wanted or r["status"] == wanted]
    for row in rows:
        row["message"] = row["message"][:160]
    total = len(rows)
    pages = max(1, math.ceil(total / limit))
    chunk = rows[(page - 1) * limit : page * limit]
    pagination = {"page": page, "limit": limit, "total": total, "totalPages": pages, "hasMore": page < pages}
    return _ok({"messages": chunk, "pagination": pagination})


@_guarded("balance:read")
async def _balance(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return _ok(
        {
            "balance": state.account["balance"],
            "currency": "credits",
            "accountName": state.account_name,
            "accountPhone": "0201234567",
        }
    )


@_guarded("sms:send")
async def _estimate_cost(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
    except ValueError:
        return _fail(400, "Invalid JSON body")
    message = body.get("message") if isinstance(body, dict) else None
    count = body.get("recipientCount") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        return _fail(400, "message is required")
    if not isinstance(count, int) or not 1 <= count <= 10000:
        return _fail(400, "recipientCount must be between 1 and 10000")
    required = count  # one credit per recipient, as the document says
    return _ok(
        {
            "message": _estimate(message),
            "recipientCount": count,
            "creditsRequired": required,
            "currentBalance": state.account["balance"],
            "canAfford": required <= state.account["balance"],
        }
    )


@_guarded("senders:read")
async def _sender_ids(request: web.Request) -> web.Response:
    names = request.app[STATE].senders
    return _ok(
        {
            "senderIds": [
                {"id": f"sid_{i:06d}", "name": name, "status": "APPROVED", "createdAt": None, "approvedAt": None}
                for i, name in enumerate(names)
            ]
        }
    )


# -- control ---------------------------------------------------------------------------


async def _sim_status(request: web.Request) -> web.Response:
    """Set a recipient's (or every recipient's) status: {"status": "DELIVERED", "phone"?}."""
    message = request.app[STATE].messages.get(request.match_info["message_id"])
    if message is None:
        raise web.HTTPNotFound()
    body = await request.json()
    phone = ghana_number(body["phone"]) if body.get("phone") else None
    for number, entry in message["recipients"].items():
        if phone is None or number == phone:
            entry["override"] = str(body["status"]).upper()
    return web.json_response({"ok": True})


async def _sim_messages(request: web.Request) -> web.Response:
    messages = request.app[STATE].messages
    return web.json_response(
        {mid: {"campaignName": m["campaignName"], "recipients": list(m["recipients"])} for mid, m in messages.items()}
    )
