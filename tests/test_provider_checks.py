"""`smpp-bridge check-providers` and the daemon's periodic access checks (/readyz),
against the provider doubles over real HTTP.

The oracle is the documents, as the doubles enforce them: FlashSMS's key and scopes
(document 002, `GET /api/v1/balance`), Kaleyra's api-key and SID (a status lookup).
Contacta (000) and Skycore (003) document no call but sending: never checked. And a
check never sends a message: the doubles record every request.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.simulators import build_simulator
from tests.support.daemon import Daemon
from tests.support.servers import AppThread, free_port
from tests.support.waiting import wait_for

PROVIDERS = """
[providers.flash]
type = "flashsms"
base_url = "{flash_url}/api/v1"
api_key = "{flash_key}"
check_interval = {interval}

[providers.kal]
type = "kaleyra"
base_url = "{kaleyra_url}"
sid = "HXAP16XXXXXX97IN"
api_key = "{kaleyra_key}"
sender = "KLRHXA"
sms_type = "TXN"
callback_token = "kaleyra-callback-token"
check_interval = {interval}

[providers.con]
type = "contacta"
base_url = "{kaleyra_url}"
username = "u"
password = "p"

[providers.sky]
type = "skycore"
url = "{kaleyra_url}/API"
api_key = "k"
from = "60856"
callback_token = "skycore-callback-token"
"""

DAEMON = (
    """
[smpp]
host = "127.0.0.1"
port = {smpp_port}

[http]
host = "127.0.0.1"
port = {http_port}

[store]
url = "sqlite:///{workdir}/bridge.db"

[log]
format = "json"
"""
    + PROVIDERS
)


@pytest.fixture
def doubles() -> Iterator[tuple[AppThread, AppThread]]:
    flash = AppThread(build_simulator("flashsms")).start()
    kaleyra = AppThread(build_simulator("kaleyra")).start()
    yield flash, kaleyra
    flash.stop()
    kaleyra.stop()


def check(config: Path) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "check-providers", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)["providers"]


def write_config(path: Path, flash: AppThread, kaleyra: AppThread, flash_key: str, kaleyra_key: str) -> Path:
    path.write_text(
        PROVIDERS.format(
            flash_url=flash.url, kaleyra_url=kaleyra.url, flash_key=flash_key, kaleyra_key=kaleyra_key, interval=300
        )
    )
    return path


def test_good_credentials_are_ok_and_nothing_is_sent(tmp_path: Path, doubles: tuple[AppThread, AppThread]) -> None:
    flash, kaleyra = doubles
    config = write_config(tmp_path / "good.toml", flash, kaleyra, "bms_live_sim_key", "kaleyra-sim-key")
    code, results = check(config)
    assert code == 0
    for name in ("flash", "kal"):
        assert results[name]["checked"] and results[name]["reachable"] and results[name]["credentials"] == "ok"
        assert results[name]["http_status"] == 200 and results[name]["latency_ms"] >= 0
    for name in ("con", "sky"):
        assert results[name]["checked"] is False and results[name]["ok"] is True
        assert "not checkable" in results[name]["detail"]
    assert [(r["method"], r["path"]) for r in flash.app["received"]] == [("GET", "/api/v1/balance")]
    assert [(r["method"], r["path"]) for r in kaleyra.app["received"]] == [("GET", "/v1/HXAP16XXXXXX97IN/sms/status")]
    assert kaleyra.app["received"][0]["headers"]["api-key"] == "kaleyra-sim-key"
    # Contacta and Skycore were not called at all (their URL is the Kaleyra double's).


def test_refused_credentials_fail_the_check(tmp_path: Path, doubles: tuple[AppThread, AppThread]) -> None:
    flash, kaleyra = doubles
    config = write_config(tmp_path / "bad.toml", flash, kaleyra, "bms_live_wrong", "wrong-kaleyra-key")
    code, results = check(config)
    assert code == 1
    for name in ("flash", "kal"):
        assert results[name]["ok"] is False and results[name]["credentials"] == "refused"
        assert results[name]["http_status"] == 401
    text = subprocess.run(
        [sys.executable, "-m", "bridge", "check-providers", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert "FAILED" in text and "wrong-kaleyra-key" not in text and "bms_live_wrong" not in text


def test_an_unreachable_provider_is_reported(tmp_path: Path, doubles: tuple[AppThread, AppThread]) -> None:
    flash, kaleyra = doubles
    config = tmp_path / "away.toml"
    config.write_text(
        PROVIDERS.format(
            flash_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
            kaleyra_url=kaleyra.url,
            flash_key="k",
            kaleyra_key="kaleyra-sim-key",
            interval=300,
        )
    )
    code, results = check(config)
    assert code == 1
    assert results["flash"]["reachable"] is False and results["flash"]["credentials"] == "unknown"
    assert results["kal"]["ok"] is True
    assert flash.app["received"] == []


def test_the_daemon_checks_periodically_and_readyz_shows_it(
    tmp_path: Path, doubles: tuple[AppThread, AppThread]
) -> None:
    flash, kaleyra = doubles
    daemon = Daemon(
        tmp_path,
        DAEMON,
        flash_url=flash.url,
        kaleyra_url=kaleyra.url,
        flash_key="bms_live_sim_key",
        kaleyra_key="wrong-kaleyra-key",
        interval=0.5,
    ).start()
    try:

        def readyz() -> dict[str, Any]:
            url = f"http://127.0.0.1:{daemon.http_port}/readyz"
            with urllib.request.urlopen(url, timeout=5) as response:
                body: dict[str, Any] = json.loads(response.read())
            return body

        wait_for(lambda: {"flash", "kal"} <= set(readyz().get("providers", {})), timeout=15)
        providers = readyz()["providers"]
        assert providers["flash"]["ok"] is True and providers["flash"]["type"] == "flashsms"
        assert providers["kal"]["ok"] is False and providers["kal"]["credentials"] == "refused"
        # Checked again and again, never on a /readyz hit: the double counts the checks.
        checks = len(flash.app["received"])
        wait_for(lambda: len(flash.app["received"]) > checks, timeout=15)
        assert {r["path"] for r in flash.app["received"]} == {"/api/v1/balance"}
        failed = daemon.events("provider_check_failed")
        assert failed and failed[0]["provider"] == "kal" and "wrong-kaleyra-key" not in json.dumps(failed)
    finally:
        daemon.stop()
