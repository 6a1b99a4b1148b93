"""Fixtures of the cluster tests: one redis-server per module, a key prefix per test,
and in-process bridges sharing both."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.store.redis import RedisStore
from tests.redis.support import RedisServer
from tests.support.running import RunningBridge, make_config

_prefixes = itertools.count(1)
TTL = 1.5  # instance_ttl of the test bridges: a killed one counts as gone this quickly


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"t{next(_prefixes)}-{request.node.name[:40]}"


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisStore]:
    """A RedisStore, opened, on the module's redis-server under the test's prefix."""
    opened = RedisStore(redis_server.url, prefix=prefix)
    await opened.open()
    yield opened
    await opened.close()


def redis_store(url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "prefix": prefix, "instance_ttl": TTL, "redis_timeout": 2, **extra}


@pytest.fixture
def start_cluster_bridge(
    tmp_path: Path, redis_server: RedisServer, prefix: str
) -> Iterator[Callable[..., RunningBridge]]:
    """start_cluster_bridge(**config_overrides) -> a RunningBridge on the shared Redis."""
    running: list[RunningBridge] = []

    def start(**overrides: Any) -> RunningBridge:
        store = redis_store(redis_server.url, prefix, **overrides.pop("store", {}))
        bridge = RunningBridge(make_config(tmp_path, store=store, **overrides)).start()
        running.append(bridge)
        return bridge

    yield start
    for bridge in reversed(running):
        bridge.stop()
