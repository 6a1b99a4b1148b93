"""A provider's report is answered only once it is durable (issue 13, item 1).

Skycore sends a postback again only when it did not get a 200; Kaleyra stops
polling a message once its callback is answered. So a 200 must mean "committed":
- postbacks answered 200, then SIGKILL at once, restart: every receipt is delivered
  (the daemon runs on a disk whose receipt commits are slow, so the kill lands in
  the window where the answer used to run ahead of the commit);
- a postback or callback whose write fails is answered 503, and the retry records it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bridge.core.message import Message, Receipt
from bridge.core.ports import CallbackRequest, ProviderContext, StoreUnavailable
from bridge.metrics import Metrics
from bridge.providers.kaleyra import Kaleyra
from bridge.simulators.common import wait_for as double_wait_for
from bridge.simulators.skycore import make_app
from bridge.smpp.constants import Status
from tests.support.daemon import Daemon
from tests.support.esme import Esme
from tests.support.providers import account, provider_settings
from tests.support.running import RunningBridge
from tests.support.servers import AppThread, free_port

KEY = "sky-KEY-0123456789"
TOKEN = "postback-secret-token"
DESTINATION = "17743199144"
MESSAGES = 12

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}

[http]
host = "127.0.0.1"
port = {http_port}
public_url = "http://127.0.0.1:{http_port}"

[store]
url = "sqlite:///{workdir}/bridge.db"

[log]
level = "info"
format = "json"

[[accounts]]
system_id = "esme1"
password = "secret1"
throughput = 0
route = "skycore"

[providers.skycore]
type = "skycore"
url = "{api}"
api_key = "{key}"
from = "60856"
callback_token = "{token}"
"""


@pytest.fixture
def skycore_double() -> Iterator[tuple[AppThread, int]]:
    """The double, and the bridge's HTTP port it sends its postbacks to."""
    http_port = free_port()
    app = make_app(
        api_key=KEY,
        senders=("60856",),
        path="/API/v2",
        postback_url=f"http://127.0.0.1:{http_port}/callbacks/skycore/{TOKEN}",
        sent_delay=0.05,
        final_delay=0.3,
        retry_interval=0.2,  # Skycore sends a postback not answered 200 again (here: soon)
    )
    sim = AppThread(app).start()
    yield sim, http_port
    sim.stop()


def test_postbacks_answered_200_survive_a_sigkill_right_after(
    tmp_path: Path, skycore_double: tuple[AppThread, int]
) -> None:
    sim, http_port = skycore_double
    settings = {"api": f"{sim.url}/API/v2", "key": KEY, "token": TOKEN}
    daemon = Daemon(tmp_path, CONFIG, module="tests.support.slow_receipt_disk", http_port=http_port, **settings)
    daemon.start()
    try:
        esme = Esme(daemon.smpp_port)
        assert esme.bind("transmitter").status == Status.ESME_ROK  # no receiver: receipts stay stored
        ids = []
        for i in range(MESSAGES):
            response = esme.submit(destination=DESTINATION, text=f"Message {i}".encode())
            assert response.status == Status.ESME_ROK
            ids.append(response.message_id.decode())
        esme.close()

        def delivered_answered() -> bool:
            done = [p for p in sim.app["postbacks"] if p["payload"].get("code") == "N202"]
            return len(done) == MESSAGES and all(p["status"] == 200 for p in done)

        sim.call(double_wait_for(sim.app, delivered_answered, timeout=60))
        daemon.kill()  # at once: each 200 must already stand for a committed receipt
    finally:
        if daemon.alive:
            daemon.kill()

    restarted = Daemon(tmp_path, CONFIG, name="restarted", http_port=http_port, **settings)
    restarted.start()
    try:
        esme = Esme(restarted.smpp_port)
        assert esme.bind("receiver").status == Status.ESME_ROK
        receipts = esme.wait_receipts(MESSAGES, timeout=30)
        assert sorted(r["id"] for r in receipts) == sorted(ids)
        assert {r["stat"] for r in receipts} == {"DELIVRD"}
        esme.close()
    finally:
        assert restarted.stop() == 0


# -- a failed write is answered 5xx, and the provider's retry records it ----------------


def fail_receipt_writes(bridge: RunningBridge) -> list[int]:
    """From now on the store refuses every write that carries receipts (a full disk,
    for the report path only). Returns a list whose clearing ends the fault."""
    assert bridge.bridge is not None
    store = bridge.bridge.store
    update = store.update_messages
    failing = [1]

    def refusing(messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> Awaitable[None]:
        if receipts and failing:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_exception(StoreUnavailable("disk full"))
            return future
        return update(messages, receipts)

    bridge.run(setattr, store, "update_messages", refusing)
    return failing


def test_a_postback_whose_write_fails_is_answered_503_and_its_retry_is_recorded(
    start_bridge: Any, skycore_double: tuple[AppThread, int]
) -> None:
    sim, http_port = skycore_double
    bridge = start_bridge(
        accounts=[account("skycore")],
        providers={
            "skycore": {
                "type": "skycore",
                "url": f"{sim.url}/API/v2",
                "api_key": KEY,
                "from": "60856",
                "callback_token": TOKEN,
            }
        },
        http={"port": http_port, "public_url": f"http://127.0.0.1:{http_port}"},
    )
    failing = fail_receipt_writes(bridge)
    esme = Esme(bridge.smpp_port)
    try:
        assert esme.bind("transceiver").status == Status.ESME_ROK
        sent = esme.submit(destination=DESTINATION, text=b"Hello")
        assert sent.status == Status.ESME_ROK

        def final_postbacks() -> list[int]:
            return [p["status"] for p in sim.app["postbacks"] if p["payload"].get("code") == "N202"]

        sim.call(double_wait_for(sim.app, lambda: 503 in final_postbacks()))
        assert esme.receipts() == []
        failing.clear()
        [receipt] = esme.wait_receipts(1)
        assert (receipt["id"], receipt["stat"]) == (sent.message_id.decode(), "DELIVRD")
        sim.call(double_wait_for(sim.app, lambda: final_postbacks()[-1:] == [200]))
    finally:
        esme.close()


async def test_a_kaleyra_callback_whose_write_fails_is_503_so_that_it_comes_again() -> None:
    outcome: list[Exception | bool] = [StoreUnavailable("disk full")]

    async def report(_: Any) -> bool:
        result = outcome[0]
        if isinstance(result, Exception):
            raise result
        return result

    settings = provider_settings(
        "kaleyra",
        {
            "type": "kaleyra",
            "base_url": "http://127.0.0.1:9",
            "sid": "HXAP1",
            "api_key": "k",
            "sender": "KLRHXA",
            "sms_type": "TXN",
            "callback_token": TOKEN,
            "poll_interval": 3600,
        },
    )
    context = ProviderContext(report=report, metrics=Metrics(), public_url="http://127.0.0.1:9")
    kaleyra = Kaleyra("kaleyra", settings, context)
    callback = CallbackRequest("GET", "/callbacks/kaleyra/t", {"id": "uuid-1:1", "status": "DELIVERED"})
    answer = await kaleyra.handle_callback(callback)
    assert answer.status == 503  # the message stays ACCEPTED in the store, its poll still due
    outcome[0] = True
    answer = await kaleyra.handle_callback(callback)
    assert answer.status == 200
