"""Bad input over real sockets: each gets its documented answer, and a second,
well-behaved session on the same daemon keeps working."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

from bridge.smpp.constants import Command, Status
from bridge.smpp.pdu import EnquireLink, decode_pdu, encode_pdu
from tests.support.esme import Esme, raw_submits
from tests.support.running import RunningBridge


def header(length: int, command_id: int, status: int = 0, sequence: int = 1) -> bytes:
    return struct.pack(">IIII", length, command_id, status, sequence)


def test_unknown_command_gets_generic_nack_and_session_lives(esme: Esme, esme_factory: Callable[..., Esme]) -> None:
    esme.send_raw(header(16, 0x00000999, sequence=4242))
    nack = esme.read_raw_until(4242)
    assert (nack.command, nack.status) == (Command.GENERIC_NACK, Status.ESME_RINVCMDID)
    assert esme.submit().status == Status.ESME_ROK


def test_command_length_too_small_closes_with_generic_nack(esme: Esme, esme_factory: Callable[..., Esme]) -> None:
    other = esme_factory()
    assert other.bind().status == Status.ESME_ROK
    esme.send_raw(header(8, Command.ENQUIRE_LINK, sequence=77))
    nack = esme.read_raw_until(77)
    assert (nack.command, nack.status) == (Command.GENERIC_NACK, Status.ESME_RINVCMDLEN)
    assert esme.closed_by_peer()
    assert other.submit().status == Status.ESME_ROK


def test_command_length_too_large_closes_with_generic_nack(esme: Esme) -> None:
    esme.send_raw(header(10_000_000, Command.SUBMIT_SM, sequence=78))
    nack = esme.read_raw_until(78)
    assert (nack.command, nack.status) == (Command.GENERIC_NACK, Status.ESME_RINVCMDLEN)
    assert esme.closed_by_peer()


def test_malformed_submit_sm_gets_its_own_response(esme: Esme) -> None:
    body = b"\x00" + b"\x01\x01" + b"1" * 30 + b"\x00"  # source_addr longer than 20 octets
    esme.send_raw(header(16 + len(body), Command.SUBMIT_SM, sequence=79) + body)
    resp = esme.read_raw_until(79)
    assert (resp.command, resp.status) == (Command.SUBMIT_SM_RESP, Status.ESME_RINVSRCADR)
    assert esme.submit().status == Status.ESME_ROK


def test_garbage_stream_does_not_hurt_other_sessions(esme: Esme, bridge: object) -> None:
    port = esme.client.port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(os.urandom(4096))
        sock.settimeout(5)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionResetError, TimeoutError):
            pass
    assert esme.submit().status == Status.ESME_ROK
    assert esme.send("enquire_link").status == Status.ESME_ROK


def test_window_overflow_is_throttled_and_session_stays_healthy(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(smpp={"window": 2})
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_ROK
        client.send_raw(raw_submits(1000, 20, short_message=b"w"))
        statuses = [client.read_raw_until(1000 + i).status for i in range(20)]
        assert Status.ESME_RTHROTTLED in statuses
        assert statuses.count(Status.ESME_ROK) >= 2
        assert client.submit().status == Status.ESME_ROK
    finally:
        client.close()


def test_pdu_trickled_one_byte_at_a_time_is_understood(esme: Esme) -> None:
    frame = encode_pdu(EnquireLink(555))
    for byte in frame:
        esme.send_raw(bytes((byte,)))
    resp = esme.read_raw_until(555)
    assert decode_pdu(encode_pdu(resp)).command is Command.ENQUIRE_LINK_RESP
