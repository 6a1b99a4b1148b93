"""Prometheus metrics: the names of DESIGN.md, one registry per running bridge.

Labels come from small fixed sets (system_id, provider, command names, status names,
state words); never a phone number, a message id or text. Counts that change on
every PDU (PDUs read and written, bound sessions) are read from the live objects at
scrape time by `LiveCollector`, so the hot path only adds integers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge import __version__
from bridge.smpp.session import PduCounters

NAMESPACE = "smpp_bridge"
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SLOW = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class LiveCollector(Collector):
    """Families computed from the running objects when Prometheus scrapes."""

    def __init__(
        self,
        counters: PduCounters,
        sessions: Callable[[], Iterable[tuple[str, str, int]]],
        gauges: dict[str, tuple[str, str, Callable[[], Iterable[tuple[str, float]]]]],
    ) -> None:
        self._counters = counters
        self._sessions = sessions
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for direction, counts in (("received", self._counters.received), ("sent", self._counters.sent)):
            family = CounterMetricFamily(
                f"{NAMESPACE}_pdus_{direction}", f"SMPP PDUs {direction}, by command", labels=["command"]
            )
            for command, count in sorted(counts.items()):
                family.add_metric([command.label], count)
            yield family
        sessions = GaugeMetricFamily(f"{NAMESPACE}_sessions", "Bound SMPP sessions", labels=["system_id", "bind_type"])
        for system_id, bind_type, count in self._sessions():
            sessions.add_metric([system_id, bind_type], count)
        yield sessions
        for name, (doc, label, read) in self._gauges.items():
            gauge = GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, labels=[label])
            for label_value, value in read():
                gauge.add_metric([label_value], value)
            yield gauge

    def describe(self) -> Iterator[Metric]:
        return iter(())


class Metrics:
    """Every metric family the bridge exports, registered in `self.registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.binds = Counter(f"{NAMESPACE}_binds", "Bind attempts by result", ["system_id", "result"], registry=r)
        self.submits = Counter(
            f"{NAMESPACE}_submits",
            "submit_sm (and data_sm, submit_multi) answered, by command_status",
            ["system_id", "provider", "command_status", "flash"],
            registry=r,
        )
        self.submit_duration = Histogram(
            f"{NAMESPACE}_submit_duration_seconds",
            "submit_sm read to submit_sm_resp written",
            ["system_id"],
            buckets=_FAST,
            registry=r,
        )
        self.upstream_requests = Counter(
            f"{NAMESPACE}_upstream_requests",
            "Messages offered to providers by outcome (a coalesced request counts once per message in it)",
            ["provider", "outcome"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            f"{NAMESPACE}_upstream_request_duration_seconds",
            "HTTP request time to providers",
            ["provider"],
            buckets=_FAST,
            registry=r,
        )
        self.provider_reports = Counter(
            f"{NAMESPACE}_provider_reports",
            "Delivery status reports taken in from providers",
            ["provider", "result"],
            registry=r,
        )
        self.receipts = Counter(
            f"{NAMESPACE}_receipts",
            "deliver_sm receipts acknowledged by ESMEs, by stat",
            ["system_id", "stat"],
            registry=r,
        )
        self.receipt_latency = Histogram(
            f"{NAMESPACE}_receipt_latency_seconds",
            "submit to final receipt sent",
            ["provider"],
            buckets=_SLOW,
            registry=r,
        )
        self.throttled = Counter(
            f"{NAMESPACE}_throttled",
            "ESME_RTHROTTLED and ESME_RMSGQFUL answers by reason",
            ["system_id", "reason"],
            registry=r,
        )
        self.callbacks = Counter(
            f"{NAMESPACE}_callbacks", "HTTP callback requests by result", ["provider", "result"], registry=r
        )
        self.duplicates = Counter(
            f"{NAMESPACE}_possible_duplicates",
            "Messages sent again after a crash or timeout left their first attempt unknown",
            ["provider"],
            registry=r,
        )
        self.answers_after_final = Counter(
            f"{NAMESPACE}_answers_after_final",
            "Provider answers to an attempt whose message had finished meanwhile: ignored, no second receipt",
            ["provider"],
            registry=r,
        )
        self.bind_lockouts = Counter(
            f"{NAMESPACE}_bind_lockouts", "Lockouts started after repeated bind failures", ["kind"], registry=r
        )
        self.circuit_open = Gauge(
            f"{NAMESPACE}_provider_circuit_open",
            "1 while a provider's circuit breaker is open",
            ["provider"],
            registry=r,
        )
        self.config_reloads = Counter(
            f"{NAMESPACE}_config_reloads", "SIGHUP config reloads by result (ok, rejected)", ["result"], registry=r
        )
        for result in ("ok", "rejected"):
            self.config_reloads.labels(result)
        self.build_info = Gauge(f"{NAMESPACE}_build_info", "Always 1", ["version"], registry=r)
        self.build_info.labels(__version__).set(1)

    def attach_live(self, collector: LiveCollector) -> None:
        self.registry.register(collector)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def labels(metric: Any, cache: dict[tuple[str, ...], Any], *values: str) -> Any:
    """`metric.labels(*values)`, memoised: labels() costs a lock and a dict walk."""
    child = cache.get(values)
    if child is None:
        child = cache[values] = metric.labels(*values)
    return child
