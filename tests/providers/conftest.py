"""Fixtures of the provider tests: a provider double served over HTTP, a bound ESME,
and the two together with a bridge routing to the double (`start_rig`). Plain
helpers are in tests/support/providers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.simulators import build_simulator
from tests.providers.test_flashsms import KEY as FLASHSMS_KEY
from tests.providers.test_kaleyra import KEY as KALEYRA_KEY
from tests.providers.test_kaleyra import PROFILE as KALEYRA_PROFILE
from tests.providers.test_kaleyra import SID as KALEYRA_SID
from tests.providers.test_kaleyra import TOKEN as KALEYRA_TOKEN
from tests.support.esme import Esme
from tests.support.providers import Rig, account
from tests.support.running import RunningBridge
from tests.support.servers import AppThread, free_port


@pytest.fixture
def http_port() -> int:
    """A port for the bridge's HTTP server, chosen first: a double must know the callback URL."""
    return free_port()


@pytest.fixture
def serve() -> Iterator[Callable[[web.Application], AppThread]]:
    """serve(app) -> the app on 127.0.0.1 from its own thread, stopped after the test."""
    threads: list[AppThread] = []

    def start(app: web.Application) -> AppThread:
        thread = AppThread(app).start()
        threads.append(thread)
        return thread

    yield start
    for thread in reversed(threads):
        thread.stop()


@pytest.fixture
async def serve_here() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """await serve_here(app) -> the app's URL, served on the test's own loop (for async
    tests), closed after the test."""
    servers: list[TestServer] = []

    async def start(app: web.Application) -> str:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in reversed(servers):
        await server.close()


@pytest.fixture
def connect() -> Iterator[Callable[[RunningBridge], Esme]]:
    """connect(bridge) -> an Esme bound as transceiver (esme1), closed after the test."""
    clients: list[Esme] = []

    def bind(bridge: RunningBridge) -> Esme:
        client = Esme(bridge.smpp_port)
        clients.append(client)
        assert client.bind("transceiver").status == 0
        return client

    yield bind
    for client in clients:
        client.close()


@pytest.fixture
def start_rig(
    start_bridge: Callable[..., RunningBridge], connect: Callable[[RunningBridge], Esme]
) -> Callable[..., Rig]:
    """start_rig(sim, name, settings, http_port?, account_settings?) -> a bridge with the
    one provider `name` (its config `settings`), esme1 (plus `account_settings`) routed
    to it and bound; the bridge's HTTP port is `http_port` or its own (callbacks reach
    http://127.0.0.1:<rig.http_port>)."""

    def start(
        sim: AppThread,
        name: str,
        settings: dict[str, Any],
        http_port: int | None = None,
        account_settings: dict[str, Any] | None = None,
    ) -> Rig:
        http_port = http_port or free_port()
        overrides: dict[str, Any] = {
            "http": {"port": http_port, "public_url": f"http://127.0.0.1:{http_port}"},
            "accounts": [account(name, **(account_settings or {}))],
            "providers": {name: settings},
        }
        bridge = start_bridge(**overrides)
        return Rig(sim, bridge, connect(bridge), http_port, overrides)

    return start


@pytest.fixture
def kaleyra_rig_factory(
    serve: Callable[[web.Application], AppThread], start_rig: Callable[..., Rig]
) -> Callable[..., Rig]:
    """rig_factory(sim_options, account_settings, **provider settings) -> the strict
    Kaleyra double and a bridge using it: /sms with a JSON body and a callback profile
    (KALEYRA_PROFILE, its URL the bridge's callback URL), as document 001 and
    PROVIDERS.md 3.1 allow."""

    def make(
        sim_options: dict[str, Any] | None = None, account_settings: dict[str, Any] | None = None, **provider: Any
    ) -> Rig:
        http_port = free_port()
        callback = {"url": f"http://127.0.0.1:{http_port}/callbacks/kaleyra/{KALEYRA_TOKEN}", "method": "POST"}
        options = {
            "sid": KALEYRA_SID,
            "api_key": KALEYRA_KEY,
            "senders": ["KLRHXA", "MYBRAND"],
            "sent_delay": 0.05,
            "final_delay": 0.15,
            "profiles": {KALEYRA_PROFILE: callback},
        }
        sim = serve(build_simulator("kaleyra", **(options | (sim_options or {}))))
        settings = {
            "type": "kaleyra",
            "base_url": sim.url,
            "sid": KALEYRA_SID,
            "api_key": KALEYRA_KEY,
            "sender": "KLRHXA",
            "sms_type": "TXN",
            "callback_token": KALEYRA_TOKEN,
            "callback_profile_id": KALEYRA_PROFILE,
            "poll_interval": 0,
            "circuit_failures": 1000,  # the error tests fail on purpose, many times in a row
        }
        return start_rig(sim, "kaleyra", settings | provider, http_port, account_settings)

    return make


@pytest.fixture
def flashsms_rig_factory(
    serve: Callable[[web.Application], AppThread], start_rig: Callable[..., Rig]
) -> Callable[..., Rig]:
    """rig_factory(sim_options, account_settings, **provider settings) -> the FlashSMS double
    and a bridge using it."""

    def make(
        sim_options: dict[str, Any] | None = None, account_settings: dict[str, Any] | None = None, **provider: Any
    ) -> Rig:
        options = {"api_key": FLASHSMS_KEY, "sent_after": 0.1, "final_after": 0.3}
        sim = serve(build_simulator("flashsms", **(options | (sim_options or {}))))
        settings = {
            "type": "flashsms",
            "base_url": f"{sim.url}/api/v1",
            "api_key": FLASHSMS_KEY,
            "sender": "MyBrand",
            "poll_interval": 0.2,
            "circuit_failures": 1000,  # the error tests fail on purpose, many times in a row
        }
        return start_rig(sim, "flashsms", settings | provider, account_settings=account_settings)

    return make
