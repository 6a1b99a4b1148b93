from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.logging import configure_logging
from tests.support.esme import Esme
from tests.support.running import RunningBridge, make_config

configure_logging("debug", "console")


@pytest.fixture
def start_bridge(tmp_path: Path) -> Iterator[Callable[..., RunningBridge]]:
    """start_bridge(**config_overrides) -> a RunningBridge, stopped after the test."""
    running: list[RunningBridge] = []

    def start(**overrides: Any) -> RunningBridge:
        bridge = RunningBridge(make_config(tmp_path, **overrides)).start()
        running.append(bridge)
        return bridge

    yield start
    for bridge in reversed(running):
        bridge.stop()


@pytest.fixture
def bridge(start_bridge: Callable[..., RunningBridge]) -> RunningBridge:
    return start_bridge()


@pytest.fixture
def esme_factory(bridge: RunningBridge) -> Iterator[Callable[..., Esme]]:
    clients: list[Esme] = []

    def connect(port: int | None = None) -> Esme:
        client = Esme(port or bridge.smpp_port)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def esme(esme_factory: Callable[..., Esme]) -> Esme:
    client = esme_factory()
    resp = client.bind("transceiver")
    assert resp.status == 0
    return client
