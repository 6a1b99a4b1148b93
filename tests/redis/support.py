"""A real redis-server for the cluster tests, and bridge processes sharing it.

`RedisServer` starts the Debian `redis-server` binary on a free port in its own
directory (append-only file, fsync on every write, so a SIGKILL loses nothing
acknowledged), and can kill and restart it on the same port and data.
`Daemon` runs `python -m bridge run` against it, for the tests that SIGKILL an
instance. Tests wait for conditions with deadlines, never for fixed times.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.daemon import Daemon as BridgeProcess
from tests.support.servers import free_port
from tests.support.waiting import wait_for


def redis_binary() -> str:
    """The redis-server path; skips without it (a failure under CI, which installs it)."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        pytest.skip("redis-server is needed (Debian package redis-server; .ci/run installs it)")
    return found


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.binary = redis_binary()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.workdir),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--protected-mode", "no",
                "--logfile", str(self.workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self.answers, timeout=20)
        return self

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited; see {self.workdir / 'redis.log'}")
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def kill(self) -> None:
        """SIGKILL: whatever Redis acknowledged is in its append-only file."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def restart(self) -> None:
        """Start again on the same port and data directory (after kill or stop)."""
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def print_measured(measure: Callable[[str], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    """Run `measure(url)` against a throwaway redis-server and print what it returns
    (the `python -m tests.redis.measure_*` scripts)."""
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            print(json.dumps(asyncio.run(measure(server.url)), indent=2))
        finally:
            server.stop()


DAEMON_CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
system_id = "CLUSTER"
shutdown_timeout = 5
receipt_retry_base = 0.2

[http]
host = "127.0.0.1"
port = {http_port}

[store]
url = "{redis_url}"
prefix = "{prefix}"
instance_ttl = {ttl}
redis_timeout = 2

[outbox]
backoff_base = 0.1
backoff_max = 0.5

[log]
level = "info"
format = "json"

[[accounts]]
system_id = "up"
password = "pw"
throughput = 0
ack = "upstream"
route = "sim"

[[accounts]]
system_id = "st"
password = "pw"
throughput = 0
ack = "stored"
route = "sim"

[[accounts]]
system_id = "lim"
password = "pw"
max_binds = 1
route = "sim"

[providers.sim]
type = "simulator"
delivery_delay = {delay}
latency = {latency}
record_path = "{record}"
"""


class Daemon(BridgeProcess):
    """One bridge process on the shared Redis (SIGKILL-able)."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        redis_url: str,
        prefix: str,
        record: Path,
        ttl: float = 1.5,
        latency: float = 0.0,
        delay: float = 0.2,
    ) -> None:
        super().__init__(
            workdir,
            DAEMON_CONFIG,
            name,
            redis_url=redis_url,
            prefix=prefix,
            ttl=ttl,
            delay=delay,
            latency=latency,
            record=record,
        )
