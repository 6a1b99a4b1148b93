"""The Grafana dashboard, the Prometheus alert rules and the scrape example.

Every metric name they use must exist in a live scrape of the daemon; every PromQL
expression must parse (promtool, offline: the expressions go into a temporary rules
file for `promtool check rules`); the alerts fire on the situations they name
(`promtool test rules` with synthetic series).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.esme import Esme
from tests.support.running import RunningBridge, make_config
from tests.support.waiting import wait_for
from tests.test_metrics import DESIGN_METRICS, Scrape, metric_names_in, require_tool, scrape

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "config/grafana/smpp-bridge.json"
ALERTS = ROOT / "config/prometheus/alerts.yml"
PROMETHEUS = ROOT / "config/prometheus/prometheus.yml"

# Names the dashboard and alerts may use besides ours (Prometheus' own series).
FOREIGN_METRICS = {"up"}
# Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"job", "instance"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Scrape:
    """A scrape of a running bridge after a little traffic (so labelled families have samples)."""
    bridge = RunningBridge(make_config(tmp_path_factory.mktemp("live"))).start()
    client = Esme(bridge.smpp_port)
    try:
        assert client.bind().status == 0
        assert client.submit().status == 0
        client.wait_receipts(1)
        wait_for(lambda: scrape(bridge.http_url).total("smpp_bridge_receipts_total") == 1)
        return scrape(bridge.http_url)
    finally:
        client.close()
        bridge.stop()


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, nested row panels too."""
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_exprs(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert match, query
            exprs.append(match.group(1))  # the selector inside label_values(...)
    return exprs


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables replaced by what they expand to: intervals by a duration,
    template variables (used inside =~ matchers) by a regex matching everything."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    expr = re.sub(r"\$\{(\w+)(:\w+)?\}|\$(\w+)", ".*", expr)
    return expr


def promtool_check_exprs(promtool: str, exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rules = {
        "groups": [{"name": "exprs", "rules": [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]
    }
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump(rules))
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def check_names_and_labels(exprs: list[str], live: Scrape) -> None:
    """Each smpp_bridge_* name is a sample name of the live scrape (so counters are used
    as _total, histograms as _bucket/_sum/_count), and label matchers name real labels."""
    available = live.sample_names()
    for name in metric_names_in(exprs):
        assert name in available, f"{name} is not exported (available: {sorted(available)})"
    for expr in exprs:
        for name, matchers in re.findall(r"\b(smpp_bridge_\w+)\{([^}]*)\}", expr):
            family = _family(name, live)
            known = live.labels.get(family) or DESIGN_METRICS.get(family, ("", set()))[1]
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                allowed = known | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
                if known:
                    assert label in allowed, f"{name} has no label {label!r} ({expr})"


def _family(sample_name: str, live: Scrape) -> str:
    for family in live.types:
        if any(sample_name == family + suffix for suffix in ("", "_total", "_bucket", "_sum", "_count", "_created")):
            return family
    raise AssertionError(sample_name)


# -- Grafana ------------------------------------------------------------------------------


def test_dashboard_is_importable_json_with_a_datasource_variable() -> None:
    board = dashboard()
    assert board["title"] and board["uid"]
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_dashboard_panels_have_targets_unique_ids_and_a_grid_place() -> None:
    board = dashboard()
    all_panels = panels(board)
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    cells: set[tuple[int, int]] = set()
    for panel in all_panels:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid), panel["title"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        area = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_dashboard_has_the_rows_and_views_operators_need() -> None:
    board = dashboard()
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Traffic", "Latency", "Errors", "Receipts", "Sessions and binds", "Outbox"]
    exprs = dashboard_exprs(board)
    for histogram in (
        "smpp_bridge_submit_duration_seconds",
        "smpp_bridge_upstream_request_duration_seconds",
        "smpp_bridge_receipt_latency_seconds",
    ):
        for quantile in ("0.5", "0.95", "0.99"):
            assert any(
                e.startswith(f"histogram_quantile({quantile}, sum by (le") and f"{histogram}_bucket{{" in e
                for e in exprs
            ), (histogram, quantile)
    assert any('flash="true"' in e and "/" in e for e in exprs), "flash share"
    assert any("sum by (system_id)" in e and "smpp_bridge_submits_total" in e for e in exprs), "submits by account"
    assert any("sum by (provider)" in e and "smpp_bridge_submits_total" in e for e in exprs), "submits by provider"
    assert any("sum by (command_status)" in e for e in exprs), "command_status breakdown"
    # Every family of the DESIGN.md table is on the dashboard.
    used = {_strip_suffix(name) for name in metric_names_in(exprs)}
    assert set(DESIGN_METRICS) <= used, set(DESIGN_METRICS) - used


def _strip_suffix(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count|created)$", "", name)


def test_dashboard_metric_names_exist_in_a_live_scrape(live: Scrape) -> None:
    check_names_and_labels([grafana_to_promql(e) for e in dashboard_exprs(dashboard())], live)


def test_dashboard_expressions_parse_with_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    exprs = [grafana_to_promql(e) for e in dashboard_exprs(dashboard())]
    assert not [e for e in exprs if "$" in e]
    result = promtool_check_exprs(promtool, exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout
    # The check is not vacuous: a broken expression is caught.
    broken = promtool_check_exprs(promtool, ["sum by (le (rate(smpp_bridge_submits_total[5m]))"], tmp_path)
    assert broken.returncode != 0


# -- alerts ---------------------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_alert_rules_pass_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_alerts_cover_the_operational_failures() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for required in (
        "SmppBridgeProviderErrors",  # provider error rate
        "SmppBridgeProviderDown",  # circuit open
        "SmppBridgeNoProviderUsable",  # what /readyz reports as provider: false
        "SmppBridgeOutboxGrowing",
        "SmppBridgeReceiptsStuck",
        "SmppBridgeNoEsmeBound",
        "SmppBridgeBindFailures",
    ):
        assert required in names
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    documented = (ROOT / "docs/operating.md").read_text()
    for name in names:
        assert name in documented, f"{name} is not explained in docs/operating.md"


def test_alert_metric_names_exist_in_a_live_scrape(live: Scrape) -> None:
    exprs = [rule["expr"] for rule in alert_rules()]
    names = {n for e in exprs for n in re.findall(r"\b([a-z_:][a-z0-9_:]*)\s*[{\[]", e)} - {"by", "on"}
    assert names - FOREIGN_METRICS <= live.sample_names(), names - FOREIGN_METRICS - live.sample_names()
    check_names_and_labels(exprs, live)


def _without_annotations(tmp_path: Path) -> Path:
    """alerts.yml minus annotations (promtool test rules would compare their rendering)."""
    data = yaml.safe_load(ALERTS.read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    path = tmp_path / "alerts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _alert(name: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": dict(lab)} for lab in labels]}


ALERT_TESTS: list[dict[str, Any]] = [
    {
        "interval": "1m",
        "input_series": [
            {"series": 'smpp_bridge_build_info{instance="a", job="smpp-bridge", version="0.1.0"}', "values": "1x40"},
            {"series": 'smpp_bridge_build_info{instance="b", job="smpp-bridge", version="0.1.0"}', "values": "1x40"},
            # b has sessions; a has none at all (the gauge has no series then).
            {
                "series": 'smpp_bridge_sessions{instance="b", system_id="esme1", bind_type="transmitter"}',
                "values": "1x40",
            },
            {"series": 'smpp_bridge_receipts_waiting{instance="b", system_id="esme1"}', "values": "3x40"},
        ],
        "alert_rule_test": [
            _alert("SmppBridgeNoEsmeBound", "5m"),
            _alert("SmppBridgeNoEsmeBound", "15m", {"instance": "a", "severity": "warning"}),
            _alert(
                "SmppBridgeReceiptsNoReceiver", "20m", {"instance": "b", "system_id": "esme1", "severity": "warning"}
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            {"series": 'smpp_bridge_sessions{instance="b", system_id="esme1", bind_type="receiver"}', "values": "1x40"},
            {"series": 'smpp_bridge_receipts_waiting{instance="b", system_id="esme1"}', "values": "3x40"},
        ],
        "alert_rule_test": [_alert("SmppBridgeReceiptsNoReceiver", "20m")],  # a receiver is bound
    },
    {
        "interval": "1m",
        "input_series": [
            {
                "series": 'smpp_bridge_upstream_requests_total{instance="a", provider="p1", outcome="accepted"}',
                "values": "0+60x40",
            },
            {
                "series": 'smpp_bridge_upstream_requests_total{instance="a", provider="p1", outcome="error"}',
                "values": "0+6x40",
            },
            {
                "series": 'smpp_bridge_upstream_requests_total{instance="a", provider="p2", outcome="accepted"}',
                "values": "0+60x40",
            },
            {
                "series": 'smpp_bridge_upstream_requests_total{instance="a", provider="p2", outcome="rejected"}',
                "values": "0+30x40",
            },
            {"series": 'smpp_bridge_provider_usable{instance="a", provider="p1"}', "values": "1x40"},
            {"series": 'smpp_bridge_provider_usable{instance="a", provider="p2"}', "values": "1x5 0x35"},
            {"series": 'smpp_bridge_provider_circuit_open{instance="a", provider="p2"}', "values": "0x5 1x35"},
        ],
        "alert_rule_test": [
            # p1: 6 errors per 66 requests; p2's rejections are answers, not errors.
            _alert("SmppBridgeProviderErrors", "20m", {"instance": "a", "provider": "p1", "severity": "warning"}),
            _alert("SmppBridgeProviderDown", "10m", {"instance": "a", "provider": "p2", "severity": "warning"}),
            _alert("SmppBridgeNoProviderUsable", "10m"),  # p1 is still usable
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            {"series": 'smpp_bridge_provider_usable{instance="a", provider="p1"}', "values": "0x10"},
            {"series": 'smpp_bridge_binds_total{instance="a", system_id="esme1", result="ok"}', "values": "0+100x10"},
            {
                "series": 'smpp_bridge_binds_total{instance="a", system_id="esme1", result="ESME_RINVPASWD"}',
                "values": "0+5x10",
            },
            {"series": 'smpp_bridge_outbox_messages{instance="a", provider="p1"}', "values": "50+10x40"},
            {"series": 'smpp_bridge_receipts_waiting{instance="a", system_id="esme1"}', "values": "500x40"},
            {"series": 'smpp_bridge_sessions{instance="a", system_id="esme1", bind_type="receiver"}', "values": "1x40"},
        ],
        "alert_rule_test": [
            _alert("SmppBridgeNoProviderUsable", "5m", {"instance": "a", "severity": "critical"}),
            _alert(
                "SmppBridgeBindFailures",
                "9m",
                {"instance": "a", "system_id": "esme1", "result": "ESME_RINVPASWD", "severity": "warning"},
            ),
            _alert("SmppBridgeOutboxGrowing", "35m", {"instance": "a", "provider": "p1", "severity": "warning"}),
            _alert("SmppBridgeReceiptsStuck", "20m"),  # not yet 30 minutes
            _alert("SmppBridgeReceiptsStuck", "35m", {"instance": "a", "system_id": "esme1", "severity": "warning"}),
        ],
    },
]


def test_alerts_fire_on_the_situations_they_name(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    rules = _without_annotations(tmp_path)
    tests = {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": ALERT_TESTS}
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the scrape example ------------------------------------------------------------------------


def test_prometheus_example_config_is_valid_and_scrapes_metrics() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROMETHEUS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(PROMETHEUS.read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "smpp-bridge" and job["metrics_path"] == "/metrics"
    assert 'job="smpp-bridge"' in ALERTS.read_text()


def test_example_config_job_targets_the_http_listener() -> None:
    """The default [http] port is the one prometheus.yml scrapes."""
    from bridge.config import HttpSettings

    config = yaml.safe_load(PROMETHEUS.read_text())
    [target] = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert target == f"{HttpSettings().host}:{HttpSettings().port}"
