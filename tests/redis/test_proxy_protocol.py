"""PROXY protocol on the SMPP listener: through a real HAProxy (`send-proxy` and
`send-proxy-v2`), and with hand-written headers, broken ones included.

HAProxy connects to the bridge from 127.0.0.9 (its `source`); the ESME connects to
HAProxy from 127.0.0.1. The bridge must see, and check allowed_networks against,
127.0.0.1. A broken header closes that one connection, never the bridge.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.smpp.constants import Status
from bridge.smpp.pdu import BindTransceiver, encode_pdu
from tests.support.esme import Esme
from tests.support.running import RunningBridge
from tests.support.servers import free_port
from tests.support.waiting import wait_for

PROXY_SOURCE = "127.0.0.9"  # where HAProxy connects to the bridge from
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

ACCOUNTS = [
    {"system_id": "direct", "password": "pw", "allowed_networks": ["127.0.0.1/32"], "route": "sim", "throughput": 0},
    {"system_id": "proxyip", "password": "pw", "allowed_networks": [f"{PROXY_SOURCE}/32"], "route": "sim"},
    {"system_id": "v4", "password": "pw", "allowed_networks": ["10.0.0.0/8"], "route": "sim"},
    {"system_id": "v6", "password": "pw", "allowed_networks": ["2001:db8::/32"], "route": "sim"},
]

HAPROXY_CONFIG = """
global
    maxconn 200

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s

frontend smpp_v1
    bind 127.0.0.1:{v1}
    default_backend bridge_v1

frontend smpp_v2
    bind 127.0.0.1:{v2}
    default_backend bridge_v2

backend bridge_v1
    server bridge 127.0.0.1:{bridge} send-proxy source {source}

backend bridge_v2
    server bridge 127.0.0.1:{bridge} send-proxy-v2 source {source}
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        pytest.skip("haproxy is needed (Debian package haproxy; .ci/run installs it)")
    return found


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def proxied(
    start_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> Iterator[tuple[RunningBridge, dict[str, int]]]:
    """A bridge expecting PROXY headers from HAProxy's address only, and HAProxy in
    front of it: {"v1": port, "v2": port}."""
    binary = haproxy_binary()
    bridge = start_bridge(
        smpp={"proxy_protocol": True, "proxy_trusted_networks": [f"{PROXY_SOURCE}/32"]}, accounts=ACCOUNTS
    )
    ports = {"v1": free_port(), "v2": free_port()}
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(bridge=bridge.smpp_port, source=PROXY_SOURCE, **ports))
    process = subprocess.Popen([binary, "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: process.poll() is None and all(listening(p) for p in ports.values()), timeout=10)
        yield bridge, ports
    finally:
        process.terminate()
        process.wait(10)


def peers(bridge: RunningBridge) -> set[str]:
    """The client addresses the bridge holds for its bound sessions."""
    assert bridge.bridge is not None
    registry = bridge.bridge.registry
    return set(bridge.run(lambda: {conn.peer_host for conn in registry.all()}))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_haproxy_send_proxy_gives_the_real_client_address(
    proxied: tuple[RunningBridge, dict[str, int]], version: str
) -> None:
    bridge, ports = proxied
    client = Esme(ports[version])
    try:
        assert client.bind(system_id="direct", password="pw").status == Status.ESME_ROK
        assert client.submit().status == Status.ESME_ROK
        assert peers(bridge) == {"127.0.0.1"}  # not HAProxy's 127.0.0.9
    finally:
        client.close()
    # allowed_networks is checked against the real client, not the proxy.
    refused = Esme(ports[version])
    try:
        assert refused.bind(system_id="proxyip", password="pw").status == Status.ESME_RBINDFAIL
    finally:
        refused.close()


def test_untrusted_peers_connect_directly_without_a_header(proxied: tuple[RunningBridge, dict[str, int]]) -> None:
    bridge, _ = proxied
    client = Esme(bridge.smpp_port)  # from 127.0.0.1: not a trusted proxy address
    try:
        assert client.bind(system_id="direct", password="pw").status == Status.ESME_ROK
    finally:
        client.close()


# -- hand-written headers ----------------------------------------------------------------


@pytest.fixture
def strict(start_bridge: Callable[..., RunningBridge]) -> RunningBridge:
    """Every peer must open with a PROXY header (no trusted list)."""
    return start_bridge(smpp={"proxy_protocol": True, "proxy_header_timeout": 0.5}, accounts=ACCOUNTS)


def v2(source: str, destination: str, command: int = 1, tlvs: bytes = b"") -> bytes:
    packed_source = socket.inet_pton(_family(source), source)
    packed_destination = socket.inet_pton(_family(destination), destination)
    family = 0x11 if len(packed_source) == 4 else 0x21
    body = packed_source + packed_destination + struct.pack(">HH", 40000, 2775) + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack(">H", len(body)) + body


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


@pytest.mark.parametrize(
    ("header", "system_id"),
    [
        (b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 2775\r\n", "v4"),
        (b"PROXY TCP6 2001:db8::7 ::1 40000 2775\r\n", "v6"),
        (v2("10.1.2.3", "127.0.0.1"), "v4"),
        (v2("2001:db8::7", "::1", tlvs=b"\x04\x00\x01\x00"), "v6"),  # a TLV (NOOP) after the addresses
        (v2("10.1.2.3", "127.0.0.1", command=0), "direct"),  # LOCAL: the connection's own address
        (b"PROXY UNKNOWN\r\n", "direct"),
    ],
    ids=["v1-tcp4", "v1-tcp6", "v2-tcp4", "v2-tcp6-tlv", "v2-local", "v1-unknown"],
)
def test_hand_written_headers(strict: RunningBridge, header: bytes, system_id: str) -> None:
    client = Esme(strict.smpp_port)
    try:
        client.send_raw(header)
        assert client.bind(system_id=system_id, password="pw").status == Status.ESME_ROK
        assert client.submit().status == Status.ESME_ROK
    finally:
        client.close()


def test_a_header_in_pieces_is_put_together(strict: RunningBridge) -> None:
    client = Esme(strict.smpp_port)
    try:
        for byte in v2("10.9.9.9", "127.0.0.1"):
            client.send_raw(bytes([byte]))
        assert client.bind(system_id="v4", password="pw").status == Status.ESME_ROK
    finally:
        client.close()


BIND_PDU = encode_pdu(BindTransceiver(1, system_id="direct", password="pw", interface_version=0x34))
BROKEN: dict[str, bytes | None] = {
    "smpp-without-header": None,  # a bind PDU straight away
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "v1-bad-address": b"PROXY TCP4 10.1.2 127.0.0.1 40000 2775\r\n",
    "v1-family-mismatch": b"PROXY TCP4 ::1 ::1 40000 2775\r\n",
    "v1-bad-port": b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 99999\r\n",
    "v1-too-long": b"PROXY TCP4 " + b"1" * 120 + b"\r\n",
    "v1-no-fields": b"PROXY\r\n\r\n",
    "v2-bad-version": V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12),
    "v2-bad-command": V2_SIGNATURE + b"\x2f\x11\x00\x0c" + bytes(12),
    "v2-bad-family": V2_SIGNATURE + b"\x21\x55\x00\x0c" + bytes(12),
    "v2-short-addresses": V2_SIGNATURE + b"\x21\x21\x00\x0c" + bytes(12),
    "v2-huge-length": V2_SIGNATURE + b"\x21\x11\xff\xff",
    "v2-bad-signature": b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c" + bytes(12),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_header_closes_that_connection_only(strict: RunningBridge, name: str) -> None:
    client = Esme(strict.smpp_port)
    try:
        broken = BROKEN[name]
        client.send_raw(broken if broken is not None else BIND_PDU)
        assert client.closed_by_peer(timeout=5)
    finally:
        client.close()
    healthy = Esme(strict.smpp_port)
    try:
        healthy.send_raw(b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 2775\r\n")
        assert healthy.bind(system_id="v4", password="pw").status == Status.ESME_ROK
    finally:
        healthy.close()


def test_a_header_that_never_completes_is_cut_off(strict: RunningBridge) -> None:
    client = Esme(strict.smpp_port)
    try:
        client.send_raw(b"PROXY TCP4 10.1.")
        assert client.closed_by_peer(timeout=5)  # proxy_header_timeout = 0.5
    finally:
        client.close()
