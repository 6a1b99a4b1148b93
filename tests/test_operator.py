"""The operator's view through real processes: a bridge daemon (`python -m bridge run`),
real smpplib ESMEs, the CLI as a subprocess (`python -m bridge messages ...`) and the
admin API over HTTP.

The oracle for a message's history is what the outside world saw: the message_id
the ESME got in submit_sm_resp, the receipt it got (stat, err), the requests the
provider double received, and the HTTP status the double was told to answer.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.simulators import build_simulator
from bridge.smpp.constants import Status
from tests.support.daemon import Daemon
from tests.support.esme import Esme
from tests.support.servers import AppThread, free_port
from tests.support.waiting import wait_for

TOKEN = "operator-token-0123456789"
NUMBER = "4917012345678"
FAILING = "9981234567"  # the simulator's fail_prefixes: UNDELIV
SILENT = "9961234567"  # the simulator's silent_prefixes: never reports
FAILOVER = "7712345678"  # the route "sky" then "sim"

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
shutdown_timeout = 5
receipt_retry_base = 0.2

[http]
host = "127.0.0.1"
port = {http_port}
public_url = "http://127.0.0.1:{http_port}"
{admin}

[store]
url = "sqlite:///{workdir}/bridge.db"

[outbox]
backoff_base = 0.2
backoff_max = 1

[log]
level = "info"
format = "json"

[[accounts]]
system_id = "up"
password = "pw"
throughput = 0
route = "sim"

[[accounts]]
system_id = "st"
password = "pw"
throughput = 0
ack = "stored"
route = "down"

[[routes]]
name = "failover"
match = {{ destination_prefix = "77" }}
providers = ["sky", "sim"]

[providers.sim]
type = "simulator"
delivery_delay = 0.1

[providers.down]
type = "contacta"
base_url = "http://127.0.0.1:{closed_port}"
username = "u"
password = "p"
number_format = "international"
circuit_failures = 1000

[providers.sky]
type = "skycore"
url = "{sky_url}/API"
api_key = "skycore-test-key"
from = "60856"
callback_token = "sky-callback-token-1"
check_interval = 0
"""


def start_daemon(workdir: Path, sky_url: str = "http://127.0.0.1:9", admin: bool = True) -> Daemon:
    daemon = Daemon(
        workdir,
        CONFIG,
        admin=f'admin_token = "{TOKEN}"' if admin else "",
        closed_port=free_port(),
        sky_url=sky_url,
    )
    return daemon.start()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = start_daemon(tmp_path)
    yield running
    running.stop()


def cli(*args: str, config: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bridge", *args]
    if config is not None:
        command += ["--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def show(daemon: Daemon, message_id: str, *extra: str) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(
        cli("messages", "show", message_id, "--json", *extra, config=daemon.config).stdout
    )
    return view


def admin(daemon: Daemon, path: str, token: str | None = TOKEN, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{daemon.http_port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def bound(daemon: Daemon, system_id: str = "up") -> Esme:
    esme = Esme(daemon.smpp_port)
    assert esme.bind("transceiver", system_id=system_id, password="pw").status == 0
    return esme


def delivered(daemon: Daemon, destination: str = NUMBER, text: bytes = b"hello", **params: Any) -> str:
    """Submit one message, wait for its receipt; its message_id."""
    esme = bound(daemon)
    try:
        message_id: str = esme.submit(destination=destination, text=text, **params).message_id.decode()
        esme.wait_receipts(1)
    finally:
        esme.close()
    return message_id


def events(view: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in view["history"] if kind is None or e["event"] == kind]


def kinds(view: dict[str, Any]) -> list[str]:
    return [e["event"] for e in view["history"]]


def history_until(daemon: Daemon, message_id: str, condition: Any, timeout: float = 15) -> dict[str, Any]:
    """The message's view once `condition(view)` holds (events are written with the
    state change they belong to, asynchronously to what the ESME sees)."""
    seen: dict[str, Any] = {}

    def holds() -> bool:
        seen.update(show(daemon, message_id))
        return bool(condition(seen))

    wait_for(holds, timeout=timeout, interval=0.1)
    return seen


# -- a message's life ------------------------------------------------------------------


def test_history_of_a_delivered_and_a_failed_message(daemon: Daemon) -> None:
    esme = bound(daemon)
    try:
        delivered_id = esme.submit(destination=NUMBER, text=b"Your code is 4321").message_id.decode()
        failed_id = esme.submit(destination=FAILING, text=b"Your code is 8765").message_id.decode()
        receipts = {r["id"]: r for r in esme.wait_receipts(2)}
    finally:
        esme.close()
    view = history_until(daemon, delivered_id, lambda v: "receipt_sent" in kinds(v))
    assert view["message_id"] == delivered_id and view["system_id"] == "up"
    assert kinds(view) == ["received", "attempt", "report", "receipt_sent"]
    attempt = events(view, "attempt")[0]
    assert attempt["provider"] == "sim" and attempt["outcome"] == "accepted"
    assert attempt["provider_ids"] == view["provider_ids"]
    assert events(view, "report")[0]["stat"] == receipts[delivered_id]["stat"] == "DELIVRD"
    sent = events(view, "receipt_sent")[0]
    assert sent["deliver_sm_resp"] == "ESME_ROK" and sent["part"] == delivered_id
    assert sent["session"] == events(view, "received")[0]["session"] == view["session"]
    assert view["state"] == "DELIVRD" and view["lifecycle"] == "final"
    (receipt,) = view["receipts"]
    assert receipt["part"] == delivered_id and receipt["asked"] and receipt["queued_at"] == view["done_at"]
    assert (receipt["sent"], receipt["acknowledged"], receipt["waiting"]) == (1, True, False)

    view = history_until(daemon, failed_id, lambda v: "receipt_sent" in kinds(v))
    report = events(view, "report")[0]
    assert report["stat"] == receipts[failed_id]["stat"] == "UNDELIV"
    assert report["err"] == int(receipts[failed_id]["err"])
    # No text anywhere in what the operator sees.
    assert "8765" not in json.dumps(view) and "Your code" not in json.dumps(view)


def test_history_of_a_failover_carries_the_http_status_and_latency(tmp_path: Path) -> None:
    sky = AppThread(build_simulator("skycore")).start()
    running = start_daemon(tmp_path, sky_url=sky.url)
    try:
        # The double answers the next request with 503: not sent, so the route fails over.
        request = urllib.request.Request(
            f"{sky.url}/_sim/fail", data=json.dumps({"status": 503}).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=5).close()
        message_id = delivered(running, FAILOVER)
        assert len(sky.app["received"]) == 1  # the one request the double refused
        view = history_until(running, message_id, lambda v: "receipt_sent" in kinds(v))
        first, second = events(view, "attempt")
        assert (first["provider"], first["outcome"], first["http_status"]) == ("sky", "not_sent", 503)
        assert first["latency_ms"] >= 0
        assert (second["provider"], second["outcome"]) == ("sim", "accepted")
        assert view["provider"] == "sim" and view["route"] == ["sky", "sim"]
    finally:
        running.stop()
        sky.stop()


def test_history_survives_kill_9_and_the_outbox_picks_the_message_up_again(tmp_path: Path) -> None:
    running = start_daemon(tmp_path)
    esme = bound(running, "st")
    message_id = esme.submit(destination=NUMBER, text=b"stored").message_id.decode()
    esme.close()
    # The provider refuses connections: attempts fail and are retried.
    before = history_until(running, message_id, lambda v: "retry_scheduled" in kinds(v))
    first = events(before, "attempt")[0]
    assert first["provider"] == "down" and first["outcome"] == "not_sent" and "http_status" not in first
    running.kill()

    running.start()
    try:
        after = history_until(running, message_id, lambda v: "recovered" in kinds(v))
        # What was written before the kill is all there, in order, followed by the restart.
        assert after["history"][: len(before["history"])] == before["history"]
        assert events(after, "recovered")[0]["reason"] == "restart"
        assert after["lifecycle"] in ("queued", "sending")
    finally:
        running.stop()


def test_a_message_is_found_by_the_id_its_provider_gave_it(tmp_path: Path) -> None:
    """The id the operator reads in the provider's portal or postback (here: the
    Skycore double's tracking-id, as it reports it), through the CLI and the admin API."""
    sky = AppThread(build_simulator("skycore", sent_delay=0)).start()  # no postback URL: recorded only
    running = start_daemon(tmp_path, sky_url=sky.url)
    try:
        esme = bound(running)
        try:
            message_id = esme.submit(destination=FAILOVER, text=b"find me").message_id.decode()
        finally:
            esme.close()
        wait_for(lambda: sky.app["postbacks"], timeout=15)
        tracking_id = sky.app["postbacks"][0]["payload"]["tracking-id"]
        history_until(running, message_id, lambda v: v["lifecycle"] == "accepted")

        for extra in (("--provider", "sky"), ()):  # without a name: every provider of the config
            view = show(running, tracking_id, "--provider-id", *extra)
            assert view["message_id"] == message_id and view["provider"] == "sky"
            assert view["provider_ids"] == [tracking_id]
        for query in (f"provider_id={tracking_id}&provider=sky", f"provider_id={tracking_id}"):
            status, view = admin(running, f"/admin/messages?{query}")
            assert status == 200 and view["message_id"] == message_id
        text = cli("messages", "show", tracking_id, "--provider-id", config=running.config).stdout
        assert message_id in text and tracking_id in text

        # Another provider's id space, or an id nobody gave: not found.
        assert admin(running, f"/admin/messages?provider_id={tracking_id}&provider=sim")[0] == 404
        assert admin(running, "/admin/messages?provider_id=sky999999999")[0] == 404
        missing = cli("messages", "show", "sky999999999", "--provider-id", config=running.config, check=False)
        assert missing.returncode == 1 and "no such message" in missing.stderr
    finally:
        running.stop()
        sky.stop()

    # A stopped daemon's file: by the provider's name, or every provider of the config.
    db = str(tmp_path / "bridge.db")
    for extra in (("--provider", "sky"), ("--config", str(running.config))):
        view = json.loads(cli("messages", "show", tracking_id, "--provider-id", "--db", db, "--json", *extra).stdout)
        assert view["message_id"] == message_id and view["provider_ids"] == [tracking_id]


# -- masking and the admin API's door ------------------------------------------------


def test_numbers_are_masked_unless_asked_for_and_that_is_audited(daemon: Daemon) -> None:
    message_id = delivered(daemon, source="4915112345678")
    masked = history_until(daemon, message_id, lambda v: "receipt_sent" in kinds(v))
    text = cli("messages", "show", message_id, config=daemon.config).stdout
    for output in (json.dumps(masked), text):
        assert NUMBER not in output and "4915112345678" not in output
        assert "*********5678" in output
    assert masked["destination"] == "*********5678" and masked["numbers"] == "masked"
    assert daemon.events("admin_action") == []

    full = show(daemon, message_id, "--show-numbers")
    assert full["destination"] == NUMBER and full["source"] == "4915112345678"
    audit = daemon.events("admin_action")
    assert [(a["action"], a["message_id"]) for a in audit] == [("show_numbers", int(message_id))]
    assert NUMBER not in json.dumps(audit)
    assert events(show(daemon, message_id), "operator")[-1]["action"] == "show_numbers"

    found = json.loads(cli("messages", "find", "--to", NUMBER, "--since", "1h", "--json", config=daemon.config).stdout)
    assert [m["message_id"] for m in found["messages"]] == [message_id]
    assert NUMBER not in json.dumps(found)


def test_admin_api_refuses_a_missing_or_wrong_token(daemon: Daemon) -> None:
    for token in (None, "wrong-token-0123456789", TOKEN + "x", ""):
        status, body = admin(daemon, "/admin/queues", token=token)
        assert status == 401 and "queue" not in body.lower()
        status, _ = admin(daemon, "/admin/messages/1/give-up", token=token, body={"reason": "x"})
        assert status == 401
    assert admin(daemon, "/admin/queues")[0] == 200
    assert admin(daemon, "/admin/no-such-thing")[0] == 404
    refused = daemon.events("admin_refused")
    assert refused and all(TOKEN not in json.dumps(line) for line in refused)
    done = cli("queues", "--token", "wrong-token-0123456789", "--url", f"http://127.0.0.1:{daemon.http_port}",
               check=False)  # fmt: skip
    assert done.returncode == 1 and "refused the token" in done.stderr


def test_without_a_token_the_admin_api_does_not_exist(tmp_path: Path) -> None:
    running = start_daemon(tmp_path, admin=False)
    try:
        for path in ("/admin/queues", "/admin/messages/1", "/admin/anything"):
            assert admin(running, path)[0] == 404
            assert admin(running, path, token=None)[0] == 404
        done = cli("queues", "--url", f"http://127.0.0.1:{running.http_port}", "--token", TOKEN, check=False)
        assert done.returncode == 1 and "admin API is off" in done.stderr
    finally:
        running.stop()


# -- queues ----------------------------------------------------------------------------


def queues(daemon: Daemon, *where: str) -> dict[str, Any]:
    args = where or ("--config", str(daemon.config))
    found: dict[str, Any] = json.loads(cli("queues", "--json", *args).stdout)
    return found


def queue_holds(daemon: Daemon, name: str, condition: Any) -> dict[str, Any]:
    """The queues once `condition(queues[name])` holds."""
    seen: dict[str, Any] = {}

    def holds() -> bool:
        seen.update(queues(daemon))
        return bool(condition(seen[name]))

    wait_for(holds, timeout=15, interval=0.1)
    return seen


def test_receipts_waiting_per_account_say_why(tmp_path: Path) -> None:
    running = start_daemon(tmp_path)
    try:
        sender = Esme(running.smpp_port)
        assert sender.bind("transmitter", system_id="up", password="pw").status == 0
        message_id = sender.submit(destination=NUMBER, text=b"no receiver").message_id.decode()
        sender.close()
        # Delivered upstream; its receipt has no session to go to.
        (line,) = queue_holds(running, "receipts", lambda r: r)["receipts"]
        assert (line["system_id"], line["waiting"], line["retrying"]) == ("up", 1, 0)
        assert line["receivers_bound"] == 0 and line["why"] == "no receiver bound (bind_receiver or bind_transceiver)"
        assert line["next_attempt_at"] is None

        # A receiver that refuses deliver_sm (ESME_RX_T_APPN): the receipt is retried.
        receiver = Esme(running.smpp_port)
        receiver.deliver_sm_status = lambda pdu: int(Status.ESME_RX_T_APPN)
        assert receiver.bind("receiver", system_id="up", password="pw").status == 0
        receiver.wait_until(lambda: len(receiver.delivered) >= 1)
        (line,) = queue_holds(running, "receipts", lambda r: r and r[0]["retrying"])["receipts"]
        assert (line["waiting"], line["retrying"], line["receivers_bound"]) == (1, 1, 1)
        assert line["why"] == "the ESME refused or did not answer deliver_sm: retrying"
        assert line["next_attempt_at"] is not None
        receiver.close()
    finally:
        running.stop()

    # Read from the stopped daemon's file: still waiting, and nobody to bind to.
    (line,) = queues(running, "--db", str(tmp_path / "bridge.db"))["receipts"]
    assert (line["system_id"], line["waiting"], line["receivers_bound"]) == ("up", 1, None)
    assert line["why"] == "the daemon is not running"
    view = json.loads(cli("messages", "show", message_id, "--db", str(tmp_path / "bridge.db"), "--json").stdout)
    assert view["receipts"][0]["waiting"]


def test_incomplete_concatenated_sets_are_listed_until_complete(daemon: Daemon) -> None:
    esme = bound(daemon)
    ids = []
    try:
        for index in (1, 2):  # two of three parts (UDH IEI 0x00, reference 0x51)
            udh = bytes((5, 0x00, 3, 0x51, 3, index))
            ids.append(esme.submit(destination=NUMBER, text=udh + b"part", esm_class=0x40).message_id.decode())
        found = queue_holds(daemon, "incomplete_sets", lambda s: s and s[0]["received"] == 2)
        (line,) = found["incomplete_sets"]
        assert (line["system_id"], line["received"], line["total"]) == ("up", 2, 3)
        assert line["destination"] == "*********5678" and line["parts"] == ids
        assert line["age_seconds"] >= 0
        assert NUMBER not in json.dumps(found)
        text = cli("queues", config=daemon.config).stdout
        assert "*********5678" in text and NUMBER not in text

        udh = bytes((5, 0x00, 3, 0x51, 3, 3))
        assert esme.submit(destination=NUMBER, text=udh + b"last", esm_class=0x40).status == 0
        queue_holds(daemon, "incomplete_sets", lambda s: s == [])
    finally:
        esme.close()


# -- actions ---------------------------------------------------------------------------


def test_retry_and_give_up_a_stored_message(daemon: Daemon) -> None:
    esme = bound(daemon, "st")
    try:
        message_id = esme.submit(destination=NUMBER, text=b"stuck").message_id.decode()
        history_until(daemon, message_id, lambda v: "retry_scheduled" in kinds(v))
        queues = json.loads(cli("queues", "--json", config=daemon.config).stdout)
        assert [(o["provider"], o["messages"]) for o in queues["outbox"]] == [("down", 1)]

        attempts = len(events(show(daemon, message_id), "attempt"))
        retried = wait_retry(daemon, message_id)
        assert retried["retried"] == [message_id]
        view = history_until(daemon, message_id, lambda v: len(events(v, "attempt")) > attempts)
        assert events(view, "operator")[0]["action"] == "retry"

        done = cli("messages", "give-up", message_id, "--reason", "customer cancelled", config=daemon.config)
        assert "give_up" in done.stdout
        receipt = esme.wait_receipts(1)[0]
        assert receipt["id"] == message_id and receipt["stat"] == "UNDELIV"
        view = history_until(daemon, message_id, lambda v: v["lifecycle"] == "final")
        operator = events(view, "operator")[-1]
        assert (operator["action"], operator["reason"]) == ("give_up", "customer cancelled")
        assert view["state"] == "UNDELIV"
        # Given up: no further attempt, and a second give-up is refused.
        again = cli("messages", "give-up", message_id, "--reason", "again", config=daemon.config, check=False)
        assert again.returncode == 1 and "already final" in again.stderr
    finally:
        esme.close()
    audit = [(a["action"], a.get("message_id"), a["reason"]) for a in daemon.events("admin_action")]
    assert ("retry", int(message_id), "") in audit
    assert ("give_up", int(message_id), "customer cancelled") in audit
    assert all(NUMBER not in json.dumps(line) for line in daemon.events("admin_action"))


def wait_retry(daemon: Daemon, message_id: str) -> dict[str, Any]:
    """`messages retry` as soon as the message waits for its next attempt (between two
    attempts it may be in flight, which the daemon refuses)."""
    result: dict[str, Any] = {}

    def retried() -> bool:
        done = cli("messages", "retry", message_id, "--json", config=daemon.config, check=False)
        if done.returncode == 0:
            result.update(json.loads(done.stdout))
        return done.returncode == 0

    wait_for(retried, timeout=15, interval=0.05)
    return result


def test_retry_a_providers_backlog(daemon: Daemon) -> None:
    esme = bound(daemon, "st")
    try:
        ids = [esme.submit(destination=NUMBER, text=f"backlog {i}".encode()).message_id.decode() for i in range(3)]
    finally:
        esme.close()
    for message_id in ids:
        history_until(daemon, message_id, lambda v: "retry_scheduled" in kinds(v))

    def retried() -> bool:
        done = cli("messages", "retry", "--provider", "down", "--reason", "back up", "--json", config=daemon.config)
        return bool(json.loads(done.stdout)["retried"])

    wait_for(retried, timeout=15, interval=0.05)
    lines = [a for a in daemon.events("admin_action") if a["action"] == "retry"]
    assert lines and lines[0]["provider"] == "down" and lines[0]["reason"] == "back up"


def test_redeliver_a_receipt(daemon: Daemon) -> None:
    esme = bound(daemon)
    try:
        message_id = esme.submit(destination=NUMBER, text=b"again").message_id.decode()
        esme.wait_receipts(1)
        history_until(daemon, message_id, lambda v: "receipt_sent" in kinds(v))
        cli("receipts", "redeliver", message_id, "--reason", "ESME lost it", config=daemon.config)
        second = esme.wait_receipts(2)[1]
        assert second["id"] == message_id and second["stat"] == "DELIVRD"
    finally:
        esme.close()
    view = history_until(daemon, message_id, lambda v: len(events(v, "receipt_sent")) == 2)
    assert view["receipts"][0]["sent"] == 2
    assert events(view, "operator")[0]["action"] == "redeliver_receipt"
    audit = daemon.events("admin_action")
    assert [(a["action"], a["message_id"], a["reason"]) for a in audit] == [
        ("redeliver_receipt", int(message_id), "ESME lost it")
    ]


def test_give_up_on_a_message_awaiting_its_report(daemon: Daemon) -> None:
    esme = bound(daemon)
    try:
        message_id = esme.submit(destination=SILENT, text=b"silent").message_id.decode()
        queues = json.loads(cli("queues", "--json", config=daemon.config).stdout)
        sim = next(a for a in queues["awaiting_reports"] if a["provider"] == "sim")
        # A silent destination: no report will come, and the bridge has nothing due for it.
        assert (sim["awaiting"], sim["overdue"], sim["next_due_at"]) == (1, 0, None)
        status, answer = admin(daemon, f"/admin/messages/{message_id}/give-up", body={"reason": "no report"})
        assert status == 200 and answer["stat"] == "UNDELIV"
        assert esme.wait_receipts(1)[0]["stat"] == "UNDELIV"
    finally:
        esme.close()


# -- the CLI against a stopped daemon's file -----------------------------------------


def test_the_cli_reads_a_stopped_daemons_sqlite_file_without_writing_to_it(tmp_path: Path) -> None:
    running = start_daemon(tmp_path)
    message_id = delivered(running)
    live = history_until(running, message_id, lambda v: "receipt_sent" in kinds(v))
    assert running.stop() == 0
    db = tmp_path / "bridge.db"
    digest = hashlib.sha256(db.read_bytes()).hexdigest()

    direct = json.loads(cli("messages", "show", message_id, "--db", str(db), "--json").stdout)
    assert direct == live
    # With --config and the daemon gone, reads fall back to the file (and say so).
    done = cli("messages", "find", "--to", NUMBER, "--since", "1h", "--json", config=running.config)
    assert "reading" in done.stderr and json.loads(done.stdout)["messages"][0]["message_id"] == message_id
    assert cli("queues", "--db", str(db)).returncode == 0
    # Actions need the daemon.
    refused = cli("messages", "give-up", message_id, "--reason", "x", config=running.config, check=False)
    assert refused.returncode == 1 and "cannot reach the daemon" in refused.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
