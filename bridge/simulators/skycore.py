"""A faithful HTTP double of Skycore Messaging API v2 "Send SMS" (provider document 003).

One endpoint (`path`, default `/API`) takes `POST` JSON and dispatches on `action`
(case-insensitive; only `sendsms` here). It is strict: it refuses what document 003
does not allow. The `x-api-key` header is checked first (E102 missing, E104 wrong),
then the request: E100 for a content type other than application/json, a body that
is not a JSON object, or a parameter the document does not list; E101 action; E201
no receiver, E110 a receiver that is not `+` and the country code's digits (every
example is `"to": "+10000000001"`); E111 sender; E712 text; E100 `click-tracking`
not a boolean; E115 mask for Australia; E714/E715 campaign when
`enforce_campaign_check`. Success and Failure both answer HTTP 200, as Skycore does.

After a Success the double POSTs JSON postbacks to the account's postback URL, the
way Skycore does: N201 (Sent) `sent_delay` seconds later, then the final one
(N202 Delivered by default) `final_delay` seconds after N201 was answered. A
postback not answered 200 within `postback_timeout` is retried `retry_interval`
seconds later, at most `max_retries` times (Skycore: 10 s, 5 minutes, 5 retries).

Magic destinations (the digits after the `+`):
    999000NNN       Failure with error code ENNN (any code of ERROR_INFO)
    1999001...      N201, then E202 "Rejected"
    1999002...      N201, then E202 "Expired"
    1999003...      E201 "Failed" only (the carrier never took it)
    1999004...      N201 only (a carrier without delivery receipts)

Control endpoints:
    POST /_sim/fail      {"status": 500, "times": 1, "delay": 0, "retry_after": null, "error-code": null}
    POST /_sim/settings  {"postback_url": "http://..."}   (the account's API Settings page)
    POST /_sim/reset

Requests to the API are recorded in `app["received"]` (bridge.simulators.common),
postback attempts in `app["postbacks"]` (payload, url, attempt, HTTP status or error).

Standalone defaults (`smpp-bridge simulate skycore`): API key `skycore-test-key`,
sender 60856, endpoint `/API`, no postback URL until one is set in /_sim/settings.
"""

from __future__ import annotations

import hmac
import itertools
import re
from collections.abc import Collection, Mapping
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
    make_double,
    next_fault,
    notify,
    spawn,
    stopping,
)

DEFAULT_API_KEY = "skycore-test-key"
DEFAULT_SENDERS = ("60856",)

# error-code -> error-info (v2 intro for E100; Skycore's v1.3 appendix and Sinch's
# MMS JSON API, the same platform, for the others).
ERROR_INFO = {
    "E100": "Invalid request. Please make a valid JSON POST request with all the required variables.",
    "E101": "'action' required/Invalid Action.",
    "E102": "'api_key' required.",
    "E103": "API access blocked.",
    "E104": "User Authentication FAILED.",
    "E105": "This account has no API rights.",
    "E106": "You can call API every X seconds.",
    "E107": "This account has no rights to use this action.",
    "E108": "JSON Parse error.",
    "E109": "API not activated.",
    "E110": "Invalid receiver number.",
    "E111": "Invalid Sender.",
    "E112": "IP was not whitelisted. API call rejected.",
    "E113": "Set throughput exceeded for this API action. API call rejected.",
    "E114": "Phone number is blacklisted. API call rejected.",
    "E115": "Sender mask is too long.",
    "E120": "Account has reached the API request limit.",
    "E201": "The receiver number is required.",
    "E503": "Internal error.",
    "E712": "The 'message-text' is required.",
    "E713": "There is billing problem on your account.",
    "E714": "Missing/Invalid 'campaign-ref'.",
    "E715": "Number is not subscribed to this campaign.",
}
MAGIC_ERROR_PREFIX = "999000"
# Destination prefix -> the postbacks after a Success: (code, status) in order.
SENT = ("N201", "Sent")
DELIVERED = ("N202", "Delivered")
OUTCOMES: dict[str, tuple[tuple[str, str], ...]] = {
    "1999001": (SENT, ("E202", "Rejected")),
    "1999002": (SENT, ("E202", "Expired")),
    "1999003": (("E201", "Failed"),),
    "1999004": (SENT,),
}
NORMAL = (SENT, DELIVERED)
RECEIVER = re.compile(r"^\+[1-9]\d{6,14}$")  # `+`, the country code and the number
# The request parameters of document 003's table (x-api-key is the header).
PARAMETERS = frozenset({"action", "message-text", "to", "from", "from-mask", "campaign-ref", "click-tracking"})
MASK_LIMIT = 11  # characters; Skycore cuts a longer mask (Australia refuses it: E115)
AUSTRALIA = "61"
OPERATOR = {"operator-id": "0001470", "operator-name": "AT&T"}


@dataclass
class State:
    """Everything the double holds of Skycore's own; `postbacks` is what tests look at."""

    api_key: str
    senders: Collection[str]
    postback_url: str | None
    sent_delay: float
    final_delay: float
    postback_timeout: float
    retry_interval: float
    max_retries: int
    enforce_campaign_check: bool
    campaigns: Mapping[str, Collection[str]]
    postbacks: list[dict[str, Any]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


STATE = web.AppKey("skycore_state", State)


def make_app(
    *,
    api_key: str = DEFAULT_API_KEY,
    senders: Collection[str] = DEFAULT_SENDERS,
    path: str = "/API",
    postback_url: str | None = None,
    sent_delay: float = 1.0,
    final_delay: float = 1.0,
    postback_timeout: float = 10.0,
    retry_interval: float = 300.0,
    max_retries: int = 5,
    enforce_campaign_check: bool = False,
    campaigns: Mapping[str, Collection[str]] | None = None,
) -> web.Application:
    """The double. `senders`: the account's numbers (`from`); `campaigns`: campaign-ref ->
    subscribed numbers (digits), checked when `enforce_campaign_check`."""
    state = State(
        api_key,
        frozenset(senders),
        postback_url,
        sent_delay,
        final_delay,
        postback_timeout,
        retry_interval,
        max_retries,
        enforce_campaign_check,
        dict(campaigns or {}),
    )
    app = make_double(records={"postbacks": state.postbacks})
    app[STATE] = state
    app.router.add_route("*", path, _api)
    app.router.add_post("/_sim/fail", fault_control(error_key="error-code", errors=ERROR_INFO))
    app.router.add_post("/_sim/settings", _settings)
    return app


# -- the API -------------------------------------------------------------------------


def _failure(code: str, to: str = "") -> web.Response:
    body = {"status": "Failure", "error-code": code, "error-info": ERROR_INFO[code]}
    if to:
        body["to"] = to
    return web.json_response(body)


async def _api(request: web.Request) -> web.Response:
    state = request.app[STATE]
    fault = next_fault(request.app)
    await hold(request.app, fault.delay)
    if fault.status:
        return injected(fault, {"message": "injected failure"})
    given_key = request.headers.get("x-api-key", "")
    if not given_key:
        return _failure("E102")
    if not hmac.compare_digest(given_key.encode(), state.api_key.encode()):
        return _failure("E104")
    if request.method != "POST" or request.content_type != "application/json":
        return _failure("E100")
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not set(body) <= PARAMETERS:
        return _failure("E100")
    if str(body.get("action", "")).strip().lower() != "sendsms":
        return _failure("E101")
    if not isinstance(body.get("click-tracking", False), bool):
        return _failure("E100")
    return await _sendsms(request.app, state, body, fault.error)


async def _sendsms(app: web.Application, state: State, body: dict[str, Any], error_code: str | None) -> web.Response:
    to = body.get("to")
    if not isinstance(to, str) or not to.strip():
        return _failure("E201")
    digits = to.strip().removeprefix("+")
    if not RECEIVER.match(to.strip()):
        return _failure("E110", digits)
    if error_code:
        return _failure(error_code, digits)
    if digits.startswith(MAGIC_ERROR_PREFIX) and f"E{digits[len(MAGIC_ERROR_PREFIX) :]}" in ERROR_INFO:
        return _failure(f"E{digits[len(MAGIC_ERROR_PREFIX) :]}", digits)
    sender = body.get("from")
    if not isinstance(sender, str) or sender.removeprefix("+") not in state.senders:
        return _failure("E111", digits)
    text = body.get("message-text")
    if not isinstance(text, str) or not text:
        return _failure("E712", digits)
    mask = body.get("from-mask")
    if isinstance(mask, str) and mask:
        if digits.startswith(AUSTRALIA) and len(mask) > MASK_LIMIT:
            return _failure("E115", digits)
        mask = mask[:MASK_LIMIT]
    else:
        mask = None
    campaign = body.get("campaign-ref")
    if state.enforce_campaign_check:
        if not isinstance(campaign, str) or campaign not in state.campaigns:
            return _failure("E714", digits)
        if digits not in state.campaigns[campaign]:
            return _failure("E715", digits)
    tracking_id = f"sky{next(state.counter):09d}"
    postback = {"origin": "SMS_MT", "sent-as": "SMS", "from": sender, "to": digits, "tracking-id": tracking_id}
    if isinstance(campaign, str) and campaign:
        postback["campaign-ref"] = campaign
    if mask:
        postback["from-mask"] = mask
    spawn(app, _report(app, postback, _outcome(digits)))
    return web.json_response(
        {
            "status": "Success",
            "tracking-id": tracking_id,
            "to": to,
            "from": sender,
            "status-details": "SMS request accepted and queued for delivery",
        }
    )


def _outcome(digits: str) -> tuple[tuple[str, str], ...]:
    return by_prefix(OUTCOMES, digits, NORMAL)


# -- postbacks -----------------------------------------------------------------------


async def _report(app: web.Application, postback: dict[str, str], events: tuple[tuple[str, str], ...]) -> None:
    """The postbacks of one message, in order: each is first sent `sent_delay` /
    `final_delay` after the previous one was answered; retries go on on their own."""
    state = app[STATE]
    for index, (code, status) in enumerate(events):
        await hold(app, state.sent_delay if index == 0 else state.final_delay)
        if stopping(app):
            return
        payload = {**postback, "code": code, "status": status, **OPERATOR, "timestamp": _now()}
        if not await _post(app, payload, 0):
            spawn(app, _retry(app, payload))


async def _retry(app: web.Application, payload: dict[str, str]) -> None:
    """Skycore's rule: again `retry_interval` later, at most `max_retries` times."""
    state = app[STATE]
    for attempt in range(1, state.max_retries + 1):
        await hold(app, state.retry_interval)
        if stopping(app) or await _post(app, payload, attempt):
            return


async def _post(app: web.Application, payload: dict[str, str], attempt: int) -> bool:
    """One attempt, recorded in app["postbacks"]; True when answered 200 in time."""
    state = app[STATE]
    url = state.postback_url
    record: dict[str, Any] = {"payload": payload, "url": url, "attempt": attempt, "status": None, "error": None}
    if url is None:
        record["error"] = "no postback URL"
    else:
        try:
            timeout = aiohttp.ClientTimeout(total=state.postback_timeout)
            async with client(app).post(url, json=payload, timeout=timeout) as response:
                record["status"] = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            record["error"] = type(exc).__name__
    record["gave_up"] = record["status"] != 200 and attempt == state.max_retries
    state.postbacks.append(record)
    await notify(app)
    return bool(record["status"] == 200)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- control -------------------------------------------------------------------------


async def _settings(request: web.Request) -> web.Response:
    """The account's API Settings page: the postback URL."""
    spec = await request.json()
    state = request.app[STATE]
    if "postback_url" in spec:
        state.postback_url = spec["postback_url"] or None
    return web.json_response({"postback_url": state.postback_url})
