"""Contacta "SMS México" (provider document 000, PROVIDERS.md section 2).

This module owns Contacta's wire format and nothing else: `POST` (JSON) or `GET`
(query) to `/v2/sms/send`, or `/v2/flash/send` for flash, with HTTP Basic auth; the
fields `msg`, `phone`, `sender`, `id`; the success shape; the error texts -> command_status
table. It never sees SMPP bytes.

Contacta documents no delivery report of any kind (no webhook, no status endpoint).
What the ESME gets instead is a synthetic receipt, `receipt_timeout` seconds after
Contacta accepted the message, in the state `receipt_state`: it says the bridge
stopped waiting, not what happened on the handset. Its due time is stored with the
message (`due_after`, `on_due`), so it survives a restart and, in a cluster, the
instance that sent the message.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from bridge.config import ContactaProvider as ContactaSettings
from bridge.core.message import Message
from bridge.core.numbers import Number, national_in
from bridge.logging import mask_number
from bridge.providers.base import Outcome, Provider, ProviderCheck, ProviderContext, SendResult
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
from bridge.smpp.text import gsm_septets

PATHS = {False: "/v2/sms/send", True: "/v2/flash/send"}
MEXICO = "52"
HOME = "MX"  # the country of SMS México's 10-digit `phone`
MIN_CHARS = 3  # the schema's minLength of `msg`
MAX_LENGTH = 160  # the schema's maxLength of `msg`, counted per `length_unit`
# What `sender` may hold when any source_addr is allowed ("*"): Contacta gives no rule,
# so the usual alphanumeric sender ID (11) or a number (15).
SENDER_ID = re.compile(r"^(?:[A-Za-z0-9]{1,11}|\d{12,15})$")


# The one documented text that says the message may already be on its way. With an
# HTTP 5xx (which otherwise means "not sent": fail over, re-send) it makes the outcome
# UNKNOWN: never re-sent blindly, and counted as a possible duplicate by the outbox.
MAY_BE_QUEUED = "failed to append to the queue"

# Document 000's error texts, matched on the start of the normalised text: lower case,
# without apostrophes (the document writes "dont", "don't" and, in a heading, "don"
# U+2019 "t"). HTTP statuses of these answers are not documented, so the text decides.
ERRORS: dict[str, Rule] = {
    # The bridge sends msg and phone always; Contacta still found something missing.
    "missing params": Rule(Status.ESME_RSUBMITFAIL, Outcome.REJECTED),
    # Our credentials, not the message: another provider may well send it.
    "your key auth is not valid": Rule(Status.ESME_RSYSERR, Outcome.NOT_SENT, alert=True),
    "your account dont have credits availables": Rule(Status.ESME_RSUBMITFAIL, Outcome.REJECTED, alert=True),
    "country or carrier not reachable": Rule(Status.ESME_RINVDSTADR, Outcome.REJECTED),
    # "no need to resend": not re-sent, not failed over (it might go out twice).
    MAY_BE_QUEUED: Rule(Status.ESME_RSUBMITFAIL, Outcome.REJECTED),
    "your account dont have enabled for send multi messages": Rule(Status.ESME_RINVNUMDESTS, Outcome.REJECTED),
}
UNKNOWN_ERROR = Rule(Status.ESME_RSUBMITFAIL, Outcome.REJECTED)  # any other error text

# `receipt_state` -> the synthetic receipt's message_state.
RECEIPT_STATES: dict[str, MessageState] = {
    "UNKNOWN": MessageState.UNKNOWN,
    "ACCEPTD": MessageState.ACCEPTED,
    "DELIVRD": MessageState.DELIVERED,
}
SYNTHETIC = "synthetic: Contacta has no delivery reports"


# -- request -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    fields: dict[str, str]

    def http_kwargs(self) -> dict[str, Any]:
        """POST carries the fields as a JSON body, GET as the query string."""
        return {"json": self.fields} if self.method == "POST" else {"params": self.fields}


def mexican_national(number: Number) -> str | None:
    """The 10 national digits of a Mexican number (`+52` and 10 digits). A national
    number of unknown country is taken as Mexican: SMS México's own format. The
    obsolete mobile `1` (`+521` and 10 digits), which Mexico dropped in 2019 and
    libphonenumber no longer knows, is still removed: old ESMEs send it."""
    national = national_in(number, HOME)
    if national is not None and len(national) == 11 and national.startswith("1"):
        national = national[1:]
    return national if national is not None and len(national) == 10 else None


def render_phone(number: Number, number_format: str) -> str | None:
    """`phone` for SMS México (10 national digits, Mexico only) or SMS Global (E.164
    without `+`); None when Contacta cannot take the number."""
    national = mexican_national(number)
    if number_format == "national":
        return national
    if national is not None:
        return MEXICO + national
    return number.digits if number.international else None


def text_refusal(text: str, length_unit: str) -> SendResult | None:
    """`msg` must be GSM 03.38 and 3..160 long: anything else is refused here, before
    an HTTP call that could only fail."""
    septets = gsm_septets(text)
    if septets is None:
        return SendResult.rejected(Status.ESME_RINVMSGLEN, "contacta: text not in GSM 03.38")
    length = septets if length_unit == "septets" else len(text)
    if length > MAX_LENGTH:
        return SendResult.rejected(Status.ESME_RINVMSGLEN, f"contacta: text longer than {MAX_LENGTH} {length_unit}")
    if len(text) < MIN_CHARS:
        return SendResult.rejected(Status.ESME_RINVMSGLEN, f"contacta: text shorter than {MIN_CHARS} characters")
    return None


def choose_sender(source_addr: str, allowed: Sequence[str], default: str) -> str:
    """source_addr when the config allows it, else the configured `sender`."""
    if source_addr and (source_addr in allowed or ("*" in allowed and SENDER_ID.match(source_addr))):
        return source_addr
    return default


def build_request(settings: ContactaSettings, message: Message) -> Request | SendResult:
    """The documented request, or the refusal when Contacta could not take the message."""
    phone = render_phone(message.number, settings.number_format)
    if phone is None:
        return SendResult.rejected(Status.ESME_RINVDSTADR, "contacta: destination not renderable")
    refusal = text_refusal(message.text, settings.length_unit)
    if refusal is not None:
        return refusal
    fields = {"msg": message.text, "phone": phone}
    sender = choose_sender(message.source.addr, settings.allowed_senders, settings.sender)
    if sender:
        fields["sender"] = sender
    fields["id"] = str(message.id)
    return Request(settings.method, PATHS[message.flash], fields)


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


# -- answer --------------------------------------------------------------------------


def _normalised(text: str) -> str:
    return " ".join(text.lower().replace("'", "").replace("\u2019", "").split())


def error_rule(text: str) -> tuple[str, Rule] | None:
    """(the matching ERRORS key, its rule): the key, not the text, goes to the logs."""
    normalised = _normalised(text)
    for prefix, rule in ERRORS.items():
        if normalised.startswith(prefix):
            return prefix, rule
    return None


def error_text(body: dict[str, Any]) -> str:
    """The examples carry the text in `description`, the schema names it `message`."""
    for key in ("description", "message"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def provider_ids(description: dict[str, Any], reference: str) -> list[str]:
    """`job_id` and `id` (int or string; the document uses both), else our reference."""
    ids: list[str] = []
    for key in ("job_id", "id"):
        value = description.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            continue
        value = str(value).strip()
        if value and value not in ids:
            ids.append(value)
    return ids or [reference]


def parse_answer(answer: HttpAnswer, reference: str) -> tuple[SendResult, bool]:
    """(result, alert): what Contacta's answer means, and whether the operator must act.

    `reference` is our message id, the `id` we sent."""
    body = answer.json()
    if answer.status >= 500 and isinstance(body, dict):
        matched = error_rule(error_text(body))
        if matched is not None and matched[0] == MAY_BE_QUEUED:  # "no need to resend"
            return SendResult.unknown(f"contacta: HTTP {answer.status}, {MAY_BE_QUEUED}", metric="error"), False
    refused = refused_by_status(answer)  # other 429 and 5xx go by the status, whatever the body says
    if refused is not None:
        return refused, False
    if isinstance(body, dict):
        description = body.get("description")
        if body.get("status") is True and isinstance(description, dict) and 200 <= answer.status < 300:
            return SendResult.accepted(*provider_ids(description, reference)), False
        if body.get("status") is False or body.get("error") is True:
            matched = error_rule(error_text(body))
            if matched is not None:
                prefix, rule = matched
                result = refusal(rule.status, rule.outcome, f"contacta error: {prefix}")
                return result.answered(answer.status, prefix), rule.alert
            reason = f"contacta error not documented (HTTP {answer.status})"
            return refusal(UNKNOWN_ERROR.status, UNKNOWN_ERROR.outcome, reason), False
    return undocumented_answer(answer, "contacta"), answer.status in CREDENTIALS_REFUSED


# -- the connector -------------------------------------------------------------------


class Contacta(Provider):
    kind: ClassVar[str] = "contacta"
    supports_flash: ClassVar[bool] = True
    settings: ContactaSettings

    def __init__(self, name: str, settings: ContactaSettings, context: ProviderContext) -> None:
        super().__init__(name, settings, context)
        self._http = HttpClient.for_provider(
            settings, {"Authorization": basic_auth(settings.username, settings.password.get_secret_value())}
        )

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def send(self, message: Message) -> SendResult:
        request = build_request(self.settings, message)
        if isinstance(request, SendResult):
            return request
        self.log.debug(
            "contacta_send", message_id=message.id, phone=mask_number(request.fields["phone"]), flash=message.flash
        )
        answer = await self._http.request(
            request.method, self.settings.base_url + request.path, **request.http_kwargs()
        )
        if isinstance(answer, SendResult):
            return answer
        result, alert = parse_answer(answer, str(message.id))
        result = result.answered(answer.status)
        if alert:
            self.log.error("contacta_account_problem", reason=result.reason, http_status=answer.status)
        return result

    async def check_access(self) -> ProviderCheck:
        """Document 000 has the send endpoints only: nothing to check without sending."""
        return ProviderCheck(checked=False, detail="document 000 has no call but sending: not checkable")

    # -- synthetic receipts ------------------------------------------------------------

    def due_after(self, message: Message) -> float | None:
        return self.settings.receipt_timeout if self.settings.receipt_timeout > 0 else None

    async def on_due(self, messages: Sequence[Message]) -> list[float | None]:
        """The synthetic receipt of each message."""
        state = RECEIPT_STATES[self.settings.receipt_state]
        return await self.report_timed_out(messages, self.settings.receipt_timeout, state, SYNTHETIC)
