"""Kaleyra (kaleyra.io SMS API v1): this module owns Kaleyra's wire format and nothing else.

Send: `POST {base_url}/v1/{sid}/sms` (or `/messages`), header `api-key`, a JSON body
(`Content-Type: application/json`, the only value document 001 allows) with `to`
(+E.164, comma-separated for a batch), `sender`, `type`, `body`, `flash: 1`,
`unicode: 1`, and what the endpoint takes besides: on `/sms` our message id in
`ref_custom` and `callback_profile_id`; on `/messages` `ref` and the inline
`callback` object `{"url": "{public_url}/callbacks/{name}/{callback_token}", "method"}`
(or `callback_profile_id`). Config refuses any other combination. Success is 2xx
with `data[].message_id` (`<uuid>:<n>`): those are the provider ids. Errors are
`{"code": "E4xx", "message", "error": {field: text}}`, mapped by `KALEYRA_ERRORS`
(E413 by the offending field, `KALEYRA_E413_FIELDS`).

Reports: callbacks (GET query or POST JSON/form, tolerant field names) when the send
asked for them, and, for messages whose final callback has not come `poll_interval`
seconds after the send (or always, without callbacks),
`GET {base_url}/v1/{sid}/sms/status?message_ids=...` in batches, backing off (the
due times and poll counts are stored with the messages: `due_after`, `on_due`). Status
words map by `KALEYRA_STATUSES`, status-trace codes by `KALEYRA_TRACES`.

It never sees SMPP bytes and never touches the store: reports go through
`ProviderContext.report`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from aiohttp import web

from bridge.config import KaleyraProvider as KaleyraSettings
from bridge.core.message import Message
from bridge.core.numbers import Number
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
from bridge.smpp.text import is_gsm, sms_parts
from bridge.store.base import StoreUnavailable

# -- mapping tables (PROVIDERS.md 3.2 and 3.3; the SMPP side is a proposal) ------------

# Error code of a refused send -> (command_status, outcome). NOT_SENT: Kaleyra says it
# did not take the message (internal error, "try again later"), so failover and the
# outbox may try again; REJECTED: a definitive answer about this message.
KALEYRA_ERRORS: dict[str, tuple[Status, Outcome]] = {
    "E102": (Status.ESME_RSYSERR, Outcome.NOT_SENT),  # no queue medium
    "E103": (Status.ESME_RSYSERR, Outcome.NOT_SENT),  # internal error
    "E403": (Status.ESME_RX_T_APPN, Outcome.NOT_SENT),  # try again later
    "E400": (Status.ESME_RSUBMITFAIL, Outcome.REJECTED),  # bulk needs type MKT
    "E401": (Status.ESME_RINVMSGLEN, Outcome.REJECTED),  # longer than the account allows
    "E402": (Status.ESME_RINVSCHED, Outcome.REJECTED),  # schedule window
    "E404": (Status.ESME_RINVNUMDESTS, Outcome.REJECTED),  # OTP: exactly one number
    "E405": (Status.ESME_RINVNUMDESTS, Outcome.REJECTED),  # TXN: at most 100 numbers
    "E406": (Status.ESME_RINVDSTADR, Outcome.REJECTED),  # no valid mobile number
    "E407": (Status.ESME_RSYSERR, Outcome.REJECTED),  # JSON-API node errors: a bridge bug
    "E408": (Status.ESME_RSYSERR, Outcome.REJECTED),
    "E409": (Status.ESME_RSYSERR, Outcome.REJECTED),
    "E410": (Status.ESME_RINVDSTADR, Outcome.REJECTED),  # `to` badly formed (commas)
    "E411": (Status.ESME_RINVDSTADR, Outcome.REJECTED),
    "E412": (Status.ESME_RSYSERR, Outcome.REJECTED),
    "E600": (Status.ESME_RINVDSTADR, Outcome.REJECTED),  # `to` missing
    "E601": (Status.ESME_RINVMSGLEN, Outcome.REJECTED),  # body empty
    "E618": (Status.ESME_RINVMSGLEN, Outcome.REJECTED),
    "E602": (Status.ESME_RINVSRCADR, Outcome.REJECTED),  # sender missing / not approved
    "E616": (Status.ESME_RINVSRCADR, Outcome.REJECTED),
    "E619": (Status.ESME_RINVSRCADR, Outcome.REJECTED),
    "E621": (Status.ESME_RINVSRCADR, Outcome.REJECTED),
    "E622": (Status.ESME_RINVSRCADR, Outcome.REJECTED),
    **{f"E{n}": (Status.ESME_RSYSERR, Outcome.REJECTED) for n in (*range(603, 616), 617)},  # bad params: our bug
    "E623": (Status.ESME_RSUBMITFAIL, Outcome.REJECTED),  # TXN route not enabled
    "E624": (Status.ESME_RSUBMITFAIL, Outcome.REJECTED),  # DEFAULT route not enabled
    "E625": (Status.ESME_RSUBMITFAIL, Outcome.REJECTED),  # MKT route not enabled
}
# Codes that mean "accepted" (some answers carry one next to the data).
KALEYRA_SUCCESS_CODES = frozenset({"E100", "E101", "E620", "E626"})
# E413 (validation error) by the key of its `error` object; any other key -> ESME_RSUBMITFAIL.
KALEYRA_E413_FIELDS: dict[str, Status] = {
    "to": Status.ESME_RINVDSTADR,
    "sender": Status.ESME_RINVSRCADR,
    "body": Status.ESME_RINVMSGLEN,
    "time": Status.ESME_RINVSCHED,
}
KALEYRA_UNKNOWN_ERROR = Status.ESME_RSUBMITFAIL

# Status word (callback `status`, poll `status`; upper-cased, `_` read as `-`) -> message_state.
KALEYRA_STATUSES: dict[str, MessageState] = {
    "DELIVERED": MessageState.DELIVERED,
    "DELIVRD": MessageState.DELIVERED,
    "SENT": MessageState.ENROUTE,
    "SUBMITTED": MessageState.ENROUTE,
    "ENROUTE": MessageState.ENROUTE,
    "SENT - NO DLR": MessageState.UNKNOWN,
    "NOTSENT": MessageState.REJECTED,
    "NOT-SENT": MessageState.REJECTED,
    "NOT SENT": MessageState.REJECTED,
    "UNDELIVERED": MessageState.UNDELIVERABLE,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "FAILED": MessageState.UNDELIVERABLE,
    "EXPIRED": MessageState.EXPIRED,
    "REJECTED": MessageState.REJECTED,
    "REJECTD": MessageState.REJECTED,
}
# Status-trace code -> (receipt err code, message_state that replaces the status's, if any).
# Used for failed messages only; a delivered one always has err 000. NOT-SENT traces
# (1xx) mean Kaleyra never handed the message to an operator: REJECTD whatever the word.
KALEYRA_TRACES: dict[str, tuple[int, MessageState | None]] = {
    "NOT-ALLOWED": (101, MessageState.REJECTED),
    "NO-CREDITS": (102, MessageState.REJECTED),
    "SERIES-BLOCK": (103, MessageState.REJECTED),
    "KLR-INV-NUMBER": (104, MessageState.REJECTED),
    "SPAM": (105, MessageState.REJECTED),
    "BLACKLIST": (106, MessageState.REJECTED),
    "CON-DND": (107, MessageState.REJECTED),
    "INV-MOB-PATTRN": (108, MessageState.REJECTED),
    "TEMPLATE-NOT-FOUND": (109, MessageState.REJECTED),
    "INV-TEMPLATE-MATCH": (110, MessageState.REJECTED),
    "SENDER-ID-NOT-FOUND": (111, MessageState.REJECTED),
    "NOT-OPTIN": (112, MessageState.REJECTED),
    "OUTPUT-REJ": (113, MessageState.REJECTED),
    "OPT-OUT": (114, MessageState.REJECTED),
    "REJECTED-MULTIPART": (115, MessageState.REJECTED),
    "DND-NUMB": (116, MessageState.REJECTED),
    "INV-NUMBER": (201, None),
    "SERVER-ERR": (202, None),
    "SNDRID-NOT-ALLOTED": (203, None),
    "INVALID-SUB": (204, None),
    "ABSENT-SUB": (205, None),
    "HANDSET-ERR": (206, None),
    "BARRED": (207, None),
    "NET-ERR": (208, None),
    "MEM-EXEC": (209, None),
    "FAILED": (210, None),
    "MOB-OFF": (211, None),
    "HANDSET-BUSY": (212, None),
    "SERIES-BLK": (213, None),
    "EXPIRED": (214, MessageState.EXPIRED),
    "REJECTED": (215, MessageState.REJECTED),
}
KALEYRA_DEFAULT_ERROR = 1  # a failure without a trace we know

# Callback parameter names tried in order (settings.callback_fields are tried first).
CALLBACK_FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("id", "message_id", "messageId", "msg_id", "campaign_id"),
    "status": ("status", "dlr_status", "message_status"),
    "status_trace": ("status_trace", "statusTrace", "trace", "status_details"),
    "recipient": ("recipient", "to", "mobile", "number"),
    "timestamp": ("timestamp", "delivered_at", "updated_at", "datetime"),
}

PROBE_ID = "00000000-0000-0000-0000-000000000000:0"  # a message id no send ever gets (check_access)


# -- pure functions: request, answers, reports ----------------------------------------


def render_number(number: Number) -> str | None:
    """Kaleyra's `to`: `+` and the E.164 digits (the document's `+91XXXXXXXXXX`); None
    for a national number of unknown country, which has no country code to give."""
    return number.e164


def form_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """The JSON parameters as form fields (body_format = form): numbers as text, the
    callback object as JSON text, a list as its items joined by commas."""
    out: dict[str, str] = {}
    for name, value in fields.items():
        if isinstance(value, dict):
            out[name] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, list):
            out[name] = ",".join(str(item) for item in value)
        else:
            out[name] = str(value)
    return out


def message_ids(body: Any) -> list[str]:
    """`data[].message_id` of a success answer."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return []
    return [str(item["message_id"]) for item in body["data"] if isinstance(item, dict) and item.get("message_id")]


def recipient_ids(body: Any) -> dict[str, str]:
    """Recipient digits (Kaleyra writes them without `+`) -> `data[].message_id`."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return {}
    return {
        str(item["recipient"]).lstrip("+"): str(item["message_id"])
        for item in body["data"]
        if isinstance(item, dict) and item.get("message_id") and item.get("recipient")
    }


def error_status(body: Any) -> tuple[Status, Outcome, str] | None:
    """(status, outcome, reason) for an answer carrying an error code; None without one."""
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None
    code = body["code"].strip().upper()
    if code in KALEYRA_SUCCESS_CODES:
        return None
    if code == "E413":
        fields = body.get("error")
        field = next(iter(fields), "") if isinstance(fields, dict) else ""
        return KALEYRA_E413_FIELDS.get(field, KALEYRA_UNKNOWN_ERROR), Outcome.REJECTED, f"E413 ({field or 'no field'})"
    status, outcome = KALEYRA_ERRORS.get(code, (KALEYRA_UNKNOWN_ERROR, Outcome.REJECTED))
    return status, outcome, code


def parse_send_answer(answer: HttpAnswer) -> SendResult:
    """A send answer -> SendResult (accepted with the per-recipient ids, or the mapped error).

    HTTP 429, 5xx and a refused api-key or SID (401/403) go by the status whatever the
    body says; a 404 without an E-code means a wrong base_url or sid, not a bad message.
    A 2xx without ids was taken, but no report could ever find it: UNKNOWN."""
    if refused_by_status(answer) is not None or answer.status in CREDENTIALS_REFUSED:
        return undocumented_answer(answer, "kaleyra")
    body = answer.json()
    ids = message_ids(body) if 200 <= answer.status < 300 else []
    if ids:
        return SendResult.accepted(*ids)
    mapped = error_status(body)
    if mapped is not None:
        return refusal(*mapped).answered(answer.status, mapped[2])
    if answer.status == 404:
        return refusal(Status.ESME_RSYSERR, Outcome.NOT_SENT, "kaleyra: HTTP 404, check base_url and sid")
    return undocumented_answer(answer, "kaleyra")


def normalise_status(word: str) -> str:
    """`UnDelivered`, `not_sent`, ` Sent - No DLR ` -> the upper-case keys of the tables."""
    return " ".join(word.upper().replace("_", "-").split())


def map_report(status: str, trace: str = "") -> tuple[MessageState, int] | None:
    """(message_state, err) for a status word and its trace; None for a word we do not know."""
    state = KALEYRA_STATUSES.get(normalise_status(status))
    if state is None:
        return None
    if state is MessageState.DELIVERED or not state.is_final:
        return state, 0
    error, override = KALEYRA_TRACES.get(normalise_status(trace), (KALEYRA_DEFAULT_ERROR, None))
    return override or state, error


def parse_timestamp(value: str) -> float | None:
    """Epoch seconds from a timestamp that says its offset (or is epoch); None otherwise.
    Kaleyra's documented "YYYY-MM-DD HH:MM:SS" has no zone: the arrival time is used."""
    value = value.strip()
    if re.fullmatch(r"\d{9,13}(\.\d+)?", value):
        number = float(value)
        return number / 1000 if number > 1e11 else number
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def pick(fields: Mapping[str, Any], names: Sequence[str]) -> str:
    for name in names:
        value = fields.get(name)
        if value not in (None, ""):
            return str(value)
    return ""


# -- the connector -----------------------------------------------------------------------


class Kaleyra(Provider):
    kind: ClassVar[str] = "kaleyra"
    supports_flash: ClassVar[bool] = True
    settings: KaleyraSettings

    def __init__(self, name: str, settings: KaleyraSettings, context: ProviderContext) -> None:
        super().__init__(name, settings, context)
        # `to` takes up to 100 numbers; with type OTP exactly one (E404, E405).
        self.max_batch = 1 if settings.sms_type.upper() == "OTP" else 100
        self._http = HttpClient.for_provider(settings, {"api-key": settings.api_key.get_secret_value()})
        base = f"{settings.base_url.rstrip('/')}/v1/{settings.sid}/{settings.endpoint}"
        self.send_url = base
        self.status_url = f"{base}/status"
        extra = {str(key): names for key, names in settings.callback_fields.items()}
        self._callback_names = {key: (*extra.get(key, ()), *names) for key, names in CALLBACK_FIELDS.items()}
        self._poll_rate = RequestWindow(settings.poll_requests_per_minute, 60.0)
        self.due_batch = settings.poll_batch  # one status request per on_due

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    def callback_token(self) -> str | None:
        """The token of our callback URL; None (no callback route) when sends ask for none."""
        token = self.settings.callback_token
        return None if token is None or self.settings.callback_mode == "none" else token.get_secret_value()

    async def check_access(self) -> ProviderCheck:
        """A status lookup of an id that cannot exist: nothing is sent, and Kaleyra
        answers it ("no records") only to a valid api-key and SID."""
        async with self._poll_rate.slot():
            return await access_check(self._http, self.status_url, {"message_ids": PROBE_ID})

    @property
    def callback_url(self) -> str:
        return f"{self.context.public_url.rstrip('/')}/callbacks/{self.name}/{self.callback_token()}"

    # -- send --------------------------------------------------------------------------

    def check(self, message: Message) -> SendResult | None:
        """What Kaleyra cannot take, refused before any HTTP call."""
        if render_number(message.number) is None:
            return SendResult.rejected(Status.ESME_RINVDSTADR, "destination is not an international number")
        if not message.text:
            return SendResult.rejected(Status.ESME_RINVMSGLEN, "empty text")
        if self.settings.max_parts and sms_parts(message.text) > self.settings.max_parts:
            return SendResult.rejected(Status.ESME_RINVMSGLEN, f"longer than max_parts={self.settings.max_parts}")
        return None

    def sender_for(self, message: Message) -> str:
        source = message.source.addr
        allowed = self.settings.allowed_senders
        if source and ("*" in allowed or source in allowed):
            return source
        return self.settings.sender

    def build_request(self, message: Message) -> dict[str, Any]:
        """The send parameters, in the documented names, for the configured endpoint
        (values for a JSON body; `form_fields` flattens them for body_format = form)."""
        s = self.settings
        to = render_number(message.number)
        assert to is not None
        fields: dict[str, Any] = {"to": to, "sender": self.sender_for(message), "type": s.sms_type}
        fields["body"] = message.text
        if message.flash:
            fields["flash"] = 1
        if not is_gsm(message.text):
            fields["unicode"] = 1
        reference = str(message.id)
        if s.reference_field == "ref":  # /messages
            fields["ref"] = reference
        elif s.reference_field == "ref_custom":  # /sms: a list
            fields["ref_custom"] = [reference]
        if s.callback_mode == "object":  # /messages only (config enforces it)
            fields["callback"] = {"url": self.callback_url, "method": s.callback_method}
        elif s.callback_mode == "profile":
            fields["callback_profile_id"] = s.callback_profile_id
        return fields

    async def send(self, message: Message) -> SendResult:
        return (await self.send_batch([message]))[0]

    async def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """One request with the numbers comma-separated in `to`; each recipient's
        `data[].message_id` goes to its own message. `ref` carries the first
        message's id (one reference per request)."""
        return await send_checked(messages, self.check, self._send_together)

    async def _send_together(self, batch: list[Message]) -> list[SendResult]:
        first = batch[0]
        fields = self.build_request(first)
        if len(batch) > 1:
            fields["to"] = ",".join(render_number(message.number) or "" for message in batch)
        body = {"json": fields} if self.settings.body_format == "json" else {"data": form_fields(fields)}
        self.log.debug("kaleyra_send", message_id=first.id, recipients=len(batch), to=mask_number(fields["to"]))
        answer = await self._http.request("POST", self.send_url, **body)
        if isinstance(answer, SendResult):
            return [answer] * len(batch)
        result = parse_send_answer(answer)
        if answer.status in CREDENTIALS_REFUSED:
            self.log.error("kaleyra_credentials_refused", http_status=answer.status, message_id=first.id)
        elif answer.status == 404 and result.outcome is Outcome.NOT_SENT:
            self.log.error("kaleyra_not_found", http_status=404, message_id=first.id, hint="check base_url and sid")
        if result.outcome is not Outcome.ACCEPTED:
            return [result.answered(answer.status)] * len(batch)
        if len(batch) == 1:
            results = [result]
        else:
            ids = recipient_ids(answer.json())
            results = [
                SendResult.accepted(ids[message.number.digits])
                if message.number.digits in ids
                else SendResult.rejected(Status.ESME_RINVDSTADR, "kaleyra: recipient missing from the answer")
                for message in batch
            ]
        return [sent.answered(answer.status) for sent in results]

    # -- callbacks -----------------------------------------------------------------------

    async def handle_callback(self, request: web.Request) -> web.StreamResponse:
        """GET with query parameters, or POST/PUT with a JSON object (or list) or form
        fields. Answered 200 only once every report in it is committed to the store;
        503 when the store failed, so that Kaleyra calls again."""
        try:
            reports = await _callback_fields(request)
        except ValueError:
            return self._callback_answer("invalid", 400)
        results = []
        for fields in reports:
            try:
                results.append(await self._take_callback(fields))
            except StoreUnavailable:
                return self._callback_answer("error", 503)
        worst = next((r for r in ("invalid", "ignored", "unknown_id") if r in results), "accepted")
        return self._callback_answer(worst, 400 if worst == "invalid" else 200)

    async def _take_callback(self, fields: Mapping[str, Any]) -> str:
        provider_id = pick(fields, self._callback_names["id"])
        status = pick(fields, self._callback_names["status"])
        if not provider_id or not status:
            self.log.warning("kaleyra_callback_incomplete", fields=sorted(fields)[:10])
            return "invalid"
        mapped = map_report(status, pick(fields, self._callback_names["status_trace"]))
        if mapped is None:
            self.log.warning("kaleyra_status_unknown", status=status[:32], provider_id=provider_id)
            return "ignored"
        state, error = mapped
        at = parse_timestamp(pick(fields, self._callback_names["timestamp"])) or self.context.clock()
        report = StatusReport(self.name, provider_id, state, error, at, status[:32])
        known = await self.context.report(report)  # returns once committed (a final state ends polling)
        return "accepted" if known else "unknown_id"

    def _callback_answer(self, result: str, status: int) -> web.Response:
        self.context.metrics.callbacks.labels(self.name, result).inc()
        return web.Response(status=status, text="OK" if status == 200 else "ERROR")

    # -- polling -------------------------------------------------------------------------

    def due_after(self, message: Message) -> float | None:
        return self.settings.poll_interval if self.settings.poll_interval > 0 else None

    async def on_due(self, messages: Sequence[Message]) -> list[float | None]:
        """One status request for the due messages (at most poll_batch); each one gets
        its report, if its status changed, and its next poll (backing off), or none
        once final. Messages older than pending_max_age end in pending_final_state."""
        s = self.settings
        now = self.context.clock()
        due: list[float | None] = [None] * len(messages)
        if s.poll_interval <= 0:
            return due
        reports: dict[int, StatusReport] = {}
        asked: dict[str, int] = {}  # provider id -> position
        for i, message in enumerate(messages):
            if now - message.created_at >= s.pending_max_age and message.provider_ids:
                state = MessageState[s.pending_final_state]
                self.log.info("kaleyra_no_final_state", message_id=message.id, state=state.stat)
                reports[i] = StatusReport(self.name, message.provider_ids[0], state, 0, now, "max age")
            else:
                for provider_id in message.provider_ids:
                    asked[provider_id] = i
                due[i] = next_poll(now, s.poll_interval, s.poll_interval_max, message.polls + 1)
        if asked:
            await self._poll(messages, asked, due, reports, now)
        return await self.report_due(due, reports)

    async def _poll(
        self,
        messages: Sequence[Message],
        asked: dict[str, int],
        due: list[float | None],
        reports: dict[int, StatusReport],
        now: float,
    ) -> None:
        """Ask for `asked`; fill in the reports of what changed and end the final ones
        (`due` holds their next poll otherwise)."""
        async with self._poll_rate.slot():
            answer = await self._http.request("GET", self.status_url, params={"message_ids": ",".join(asked)})
        if isinstance(answer, SendResult):
            self.log.warning("kaleyra_poll_transport", reason=answer.reason, ids=len(asked))
            return
        if refused_by_status(answer) is not None:  # 429 or 5xx: ask again later, not sooner than told
            self.log.warning("kaleyra_poll_refused", http_status=answer.status)
            hold_off(due, asked.values(), retry_after(answer.headers), now)
            return
        if answer.status in CREDENTIALS_REFUSED:
            self.log.error("kaleyra_credentials_refused", http_status=answer.status, during="poll")
        body = answer.json()
        items = body.get("data") if isinstance(body, dict) else None
        for item in items if isinstance(items, list) else []:
            provider_id = pick(item, CALLBACK_FIELDS["id"]) if isinstance(item, dict) else ""
            i = asked.pop(provider_id, None)
            if i is None:
                continue
            status = pick(item, ("status",))
            mapped = map_report(status, pick(item, ("status_details", "status_trace")))
            if mapped is None:
                self.log.warning("kaleyra_status_unknown", status=status[:32], provider_id=provider_id)
                continue
            state, error = mapped
            if worth_reporting(messages[i], state):
                reports[i] = StatusReport(self.name, provider_id, state, error, now, status[:32])
            if state.is_final:
                due[i] = None


async def _callback_fields(request: web.Request) -> list[dict[str, Any]]:
    """The reports of one callback request: the query, merged with a JSON object, each
    object of a JSON list, or form fields. ValueError for a body that is none of these."""
    query: dict[str, Any] = dict(request.query)
    if request.method == "GET" or not request.can_read_body:
        return [query]
    if request.content_type == "application/json" or request.content_type.endswith("+json"):
        try:
            body = await request.json()
        except ValueError as exc:
            raise ValueError("not JSON") from exc
        items = body if isinstance(body, list) else [body]
        if not items or not all(isinstance(item, dict) for item in items):
            raise ValueError("not a JSON object")
        return [{**query, **item} for item in items]
    return [{**query, **dict(await request.post())}]
