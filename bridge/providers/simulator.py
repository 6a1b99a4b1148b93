"""The built-in `simulator` provider: no network, deterministic outcomes.

It lets the default config run and gives tests exact controls by destination
prefix (of the normalised digits: E.164 without `+`, or national digits of an
unknown country, which it takes like any others): `reject_prefixes` are refused at
submit (ESME_RINVDSTADR), `fail_prefixes` end UNDELIV, `expire_prefixes` EXPIRED,
`silent_prefixes` never report; anything else is DELIVRD after `delivery_delay`
seconds. Outcomes depend only on the
destination, so after a restart the unfinished ones are simply scheduled again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from bridge.config import SimulatorProvider as SimulatorSettings
from bridge.core.message import Message
from bridge.providers.base import Provider, ProviderContext, SendResult, StatusReport
from bridge.smpp.constants import MessageState, Status

SIMULATOR_ERRORS = {MessageState.UNDELIVERABLE: 1, MessageState.EXPIRED: 0}


class Simulator(Provider):
    kind: ClassVar[str] = "simulator"
    supports_flash: ClassVar[bool] = True
    settings: SimulatorSettings

    def __init__(self, name: str, settings: SimulatorSettings, context: ProviderContext) -> None:
        super().__init__(name, settings, context)
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[bool]] = set()
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
        self._schedule(provider_id, destination, self.settings.delivery_delay)
        return SendResult.accepted(provider_id)

    async def resume(self, messages: Sequence[Message]) -> None:
        for message in messages:
            for provider_id in message.provider_ids:
                self._schedule(provider_id, message.number.digits, self.settings.delivery_delay)

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _schedule(self, provider_id: str, destination: str, delay: float) -> None:
        state = self.outcome(destination)
        if state is None:
            return
        loop = asyncio.get_running_loop()
        if self.settings.intermediate:
            self._report_later(loop, delay / 2, StatusReport(self.name, provider_id, MessageState.ENROUTE))
        report = StatusReport(self.name, provider_id, state, SIMULATOR_ERRORS.get(state, 0))
        self._report_later(loop, delay, report)

    def _report_later(self, loop: asyncio.AbstractEventLoop, delay: float, report: StatusReport) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            task = asyncio.ensure_future(self.context.report(_stamped(report, self.context.clock())))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

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


def _stamped(report: StatusReport, now: float) -> StatusReport:
    return StatusReport(report.provider, report.provider_id, report.state, report.error, now, report.detail)
