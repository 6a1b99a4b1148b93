"""Bridge.reload inside the process: how a provider whose settings changed is swapped.

The new provider starts and takes the next sends at once; the old one is closed only
after the send it was serving has been answered; a provider that cannot start makes
the whole reload fail and leaves the running config in force.
"""

from __future__ import annotations

import asyncio
import json
import re
import socketserver
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError
from bridge.core.message import Message
from bridge.core.ports import SendResult
from bridge.providers.simulator import Simulator
from bridge.smpp.constants import Status
from bridge.smpp.pdu import SubmitSm, SubmitSmResp, encode_pdu
from tests.support.esme import Esme
from tests.support.running import RunningBridge, make_config
from tests.support.waiting import wait_for

GATED_PREFIX = "4918"


class Gate:
    """Holds the simulator's sends to GATED_PREFIX until the test opens it; records closes."""

    def __init__(self) -> None:
        self.event: asyncio.Event | None = None
        self.closed: list[Simulator] = []
        self.fail_start_when: Callable[[Simulator], bool] = lambda provider: False

    def open(self, bridge: RunningBridge) -> None:
        bridge.loop.call_soon_threadsafe(self._event().set)

    def _event(self) -> asyncio.Event:
        if self.event is None:
            self.event = asyncio.Event()
        return self.event


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    send, close, start = Simulator.send, Simulator.close, Simulator.start

    async def gated_send(self: Simulator, message: Message) -> SendResult:
        if message.destination.addr.startswith(GATED_PREFIX):
            await gate._event().wait()
        return await send(self, message)

    async def recorded_close(self: Simulator) -> None:
        gate.closed.append(self)
        await close(self)

    async def failing_start(self: Simulator) -> None:
        if gate.fail_start_when(self):
            raise OSError("cannot open the connection pool")
        await start(self)

    monkeypatch.setattr(Simulator, "send", gated_send)
    monkeypatch.setattr(Simulator, "close", recorded_close)
    monkeypatch.setattr(Simulator, "start", failing_start)
    yield gate


def _config(tmp_path: Path, **sim: Any) -> Any:
    return make_config(
        tmp_path,
        providers={"sim": {"type": "simulator", "delivery_delay": 0.05, **sim}},
        smpp={"enquire_link_interval": 3600},
    )


def test_replaced_provider_is_closed_only_after_its_in_flight_send(
    tmp_path: Path, gate: Gate, start_bridge: Callable[..., RunningBridge]
) -> None:
    # The old provider would report after an hour: a receipt can only come from the new one.
    bridge = start_bridge(providers={"sim": {"type": "simulator", "delivery_delay": 3600}})
    assert bridge.bridge is not None
    inner = bridge.bridge
    old = inner.providers["sim"]
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_ROK
        held = SubmitSm(
            77,
            source_addr="1",
            dest_addr_ton=1,
            destination_addr=GATED_PREFIX + "000001",
            short_message=b"x",
            registered_delivery=1,
        )
        client.send_raw(encode_pdu(held))
        wait_for(lambda: bridge.run(inner.sender.in_flight.busy, old) == 1)

        bridge.call(inner.reload(_config(tmp_path, reject_prefixes=["4915"])))
        new = inner.providers["sim"]
        assert isinstance(new, Simulator)
        assert new is not old and new.settings.reject_prefixes == ["4915"]
        # The new provider serves at once; the old one keeps its request and stays open.
        assert client.submit(destination="4915000001").status == Status.ESME_RINVDSTADR
        assert client.submit(destination="4917000001").status == Status.ESME_ROK
        assert old not in gate.closed and bridge.run(inner.sender.in_flight.busy, old) == 1

        gate.open(bridge)
        answer = client.read_raw_until(77)
        assert isinstance(answer, SubmitSmResp)
        assert answer.status == Status.ESME_ROK  # answered by the old provider, not cut off
        wait_for(lambda: old in gate.closed)
        assert new not in gate.closed
        # The message the old provider accepted gets its receipt through the new one.
        client.wait_until(lambda: answer.message_id in [r["id"] for r in client.receipts()])
    finally:
        client.close()


def test_unchanged_providers_are_kept_across_a_reload(
    tmp_path: Path, gate: Gate, start_bridge: Callable[..., RunningBridge]
) -> None:
    bridge = start_bridge(providers={"sim": {"type": "simulator", "delivery_delay": 0.05}})
    assert bridge.bridge is not None
    old = bridge.bridge.providers["sim"]
    bridge.call(bridge.bridge.reload(_config(tmp_path)))
    assert bridge.bridge.providers["sim"] is old and gate.closed == []


def test_a_provider_that_cannot_start_rejects_the_whole_reload(
    tmp_path: Path, gate: Gate, start_bridge: Callable[..., RunningBridge]
) -> None:
    bridge = start_bridge(providers={"sim": {"type": "simulator", "delivery_delay": 0.05}})
    assert bridge.bridge is not None
    inner = bridge.bridge
    old = inner.providers["sim"]
    gate.fail_start_when = lambda provider: provider.settings.reject_prefixes == ["4915"]
    new_config = _config(tmp_path, reject_prefixes=["4915"])
    changed_password = new_config.model_copy(
        update={"accounts": [new_config.accounts[0].model_copy(update={"password": "other"})]}
    )
    with pytest.raises(ConfigError, match=r"providers\.sim: cannot start \(OSError"):
        bridge.call(inner.reload(changed_password))
    assert inner.providers["sim"] is old and old not in gate.closed
    assert len(gate.closed) == 1  # the new one, which failed to start, was closed again
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind(password="secret1").status == Status.ESME_ROK  # the old password still holds
        assert client.submit(destination="4915000001").status == Status.ESME_ROK  # the old settings too
    finally:
        client.close()


def test_bound_session_follows_its_account_s_new_route(
    tmp_path: Path, start_bridge: Callable[..., RunningBridge]
) -> None:
    providers = {
        "a": {"type": "simulator", "delivery_delay": 0.05, "reject_prefixes": ["4917"]},
        "b": {"type": "simulator", "delivery_delay": 0.05, "reject_prefixes": []},
    }
    account = {"system_id": "esme1", "password": "secret1", "throughput": 0}
    bridge = start_bridge(providers=providers, accounts=[{**account, "route": "a"}])
    assert bridge.bridge is not None
    second = make_config(tmp_path, providers=providers, accounts=[{**account, "route": "b"}])
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_ROK
        assert client.submit(destination="4917000001").status == Status.ESME_RINVDSTADR  # a refuses 4917
        bridge.call(bridge.bridge.reload(second))
        assert client.submit(destination="4917000002").status == Status.ESME_ROK  # same session, now via b
    finally:
        client.close()


def test_sessions_of_a_removed_account_are_unbound(tmp_path: Path, start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge()
    assert bridge.bridge is not None
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_ROK
        config = make_config(tmp_path)
        bridge.call(bridge.bridge.reload(config.model_copy(update={"accounts": []})))
        client.wait_until(lambda: client.unbinds == 1)
    finally:
        client.close()


# -- coalescing on: a batch request in flight across a reload ------------------------


class HeldKaleyra:
    """A one-connection HTTP server playing Kaleyra: holds each request until `answer`
    is set, answers with the document's success shape, and notes when the client
    closes the connection (`gone`)."""

    def __init__(self) -> None:
        self.arrived, self.answer, self.gone = threading.Event(), threading.Event(), threading.Event()
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        held = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = self.rfile.readline()
                        if not line:
                            held.gone.set()  # the client closed its side
                            return
                        head += line
                    declared = re.search(rb"(?i)content-length: *(\d+)", head)
                    assert declared is not None  # the connector under test always sends one
                    length = int(declared.group(1))
                    body = self.rfile.read(length).decode()
                    to = str(json.loads(body)["to"]) if body.startswith("{") else urllib.parse.parse_qs(body)["to"][0]
                    held.arrived.set()
                    held.answer.wait(30)
                    data = [
                        {"message_id": f"648a2c1e-0000-4000-80c5-3c2a8cb391aa:{i + 1}", "recipient": number.lstrip("+")}
                        for i, number in enumerate(to.split(","))
                    ]
                    answer = json.dumps({"id": "648a2c1e-0000-4000-80c5-3c2a8cb391aa", "data": data}).encode()
                    self.wfile.write(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n")
                    self.wfile.write(b"Content-Length: %d\r\n\r\n" % len(answer) + answer)
                    self.wfile.flush()

        return Handler

    def close(self) -> None:
        self.answer.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_coalesced_request_in_flight_keeps_its_provider_open_across_a_reload(
    tmp_path: Path, start_bridge: Callable[..., RunningBridge]
) -> None:
    upstream = HeldKaleyra()
    kaleyra = {
        "type": "kaleyra",
        "base_url": upstream.url,
        "sid": "HXAP1",
        "api_key": "k",
        "sender": "KLRHXA",
        "sms_type": "TXN",
        "callback_token": "t",
        "poll_interval": 3600,  # no poll during the test
        "coalesce_window": 0.05,
    }
    account = {"system_id": "esme1", "password": "secret1", "throughput": 0, "route": "k"}
    bridge = start_bridge(accounts=[account], providers={"k": kaleyra})
    assert bridge.bridge is not None
    inner = bridge.bridge
    old = inner.providers["k"]
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_ROK
        params: dict[str, Any] = {
            "source_addr": "1",
            "dest_addr_ton": 1,
            "destination_addr": "919876543210",
            "short_message": b"x",
        }
        client.send_raw(encode_pdu(SubmitSm(5, **params)))
        assert upstream.arrived.wait(10)  # the batch request is under way

        changed = make_config(tmp_path, accounts=[account], providers={"k": {**kaleyra, "timeout": 9}})
        bridge.call(inner.reload(changed))
        assert inner.providers["k"] is not old
        assert bridge.run(inner.sender.in_flight.busy, old) > 0  # counted although sent by send_batch
        assert not upstream.gone.is_set()  # its connection is not cut under the request

        upstream.answer.set()
        answer = client.read_raw_until(5)
        assert answer.status == Status.ESME_ROK
        # The old provider is closed once idle, and its connection with it (not left
        # open in a pool that nobody closes any more).
        assert upstream.gone.wait(10)
        wait_for(lambda: bridge.run(inner.sender.in_flight.busy, old) == 0)
    finally:
        client.close()
        upstream.close()
