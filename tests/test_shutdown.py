"""SIGTERM drains: every PDU already read is answered, sessions are unbound, exit 0."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from bridge.smpp.constants import Status
from bridge.smpp.pdu import SubmitSm, encode_pdu
from tests.support.daemon import Daemon
from tests.support.esme import Esme

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
shutdown_timeout = 8
[http]
host = "127.0.0.1"
port = {http_port}
[store]
url = "sqlite:///{workdir}/b.db"
[log]
format = "json"
[[accounts]]
system_id = "esme1"
password = "secret1"
throughput = 0
route = "sim"
[providers.sim]
type = "simulator"
latency = 1.0
"""


def test_sigterm_answers_in_flight_submits_unbinds_and_exits_0(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, CONFIG).start()
    try:
        client = Esme(daemon.smpp_port)
        assert client.bind().status == Status.ESME_ROK
        params: dict[str, Any] = {
            "source_addr": "1",
            "dest_addr_ton": 1,
            "destination_addr": "4917012345",
            "short_message": b"x",
        }
        client.send_raw(b"".join(encode_pdu(SubmitSm(100 + i, **params)) for i in range(20)))
        assert client.send("enquire_link").status == 0  # answered after the 20 submits: all were read
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        statuses = [client.read_raw_until(100 + i, timeout=15).status for i in range(20)]
        assert statuses == [Status.ESME_ROK] * 20
        client.wait_until(lambda: client.unbinds == 1, timeout=15)
        assert daemon.process.wait(timeout=30) == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", daemon.smpp_port), timeout=2)
        client.close()
    finally:
        if daemon.alive:
            daemon.kill()
    assert daemon.events("stopped")
