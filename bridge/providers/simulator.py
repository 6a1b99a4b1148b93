"""The built-in `simulator` provider: no network, deterministic outcomes.

It lets the default config run and gives tests exact controls by destination
prefix (of the normalised digits: E.164 without `+`, or national digits of an
unknown country, which it takes like any others): `reject_prefixes` are refused at
submit (ESME_RINVDSTADR), `fail_prefixes` end UNDELIV, `expire_prefixes` EXPIRED,
`silent_prefixes` never report; anything else is DELIVRD after `delivery_delay`
seconds (with `intermediate`, ENROUTE after half of it). Outcomes depend only on the
destination; when each report is due is stored with the message (`due_after`,
`on_due`), so a restart, or another instance of a cluster, issues it at its time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from bridge.config import SimulatorProvider as SimulatorSettings
from bridge.core.message import Message
from bridge.providers.base import Provider, ProviderCheck, ProviderContext, SendResult, StatusReport
from bridge.smpp.constants import MessageState, Status

SIMULATOR_ERRORS = {MessageState.UNDELIVERABLE: 1, MessageState.EXPIRED: 0}


class Simulator(Provider):
    kind: ClassVar[str] = "simulator"
    supports_flash: ClassVar[bool] = True
    settings: SimulatorSettings

    def __init__(self, name: str, settings: SimulatorSettings, context: ProviderContext) -> None:
        super().__init__(name, settings, context)
        self._record = Path(settings.record_path) if settings.record_path else None

    def outcome(self, destination: str) -> MessageState | None:
        """The final state a destination gets (None: never reports)."""
        s = self.settings
        if destination.startswith(tuple(s.silent_prefixes)):
            return None
        if destination.startswith(tuple(s.fail_prefixes)):
            return MessageState.UNDELIVERABLE
        if destination.startswith(tuple(s.expire_prefixes)):
            return MessageState.EXPIRED
        return MessageState.DELIVERED

    async def send(self, message: Message) -> SendResult:
        if self.settings.latency:
            await asyncio.sleep(self.settings.latency)
        destination = message.number.digits
        if destination.startswith(tuple(self.settings.reject_prefixes)):
            return SendResult.rejected(Status.ESME_RINVDSTADR, "simulator: rejected prefix")
        provider_id = f"sim-{message.id}"
        if self._record is not None:
            self._append_record(provider_id, message)
        return SendResult.accepted(provider_id)

    async def check_access(self) -> ProviderCheck:
        return ProviderCheck(checked=True, reachable=True, credentials="ok", latency_ms=0.0, detail="built in")

    # -- reports, when due -----------------------------------------------------------

    def due_after(self, message: Message) -> float | None:
        if self.outcome(message.number.digits) is None:
            return None  # silent: never reports
        delay = self.settings.delivery_delay
        return delay / 2 if self.settings.intermediate else delay

    async def on_due(self, messages: Sequence[Message]) -> list[float | None]:
        """The final report of each message; with `intermediate`, ENROUTE first (at
        half the delay) and the final one half a delay later."""
        now = self.context.clock()
        due: list[float | None] = []
        reports: dict[int, StatusReport] = {}
        for message in messages:
            state = self.outcome(message.number.digits)
            if state is None or not message.provider_ids:
                due.append(None)
                continue
            provider_id = message.provider_ids[0]
            if self.settings.intermediate and message.state is None:
                report = StatusReport(self.name, provider_id, MessageState.ENROUTE, 0, now)
                after: float | None = (message.due_at or now) + self.settings.delivery_delay / 2
            else:
                report = StatusReport(self.name, provider_id, state, SIMULATOR_ERRORS.get(state, 0), now)
                after = None
            reports[len(due)] = report
            due.append(after)
        return await self.report_due(due, reports)

    def _append_record(self, provider_id: str, message: Message) -> None:
        assert self._record is not None
        line = json.dumps(
            {
                "id": provider_id,
                "message_id": message.id,
                "to": message.number.digits,
                "from": message.source.addr,
                "text": message.text,
                "flash": message.flash,
            },
            ensure_ascii=False,
        )
        with self._record.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
