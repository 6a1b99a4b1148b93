"""A few seconds of tests/fuzz_live.py against a real daemon process: no crash, a
well-behaved session keeps working, memory stays bounded."""

from __future__ import annotations

from pathlib import Path

from tests import fuzz_live
from tests.support.daemon import Daemon
from tests.support.waiting import wait_for

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
[security]
lockout = 0            # the fuzzer's mangled binds must not lock out the control session
[http]
host = "127.0.0.1"
port = {http_port}
[store]
url = "sqlite:///{workdir}/b.db"
[log]
level = "warning"
format = "json"
[[accounts]]
system_id = "demo"
password = "demo123"
throughput = 0
max_binds = 100
route = "sim"
[providers.sim]
type = "simulator"
delivery_delay = 0.01
"""


def test_fuzzing_a_live_daemon_crashes_nothing(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, CONFIG).start()
    try:
        # A number of rounds, not of seconds: a slow machine fuzzes as much, only longer.
        report = fuzz_live.run("127.0.0.1", daemon.smpp_port, seconds=None, seed=7, pid=daemon.pid, system_id="demo",
                               password="demo123", rounds=30)  # fmt: skip
        assert report.rounds == 30
        assert report.answers + report.closed_by_daemon > 0  # the abuse reached the daemon
        assert report.control_failures == 0
        assert daemon.alive
        assert report.rss_max_kib - report.rss_before_kib < 64 * 1024
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.log_path.read_text()


def test_memory_stays_bounded_under_partial_pdus_and_stalled_readers(tmp_path: Path) -> None:
    """300 connections each holding a half-sent 60 KB PDU, plus 50 that flood
    enquire_links and never read: the daemon's memory grows by what its limits allow
    (max_command_length per connection, the write buffer cap), then the pdu_timeout
    and the write-stall cut-off free it; a control session works throughout."""
    import socket
    import struct

    config = CONFIG.replace("lockout = 0", "lockout = 0\npdu_timeout = 2\nwrite_stall_timeout = 2")
    daemon = Daemon(tmp_path, config).start()
    smpp_port = daemon.smpp_port
    sockets: list[socket.socket] = []
    try:
        before = fuzz_live.rss_kib(daemon.pid)
        half = struct.pack(">IIII", 60_016, 4, 0, 1) + b"\x00" * 30_000
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", smpp_port))
            sock.sendall(half)
            sockets.append(sock)
        flood = struct.pack(">IIII", 16, 0x15, 0, 2) * 4000
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", smpp_port))
            sock.setblocking(False)
            try:
                for _ in range(20):
                    sock.send(flood)
            except BlockingIOError:
                pass
            sockets.append(sock)
        assert fuzz_live.control("127.0.0.1", smpp_port, "demo", "demo123")
        peak = fuzz_live.rss_kib(daemon.pid)
        assert peak - before < 300 * 64 + 50 * 4 * 1024 + 64 * 1024  # KiB: the limits' worst case
        wait_for(lambda: all(_closed(sock) for sock in sockets[:300]), timeout=30)
        assert fuzz_live.control("127.0.0.1", smpp_port, "demo", "demo123")
    finally:
        for sock in sockets:
            sock.close()
        assert daemon.stop() == 0


def _closed(sock: object) -> bool:
    import socket

    assert isinstance(sock, socket.socket)
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
