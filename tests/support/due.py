"""What the bridge does around a connector's due work, for connector tests: an
accepted message is stored with its first due time (the real `Sender.accepted`), a
report moves its stored message (a final one ends its due time, as the stores do),
and the real `DueTimer` loop hands due messages to the connector's `on_due`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bridge.core.cluster import LocalCluster
from bridge.core.due import DueTimer
from bridge.core.message import Lifecycle, Message
from bridge.core.sender import Sender
from bridge.logging import get_logger
from bridge.metrics import Metrics
from bridge.providers.base import Provider, SendResult, StatusReport
from tests.core.fakes import FakeStore


class DueRig:
    """`provider` with the bridge's due timer around it, on an in-memory store; its
    context's reports are applied to the stored messages before they reach the sink
    the provider was built with. `async with` runs the timer."""

    def __init__(self, provider: Provider, clock: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self.store = FakeStore()
        self._sink = provider.context.report
        provider.context.report = self._report
        self._sender = Sender({provider.name: provider}, Metrics(), get_logger("test"))
        self.timer = DueTimer(
            provider.name,
            {provider.name: provider},
            self.store,
            LocalCluster(),
            get_logger("due"),
            lease_ttl=10.0,
            idle=1.0,
            clock=clock,
        )
        self._sender.on_due_set = lambda _, at: self.timer.wake(at)
        self._task: asyncio.Task[None] | None = None

    async def _report(self, report: StatusReport) -> bool:
        """As the ReceiptEngine applies a report (committed before it returns)."""
        known = await self._sink(report)
        message = await self.store.find_by_provider_id(report.provider, report.provider_id)
        if message is None:
            return False
        if message.lifecycle is not Lifecycle.FINAL and message.state is not report.state:
            message.state = report.state
            if report.state.is_final:
                message.lifecycle = Lifecycle.FINAL
            await self.store.update_messages([message])
        return known

    async def accepted(self, message: Message, result: SendResult, now: float | None = None) -> Message:
        """Store `provider`'s acceptance of `message` as the pipeline does."""
        self._sender.accepted(message, result, self.provider.name, time.time() if now is None else now)
        await self.store.insert_messages([message])
        return message

    async def send(self, message: Message) -> SendResult:
        """`provider.send`, and the acceptance stored if it was accepted."""
        result = await self.provider.send(message)
        if result.provider_ids:
            await self.accepted(message, result)
        return result

    async def __aenter__(self) -> DueRig:
        self._task = asyncio.ensure_future(self.timer.run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
