"""What the bridge does around a connector's due work, for connector tests: an
accepted message is stored with its first due time (the real `Sender.accepted`), a
report moves its stored message (a final one ends its due time, as the stores do),
and the real `DueTimer` loop hands due messages to the connector's `on_due`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from bridge.core.cluster import LocalCluster
from bridge.core.due import DueTimer
from bridge.core.message import Lifecycle, Message
from bridge.core.sender import Sender
from bridge.logging import get_logger
from bridge.metrics import Metrics
from bridge.providers.base import Provider, SendResult, StatusReport
from bridge.simulators import build_simulator
from bridge.simulators.contacta import make_app as contacta_app
from tests.core.fakes import FakeStore
from tests.support.servers import AppThread


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


# Routes and providers whose reports are due `{delay}` seconds after acceptance, for
# the restart and takeover tests (TOML for tests.support.daemon.Daemon): Contacta's
# synthetic receipt for Mexico (52), a FlashSMS poll for Ghana (233). `{contacta}`
# and `{flashsms}` are the doubles' URLs (`due_doubles`).
DUE_PROVIDERS = """
[[routes]]
name = "mexico"
match = {{ destination_prefix = "52" }}
providers = ["contacta"]

[[routes]]
name = "ghana"
match = {{ destination_prefix = "233" }}
providers = ["flashsms"]

[providers.contacta]
type = "contacta"
base_url = "{contacta}"
username = "user"
password = "secret"
receipt_timeout = {delay}
receipt_state = "DELIVRD"

[providers.flashsms]
type = "flashsms"
base_url = "{flashsms}/api/v1"
api_key = "f-key"
sender = "MyBrand"
poll_interval = {delay}
"""


@contextlib.contextmanager
def due_doubles() -> Iterator[dict[str, str]]:
    """The provider doubles DUE_PROVIDERS (and the Kaleyra, api-key "k-key", SID
    "HXAP1", and Skycore, api-key "s-key" at /API/v2, doubles) talk to: name -> URL."""
    apps = {
        "contacta": contacta_app(username="user", password="secret"),
        "flashsms": build_simulator("flashsms", api_key="f-key", sent_after=0.1, final_after=0.2),
        "kaleyra": build_simulator("kaleyra", api_key="k-key", sid="HXAP1"),
        "skycore": build_simulator("skycore", api_key="s-key", path="/API/v2", sent_delay=0.05),
    }
    threads = {name: AppThread(app).start() for name, app in apps.items()}
    try:
        yield {name: thread.url for name, thread in threads.items()}
    finally:
        for thread in threads.values():
            thread.stop()
