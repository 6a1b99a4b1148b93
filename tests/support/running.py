"""A real Bridge on its own event-loop thread, listening on 127.0.0.1 (port 0).

Tests stay synchronous and drive it with real clients (smpplib, HTTP); `call`
runs a coroutine on the bridge's loop when a test must look inside.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bridge.app import Bridge
from bridge.config import Config, parse_config

T = TypeVar("T")

BASE_CONFIG: dict[str, Any] = {
    "smpp": {"host": "127.0.0.1", "port": 0, "system_id": "SMPPBRIDGE", "shutdown_timeout": 5},
    "http": {"host": "127.0.0.1", "port": 0, "public_url": "http://127.0.0.1:8080"},
    "log": {"level": "debug", "format": "console"},
    "accounts": [
        {
            "system_id": "esme1",
            "password": "secret1",
            "allowed_networks": ["127.0.0.0/8"],
            "max_binds": 4,
            "throughput": 0,
            "route": "sim",
        },
    ],
    "providers": {"sim": {"type": "simulator", "delivery_delay": 0.05}},
}


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    """BASE_CONFIG with a store under `tmp_path`; top-level keys in `overrides`
    replace (dicts are merged one level deep)."""
    raw = copy.deepcopy(BASE_CONFIG)
    raw["store"] = {"url": f"sqlite:///{tmp_path / 'bridge.db'}"}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and key != "providers":
            raw[key].update(value)
        else:
            raw[key] = value
    return parse_config(raw)


class RunningBridge:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bridge-loop", daemon=True)
        self.bridge: Bridge | None = None

    def start(self) -> RunningBridge:
        self._thread.start()
        self.bridge = self.call(self._make_and_start())
        return self

    async def _make_and_start(self) -> Bridge:
        bridge = Bridge(self.config)
        await bridge.start()
        return bridge

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Any, *args: Any) -> Any:
        """Call a plain function on the bridge's loop and return its result."""

        async def wrapper() -> Any:
            return fn(*args)

        return self.call(wrapper())

    @property
    def smpp_port(self) -> int:
        assert self.bridge is not None
        return self.bridge.ports["smpp"]

    @property
    def http_port(self) -> int:
        assert self.bridge is not None
        return self.bridge.ports["http"]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        if self.bridge is not None:
            self.call(self.bridge.stop())
            self.bridge = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
