"""Due times survive kill -9 (SQLite): a real bridge process accepts messages whose
reports are due seconds later from a timer (the simulator's report, Contacta's
synthetic receipt, Skycore's final_timeout, a Kaleyra and a FlashSMS status poll),
is SIGKILLed before any is due, and starts again with every one of those settings
at a day: each report still comes at its stored time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.smpp.constants import Status
from tests.support.daemon import Daemon
from tests.support.due import DUE_PROVIDERS, due_doubles
from tests.support.esme import Esme
from tests.support.servers import free_port

DUE_IN = 3.0  # seconds from acceptance to each report: the bridge is killed well before
LATER = 86400  # the restarted bridge's own settings: a stored due time must win

CONFIG = (
    """
[smpp]
host = "127.0.0.1"
port = {smpp_port}

[http]
host = "127.0.0.1"
port = {http_port}
public_url = "http://127.0.0.1:{postback_port}"

[store]
url = "sqlite:///{workdir}/bridge.db"

[log]
level = "info"
format = "json"

[[accounts]]
system_id = "esme1"
password = "secret1"
throughput = 0
route = "sim"

[[routes]]
name = "india"
match = {{ destination_prefix = "91" }}
providers = ["kaleyra"]

[[routes]]
name = "usa"
match = {{ destination_prefix = "1" }}
providers = ["skycore"]

[providers.sim]
type = "simulator"
delivery_delay = {delay}

[providers.kaleyra]
type = "kaleyra"
base_url = "{kaleyra}"
sid = "HXAP1"
api_key = "k-key"
sender = "KLRHXA"
sms_type = "TXN"
callback_mode = "none"
poll_interval = {delay}

[providers.skycore]
type = "skycore"
url = "{skycore}/API/v2"
api_key = "s-key"
from = "60856"
callback_token = "token-token-token-token"
final_timeout = {delay}
"""
    + DUE_PROVIDERS
)

# destination -> the receipt's stat
DESTINATIONS = {
    "4917012345": "DELIVRD",  # simulator
    "5218100001234": "DELIVRD",  # Contacta, synthetic
    "233241234567": "DELIVRD",  # FlashSMS, polled
    "919876543210": "DELIVRD",  # Kaleyra, polled (no callbacks)
    "19990040001": "UNKNOWN",  # Skycore: no final postback (they go to a port nobody listens on)
}


@pytest.fixture
def doubles() -> Iterator[dict[str, str]]:
    with due_doubles() as urls:
        yield urls


def test_reports_due_at_a_kill_come_from_the_restarted_bridge_at_their_stored_time(
    tmp_path: Path, doubles: dict[str, str]
) -> None:
    values: dict[str, Any] = {**doubles, "postback_port": free_port()}
    first = Daemon(tmp_path, CONFIG, "first", delay=DUE_IN, **values).start()
    esme = Esme(first.smpp_port, timeout=5)
    ids = {}
    try:
        assert esme.bind("transmitter", system_id="esme1", password="secret1").status == Status.ESME_ROK
        for destination, stat in DESTINATIONS.items():
            resp = esme.submit(destination=destination, text=b"Due after the restart")
            assert resp.status == Status.ESME_ROK, destination
            ids[resp.message_id.decode()] = stat
    finally:
        first.kill()
        esme.close()

    second = Daemon(tmp_path, CONFIG, "second", delay=LATER, **values).start()
    rx = Esme(second.smpp_port, timeout=5)
    try:
        assert rx.bind("receiver", system_id="esme1", password="secret1").status == Status.ESME_ROK
        receipts = rx.wait_receipts(len(DESTINATIONS), timeout=30)
        assert {r["id"]: r["stat"] for r in receipts} == ids
    finally:
        rx.close()
        assert second.stop() == 0
