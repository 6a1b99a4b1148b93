"""FlashSMS (Ghana, app.flashsms.africa): this module owns FlashSMS's wire format and nothing else.

Send: `POST {base_url}/sms/send`, `Authorization: Bearer <key>` (or `X-API-Key`), JSON
`{"recipients": ["233XXXXXXXXX"], "message", "senderId"?, "campaignName"?}`. Ghana
numbers only, text up to 918 characters, no flash flag (`supports_flash = False`).
The answer has one `messageId` per request and reports are per (messageId, phone), so
the provider id we store is `"<messageId>:<phone>"`. Errors are
`{"success": false, "error": "<text>"}` by HTTP status (`FLASHSMS_HTTP_ERRORS`; 400 by
the words of the text, `FLASHSMS_400_WORDS`).

Reports: polling only, `GET /sms/:id/recipients` (or `/sms/status/:id`), first after
`poll_interval` seconds and then backing off (due times and poll counts stored with
the messages: `due_after`, `on_due`; the messages of one coalesced request share
their messageId and one poll), within the account's 100 requests per
minute shared with the sends (`RequestWindow`: never more than 100 in any 60 seconds);
an HTTP 429 pauses every request of this provider. `FLASHSMS_STATUSES` maps PENDING/SENT/DELIVERED/FAILED.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from bridge.config import FlashSmsProvider as FlashSmsSettings
from bridge.core.message import Message
from bridge.core.numbers import Number, national_in
from bridge.logging import mask_number
from bridge.providers.base import (
    Outcome,
    Provider,
    ProviderCheck,
    ProviderContext,
    SendResult,
    StatusReport,
    send_checked,
)
from bridge.providers.http import (
    CREDENTIALS_REFUSED,
    HttpAnswer,
    HttpClient,
    RequestWindow,
    access_check,
    refusal,
    refused_by_status,
    retry_after,
    undocumented_answer,
)
from bridge.providers.polling import hold_off, next_poll, worth_reporting
from bridge.smpp.constants import MessageState, Status
from bridge.smpp.text import is_gsm

# -- mapping tables (PROVIDERS.md 4.2 and 4.3; the SMPP side is a proposal) ---------------

# HTTP status of a refused send -> (command_status, outcome). 404 is our configuration
# (base_url), not the message's fault: NOT_SENT lets another provider or a later attempt
# take it. 402 is replaced by settings.credits_status. 401 (key missing, invalid or
# expired) and 403 (key lacks the sms:send scope) are `undocumented_answer`'s
# credentials rule: NOT_SENT, ESME_RSYSERR.
FLASHSMS_HTTP_ERRORS: dict[int, tuple[Status, Outcome]] = {
    402: (Status.ESME_RSUBMITFAIL, Outcome.REJECTED),  # insufficient credits
    404: (Status.ESME_RSYSERR, Outcome.NOT_SENT),  # wrong base_url
}
# HTTP 400 (and a 200 with success false): the first word found in the error text, in
# this order, decides; none -> ESME_RSUBMITFAIL.
FLASHSMS_400_WORDS: dict[str, Status] = {
    "phone": Status.ESME_RINVDSTADR,
    "recipient": Status.ESME_RINVDSTADR,
    "number": Status.ESME_RINVDSTADR,
    "sender": Status.ESME_RINVSRCADR,
    "message": Status.ESME_RINVMSGLEN,
    "length": Status.ESME_RINVMSGLEN,
    "characters": Status.ESME_RINVMSGLEN,
}
FLASHSMS_UNKNOWN_ERROR = Status.ESME_RSUBMITFAIL

# Recipient status -> (message_state, err). PENDING and SENT are intermediate.
FLASHSMS_STATUSES: dict[str, tuple[MessageState, int]] = {
    "PENDING": (MessageState.ENROUTE, 0),
    "SENT": (MessageState.ENROUTE, 0),
    "DELIVERED": (MessageState.DELIVERED, 0),
    "FAILED": (MessageState.UNDELIVERABLE, 1),
}

GHANA = "GH"
_GHANA_NSN = re.compile(r"^[1-9]\d{8}$")  # a Ghanaian national significant number: 9 digits
THROTTLE_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)  # 429 without Retry-After


# -- pure functions ------------------------------------------------------------------------


def render_number(number: Number) -> str | None:
    """`233XXXXXXXXX`, one of the two documented forms; None outside Ghana. A
    national number of unknown country is taken as Ghanaian (`0XXXXXXXXX`, the
    document's own examples)."""
    national = national_in(number, GHANA)
    return "233" + national if national is not None and _GHANA_NSN.match(national) else None


def phone_key(phone: Any) -> str:
    """A phone as FlashSMS may write it (0…, +233…, 233…) -> `233XXXXXXXXX` for comparisons."""
    digits = re.sub(r"\D", "", str(phone))
    if len(digits) == 10 and digits.startswith("0"):
        return "233" + digits[1:]
    return digits


def provider_id(message_id: str, phone: str) -> str:
    return f"{message_id}:{phone}"


def split_provider_id(value: str) -> tuple[str, str]:
    message_id, _, phone = value.rpartition(":")
    return message_id, phone


def status_for_400(text: str) -> Status:
    lowered = text.lower()
    for word, status in FLASHSMS_400_WORDS.items():
        if word in lowered:
            return status
    return FLASHSMS_UNKNOWN_ERROR


def parse_send_answer(answer: HttpAnswer, phone: str, credits_status: Status = Status.ESME_RSUBMITFAIL) -> SendResult:
    """A send answer -> SendResult for our one recipient `phone` (233 form). HTTP 429
    and 5xx go by the status whatever the body says."""
    refused = refused_by_status(answer)
    if refused is not None:
        return refused
    body = answer.json()
    if answer.status in FLASHSMS_HTTP_ERRORS:
        status, outcome = FLASHSMS_HTTP_ERRORS[answer.status]
        if answer.status == 402:
            status = credits_status
        return refusal(status, outcome, f"flashsms: HTTP {answer.status}")
    taken = 200 <= answer.status < 300
    if answer.status == 400 or (taken and isinstance(body, dict) and body.get("success") is False):
        status = status_for_400(str(body.get("error", "")) if isinstance(body, dict) else "")
        return SendResult.rejected(status, f"flashsms: HTTP {answer.status}: {status.name}")
    data = body.get("data") if taken and isinstance(body, dict) else None
    message_id = data.get("messageId") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not message_id:
        return undocumented_answer(answer, "flashsms")
    invalid = {phone_key(p) for p in data.get("invalidRecipients") or []}
    if phone in invalid or data.get("recipientsSent") == 0:
        return SendResult.rejected(Status.ESME_RINVDSTADR, "FlashSMS listed the recipient as invalid")
    return SendResult.accepted(provider_id(str(message_id), phone))


def map_status(word: str) -> tuple[MessageState, int] | None:
    """(message_state, err) of a recipient status word; None for a word we do not know."""
    return FLASHSMS_STATUSES.get(word.strip().upper())


def recipient_statuses(body: Any, phones: Sequence[str]) -> dict[str, str]:
    """Status word per phone from a /recipients or /status answer; the request's overall
    status stands in for a phone the answer does not list (we send one phone per request)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return {}
    listed: dict[str, str] = {}
    for item in data.get("recipients") or []:
        if isinstance(item, dict) and item.get("status"):
            listed[phone_key(item.get("phone"))] = str(item["status"]).upper()
    overall = str(data.get("status") or "").upper()
    out = {}
    for phone in phones:
        word = listed.get(phone) or overall
        if word:
            out[phone] = word
    return out


# -- the connector -------------------------------------------------------------------------


class FlashSms(Provider):
    kind: ClassVar[str] = "flashsms"
    supports_flash: ClassVar[bool] = False
    max_batch = 1000  # recipients per request (document 002)
    due_batch = 1000  # due messages per on_due: grouped by messageId, one poll each
    settings: FlashSmsSettings

    def __init__(self, name: str, settings: FlashSmsSettings, context: ProviderContext) -> None:
        super().__init__(name, settings, context)
        key = settings.api_key.get_secret_value()
        auth = {"Authorization": f"Bearer {key}"} if settings.auth_header == "bearer" else {"X-API-Key": key}
        self._http = HttpClient.for_provider(settings, {**auth, "Accept": "*/*"})
        self.base_url = settings.base_url.rstrip("/")
        # Document 002: "100 requests per minute per API key", sends and polls together.
        self._window = RequestWindow(settings.requests_per_minute, settings.rate_window)
        # The polls' share of it, so that sends keep room.
        self._poll_share = RequestWindow(
            min(settings.poll_requests_per_minute, settings.requests_per_minute), settings.rate_window
        )
        self._blocked_until = 0.0  # time.monotonic() before which FlashSMS said 429
        self._throttles = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def check_access(self) -> ProviderCheck:
        """`GET /balance` (document 002, "Check Balance"), within the key's request rate.
        It needs the balance:read scope: a 403 says the key is valid without it."""
        async with self._window.slot():
            check = await access_check(self._http, f"{self.base_url}/balance")
        if check.http_status == 403:
            return dataclasses.replace(check, credentials="ok", detail="key valid; it lacks the balance:read scope")
        return check

    # -- send --------------------------------------------------------------------------

    def check(self, message: Message) -> SendResult | None:
        """What FlashSMS cannot take, refused before any HTTP call."""
        if render_number(message.number) is None:
            return SendResult.rejected(Status.ESME_RINVDSTADR, "FlashSMS sends to Ghana (233) numbers only")
        if not message.text:
            return SendResult.rejected(Status.ESME_RINVMSGLEN, "empty text")
        if is_gsm(message.text):
            limit = self.settings.max_chars
        else:
            limit = self.settings.max_chars_unicode
            if limit == 0:
                return SendResult.rejected(Status.ESME_RINVDCS, "text outside GSM 03.38 refused (max_chars_unicode=0)")
        if len(message.text) > limit:
            return SendResult.rejected(Status.ESME_RINVMSGLEN, f"longer than {limit} characters")
        return None

    def sender_for(self, message: Message) -> str:
        source = message.source.addr
        allowed = self.settings.allowed_senders
        if source and ("*" in allowed or source in allowed):
            return source
        return self.settings.sender

    def build_request(self, message: Message) -> dict[str, Any]:
        phone = render_number(message.number)
        assert phone is not None
        body: dict[str, Any] = {"recipients": [phone], "message": message.text}
        sender = self.sender_for(message)
        if sender:
            body["senderId"] = sender
        if self.settings.campaign_name:
            body["campaignName"] = self.settings.campaign_name.replace("{id}", str(message.id))
        return body

    async def send(self, message: Message) -> SendResult:
        return (await self.send_batch([message]))[0]

    async def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """One request for the same text to every destination (`recipients` takes up
        to 1,000); FlashSMS answers with one messageId, and each recipient's own
        status is keyed by (messageId, phone), so each message keeps its own id."""
        return await send_checked(messages, self.check, self._send_together)

    async def _send_together(self, batch: list[Message]) -> list[SendResult]:
        blocked = self._blocked_for()
        if blocked > 0:
            return [
                SendResult.not_sent(
                    Status.ESME_RTHROTTLED,
                    "FlashSMS rate limit (429), pausing",
                    retry_after=blocked,
                    metric="throttled",
                )
            ] * len(batch)
        try:
            await asyncio.wait_for(self._window.acquire(), max(self.settings.rate_limit_wait, 0.01))
        except TimeoutError:
            throttled = SendResult.not_sent(
                Status.ESME_RTHROTTLED,
                "requests_per_minute reached",
                retry_after=self.settings.rate_window / self.settings.requests_per_minute,
                metric="throttled",
            )
            return [throttled] * len(batch)
        first = batch[0]
        body = self.build_request(first)
        phones = [render_number(message.number) or "" for message in batch]
        body["recipients"] = phones
        self.log.debug("flashsms_send", message_id=first.id, recipients=len(phones), to=mask_number(phones[0]))
        try:
            answer = await self._http.request("POST", f"{self.base_url}/sms/send", json=body)
        finally:
            self._window.release()
        if isinstance(answer, SendResult):
            return [answer] * len(batch)
        self._note_throttle(answer)
        credits = Status[self.settings.credits_status]
        results = [parse_send_answer(answer, phone, credits).answered(answer.status) for phone in phones]
        if answer.status in CREDENTIALS_REFUSED:
            self.log.error("flashsms_credentials_refused", http_status=answer.status, message_id=first.id)
        elif answer.status == 404:
            self.log.error("flashsms_not_found", http_status=404, message_id=first.id, hint="check base_url")
        return results

    def _blocked_for(self) -> float:
        return max(0.0, self._blocked_until - time.monotonic())

    def _note_throttle(self, answer: HttpAnswer) -> None:
        """A 429 pauses every request of this provider (exponential backoff, or the
        provider's Retry-After); any other answer ends the backoff."""
        if answer.status != 429:
            self._throttles = 0
            return
        wait = retry_after(answer.headers)
        if wait is None:
            wait = THROTTLE_BACKOFF[min(self._throttles, len(THROTTLE_BACKOFF) - 1)]
        self._throttles += 1
        self._blocked_until = max(self._blocked_until, time.monotonic() + wait)
        self.log.warning("flashsms_throttled", pause=wait)

    # -- polling -------------------------------------------------------------------------

    def due_after(self, message: Message) -> float | None:
        return self.settings.poll_interval  # no webhooks: polling is the only report channel

    async def on_due(self, messages: Sequence[Message]) -> list[float | None]:
        """One poll per messageId among the due messages (a coalesced request's share
        one), one after the other within the rate limits; each phone's status is
        reported when it changed. Messages older than pending_max_age end in
        pending_final_state."""
        s = self.settings
        now = self.context.clock()
        due: list[float | None] = [None] * len(messages)
        reports: dict[int, StatusReport] = {}
        groups: dict[str, dict[str, int]] = {}  # messageId -> phone -> position
        for i, message in enumerate(messages):
            if not message.provider_ids:
                continue
            message_id, phone = split_provider_id(message.provider_ids[0])
            if now - message.created_at >= s.pending_max_age:
                state = MessageState[s.pending_final_state]
                self.log.info("flashsms_no_final_state", message=message_id, state=state.stat)
                reports[i] = StatusReport(self.name, message.provider_ids[0], state, 0, now, "max age")
                continue
            due[i] = next_poll(now, s.poll_interval, s.poll_interval_max, message.polls + 1)
            groups.setdefault(message_id, {})[phone] = i
        for message_id, phones in groups.items():
            await self._poll(message_id, phones, messages, due, reports)
        return await self.report_due(due, reports)

    async def _poll(
        self,
        message_id: str,
        phones: dict[str, int],
        messages: Sequence[Message],
        due: list[float | None],
        reports: dict[int, StatusReport],
    ) -> None:
        """Ask FlashSMS about one messageId; fill in the reports of the phones whose
        status changed and end the final ones (`due` holds their next poll otherwise)."""
        if self.settings.poll_endpoint == "recipients":
            url = f"{self.base_url}/sms/{message_id}/recipients"
        else:
            url = f"{self.base_url}/sms/status/{message_id}"
        async with self._poll_share.slot():
            blocked = self._blocked_for()
            if blocked > 0:
                await asyncio.sleep(blocked)
            async with self._window.slot():
                answer = await self._http.request("GET", url)
        if isinstance(answer, SendResult):
            self.log.warning("flashsms_poll_transport", reason=answer.reason)
            return
        self._note_throttle(answer)
        if answer.status != 200:
            if answer.status in CREDENTIALS_REFUSED:
                self.log.error("flashsms_credentials_refused", http_status=answer.status, during="poll")
            else:
                self.log.warning("flashsms_poll_refused", http_status=answer.status, message=message_id)
            hold_off(due, phones.values(), retry_after(answer.headers), self.context.clock())
            return
        now = self.context.clock()
        for phone, word in recipient_statuses(answer.json(), list(phones)).items():
            i = phones[phone]
            mapped = map_status(word)
            if mapped is None:
                self.log.warning("flashsms_status_unknown", status=word[:32], message=message_id)
                continue
            state, error = mapped
            if worth_reporting(messages[i], state):
                reports[i] = StatusReport(self.name, provider_id(message_id, phone), state, error, now, word)
            if state.is_final:
                due[i] = None
