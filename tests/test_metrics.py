"""Metrics: a scripted traffic run through the real bridge, then /metrics scraped over
HTTP and compared, family by family and label by label, with what happened.

Also: labels never carry a phone number, a message id or text; the exposition passes
`promtool check metrics`; /healthz and /readyz say what they claim.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from prometheus_client.parser import text_string_to_metric_families

from bridge.core.ports import StoreUnavailable
from bridge.smpp.constants import Status
from tests.support.esme import Esme
from tests.support.running import RunningBridge
from tests.support.waiting import wait_for

# The contract of DESIGN.md, "Metrics": family name -> (type, label names).
DESIGN_METRICS: dict[str, tuple[str, set[str]]] = {
    "smpp_bridge_sessions": ("gauge", {"system_id", "bind_type"}),
    "smpp_bridge_binds": ("counter", {"system_id", "result"}),
    "smpp_bridge_pdus_received": ("counter", {"command"}),
    "smpp_bridge_pdus_sent": ("counter", {"command"}),
    "smpp_bridge_submits": ("counter", {"system_id", "provider", "command_status", "flash"}),
    "smpp_bridge_submit_duration_seconds": ("histogram", {"system_id"}),
    "smpp_bridge_upstream_requests": ("counter", {"provider", "outcome"}),
    "smpp_bridge_upstream_request_duration_seconds": ("histogram", {"provider"}),
    "smpp_bridge_provider_reports": ("counter", {"provider", "result"}),
    "smpp_bridge_receipts": ("counter", {"system_id", "stat"}),
    "smpp_bridge_receipt_latency_seconds": ("histogram", {"provider"}),
    "smpp_bridge_receipts_waiting": ("gauge", {"system_id"}),
    "smpp_bridge_outbox_messages": ("gauge", {"provider"}),
    "smpp_bridge_throttled": ("counter", {"system_id", "reason"}),
    "smpp_bridge_callbacks": ("counter", {"provider", "result"}),
    "smpp_bridge_build_info": ("gauge", {"version"}),
}

# Sample names each family type may expose (prometheus_client adds `_created`).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}

TRAFFIC_CONFIG: dict[str, Any] = {
    "smpp": {"enquire_link_interval": 3600, "inactivity_timeout": 3600},  # no PDU of ours but the traffic
    "accounts": [
        {"system_id": "esme1", "password": "secret1", "allowed_networks": ["127.0.0.0/8"], "throughput": 0},
        # One token, refilled every 1000 s: the first submit passes, the next ones are throttled.
        {"system_id": "esme2", "password": "secret2", "allowed_networks": ["127.0.0.0/8"], "throughput": 0.001},
    ],
    "providers": {"sim": {"type": "simulator", "delivery_delay": 0.05, "reject_prefixes": ["999"]}},
    "routes": [{"name": "all", "providers": ["sim"]}],
}


# -- helpers shared with the other operations tests ----------------------------------


def require_tool(name: str) -> str:
    """Path of an external validator. Missing: the test skips (a failure under CI,
    which installs it, see .ci/run)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape_text(base_url: str) -> str:
    status, body = http_get(f"{base_url}/metrics")
    assert status == 200
    return body.decode()


@dataclass
class Scrape:
    """A parsed exposition: families by name, and sample values by (name, labels)."""

    text: str
    types: dict[str, str] = field(default_factory=dict)
    labels: dict[str, set[str]] = field(default_factory=dict)
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        scrape = cls(text)
        for family in text_string_to_metric_families(text):
            scrape.types[family.name] = family.type
            names = scrape.labels.setdefault(family.name, set())
            for sample in family.samples:
                names.update(k for k in sample.labels if k not in ("le", "quantile"))
                scrape.samples.append((sample.name, dict(sample.labels), sample.value))
        return scrape

    def value(self, name: str, **labels: str) -> float:
        """The one sample of `name` with exactly these labels (0 when there is none)."""
        found = [v for n, lab, v in self.samples if n == name and lab == labels]
        assert len(found) <= 1
        return found[0] if found else 0.0

    def by(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        """Samples of `name` keyed by the values of `keys` (no other label may vary)."""
        out: dict[tuple[str, ...], float] = {}
        for n, lab, v in self.samples:
            if n == name:
                key = tuple(lab[k] for k in keys)
                assert key not in out, f"{name}: {key} is not unique"
                out[key] = v
        return out

    def total(self, name: str) -> float:
        """The sum of every sample of `name`."""
        return sum(v for n, _, v in self.samples if n == name)

    def sample_names(self) -> set[str]:
        """Every sample name the families here can have, samples or not yet."""
        return {name + suffix for name, kind in self.types.items() for suffix in SUFFIXES[kind]}


def scrape(base_url: str) -> Scrape:
    return Scrape.parse(scrape_text(base_url))


def bound(bridge: RunningBridge, system_id: str = "esme1", password: str = "secret1") -> Esme:
    client = Esme(bridge.smpp_port)
    assert client.bind("transceiver", system_id=system_id, password=password).status == Status.ESME_ROK
    return client


# -- the traffic run -----------------------------------------------------------------


@dataclass
class Traffic:
    """What the scripted run did, for the assertions and the label check."""

    numbers: list[str] = field(default_factory=list)
    texts: list[bytes] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def run_traffic(bridge: RunningBridge) -> Traffic:
    """esme1: 3 normal + 2 flash accepted, 1 accepted then UNDELIV, 2 normal + 1 flash
    refused by the simulator (ESME_RINVDSTADR); esme2: 1 accepted, 2 throttled; one bind
    with a wrong password and one with an unknown system_id. Every receipt acknowledged."""
    traffic = Traffic()
    refused_password, refused_unknown = Esme(bridge.smpp_port), Esme(bridge.smpp_port)
    esme1, esme2 = bound(bridge, "esme1", "secret1"), bound(bridge, "esme2", "secret2")
    try:
        assert refused_password.bind(system_id="esme1", password="wrong").status == Status.ESME_RINVPASWD
        assert refused_unknown.bind(system_id="nobody", password="x").status == Status.ESME_RINVSYSID

        def submit(client: Esme, number: str, status: int, flash: bool = False) -> None:
            text = f"Quokka {len(traffic.texts)} zebra {number[-6:]}".encode()
            source = f"7700{len(traffic.sources):04d}"
            resp = client.submit(destination=number, text=text, source=source, data_coding=0x10 if flash else 0x00)
            assert resp.status == status, (number, resp.status)
            traffic.numbers.append(number)
            traffic.texts.append(text)
            traffic.sources.append(source)
            if resp.status == Status.ESME_ROK:
                traffic.message_ids.append(resp.message_id.decode())

        for i in range(3):
            submit(esme1, f"491705550{i:04d}", Status.ESME_ROK)
        for i in range(2):
            submit(esme1, f"491706660{i:04d}", Status.ESME_ROK, flash=True)
        submit(esme1, "9981237777", Status.ESME_ROK)  # accepted, then UNDELIV
        for i in range(2):
            submit(esme1, f"999123888{i}", Status.ESME_RINVDSTADR)
        submit(esme1, "9991239999", Status.ESME_RINVDSTADR, flash=True)
        submit(esme2, "4917077700001", Status.ESME_ROK)
        submit(esme2, "4917077700002", Status.ESME_RTHROTTLED)
        submit(esme2, "4917077700003", Status.ESME_RTHROTTLED)

        esme1.wait_receipts(6)
        esme2.wait_receipts(1)
        # The bridge counts a receipt when it reads the deliver_sm_resp: wait for that.
        wait_for(lambda: scrape(bridge.http_url).total("smpp_bridge_receipts_total") == 7)
    finally:
        for client in (esme1, esme2, refused_password, refused_unknown):
            client.close()
    # Closing the sockets unbinds the sessions; wait until the bridge has seen it.
    wait_for(lambda: not scrape(bridge.http_url).by("smpp_bridge_sessions", "system_id", "bind_type"))
    return traffic


@pytest.fixture
def traffic_bridge(start_bridge: Callable[..., RunningBridge]) -> RunningBridge:
    return start_bridge(**TRAFFIC_CONFIG)


def test_every_design_family_is_exported_with_its_type_and_labels(traffic_bridge: RunningBridge) -> None:
    run_traffic(traffic_bridge)
    families = scrape(traffic_bridge.http_url)
    for name, (kind, label_names) in DESIGN_METRICS.items():
        assert families.types.get(name) == kind, name
        # Families without samples yet (no callback, no outbox) have no labels to show.
        assert families.labels[name] <= label_names, name
        if families.labels[name]:
            assert families.labels[name] == label_names, name
    assert families.value("smpp_bridge_build_info", version=_version()) == 1


def _version() -> str:
    from bridge import __version__

    return __version__


def test_counts_match_the_scripted_traffic(traffic_bridge: RunningBridge) -> None:
    run_traffic(traffic_bridge)
    m = scrape(traffic_bridge.http_url)

    assert m.by("smpp_bridge_submits_total", "system_id", "provider", "command_status", "flash") == {
        ("esme1", "sim", "ESME_ROK", "false"): 4,
        ("esme1", "sim", "ESME_ROK", "true"): 2,
        ("esme1", "sim", "ESME_RINVDSTADR", "false"): 2,
        ("esme1", "sim", "ESME_RINVDSTADR", "true"): 1,
        ("esme2", "sim", "ESME_ROK", "false"): 1,
        ("esme2", "none", "ESME_RTHROTTLED", "false"): 2,
    }
    assert m.by("smpp_bridge_binds_total", "system_id", "result") == {
        ("esme1", "ok"): 1,
        ("esme2", "ok"): 1,
        ("esme1", "ESME_RINVPASWD"): 1,
        ("unknown", "ESME_RINVSYSID"): 1,
    }
    assert m.by("smpp_bridge_pdus_received_total", "command") == {
        ("bind_transceiver",): 4,
        ("submit_sm",): 12,
        ("deliver_sm_resp",): 7,
    }
    assert m.by("smpp_bridge_pdus_sent_total", "command") == {
        ("bind_transceiver_resp",): 4,
        ("submit_sm_resp",): 12,
        ("deliver_sm",): 7,
    }
    assert m.by("smpp_bridge_sessions", "system_id", "bind_type") == {}  # all unbound at the end
    assert m.by("smpp_bridge_receipts_total", "system_id", "stat") == {
        ("esme1", "DELIVRD"): 5,
        ("esme1", "UNDELIV"): 1,
        ("esme2", "DELIVRD"): 1,
    }
    assert m.by("smpp_bridge_receipts_waiting", "system_id") == {("esme1",): 0, ("esme2",): 0}
    assert m.by("smpp_bridge_upstream_requests_total", "provider", "outcome") == {
        ("sim", "accepted"): 7,
        ("sim", "rejected"): 3,
    }
    assert m.by("smpp_bridge_provider_reports_total", "provider", "result") == {
        ("sim", "delivrd"): 6,
        ("sim", "undeliv"): 1,
    }
    assert m.by("smpp_bridge_throttled_total", "system_id", "reason") == {("esme2", "throughput"): 2}
    assert m.by("smpp_bridge_outbox_messages", "provider") == {}
    assert m.by("smpp_bridge_provider_usable", "provider") == {("sim",): 1}
    # Histograms: one observation per submit answered / HTTP call / final receipt.
    assert m.by("smpp_bridge_submit_duration_seconds_count", "system_id") == {("esme1",): 9, ("esme2",): 3}
    assert m.value("smpp_bridge_submit_duration_seconds_bucket", system_id="esme1", le="+Inf") == 9
    assert m.by("smpp_bridge_upstream_request_duration_seconds_count", "provider") == {("sim",): 10}
    assert m.by("smpp_bridge_receipt_latency_seconds_count", "provider") == {("sim",): 7}
    assert m.by("smpp_bridge_config_reloads_total", "result") == {("ok",): 0, ("rejected",): 0}


def test_sessions_gauge_counts_bound_sessions_by_bind_type(traffic_bridge: RunningBridge) -> None:
    clients = [Esme(traffic_bridge.smpp_port) for _ in range(3)]
    try:
        for client, kind in zip(clients, ("transmitter", "receiver", "transceiver"), strict=True):
            assert client.bind(kind).status == Status.ESME_ROK
        assert scrape(traffic_bridge.http_url).by("smpp_bridge_sessions", "system_id", "bind_type") == {
            ("esme1", "transmitter"): 1,
            ("esme1", "receiver"): 1,
            ("esme1", "transceiver"): 1,
        }
        assert clients[0].unbind().status == Status.ESME_ROK
        wait_for(lambda: ("esme1", "transmitter") not in _sessions(traffic_bridge))
        assert _sessions(traffic_bridge) == {("esme1", "receiver"): 1, ("esme1", "transceiver"): 1}
    finally:
        for client in clients:
            client.close()


def _sessions(bridge: RunningBridge) -> dict[tuple[str, ...], float]:
    return scrape(bridge.http_url).by("smpp_bridge_sessions", "system_id", "bind_type")


def test_labels_never_carry_numbers_message_ids_or_text(traffic_bridge: RunningBridge) -> None:
    traffic = run_traffic(traffic_bridge)
    m = scrape(traffic_bridge.http_url)
    secrets = {*traffic.numbers, *traffic.sources, *traffic.message_ids}
    words = {word for text in traffic.texts for word in text.decode().split() if not word.isdigit()}
    assert len(secrets) > 20 and {"Quokka", "zebra"} <= words
    checked = 0
    for name, labels, _ in m.samples:
        for key, value in labels.items():
            checked += 1
            assert value not in secrets, (name, key, value)
            assert not any(secret in value for secret in secrets), (name, key, value)
            assert not any(word in value for word in words), (name, key, value)
            # No run of digits long enough to be a phone number or one of our message ids.
            assert not re.search(r"\d{7,}", value), (name, key, value)
    assert checked > 100


def test_exposition_passes_promtool_check_metrics(traffic_bridge: RunningBridge) -> None:
    promtool = require_tool("promtool")
    run_traffic(traffic_bridge)
    text = scrape_text(traffic_bridge.http_url)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_metrics_content_type_is_the_text_format(traffic_bridge: RunningBridge) -> None:
    with urllib.request.urlopen(f"{traffic_bridge.http_url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")


# -- /healthz and /readyz -------------------------------------------------------------


def _json(url: str) -> tuple[int, Any]:
    status, body = http_get(url)
    return status, json.loads(body)


def test_healthz_and_readyz_when_everything_is_up(bridge: RunningBridge) -> None:
    assert _json(f"{bridge.http_url}/healthz") == (200, {"status": "ok"})
    assert _json(f"{bridge.http_url}/readyz") == (
        200,
        {"ready": True, "checks": {"smpp_listener": True, "store": True, "provider": True}},
    )


def test_readyz_503_without_a_usable_provider(start_bridge: Callable[..., RunningBridge]) -> None:
    bridge = start_bridge(accounts=[], providers={})
    status, body = _json(f"{bridge.http_url}/readyz")
    assert status == 503
    assert body["checks"] == {"smpp_listener": True, "store": True, "provider": False}
    assert body["errors"] == {"provider": "no provider is configured"}
    assert _json(f"{bridge.http_url}/healthz")[0] == 200  # alive, just not ready


def test_readyz_503_when_the_store_refuses_writes(bridge: RunningBridge) -> None:
    assert bridge.bridge is not None

    async def refuse(count: int) -> int:
        raise StoreUnavailable("disk full")

    bridge.run(setattr, bridge.bridge.store, "reserve_ids", refuse)
    with structlog.testing.capture_logs() as logged:
        for _ in range(3):  # probed again and again: the cause is in each answer, logged once
            status, body = _json(f"{bridge.http_url}/readyz")
            assert status == 503
            assert body["checks"] == {"smpp_listener": True, "store": False, "provider": True}
            assert body["errors"] == {"store": "StoreUnavailable: disk full"}
    [line] = [entry for entry in logged if entry["event"] == "not_ready"]
    assert line["check"] == "store" and isinstance(line["exc_info"], StoreUnavailable)


def test_readyz_503_once_the_smpp_listener_is_closed(bridge: RunningBridge) -> None:
    assert bridge.bridge is not None
    bridge.run(bridge.bridge.server.stop_listening)
    status, body = _json(f"{bridge.http_url}/readyz")
    assert status == 503
    assert body["checks"]["smpp_listener"] is False
    assert body["errors"] == {"smpp_listener": "the SMPP port is not listening"}


def metric_names_in(exprs: Iterable[str]) -> set[str]:
    """Every `smpp_bridge_*` identifier used in PromQL expressions."""
    return {name for expr in exprs for name in re.findall(r"\b(smpp_bridge_[A-Za-z0-9_]+)", expr)}
