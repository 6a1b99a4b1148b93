"""The daemon as operators run it: a real `smpp-bridge run` process.

systemd notify (READY=1 once serving, WATCHDOG=1, STOPPING=1 on SIGTERM), the Docker
entrypoint with config/docker.toml, JSON logs without personal data, and SIGHUP
reloads (new passwords, routes and provider settings while a session stays bound;
an invalid file is logged and changes nothing).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.notify import Notifier, notify, watchdog_interval
from bridge.smpp.constants import Status
from tests.support.esme import Esme
from tests.support.records import simulator_records
from tests.test_metrics import http_get, scrape

ROOT = Path(__file__).resolve().parent.parent


class Daemon:
    """`smpp-bridge run` in a child process; its stderr (JSON log lines) collected by a
    thread, so tests wait for log events instead of sleeping."""

    def __init__(
        self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 30
    ) -> None:
        full_env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        full_env.pop("SMPP_BRIDGE_LOG_FORMAT", None)
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**full_env, **(env or {})},
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        started = self.wait_event("started", timeout=timeout)
        self.smpp_port: int = started["smpp_port"]
        self.http_port: int = started["http_port"]

    @classmethod
    def run(cls, config: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Daemon:
        return cls([sys.executable, "-m", "bridge", "run", "--config", str(config)], env, cwd)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if name is None or event.get("event") == name:
                out.append(event)
        return out

    def wait_event(self, name: str, count: int = 1, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        """The `count`-th log event called `name` (with these field values)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self.events(name) if all(e.get(k) == v for k, v in fields.items())]
                if len(found) >= count:
                    return found[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    tail = "\n".join(self.lines[-30:])
                    raise TimeoutError(f"no {name!r} event (exit code {self.process.poll()}); log tail:\n{tail}")
                self._changed.wait(remaining)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(10)
        return code


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    running: list[Daemon] = []
    yield running
    for daemon in running:
        daemon.stop()


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


BASE = """
[smpp]
host = "127.0.0.1"
port = 0
enquire_link_interval = 3600
inactivity_timeout = 3600
shutdown_timeout = 5
[http]
host = "127.0.0.1"
port = 0
[store]
url = "sqlite:///{db}"
[log]
level = "info"
"""


def simple_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "bridge.toml",
        BASE.format(db=tmp_path / "b.db")
        + """
[[accounts]]
system_id = "esme1"
password = "secret1"
throughput = 0
route = "sim"
[providers.sim]
type = "simulator"
delivery_delay = 0
""",
    )


# -- systemd notify ----------------------------------------------------------------------


class NotifySocket:
    """The test's stand-in for systemd: a unix datagram socket collecting states."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def with_state(self, key: str, value: str = "1") -> list[dict[str, str]]:
        return [m for m in self.messages if m.get(key) == value]

    def wait_for(self, key: str, value: str = "1", count: int = 1, timeout: float = 30) -> dict[str, str]:
        """The `count`-th message (received already or arriving) that sets key=value."""
        deadline = time.monotonic() + timeout
        while len(self.with_state(key, value)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {key}={value} (#{count}) among {self.messages}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))
        return self.with_state(key, value)[count - 1]

    def close(self) -> None:
        self.sock.close()


def test_notify_writes_one_datagram_to_a_path_or_abstract_socket(tmp_path: Path) -> None:
    path_socket = NotifySocket(tmp_path / "n.sock")
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"smpp-bridge-test-{os.getpid()}-{id(abstract)}"
    abstract.bind("\0" + name)
    abstract.settimeout(10)
    try:
        assert notify("READY=1\nSTATUS=x", {"NOTIFY_SOCKET": str(path_socket.path)})
        assert path_socket.wait_for("READY") == {"READY": "1", "STATUS": "x"}
        assert notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert abstract.recv(4096) == b"STOPPING=1"
    finally:
        path_socket.close()
        abstract.close()


def test_notify_without_systemd_does_nothing(tmp_path: Path) -> None:
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": "relative/path"}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}) is False
    assert Notifier({}).ready() is False


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # meant for another pid
    assert watchdog_interval({"WATCHDOG_USEC": "x"}) is None
    assert watchdog_interval({}) is None


async def test_notifier_pings_the_watchdog_from_the_event_loop(tmp_path: Path) -> None:
    receiver = NotifySocket(tmp_path / "w.sock")
    notifier = Notifier({"NOTIFY_SOCKET": str(receiver.path), "WATCHDOG_USEC": "100000"})
    try:
        assert notifier.ready()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: receiver.wait_for("WATCHDOG", count=2))
    finally:
        notifier.stop_watchdog()
        receiver.close()
    assert receiver.with_state("READY")


def test_systemd_notify_ready_watchdog_and_stopping(tmp_path: Path, daemons: list[Daemon]) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        daemon = Daemon.run(simple_config(tmp_path), env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"})
        daemons.append(daemon)
        ready = notify.wait_for("READY")
        assert ready["MAINPID"] == str(daemon.process.pid)
        assert "STATUS" in ready
        # READY=1 means serving: a bind succeeds at once.
        client = Esme(daemon.smpp_port)
        assert client.bind(system_id="esme1", password="secret1").status == Status.ESME_ROK
        notify.wait_for("WATCHDOG")
        assert not any("STOPPING" in m for m in notify.messages)
        daemon.signal(signal.SIGTERM)
        notify.wait_for("STOPPING")
        client.wait_until(lambda: client.unbinds == 1, timeout=15)
        client.close()
        assert daemon.stop() == 0
        assert notify.with_state("READY") == [ready]  # READY=1 once, and before STOPPING=1
        assert notify.messages.index(ready) < notify.messages.index(notify.with_state("STOPPING")[0])
    finally:
        notify.close()


def test_sighup_reports_reloading_then_ready_again(tmp_path: Path, daemons: list[Daemon]) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        daemon = Daemon.run(simple_config(tmp_path), env={"NOTIFY_SOCKET": str(notify.path)})
        daemons.append(daemon)
        notify.wait_for("READY")
        daemon.signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING")
        assert int(reloading["MONOTONIC_USEC"]) > 0
        daemon.wait_event("reloaded")
        notify.wait_for("READY", count=2)
        assert notify.messages.index(reloading) < notify.messages.index(notify.with_state("READY")[1])
    finally:
        notify.close()


# -- Docker entrypoint ---------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            out.append((instruction.upper(), arguments.strip()))
    return out


def docker_command() -> list[str]:
    """ENTRYPOINT + CMD of the final stage, as the container runs them."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENTRYPOINT":
            entrypoint = json.loads(arguments)
        elif instruction == "CMD":
            cmd = json.loads(arguments)
    return entrypoint + cmd


def test_docker_entrypoint_serves_healthz_with_the_container_config(tmp_path: Path, daemons: list[Daemon]) -> None:
    command = docker_command()
    assert command == ["smpp-bridge", "run", "--config", "/etc/smpp-bridge/bridge.toml"]
    # The image's config, with what only the test must change: ports and the state path.
    config = (ROOT / "config/docker.toml").read_text()
    assert 'host = "0.0.0.0"' in config and "port = 2775" in config and "port = 8080" in config
    config = config.replace("port = 2775", "port = 0").replace("port = 8080", "port = 0")
    config = config.replace("sqlite:////var/lib/smpp-bridge/bridge.db", f"sqlite:///{tmp_path}/state/bridge.db")
    path = write_config(tmp_path / "bridge.toml", config)
    script = Path(sys.executable).parent / command[0]
    argv = [str(script), *(str(path) if arg == "/etc/smpp-bridge/bridge.toml" else arg for arg in command[1:])]
    daemon = Daemon(argv, env={"SMPP_BRIDGE_PASSWORD": "dockpw1"}, cwd=tmp_path)
    daemons.append(daemon)
    assert http_get(f"{daemon.http_url}/healthz") == (200, b'{"status": "ok"}')
    assert http_get(f"{daemon.http_url}/readyz")[0] == 200
    # The HEALTHCHECK's own command, pointed at the test's port.
    [healthcheck] = [args for instruction, args in dockerfile_instructions() if instruction == "HEALTHCHECK"]
    probe = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert probe[0] == "python"
    probe = [sys.executable, *(arg.replace(":8080/", f":{daemon.http_port}/") for arg in probe[1:])]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    client = Esme(daemon.smpp_port)
    assert client.bind(system_id="demo", password="dockpw1").status == Status.ESME_ROK
    client.close()
    assert (tmp_path / "state/bridge.db").exists()
    assert daemon.events("started"), "logs are JSON lines when stderr is not a terminal"
    assert daemon.stop() == 0


def test_healthcheck_fails_when_nothing_listens() -> None:
    [healthcheck] = [args for instruction, args in dockerfile_instructions() if instruction == "HEALTHCHECK"]
    probe = json.loads(healthcheck.split(" CMD ", 1)[1])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # bound, not listening: connections are refused
        probe = [sys.executable, *(arg.replace(":8080/", f":{closed_port}/") for arg in probe[1:])]
        assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0


# -- logs ----------------------------------------------------------------------------------


def test_info_logs_are_json_without_numbers_or_text_and_bind_events_correlate(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    path = simple_config(tmp_path)  # the simulator's defaults refuse 999… and fail 998…
    daemon = Daemon.run(path)
    daemons.append(daemon)
    numbers = ["4917012398765", "9981234598765", "9991234598765"]
    texts = [b"Walrus umbrella 4711", b"Narwhal lantern 0815", b"Okapi marmalade 2342"]
    client = Esme(daemon.smpp_port)
    assert client.bind(system_id="esme1", password="secret1").status == Status.ESME_ROK
    client.deliver_sm_status = lambda pdu: Status.ESME_RX_T_APPN if b"UNDELIV" in pdu.short_message else 0
    expected = [Status.ESME_ROK, Status.ESME_ROK, Status.ESME_RINVDSTADR]
    ids = []
    for number, text, status in zip(numbers, texts, expected, strict=True):
        resp = client.submit(destination=number, text=text, source="4930777666")
        assert resp.status == status
        if status == Status.ESME_ROK:
            ids.append(resp.message_id.decode())
    client.wait_receipts(2)
    assert client.unbind().status == Status.ESME_ROK
    client.close()
    refused = Esme(daemon.smpp_port)
    assert refused.bind(system_id="esme1", password="wrong").status == Status.ESME_RINVPASWD
    refused.close()
    daemon.wait_event("unbound")
    daemon.wait_event("receipt_refused")
    assert daemon.stop() == 0

    output = "\n".join(daemon.lines)
    # Numbers, texts and the words of the texts (digits aside: timestamps are full of them).
    words = [word for text in texts for word in text.decode().split() if not word.isdigit()]
    for secret in [*numbers, "4930777666", *(text.decode() for text in texts), *words]:
        assert secret not in output, secret
    events = [json.loads(line) for line in daemon.lines if line.strip()]  # every line is one JSON object
    assert all({"event", "level", "timestamp"} <= set(e) for e in events)
    [bound] = [e for e in events if e["event"] == "bound"]
    [unbound] = [e for e in events if e["event"] == "unbound"]
    assert bound["system_id"] == unbound["system_id"] == "esme1"
    assert bound["session"] == unbound["session"]
    [refusal] = [e for e in events if e["event"] == "bind_refused"]
    assert refusal["system_id"] == "esme1" and refusal["session"] != bound["session"]
    assert refusal["command_status"] == "ESME_RINVPASWD"
    [rejected] = [e for e in events if e["event"] == "submit_not_accepted"]
    assert rejected["provider"] == "sim" and rejected["session"] == bound["session"]
    [receipt_failure] = [e for e in events if e["event"] == "receipt_refused"]
    assert receipt_failure["system_id"] == "esme1" and receipt_failure["message_id"] in (int(i) for i in ids)
    assert not [e for e in events if e["level"] == "debug"]


# -- SIGHUP reload -------------------------------------------------------------------------

RELOAD_V1 = """
[[accounts]]
system_id = "esme1"
password = "secret1"
throughput = 0
route = "main"
[[accounts]]
system_id = "esme2"
password = "old2"
throughput = 0
route = "main"
[providers.a]
type = "simulator"
delivery_delay = 0
reject_prefixes = []
record_path = "{a}"
[providers.b]
type = "simulator"
delivery_delay = 2         # due 2 s after acceptance, stored with the message: the rebuilt b reports it
reject_prefixes = []
record_path = "{b}"
[[routes]]
name = "to_b"
match = {{ destination_prefix = "4916" }}
providers = ["b"]
[[routes]]
name = "main"
providers = ["a"]
"""

RELOAD_V2 = """
[[accounts]]
system_id = "esme1"
password = "secret1"
throughput = 0
route = "main"
[[accounts]]
system_id = "esme2"
password = "new2"
throughput = 0
route = "main"
[providers.a]
type = "simulator"
delivery_delay = 0
reject_prefixes = []
record_path = "{a}"
[providers.b]
type = "simulator"
delivery_delay = 0
reject_prefixes = ["4915"]
record_path = "{b}"
[[routes]]
name = "main"
providers = ["b"]
"""


def recorded(path: Path) -> list[str]:
    """Destinations a simulator provider accepted (its record_path lines)."""
    return [record["to"] for record in simulator_records(path)]


def test_sighup_reload_keeps_sessions_and_applies_passwords_routes_and_providers(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    head = BASE.format(db=tmp_path / "b.db")
    path = write_config(tmp_path / "bridge.toml", head + RELOAD_V1.format(a=a, b=b))
    daemon = Daemon.run(path)
    daemons.append(daemon)
    esme1 = Esme(daemon.smpp_port)
    assert esme1.bind(system_id="esme1", password="secret1").status == Status.ESME_ROK
    waiting = esme1.submit(destination="4916000001")  # provider b: its report is due after the reload
    assert waiting.status == Status.ESME_ROK
    assert esme1.submit(destination="4917000001").status == Status.ESME_ROK
    esme1.wait_receipts(1)
    assert recorded(a) == ["4917000001"] and recorded(b) == ["4916000001"]
    assert _bind_status(daemon, "esme2", "old2") == Status.ESME_ROK

    write_config(path, head + RELOAD_V2.format(a=a, b=b))
    daemon.signal(signal.SIGHUP)
    reloaded = daemon.wait_event("reloaded")
    assert reloaded["providers_replaced"] == ["b"] and reloaded["providers_added"] == []
    daemon.wait_event("provider_replaced", provider="b")

    # The session bound before the reload is still bound and follows the new config.
    assert esme1.send("enquire_link").status == Status.ESME_ROK
    receipts = esme1.wait_receipts(2)  # the message the old b held, reported when due
    assert receipts[1]["id"] == waiting.message_id.decode()
    assert esme1.submit(destination="4917000002").status == Status.ESME_ROK
    assert recorded(b)[-1] == "4917000002" and recorded(a) == ["4917000001"]
    assert esme1.submit(destination="4915000001").status == Status.ESME_RINVDSTADR  # b's new reject_prefixes
    assert _bind_status(daemon, "esme2", "old2") == Status.ESME_RINVPASWD
    assert _bind_status(daemon, "esme2", "new2") == Status.ESME_ROK

    # An invalid file is rejected with a log line and changes nothing.
    write_config(path, head + RELOAD_V1.format(a=a, b=b).replace('providers = ["a"]', 'providers = ["nope"]'))
    daemon.signal(signal.SIGHUP)
    rejected = daemon.wait_event("reload_rejected")
    assert rejected["level"] == "error"
    assert any("no provider named 'nope'" in problem for problem in rejected["problems"])
    assert esme1.submit(destination="4917000003").status == Status.ESME_ROK
    assert recorded(b)[-1] == "4917000003" and recorded(a) == ["4917000001"]
    assert _bind_status(daemon, "esme2", "old2") == Status.ESME_RINVPASWD
    assert _bind_status(daemon, "esme2", "new2") == Status.ESME_ROK
    reloads = scrape(daemon.http_url).by("smpp_bridge_config_reloads_total", "result")
    assert reloads == {("ok",): 1, ("rejected",): 1}

    # esme1's session lived through all three reloads.
    assert esme1.unbinds == 0
    assert not [e for e in daemon.events("unbound") if e["system_id"] == "esme1"]
    esme1.close()
    assert daemon.stop() == 0


def _bind_status(daemon: Daemon, system_id: str, password: str) -> int:
    client = Esme(daemon.smpp_port)
    try:
        status: int = client.bind(system_id=system_id, password=password).status
        if status == Status.ESME_ROK:
            client.unbind()
        return status
    finally:
        client.close()


def test_reload_of_an_unreadable_toml_is_rejected(tmp_path: Path, daemons: list[Daemon]) -> None:
    path = simple_config(tmp_path)
    daemon = Daemon.run(path)
    daemons.append(daemon)
    good = path.read_text()
    write_config(path, good + "\n[[accounts\n")
    daemon.signal(signal.SIGHUP)
    rejected = daemon.wait_event("reload_rejected")
    assert "not valid TOML" in rejected["problems"][0]
    assert _bind_status(daemon, "esme1", "secret1") == Status.ESME_ROK
    assert daemon.process.poll() is None


def test_shell_quoting_of_the_unit_exec_start_matches_the_cli() -> None:
    """ExecStart and the Docker command run the same CLI with the same arguments."""
    unit = (ROOT / "systemd/smpp-bridge.service").read_text()
    [exec_start] = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start)
    assert Path(argv[0]).name == "smpp-bridge"
    assert argv[1:] == docker_command()[1:]
