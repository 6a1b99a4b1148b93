"""Kannel 1.4.5 (Debian `kannel`) as a real ESME of the bridge, for the interop tests.

`render_config` writes the kannel.conf we document in docs/interop.md (one
transceiver link, or a transmitter + receiver pair sharing one smsc-id); `Kannel`
runs bearerbox and smsbox as plain foreground processes with their logs in a
directory of the test, waits for the SMPP link to be online (Kannel's own status
page says so), sends through smsbox's sendsms interface and stops both boxes again.
`DlrServer` is the HTTP server Kannel calls the dlr-url of; `KannelLog` reads the
PDUs Kannel logged at log-level 0 (how Kannel decoded what the bridge sent).

Kannel's ports (13000 admin, 13001 box, 13013 sendsms) are fixed by the config, so
only one Kannel may run on the machine at a time: `Kannel.start` takes an exclusive
file lock that `stop` releases, which also serialises with other test processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from tests.support.servers import AppThread

ADMIN_PORT = 13000
BOX_PORT = 13001
SENDSMS_PORT = 13013
ADMIN_PASSWORD = "adminpw"
STATUS_PASSWORD = "statuspw"
SENDSMS_USER = "tester"
SENDSMS_PASSWORD = "foobar"
SMSC_ID = "bridge"
LOCK_PATH = Path("/tmp/smpp-bridge-interop-kannel.lock")

BIND_MODES = ("transceiver", "tx+rx")


def kannel_binaries() -> dict[str, str | None]:
    """Where bearerbox and smsbox are (Debian puts them in /usr/sbin, often not on PATH)."""
    found: dict[str, str | None] = {}
    for name in ("bearerbox", "smsbox"):
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        found[name] = path
    return found


# -- configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class KannelSettings:
    """What differs between the scenarios; everything else is the documented config."""

    bind: str = "transceiver"  # or "tx+rx"
    msg_id_type: int | None = None  # smsc group `msg-id-type`; None = unset (ids are opaque strings)
    system_id: str = "kannel"
    password: str = "secret"
    enquire_link_interval: int = 30
    max_pending_submits: int = 10
    interface_version: int = 34

    @property
    def links(self) -> int:
        """SMPP connections Kannel opens to the bridge."""
        return 1 if self.bind == "transceiver" else 2


def render_config(directory: Path, smpp_port: int, settings: KannelSettings) -> str:
    """kannel.conf for bearerbox + smsbox bound to the bridge on 127.0.0.1:`smpp_port`."""
    if settings.bind not in BIND_MODES:
        raise ValueError(f"bind must be one of {BIND_MODES}")
    core = f"""\
group = core
admin-port = {ADMIN_PORT}
admin-password = {ADMIN_PASSWORD}
status-password = {STATUS_PASSWORD}
admin-allow-ip = "127.0.0.1"
smsbox-port = {BOX_PORT}
box-allow-ip = "127.0.0.1"
dlr-storage = internal
log-file = "{directory / "bearerbox.log"}"
log-level = 0
access-log = "{directory / "access.log"}"
store-type = spool
store-location = "{directory / "store"}"
"""
    common = f"""\
smsc = smpp
smsc-id = {SMSC_ID}
host = 127.0.0.1
smsc-username = "{settings.system_id}"
smsc-password = "{settings.password}"
system-type = "KANNEL"
interface-version = {settings.interface_version}
enquire-link-interval = {settings.enquire_link_interval}
max-pending-submits = {settings.max_pending_submits}
source-addr-ton = 1
source-addr-npi = 1
dest-addr-ton = 1
dest-addr-npi = 1
log-level = 0
"""
    if settings.msg_id_type is not None:
        common += f"msg-id-type = 0x{settings.msg_id_type:02x}\n"
    if settings.bind == "transceiver":
        smscs = [f"group = smsc\n{common}port = {smpp_port}\ntransceiver-mode = true\n"]
    else:
        smscs = [
            f"group = smsc\n{common}port = {smpp_port}\nreceive-port = 0\n",
            f"group = smsc\n{common}port = 0\nreceive-port = {smpp_port}\n",
        ]
    smsbox = f"""\
group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {BOX_PORT}
sendsms-port = {SENDSMS_PORT}
log-file = "{directory / "smsbox.log"}"
log-level = 0

group = sendsms-user
username = {SENDSMS_USER}
password = {SENDSMS_PASSWORD}
concatenation = true
max-messages = 10
"""
    return "\n".join([core, *smscs, smsbox])


# -- processes -----------------------------------------------------------------------


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, so that a killed
    test run never leaves a Kannel holding the fixed ports (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def port_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Check `condition` until it holds; TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


@dataclass
class Kannel:
    directory: Path
    smpp_port: int
    settings: KannelSettings = field(default_factory=KannelSettings)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _outputs: list[IO[bytes]] = field(default_factory=list)
    _lock: IO[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "kannel.conf"

    def start(self, timeout: float = 20.0) -> Kannel:
        binaries = kannel_binaries()
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "store").mkdir(exist_ok=True)
        self.config_path.write_text(render_config(self.directory, self.smpp_port, self.settings))
        self._take_lock(timeout=120)
        try:
            ports = (ADMIN_PORT, BOX_PORT, SENDSMS_PORT)
            wait_until(lambda: not any(map(port_listening, ports)), 10, f"ports {ports} free (another Kannel?)")
            self._spawn("bearerbox", binaries["bearerbox"])
            self._wait_port(BOX_PORT, "bearerbox", timeout)
            self._spawn("smsbox", binaries["smsbox"])
            self._wait_port(SENDSMS_PORT, "smsbox", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _take_lock(self, timeout: float) -> None:
        handle = LOCK_PATH.open("ab")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise TimeoutError(f"another Kannel holds {LOCK_PATH}") from None
                time.sleep(0.2)
        self._lock = handle

    def _spawn(self, name: str, binary: str | None) -> None:
        assert binary is not None, f"{name} not installed"
        output = (self.directory / f"{name}.out").open("wb")
        self._outputs.append(output)
        # -v 4: only panics on the terminal; the log files get everything (log-level 0).
        self.processes[name] = subprocess.Popen(
            [binary, "-v", "4", str(self.config_path)],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_terminate_with_parent,
        )

    def _wait_port(self, port: int, name: str, timeout: float) -> None:
        process = self.processes[name]

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
            return port_listening(port)

        wait_until(up, timeout, f"{name} listening on {port}")

    # -- status and sending ----------------------------------------------------------

    def status(self) -> str:
        """bearerbox's status.txt ("" while it does not answer)."""
        query = urllib.parse.urlencode({"password": STATUS_PASSWORD})
        try:
            return http_get(f"http://127.0.0.1:{ADMIN_PORT}/status.txt?{query}")[1]
        except OSError:
            return ""

    def smsc_lines(self) -> list[str]:
        """The status page's lines of our smsc-id (one per link)."""
        return [line.strip() for line in self.status().splitlines() if line.strip().startswith(f"{SMSC_ID}[")]

    def wait_online(self, timeout: float = 15.0) -> list[str]:
        """Wait until every link of our smsc-id shows `(online Ns`."""

        def online() -> bool:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
            lines = self.smsc_lines()
            return len(lines) == self.settings.links and all("(online " in line for line in lines)

        try:
            wait_until(online, timeout, "Kannel links online")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; status: {self.smsc_lines()}\n{self.tail('bearerbox')}") from None
        return self.smsc_lines()

    def sendsms(self, **params: Any) -> tuple[int, str]:
        """GET /cgi-bin/sendsms with our sendsms-user; returns (HTTP status, body)."""
        query = {"username": SENDSMS_USER, "password": SENDSMS_PASSWORD, **params}
        url = f"http://127.0.0.1:{SENDSMS_PORT}/cgi-bin/sendsms?{urllib.parse.urlencode(query)}"
        return http_get(url)

    # -- logs and stopping -----------------------------------------------------------

    def log(self, name: str = "bearerbox") -> str:
        path = self.directory / f"{name}.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def tail(self, name: str, lines: int = 30) -> str:
        text = self.log(name) or (self.directory / f"{name}.out").read_text("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM both boxes (bearerbox unbinds first); SIGKILL what outlives `timeout`."""
        try:
            for name in ("smsbox", "bearerbox"):
                process = self.processes.get(name)
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in self.processes.values():
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        finally:
            for output in self._outputs:
                output.close()
            self._outputs.clear()
            if self._lock is not None:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
                self._lock = None


# -- the dlr-url server ----------------------------------------------------------------


@dataclass(frozen=True)
class DlrCall:
    """One call of a dlr-url: the query Kannel filled in (see `DLR_URL_FIELDS`)."""

    query: dict[str, str]

    @property
    def type(self) -> int:
        return int(self.query["type"])

    def __getitem__(self, key: str) -> str:
        return self.query[key]


# Kannel's placeholders: %d dlr type, %F the SMSC's message id (as Kannel stored it),
# %A the SMSC's answer (ACK/ or the receipt text), %i smsc-id, %I Kannel's own id,
# %p receiver, %P sender.
DLR_URL_FIELDS = {"type": "%d", "fid": "%F", "reply": "%A", "smsc": "%i", "kid": "%I", "to": "%p", "from": "%P"}


class DlrServer:
    """An HTTP server recording the dlr-url calls, keyed by the `tag` each message's
    URL carries; `wait` blocks on a Condition until the expected calls arrived."""

    def __init__(self) -> None:
        self.calls: dict[str, list[DlrCall]] = {}
        self._condition = threading.Condition()
        app = web.Application()
        app.router.add_get("/dlr", self._handle)
        self._thread = AppThread(app)

    def __enter__(self) -> DlrServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._thread.stop()

    def url(self, tag: str) -> str:
        """The dlr-url for one message (Kannel substitutes the % placeholders)."""
        fields = "&".join(f"{name}={placeholder}" for name, placeholder in DLR_URL_FIELDS.items())
        return f"{self._thread.url}/dlr?tag={urllib.parse.quote(tag)}&{fields}"

    async def _handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        with self._condition:
            self.calls.setdefault(query.get("tag", ""), []).append(DlrCall(query))
            self._condition.notify_all()
        return web.Response(text="ok")

    def wait(self, tag: str, condition: Callable[[list[DlrCall]], bool], timeout: float = 10.0) -> list[DlrCall]:
        """The calls for `tag` once `condition(calls)` holds; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not condition(self.calls.get(tag, [])):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"dlr-url calls for {tag!r}: {self.calls.get(tag, [])}")
                self._condition.wait(remaining)
            return list(self.calls[tag])

    def wait_final(self, tag: str, timeout: float = 10.0) -> list[DlrCall]:
        """Calls for `tag` once a final report (type 1, 2 or 16) arrived."""
        return self.wait(tag, lambda calls: any(call.type in (1, 2, 16) for call in calls), timeout)


# -- Kannel's log ----------------------------------------------------------------------

_LOG_LINE = re.compile(r"^\S+ \S+ \[\d+\] \[(?P<thread>\d+)\] \w+: (?P<message>.*)$")
_PDU_START = re.compile(r"^SMPP\[(?P<smsc>[^\]]+)\]: (?P<what>Got PDU|Sending [^:]+):$")
_FIELD = re.compile(r"^  (?P<name>\w+):(?: (?P<value>.*))?$")
_OCTETS = re.compile(r"^\s+data: (?P<hex>.{1,47})")  # 16 octets in hex, then the printable text


@dataclass
class LoggedPdu:
    direction: str  # "in" (Kannel got it) or "out" (Kannel sent it)
    thread: str  # Kannel's thread: one I/O thread per SMPP connection
    fields: dict[str, str]
    octets: dict[str, bytes] = field(default_factory=dict)  # octet-string fields (short_message)

    @property
    def type_name(self) -> str:
        return self.fields.get("type_name", "")

    def text(self, name: str) -> str | None:
        """A string field without the quotes of Kannel's dump."""
        value = self.fields.get(name)
        if value is None:
            return None
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value

    def integer(self, name: str) -> int | None:
        """An integer field (Kannel writes `2 = 0x00000002`)."""
        value = self.fields.get(name)
        return None if value is None else int(value.split()[0])

    def octets_or_text(self, name: str) -> bytes:
        """An octet string: Kannel dumps it in hex, or inline when it is printable."""
        if name in self.octets:
            return self.octets[name]
        text = self.text(name)
        return b"" if text is None else text.encode("latin-1")


class KannelLog:
    """The PDUs in a bearerbox log at log-level 0, as Kannel decoded them, in order.

    Kannel's threads write into one file, so a PDU dump is followed per thread."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pdus: list[LoggedPdu] = []
        open_dumps: dict[str, LoggedPdu] = {}
        for line in text.splitlines():
            parsed = _LOG_LINE.match(line)
            if parsed is None:
                continue
            thread, message = parsed["thread"], parsed["message"]
            start = _PDU_START.match(message)
            if start:
                pdu = LoggedPdu("in" if start["what"] == "Got PDU" else "out", thread, {})
                self.pdus.append(pdu)
                open_dumps[thread] = pdu
            elif thread in open_dumps:
                if message.startswith("SMPP PDU dump ends"):
                    del open_dumps[thread]
                else:
                    self._add_line(open_dumps[thread], message)

    @staticmethod
    def _add_line(pdu: LoggedPdu, message: str) -> None:
        if (field_match := _FIELD.match(message)) and field_match["name"] not in pdu.fields:
            pdu.fields[field_match["name"]] = (field_match["value"] or "").strip()
        elif (octets := _OCTETS.match(message)) and pdu.fields:
            name = next(reversed(pdu.fields))  # the octet string belongs to the field just named
            pdu.octets[name] = pdu.octets.get(name, b"") + bytes.fromhex(octets["hex"])

    def of_type(self, type_name: str, direction: str | None = None) -> list[LoggedPdu]:
        return [p for p in self.pdus if p.type_name == type_name and (direction is None or p.direction == direction)]

    def lost_dlrs(self) -> list[str]:
        """Receipts Kannel could not match to a message it sent."""
        return [line for line in self.text.splitlines() if "got DLR but could not find message" in line]

    def dlr_lines(self, action: str) -> list[str]:
        """`smsc:id` of each `DLR[internal]: <action> smsc=..., ts=...` line (Kannel's
        DLR store: "Adding DLR" on submit_sm_resp, "Looking for DLR" on a receipt)."""
        pattern = re.compile(rf"DLR\[internal\]: {action} smsc=(?P<smsc>[^,]+), ts=(?P<ts>[^,]+),")
        return [f"{m['smsc']}:{m['ts']}" for m in map(pattern.search, self.text.splitlines()) if m]
