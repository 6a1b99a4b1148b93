"""What the provider tests share.

For the connectors' unit tests: a provider's settings validated as the config
loader does, an `HttpAnswer` from a status and a body, a core `Message`, and
`Reports`, the report sink of a `ProviderContext` that a test can wait on.

For the end-to-end tests: the bridge account routed to one provider, a provider
double and the bridge it serves (`Rig`), POSTs to a double's /_sim/ controls or the
bridge's callbacks, the bridge's metrics, and UDH-concatenated parts.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from bridge.config import parse_config
from bridge.core.message import Address, Lifecycle, Message, Part
from bridge.core.numbers import Number
from bridge.core.ports import ProviderContext, StatusReport
from bridge.metrics import Metrics
from bridge.providers.http import HttpAnswer
from bridge.smpp.constants import MessageState
from tests.support.esme import Esme
from tests.support.running import RunningBridge
from tests.support.servers import AppThread

# -- connector unit tests -----------------------------------------------------------


def provider_settings(name: str, raw: dict[str, Any]) -> Any:
    """`raw` as the config's [providers.<name>] table, validated as the bridge loads it
    (ConfigError, with problems such as `providers.<name>.url: ...`)."""
    return parse_config({"providers": {name: raw}}).providers[name]


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> HttpAnswer:
    """A provider's answer: `body` as JSON, or as is when it is a str."""
    return HttpAnswer(status, headers or {}, body if isinstance(body, str) else json.dumps(body))


def make_message(
    text: str = "Hello",
    to: str = "919876543210",
    *,
    ton: int = 1,
    source: str = "",
    flash: bool = False,
    message_id: int = 4242,
    created_at: float | None = None,
) -> Message:
    """A whole (one-part) message to `to`, from an alphanumeric `source`, taken by the
    bridge at `created_at` (now). `ton` 1: `to` is E.164 digits; any other: national
    digits of an unknown country (what the pipeline makes of them without a
    `default_country`)."""
    taken = time.time() if created_at is None else created_at
    return Message(
        id=message_id,
        system_id="esme1",
        source=Address(5, 0, source),
        destination=Address(ton, 1, to),
        number=Number(to, international=ton == 1),
        text=text,
        flash=flash,
        parts=[Part(message_id, 1, taken, text[:20])],
        route=["provider"],
        ack="upstream",
        created_at=taken,
    )


def stored_message(
    message_id: int,
    lifecycle: Lifecycle = Lifecycle.ACCEPTED,
    provider_id: str | None = None,
    *,
    parts: int = 1,
    done_at: float | None = None,
    system_id: str = "esme1",
) -> Message:
    """A message as the store keeps it: a part per id from `message_id` on, accepted by
    provider "p" under `provider_id` (default "p-<id>"; "" for none), final states
    DELIVRD at `done_at`."""
    provider_id = f"p-{message_id}" if provider_id is None else provider_id
    final = lifecycle is Lifecycle.FINAL
    return Message(
        id=message_id,
        system_id=system_id,
        source=Address(1, 1, "123"),
        destination=Address(1, 1, "4917012345"),
        number=Number("4917012345"),
        text="",
        flash=False,
        parts=[Part(message_id + i, 1, 1.0, "hello") for i in range(parts)],
        route=["p"],
        ack="upstream",
        created_at=1.0,
        lifecycle=lifecycle,
        provider="p" if provider_id else None,
        provider_ids=[provider_id] if provider_id else [],
        state=MessageState.DELIVERED if final else None,
        done_at=done_at if final else None,
    )


class Reports:
    """The report sink of a ProviderContext: records reports and answers `known`."""

    def __init__(self, known: bool = True) -> None:
        self.known = known
        self.items: list[StatusReport] = []
        self._changed = asyncio.Event()

    async def __call__(self, report: StatusReport) -> bool:
        self.items.append(report)
        self._changed.set()
        return self.known

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[StatusReport]:
        """All reports, once there are at least `count`; woken by each report, never sleeping."""
        await self._until(lambda: len(self.items) >= count, timeout)
        return self.items

    async def wait_final(self, count: int = 1, timeout: float = 10.0) -> list[StatusReport]:
        """The final reports, once there are at least `count`."""
        await self._until(lambda: len(self.final()) >= count, timeout)
        return self.final()

    def final(self) -> list[StatusReport]:
        return [r for r in self.items if r.state.is_final]

    async def _until(self, condition: Any, timeout: float) -> None:
        async def until() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout)

    def context(self, public_url: str = "http://127.0.0.1:9") -> ProviderContext:
        """A context whose reports come here (port 9, discard: callbacks go nowhere)."""
        return ProviderContext(report=self, metrics=Metrics(), public_url=public_url)


# -- end to end ---------------------------------------------------------------------


def account(route: str, **overrides: Any) -> dict[str, Any]:
    """The test ESME's account (esme1/secret1 from 127.0.0.0/8, no throughput limit)
    with everything routed to `route`."""
    return {
        "system_id": "esme1",
        "password": "secret1",
        "allowed_networks": ["127.0.0.0/8"],
        "throughput": 0,
        "route": route,
    } | overrides


def post_json(url: str, payload: Any, method: str = "POST", headers: dict[str, str] | None = None) -> int:
    """The HTTP status of one request with a JSON body (bytes are sent as they are;
    `headers` adds to, or replaces, the JSON Content-Type)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def received(sim: AppThread) -> list[dict[str, Any]]:
    """The API requests a double has recorded so far (bridge.simulators.common)."""
    return list(sim.app["received"])


def metric(bridge: RunningBridge, name: str, **labels: str) -> float:
    """One sample of the bridge's metrics; 0 when it has not been counted yet."""
    assert bridge.bridge is not None
    return bridge.bridge.metrics.registry.get_sample_value(name, labels) or 0.0


def udh_parts(chunks: list[bytes], reference: int) -> list[bytes]:
    """short_messages of one concatenated message: an 8-bit reference UDH before each chunk."""
    total = len(chunks)
    return [bytes((5, 0, 3, reference, total, i + 1)) + chunk for i, chunk in enumerate(chunks)]


@dataclass
class Rig:
    """One provider double, one bridge routing esme1 to it, one bound smpplib transceiver."""

    sim: AppThread
    bridge: RunningBridge
    esme: Esme
    http_port: int
    overrides: dict[str, Any] = field(default_factory=dict)  # what start_bridge got, to start it again

    @property
    def received(self) -> list[dict[str, Any]]:
        return received(self.sim)

    def sends(self) -> list[dict[str, Any]]:
        return [r for r in self.received if r["method"] == "POST"]

    def polls(self) -> list[dict[str, Any]]:
        return [r for r in self.received if r["method"] == "GET"]

    def sim_post(self, path: str, body: dict[str, Any]) -> int:
        """POST to the double's control endpoints (/_sim/...)."""
        return post_json(self.sim.url + path, body)
