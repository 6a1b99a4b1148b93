"""Skycore Messaging API v2 "Send SMS" (provider document 003, PROVIDERS.md section 5).

This module owns Skycore's wire format and nothing else: one `POST` of JSON
`{"action": "sendsms", "message-text", "to", "from", "from-mask"?, "campaign-ref"?}`
to the account's endpoint URL with the `x-api-key` header; the Success/Failure answer
(branched on `status`, whatever the HTTP status); the error-code table; and the JSON
postbacks (N201 sent, N202 delivered, E201 failed, E202 rejected) that Skycore POSTs
to the one postback URL of the account, {public_url}/callbacks/<name>/<callback_token>.

Skycore has no flash message class. Not every carrier returns a delivery receipt, so
a message without a final postback ends UNKNOWN after `final_timeout` (a due time
stored with the message: `due_after`, `on_due`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

from bridge.config import SkycoreProvider as SkycoreSettings
from bridge.core.message import Message
from bridge.core.numbers import Number
from bridge.core.ports import (
    CallbackAnswer,
    CallbackRequest,
    Outcome,
    Provider,
    ProviderCheck,
    ProviderContext,
    SendResult,
    StatusReport,
)
from bridge.logging import mask_number
from bridge.metrics import labels
from bridge.providers.http import (
    CREDENTIALS_REFUSED,
    HttpAnswer,
    HttpClient,
    Rule,
    refusal,
    refused_by_status,
    undocumented_answer,
)
from bridge.smpp.constants import MessageState, Status
from bridge.smpp.text import sms_parts

ACTION = "sendsms"
SUCCESS = "success"
FAILURE = "failure"
SMS_MT = "SMS_MT"
# A sender mask: letters, digits, space, `_` and `-`, not only digits (Skycore cuts it at 11).
MASK = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 _-]+$")
SENDER_NUMBER = re.compile(r"^\d{3,15}$")
# Recent (tracking-id, code) pairs whose replays skip the store (final states ignore
# them anyway, so this only saves work). Skycore retries an unanswered postback 5
# times, 5 minutes apart: a replay can come 25 minutes (1,500 s) after the first. Two
# postbacks a message (N201, then the final one), so 100,000 pairs cover the whole
# retry span at ~33 messages a second sustained, in ~22 MB (measured with tracemalloc,
# 12-character ids); beyond that a replay costs one store lookup, nothing more.
DEDUP_ENTRIES = 100_000


# `error-code` of a Failure answer -> what the ESME is told. Errors about our account,
# our request or Skycore itself are NOT_SENT (another provider may send the message);
# errors about the message are REJECTED (no failover).
ERRORS: dict[str, Rule] = {
    "E100": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # invalid request
    "E101": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # 'action' required / invalid
    "E102": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # API key required
    "E103": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # API access blocked
    "E104": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # authentication failed
    "E105": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # account has no API rights
    "E106": Rule(Status.ESME_RTHROTTLED, Outcome.NOT_SENT),  # API called too often
    "E107": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # action not allowed to this account
    "E108": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # parse error
    "E109": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # API not activated
    "E110": Rule(Status.ESME_RINVDSTADR, Outcome.REJECTED),  # invalid receiver number
    "E111": Rule(Status.ESME_RINVSRCADR, Outcome.REJECTED),  # invalid sender / short code
    "E112": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),  # IP not allow-listed
    "E113": Rule(Status.ESME_RTHROTTLED, Outcome.NOT_SENT),  # throughput exceeded
    "E114": Rule(Status.ESME_RINVDSTADR, Outcome.REJECTED),  # number blacklisted
    "E115": Rule(Status.ESME_RINVSRCADR, Outcome.REJECTED),  # sender mask too long (AU)
    "E120": Rule(Status.ESME_RTHROTTLED, Outcome.NOT_SENT),  # API request limit reached
    "E201": Rule(Status.ESME_RINVDSTADR, Outcome.REJECTED),  # receiver number required
    "E503": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT),  # internal error
    "E712": Rule(Status.ESME_RINVMSGLEN, Outcome.REJECTED),  # text required
    "E713": Rule(Status.ESME_RSUBMITFAIL, Outcome.REJECTED, alert=True),  # billing problem
    "E714": Rule(Status.ESME_RSUBMITFAIL, Outcome.REJECTED, alert=True),  # campaign missing / invalid
    "E715": Rule(Status.ESME_RSUBMITFAIL, Outcome.REJECTED),  # number not subscribed to the campaign
}
UNKNOWN_ERROR = Rule(Status.ESME_RSUBMITFAIL, Outcome.REJECTED)  # any other code, or none


class Postback(NamedTuple):
    state: MessageState
    error: int  # the receipt's err: field


# SMS_MT postback `code` -> message_state and err.
POSTBACK_STATES: dict[str, Postback] = {
    "N201": Postback(MessageState.ENROUTE, 0),  # Sent: handed to the carrier
    "N202": Postback(MessageState.DELIVERED, 0),  # Delivered: positive carrier DLR
    "E201": Postback(MessageState.REJECTED, 201),  # Failed: the carrier did not take it
    "E202": Postback(MessageState.UNDELIVERABLE, 202),  # Rejected: negative carrier DLR
}
# An E202 whose status says "Expired" (v1: "Message Sent/Expired").
EXPIRED = Postback(MessageState.EXPIRED, 202)
# `status` words -> code, for a postback that lacks its code.
STATUS_CODES = {"sent": "N201", "delivered": "N202", "failed": "E201", "rejected": "E202", "expired": "E202"}
NO_FINAL_POSTBACK = "no final postback within final_timeout"
ANSWERED = CallbackAnswer()  # the 200 of every postback taken (made once: one per receipt)


# -- request -------------------------------------------------------------------------


def render_to(number: Number, plus_prefix: bool) -> str | None:
    """`+` and the E.164 digits (document 003's `"to": "+10000000001"`), or the digits
    alone without `plus_prefix`; None for a national number of unknown country, which
    has no country code to give."""
    if not number.international:
        return None
    return "+" + number.digits if plus_prefix else number.digits


def senders(source_addr: str, settings: SkycoreSettings) -> tuple[str, str]:
    """(from, from-mask). An allowed source_addr of digits is the `from` number; one with
    letters is the mask on the configured number. Otherwise the configured pair."""
    allowed = settings.allowed_senders
    if source_addr and (source_addr in allowed or "*" in allowed):
        if SENDER_NUMBER.match(source_addr):
            return source_addr, settings.from_mask
        if MASK.match(source_addr):
            return settings.from_, source_addr
    return settings.from_, settings.from_mask


def build_body(settings: SkycoreSettings, message: Message) -> dict[str, Any] | SendResult:
    """The documented JSON body, or the refusal when Skycore could not take the message."""
    to = render_to(message.number, settings.plus_prefix)
    if to is None:
        return SendResult.rejected(Status.ESME_RINVDSTADR, "skycore: destination not renderable")
    if not message.text:
        return SendResult.rejected(Status.ESME_RINVMSGLEN, "skycore: empty text")
    if settings.max_parts and sms_parts(message.text) > settings.max_parts:
        return SendResult.rejected(Status.ESME_RINVMSGLEN, f"skycore: text longer than {settings.max_parts} parts")
    sender, mask = senders(message.source.addr, settings)
    body: dict[str, Any] = {"action": ACTION, "message-text": message.text, "to": to, "from": sender}
    if mask:
        body["from-mask"] = mask
    if settings.campaign_ref:
        body["campaign-ref"] = settings.campaign_ref
    if settings.click_tracking:
        body["click-tracking"] = True
    return body


# -- answer --------------------------------------------------------------------------


def parse_answer(answer: HttpAnswer, reference: str) -> tuple[SendResult, bool]:
    """(result, alert): what Skycore's answer means, and whether the operator must act.

    Success and Failure both come with HTTP 200 as far as anyone knows, so `status`
    decides; `reference` (our message id) stands in for a missing tracking-id."""
    refused = refused_by_status(answer)  # 429 and 5xx go by the status, whatever the body says
    if refused is not None:
        return refused, False
    body = answer.json()
    status = body.get("status") if isinstance(body, dict) else None
    taken = 200 <= answer.status < 300
    if taken and isinstance(status, str) and status.strip().lower() == SUCCESS:
        tracking_id = body.get("tracking-id")
        if isinstance(tracking_id, (str, int)) and not isinstance(tracking_id, bool) and str(tracking_id).strip():
            return SendResult.accepted(str(tracking_id).strip()), False
        # Taken, but its postbacks cannot be matched: the operator should know.
        reason = "skycore: Success without tracking-id"
        return SendResult(Outcome.ACCEPTED, Status.ESME_ROK, (reference,), reason=reason), True
    if isinstance(status, str) and status.strip().lower() == FAILURE:
        code = str(body.get("error-code", "")).strip().upper()
        rule = ERRORS.get(code, UNKNOWN_ERROR)
        result = refusal(rule.status, rule.outcome, f"skycore {code or 'failure without error-code'}")
        return result.answered(answer.status, code), rule.alert
    return undocumented_answer(answer, "skycore"), answer.status in CREDENTIALS_REFUSED


# -- postbacks -----------------------------------------------------------------------


def postback_state(payload: dict[str, Any]) -> tuple[str, Postback] | None:
    """(code, state) of an SMS_MT postback; None for other origins and unknown codes."""
    origin = str(payload.get("origin", SMS_MT)).strip().upper()
    if origin != SMS_MT:
        return None
    status = str(payload.get("status", "")).strip().lower()
    code = str(payload.get("code", "")).strip().upper() or STATUS_CODES.get(status, "")
    mapped = POSTBACK_STATES.get(code)
    if mapped is None:
        return None
    if code == "E202" and "expired" in status:
        return code, EXPIRED
    return code, mapped


def postback_time(payload: dict[str, Any], default: float) -> float:
    """`timestamp` (ISO-8601 with microseconds and offset) as epoch seconds."""
    value = payload.get("timestamp")
    if not isinstance(value, str):
        return default
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return default
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- the connector -------------------------------------------------------------------


class Skycore(Provider):
    kind: ClassVar[str] = "skycore"
    supports_flash: ClassVar[bool] = False
    settings: SkycoreSettings

    def __init__(self, name: str, settings: SkycoreSettings, context: ProviderContext) -> None:
        super().__init__(name, settings, context)
        self._http = HttpClient.for_provider(settings, {"x-api-key": settings.api_key.get_secret_value()})
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._callback_children: dict[tuple[str, ...], Any] = {}

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    def callback_token(self) -> str | None:
        return self.settings.callback_token.get_secret_value()

    async def send(self, message: Message) -> SendResult:
        body = build_body(self.settings, message)
        if isinstance(body, SendResult):
            return body
        self.log.debug("skycore_send", message_id=message.id, to=mask_number(body["to"]))
        answer = await self._http.request("POST", self.settings.url, json=body)
        if isinstance(answer, SendResult):
            return answer
        result, alert = parse_answer(answer, str(message.id))
        result = result.answered(answer.status)
        if alert:
            self.log.error("skycore_operator_attention", reason=result.reason, http_status=answer.status)
        return result

    async def check_access(self) -> ProviderCheck:
        """Document 003 has `action=sendsms` only: nothing to check without sending."""
        return ProviderCheck(checked=False, detail="document 003 has no action but sendsms: not checkable")

    # -- postbacks ---------------------------------------------------------------------

    async def handle_callback(self, request: CallbackRequest) -> CallbackAnswer:
        """One postback. Cheap on purpose (one store lookup and one group-committed
        write) so Skycore gets its 200 well within its 10 seconds. The 200 comes only
        after the new state is committed; a failure to record answers 503 so that
        Skycore sends the postback again later."""
        if request.method != "POST":
            self._count("bad_method")
            return CallbackAnswer.error(405, headers={"Allow": "POST"})
        try:
            payload = request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self._count("bad_request")
            return CallbackAnswer.error(400, "expected a JSON object")
        mapped = postback_state(payload)
        tracking_id = payload.get("tracking-id")
        tracking_id = str(tracking_id).strip() if isinstance(tracking_id, (str, int)) else ""
        if mapped is None or not tracking_id:
            # Other origins (SMS_MO, MMS_*) share the URL: they are not ours to handle.
            self._count("ignored")
            self.log.info("skycore_postback_ignored", origin=str(payload.get("origin")), code=str(payload.get("code")))
            return ANSWERED
        code, postback = mapped
        key = (tracking_id, code)
        if key in self._seen:
            self._count("duplicate")
            return ANSWERED
        report = StatusReport(
            self.name,
            tracking_id,
            postback.state,
            postback.error,
            postback_time(payload, self.context.clock()),
            str(payload.get("status", code)),
        )
        try:
            known = await self.context.report(report)
        except Exception:
            self._count("error")
            self.log.exception("skycore_postback_failed", code=code)
            return CallbackAnswer.error(503)
        self._remember(key)
        self._count("ok" if known else "unknown_id")
        return ANSWERED

    def _remember(self, key: tuple[str, str]) -> None:
        self._seen[key] = None
        if len(self._seen) > DEDUP_ENTRIES:
            self._seen.popitem(last=False)

    def _count(self, result: str) -> None:
        labels(self.context.metrics.callbacks, self._callback_children, self.name, result).inc()

    # -- messages that never get a final postback ------------------------------------

    def due_after(self, message: Message) -> float | None:
        return self.settings.final_timeout if self.settings.final_timeout > 0 else None

    async def on_due(self, messages: Sequence[Message]) -> list[float | None]:
        """End UNKNOWN each message still waiting for its final postback."""
        timeout = self.settings.final_timeout
        return await self.report_timed_out(messages, timeout, MessageState.UNKNOWN, NO_FINAL_POSTBACK)
