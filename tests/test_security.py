"""Hostile networks: TLS, bind lockout, stalled peers, limits — each attack performed,
its outcome asserted, while a well-behaved session on the same daemon keeps working."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.smpp.constants import Status
from bridge.smpp.pdu import BindTransceiver, EnquireLink, encode_pdu
from tests.support.certs import make_certificate
from tests.support.esme import Esme
from tests.support.running import RunningBridge
from tests.support.servers import free_port
from tests.support.waiting import wait_for


def bound(bridge: RunningBridge, **kwargs: Any) -> Esme:
    client = Esme(bridge.smpp_port)
    assert client.bind(**kwargs).status == Status.ESME_ROK
    return client


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    return context


def tls_handshake(port: int, context: ssl.SSLContext) -> str:
    """A TLS handshake with the bridge's TLS port; the protocol version agreed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        version = tls.version()
        assert version is not None
        return version


def test_bind_and_submit_over_tls(start_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    bridge = start_bridge(smpp={"tls_port": 0, "tls_cert": str(cert), "tls_key": str(key)})
    assert bridge.bridge is not None
    client = Esme(bridge.bridge.ports["smpps"], ssl_context=client_context(cert))
    try:
        assert client.bind().status == Status.ESME_ROK
        resp = client.submit()
        assert resp.status == Status.ESME_ROK
        [receipt] = client.wait_receipts(1)
        assert receipt["id"] == resp.message_id.decode()
        tls = client.client._socket
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        client.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_refuses_old_protocol_versions(start_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    bridge = start_bridge(smpp={"tls_port": 0, "tls_cert": str(cert), "tls_key": str(key)})
    assert bridge.bridge is not None
    port = bridge.bridge.ports["smpps"]
    context = client_context(cert)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer what we must refuse
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as info:
        tls_handshake(port, context)
    assert "NO_CIPHERS_AVAILABLE" not in str(info.value)  # refused by the server, not by our own client
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # the same client, allowed TLS 1.2: taken
    assert tls_handshake(port, context) == "TLSv1.2"


def test_tls_with_client_certificates(start_bridge: Callable[..., RunningBridge], tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    client_cert, client_key = make_certificate(tmp_path, "client", "esme1")
    bridge = start_bridge(
        smpp={"tls_port": 0, "tls_cert": str(cert), "tls_key": str(key), "tls_client_ca": str(client_cert)}
    )
    assert bridge.bridge is not None
    port = bridge.bridge.ports["smpps"]
    with_cert = client_context(cert)
    with_cert.load_cert_chain(str(client_cert), str(client_key))
    good = Esme(port, ssl_context=with_cert)
    try:
        assert good.bind().status == Status.ESME_ROK
    finally:
        good.close()
    # TLS 1.2: the server refuses the handshake itself.
    anonymous = client_context(cert)
    anonymous.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        tls_handshake(port, anonymous)
    # TLS 1.3: the client's handshake completes before the server checks; the server
    # then refuses it, and a bind gets no answer, only the end of the connection.
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client_context(cert).wrap_socket(raw) as tls,
    ):
        assert tls.version() == "TLSv1.3"
        bind = BindTransceiver(1, system_id="esme1", password="secret1")
        tls.sendall(encode_pdu(bind))
        try:
            answer = tls.recv(16)
        except ssl.SSLError:  # the alert, where the server's TLS sends one
            answer = b""
        assert answer == b""


def test_repeated_bind_failures_lock_out_the_address(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(security={"bind_failures": 3, "lockout": 60})
    for _ in range(3):
        client = Esme(bridge.smpp_port)
        assert client.bind(password="guess").status == Status.ESME_RINVPASWD
        client.close()
    locked = Esme(bridge.smpp_port)
    try:
        # Even the right password is refused now, without a hint.
        assert locked.bind().status == Status.ESME_RBINDFAIL
    finally:
        locked.close()
    assert bridge.bridge is not None
    exposition = bridge.bridge.metrics.exposition().decode()
    assert 'smpp_bridge_bind_lockouts_total{kind="address"} 1.0' in exposition
    assert 'smpp_bridge_bind_lockouts_total{kind="system_id"} 1.0' in exposition
    assert "guess" not in exposition


def test_a_peer_that_never_reads_is_cut_off_others_keep_working(
    start_bridge: Callable[..., RunningBridge],
) -> None:
    bridge = start_bridge(security={"write_stall_timeout": 0.5})
    good = bound(bridge)
    hostile = socket.socket()
    hostile.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    hostile.settimeout(20)
    hostile.connect(("127.0.0.1", bridge.smpp_port))
    try:
        hostile.sendall(encode_pdu(BindTransceiver(1, system_id="esme1", password="secret1")))
        flood = encode_pdu(EnquireLink(2)) * 2000
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(10_000):  # enquire_links whose answers it never reads
                hostile.sendall(flood)
        assert good.send("enquire_link").status == Status.ESME_ROK
        assert good.submit().status == Status.ESME_ROK
    finally:
        hostile.close()
        good.close()


def test_a_pdu_trickled_slower_than_pdu_timeout_is_cut_off(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(security={"pdu_timeout": 0.5})
    good = bound(bridge)
    slow = socket.create_connection(("127.0.0.1", bridge.smpp_port), timeout=10)
    try:
        frame = encode_pdu(BindTransceiver(1, system_id="esme1", password="secret1"))
        slow.sendall(frame[:10])  # a header begun, never finished
        assert slow.recv(100) == b""  # closed by the bridge
        assert good.send("enquire_link").status == Status.ESME_ROK
    finally:
        slow.close()
        good.close()


SKYCORE = {
    "type": "skycore",
    "url": "http://127.0.0.1:9/API",
    "api_key": "k",
    "from": "60856",
    "callback_token": "a-long-random-token",
}


def post(url: str, body: bytes = b"{}") -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_callbacks_need_the_right_token_and_provider(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(providers={"sim": {"type": "simulator"}, "sky": SKYCORE})
    base = f"{bridge.http_url}/callbacks"
    assert post(f"{base}/sky/a-long-random-tokeN") == 404
    assert post(f"{base}/sky/") == 404
    assert post(f"{base}/nobody/a-long-random-token") == 404
    assert post(f"{base}/sim/anything") == 404  # a provider without callbacks
    assert post(f"{base}/sky/a-long-random-token", b'{"origin": "SMS_MO"}') == 200
    assert bridge.bridge is not None
    text = bridge.bridge.metrics.exposition().decode()
    assert 'smpp_bridge_callbacks_total{provider="sky",result="not_found"} 1.0' in text
    assert 'smpp_bridge_callbacks_total{provider="unknown",result="not_found"} 1.0' in text
    assert "a-long-random-token" not in text


def test_callback_source_allowlist(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(
        providers={"sim": {"type": "simulator"}, "sky": {**SKYCORE, "callback_allowed_networks": ["10.0.0.0/8"]}}
    )
    assert post(f"{bridge.http_url}/callbacks/sky/a-long-random-token") == 403


def test_callback_body_size_is_limited(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(providers={"sim": {"type": "simulator"}, "sky": SKYCORE})
    assert post(f"{bridge.http_url}/callbacks/sky/a-long-random-token", b"x" * (1 << 20)) == 413


def test_a_callback_cannot_touch_another_providers_message(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(
        providers={"sim": {"type": "simulator", "silent_prefixes": ["49"]}, "sky": SKYCORE},
        accounts=[{"system_id": "esme1", "password": "secret1", "route": "sim"}],
    )
    client = bound(bridge)
    try:
        message_id = client.submit().message_id.decode()  # silent: the simulator never reports
        postback = {"origin": "SMS_MT", "code": "N202", "status": "Delivered", "tracking-id": f"sim-{message_id}"}
        assert post(f"{bridge.http_url}/callbacks/sky/a-long-random-token", json.dumps(postback).encode()) == 200

        async def state() -> object:
            assert bridge.bridge is not None
            message = await bridge.bridge.store.get_message(int(message_id))
            return message.state if message else None

        assert bridge.call(state()) is None  # still waiting for its own provider
    finally:
        client.close()


def test_a_connection_that_never_binds_is_closed(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(smpp={"bind_timeout": 0.3})
    good = bound(bridge)
    idle = socket.create_connection(("127.0.0.1", bridge.smpp_port), timeout=10)
    try:
        assert idle.recv(100) == b""  # closed by the bridge after bind_timeout
        assert good.send("enquire_link").status == Status.ESME_ROK
    finally:
        idle.close()
        good.close()


def test_too_many_incomplete_concatenated_sets_are_refused(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(security={"max_pending_sets": 2})
    client = bound(bridge)
    try:
        for reference in (1, 2):
            udh = bytes((5, 0, 3, reference, 2, 1))
            assert client.submit(text=udh + b"part one", esm_class=0x40).status == Status.ESME_ROK
        udh = bytes((5, 0, 3, 3, 2, 1))
        assert client.submit(text=udh + b"part one", esm_class=0x40).status == Status.ESME_RMSGQFUL
        udh = bytes((5, 0, 3, 1, 2, 2))  # completing a set frees its place
        assert client.submit(text=udh + b"part two", esm_class=0x40).status == Status.ESME_ROK
        assert client.submit(text=bytes((5, 0, 3, 3, 2, 1)) + b"x", esm_class=0x40).status == Status.ESME_ROK
    finally:
        client.close()


def test_receipts_piling_up_for_an_account_give_backpressure(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(security={"max_queued_receipts": 3})
    tx = bound(bridge, kind="transmitter")  # no receiver: receipts wait
    try:
        for _ in range(3):
            assert tx.submit().status == Status.ESME_ROK

        async def waiting() -> float:
            assert bridge.bridge is not None
            return sum(n for _, n in bridge.bridge.receipts.waiting())

        wait_for(lambda: bridge.call(waiting()) >= 3)
        assert tx.submit().status == Status.ESME_RMSGQFUL
        assert tx.submit(registered_delivery=0).status == Status.ESME_ROK  # no receipt asked: still taken
    finally:
        tx.close()


def test_renewed_tls_certificate_is_used_after_a_reload(
    start_bridge: Callable[..., RunningBridge], tmp_path: Path
) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    cert, key = make_certificate(old_dir)
    bridge = start_bridge(smpp={"tls_port": 0, "tls_cert": str(cert), "tls_key": str(key)})
    assert bridge.bridge is not None
    port = bridge.bridge.ports["smpps"]
    renewed_cert, renewed_key = make_certificate(new_dir)
    cert.write_bytes(renewed_cert.read_bytes())  # renewal in place, as certbot & co. do
    key.write_bytes(renewed_key.read_bytes())
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(port, client_context(renewed_cert))  # still the old certificate
    bridge.call(bridge.bridge.reload(bridge.config))
    client = Esme(port, ssl_context=client_context(renewed_cert))
    try:
        assert client.bind().status == Status.ESME_ROK
    finally:
        client.close()


def test_secrets_never_reach_logs_metrics_or_problems(tmp_path: Path) -> None:
    secrets = {"KEY": "kk-SECRET-api-key-42", "TOKEN": "tok-SECRET-callback-77", "PW": "pw7SECR"}
    config = tmp_path / "bridge.toml"
    smpp_port, http_port = free_port(), free_port()
    config.write_text(
        f'[smpp]\nhost = "127.0.0.1"\nport = {smpp_port}\n[http]\nport = {http_port}\n'
        f'[store]\nurl = "sqlite:///{tmp_path}/b.db"\n[log]\nlevel = "debug"\nformat = "json"\n'
        '[[accounts]]\nsystem_id = "esme1"\npassword = "${PW}"\nroute = "kal"\n'
        '[providers.kal]\ntype = "kaleyra"\nbase_url = "http://127.0.0.1:9"\nsid = "S"\n'
        'api_key = "${KEY}"\nsender = "KLRHXA"\nsms_type = "TXN"\ncallback_token = "${TOKEN}"\n'
        'callback_profile_id = "P1"\n'
    )
    config.chmod(0o600)
    env = {**os.environ, **secrets}
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen([sys.executable, "-m", "bridge", "run", "--config", str(config)], stdout=log,
                                  stderr=subprocess.STDOUT, env=env)  # fmt: skip
        try:
            wait_for(lambda: b'"started"' in log_path.read_bytes(), timeout=30)
            client = Esme(smpp_port)
            assert client.bind(password="Zq9xWv").status == Status.ESME_RINVPASWD
            client.close()
            client = Esme(smpp_port)
            assert client.bind(password=secrets["PW"]).status == Status.ESME_ROK
            assert client.submit().status == Status.ESME_RSYSERR  # the provider is unreachable
            client.close()
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as response:
                metrics = response.read().decode()
        finally:
            daemon.terminate()
            daemon.wait(30)
    bad = config.read_text().replace('sender = "KLRHXA"', 'sender = "KLRHXA"\nbogus = 1')
    config.write_text(bad)
    problems = subprocess.run([sys.executable, "-m", "bridge", "check-config", str(config)], capture_output=True,
                              text=True, env=env, timeout=60)  # fmt: skip
    assert problems.returncode == 2
    for secret in secrets.values():
        for where, text in (("log", log_path.read_text()), ("metrics", metrics), ("check-config", problems.stderr)):
            assert secret not in text, f"secret in {where}"
    assert "Zq9xWv" not in log_path.read_text()  # a refused password is not logged either
