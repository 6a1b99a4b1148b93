"""Binding: every bind type, and every way a bind is refused, over real sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.smpp.constants import Status
from tests.support.esme import Esme
from tests.support.running import RunningBridge


@pytest.mark.parametrize("kind", ["transmitter", "receiver", "transceiver"])
def test_each_bind_type_is_accepted_with_our_system_id(esme_factory: Callable[..., Esme], kind: str) -> None:
    client = esme_factory()
    resp = client.bind(kind)
    assert resp.status == Status.ESME_ROK
    assert resp.system_id == b"SMPPBRIDGE"
    assert resp.sc_interface_version == 0x34
    assert client.unbind().status == Status.ESME_ROK


def test_v33_bind_gets_no_tlvs(esme_factory: Callable[..., Esme]) -> None:
    client = esme_factory()
    resp = client.bind("transceiver", interface_version=0x33)
    assert resp.status == Status.ESME_ROK
    assert resp.sc_interface_version is None


def test_wrong_password_is_rinvpaswd(esme_factory: Callable[..., Esme]) -> None:
    assert esme_factory().bind(password="wrong").status == Status.ESME_RINVPASWD


def test_unknown_system_id_is_rinvsysid(esme_factory: Callable[..., Esme]) -> None:
    assert esme_factory().bind(system_id="nobody").status == Status.ESME_RINVSYSID


def test_address_outside_allowed_networks_is_rbindfail(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(
        accounts=[{"system_id": "esme1", "password": "secret1", "allowed_networks": ["10.0.0.0/8"], "route": "sim"}]
    )
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == Status.ESME_RBINDFAIL
    finally:
        client.close()


def test_max_binds_is_enforced_and_frees_up_on_unbind(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(accounts=[{"system_id": "esme1", "password": "secret1", "max_binds": 2, "route": "sim"}])
    clients = [Esme(bridge.smpp_port) for _ in range(4)]
    try:
        assert clients[0].bind().status == Status.ESME_ROK
        assert clients[1].bind().status == Status.ESME_ROK
        assert clients[2].bind().status == Status.ESME_RBINDFAIL
        assert clients[0].unbind().status == Status.ESME_ROK
        assert clients[3].bind().status == Status.ESME_ROK
    finally:
        for client in clients:
            client.close()


def test_password_hash_accepts_the_password(start_bridge: Callable[..., RunningBridge]) -> None:
    from bridge.core.auth import hash_password

    bridge = start_bridge(accounts=[{"system_id": "esme1", "password_hash": hash_password("s3cret"), "route": "sim"}])
    good, bad = Esme(bridge.smpp_port), Esme(bridge.smpp_port)
    try:
        assert good.bind(password="s3cret").status == Status.ESME_ROK
        assert bad.bind(password="s3cre7").status == Status.ESME_RINVPASWD
    finally:
        good.close()
        bad.close()


def test_second_bind_on_a_bound_session_is_ralybnd(esme: Esme) -> None:
    assert esme.bind().status == Status.ESME_RALYBND
    assert esme.submit().status == Status.ESME_ROK


def test_submit_before_bind_is_rinvbndsts(esme_factory: Callable[..., Esme]) -> None:
    client = esme_factory()
    assert client.submit().status == Status.ESME_RINVBNDSTS
    assert client.bind().status == Status.ESME_ROK


def test_submit_on_a_receiver_is_rinvbndsts(esme_factory: Callable[..., Esme]) -> None:
    client = esme_factory()
    assert client.bind("receiver").status == Status.ESME_ROK
    assert client.submit().status == Status.ESME_RINVBNDSTS


def test_enquire_link_is_answered_before_and_after_bind(esme_factory: Callable[..., Esme]) -> None:
    client = esme_factory()
    assert client.send("enquire_link").status == Status.ESME_ROK
    client.bind()
    assert client.send("enquire_link").status == Status.ESME_ROK
