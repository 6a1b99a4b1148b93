"""A bridge process (`python -m bridge run`) for the tests that need a real daemon:
SIGKILL, SIGTERM, memory of the process, its JSON log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from tests.support.servers import free_port
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


class Daemon:
    """`config` is TOML text; `{smpp_port}`, `{http_port}`, `{workdir}` and the `values`
    given are filled in. `module` is what `python -m` runs: `bridge`, or a test module
    that injects a fault first and then runs the same `bridge.cli.main`. `http_port`:
    where a provider double already sends its callbacks (default: a free port)."""

    def __init__(
        self,
        workdir: Path,
        config: str,
        name: str = "bridge",
        module: str = "bridge",
        http_port: int | None = None,
        **values: Any,
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.module = module
        self.smpp_port, self.http_port = free_port(), http_port or free_port()
        self.log_path = workdir / f"{name}.log"
        self.config = workdir / f"{name}.toml"
        self.config.write_text(
            config.format(smpp_port=self.smpp_port, http_port=self.http_port, workdir=workdir, **values)
        )
        self.config.chmod(0o600)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, wait: bool = True) -> Self:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                },
            )
        if wait:
            wait_for(lambda: self.ready() == 200, timeout=30)
        return self

    def ready(self) -> int:
        """/readyz status (0: no answer yet). Raises if the process has exited."""
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
        """SIGKILL, and wait for it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of one event."""
        out = []
        if self.log_path.exists():
            for line in self.log_path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("event") == event:
                    out.append(entry)
        return out
