"""A real redis-server for the cluster tests, and bridge processes sharing it.

`RedisServer` starts the Debian `redis-server` binary on a free port in its own
directory (append-only file, fsync on every write, so a SIGKILL loses nothing
acknowledged), and can kill and restart it on the same port and data.
`Daemon` runs `python -m bridge run` against it, for the tests that SIGKILL an
instance. Tests wait for conditions with deadlines, never for fixed times.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.servers import free_port
from tests.support.waiting import wait_for


def redis_binary() -> str:
    """The redis-server path; fails under CI (which installs it), skips elsewhere."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        message = "redis-server is needed (Debian package redis-server; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
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


class Daemon:
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
        self.workdir = workdir
        self.name = name
        self.smpp_port, self.http_port = free_port(), free_port()
        self.log_path = workdir / f"{name}.log"
        self.config = workdir / f"{name}.toml"
        self.config.write_text(
            DAEMON_CONFIG.format(
                smpp_port=self.smpp_port,
                http_port=self.http_port,
                redis_url=redis_url,
                prefix=prefix,
                ttl=ttl,
                delay=delay,
                latency=latency,
                record=record,
            )
        )
        self.config.chmod(0o600)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        wait_for(lambda: self.ready() == 200, timeout=30)
        return self

    def ready(self) -> int:
        """/readyz status (0: no answer)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def events(self, event: str) -> list[dict[str, Any]]:
        out = []
        if self.log_path.exists():
            for line in self.log_path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("event") == event:
                    out.append(entry)
        return out


def provider_texts(record: Path) -> list[str]:
    texts = []
    if record.exists():
        for line in record.read_text(encoding="utf-8").splitlines():
            try:
                texts.append(json.loads(line)["text"])
            except ValueError:
                continue  # a line cut short by a SIGKILL
    return texts
