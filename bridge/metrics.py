"""Prometheus metrics: the names of DESIGN.md, one registry per running bridge.

Labels come from small fixed sets (system_id, provider, command names, status names,
state words); never a phone number, a message id or text. Counts that change on
every PDU (PDUs read and written, bound sessions) are read from the live objects at
scrape time by `LiveCollector`, so the hot path only adds integers.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

from bridge import __version__
from bridge.smpp.session import PduCounters

NAMESPACE = "smpp_bridge"
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SLOW = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
C = TypeVar("C")
# prometheus_client's own switch for the `_created` samples, read as it reads it.
_CREATED = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in ("true", "1", "t")


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


# -- the families counted per message -------------------------------------------------
#
# prometheus_client's Counter and Histogram take a lock per value they change: an
# `inc` costs ~0.5 µs and an `observe` ~1 µs (the sum and a bucket, each locked), ~5 µs
# a message with its receipt in the daemon (submit, upstream request, report,
# callback, receipt). The families below are changed only from the event loop's
# thread and read by the scrape on that same thread, so they need no lock: they add to
# plain numbers, and the scrape turns them into the library's samples — the same
# names, labels, values and `_created` samples as the library's own Counter and
# Histogram (tests/test_metrics_families.py compares the two expositions).


class LoopCounterChild:
    """One label set of a `LoopCounter`."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class LoopHistogramChild:
    """One label set of a `LoopHistogram`: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.sum += amount
        self.counts[bisect_left(self.bounds, amount)] += 1  # the first bound >= amount, as the library

    def observe_times(self, amount: float, times: int) -> None:
        """`observe(amount)` `times` times (the answers of one read share their duration)."""
        self.sum += amount * times
        self.counts[bisect_left(self.bounds, amount)] += times


class _LoopFamily(Collector, Generic[C]):
    """A labelled family registered in `registry` where the library's would be."""

    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        registry.register(self)

    def labels(self, *values: str) -> C:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected, got {len(values)}")
            child = self._children[values] = self._new_child()
        return child

    def _new_child(self) -> C:
        raise NotImplementedError

    def describe(self) -> Iterator[Metric]:
        return iter((Metric(self.name, self.documentation, self.kind),))


class LoopCounter(_LoopFamily[LoopCounterChild]):
    """A Counter changed from the event loop's thread only (see above)."""

    kind = "counter"

    def _new_child(self) -> LoopCounterChild:
        return LoopCounterChild()

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        for values, child in list(self._children.items()):
            series = dict(zip(self.labelnames, values, strict=True))
            metric.add_sample(self.name + "_total", series, child.value)
            if _CREATED:
                metric.add_sample(self.name + "_created", series, child.created)
        yield metric


class LoopHistogram(_LoopFamily[LoopHistogramChild]):
    """A Histogram changed from the event loop's thread only (see above)."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float],
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if bounds[-1] != INF:
            bounds.append(INF)
        self.bounds = tuple(bounds)
        self._les = tuple(floatToGoString(b) for b in bounds)
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> LoopHistogramChild:
        return LoopHistogramChild(self.bounds)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        for values, child in list(self._children.items()):
            series = dict(zip(self.labelnames, values, strict=True))
            total = 0.0
            for le, count in zip(self._les, child.counts, strict=True):
                total += count
                metric.add_sample(self.name + "_bucket", {**series, "le": le}, total)
            metric.add_sample(self.name + "_count", series, total)
            if self.bounds[0] >= 0:
                metric.add_sample(self.name + "_sum", series, child.sum)
            if _CREATED:
                metric.add_sample(self.name + "_created", series, child.created)
        yield metric


class Metrics:
    """Every metric family the bridge exports, registered in `self.registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.binds = Counter(f"{NAMESPACE}_binds", "Bind attempts by result", ["system_id", "result"], registry=r)
        # Counted per message: LoopCounter / LoopHistogram, without the library's locks.
        self.submits = LoopCounter(
            f"{NAMESPACE}_submits",
            "submit_sm (and data_sm, submit_multi) answered, by command_status",
            ["system_id", "provider", "command_status", "flash"],
            r,
        )
        self.submit_duration = LoopHistogram(
            f"{NAMESPACE}_submit_duration_seconds", "submit_sm read to submit_sm_resp written", ["system_id"], r, _FAST
        )
        self.upstream_requests = LoopCounter(
            f"{NAMESPACE}_upstream_requests",
            "Messages offered to providers by outcome (a coalesced request counts once per message in it)",
            ["provider", "outcome"],
            r,
        )
        self.upstream_duration = LoopHistogram(
            f"{NAMESPACE}_upstream_request_duration_seconds", "HTTP request time to providers", ["provider"], r, _FAST
        )
        self.provider_reports = LoopCounter(
            f"{NAMESPACE}_provider_reports",
            "Delivery status reports taken in from providers",
            ["provider", "result"],
            r,
        )
        self.receipts = LoopCounter(
            f"{NAMESPACE}_receipts", "deliver_sm receipts acknowledged by ESMEs, by stat", ["system_id", "stat"], r
        )
        self.receipt_latency = LoopHistogram(
            f"{NAMESPACE}_receipt_latency_seconds", "submit to final receipt sent", ["provider"], r, _SLOW
        )
        self.throttled = Counter(
            f"{NAMESPACE}_throttled",
            "ESME_RTHROTTLED and ESME_RMSGQFUL answers by reason",
            ["system_id", "reason"],
            registry=r,
        )
        self.callbacks = LoopCounter(
            f"{NAMESPACE}_callbacks", "HTTP callback requests by result", ["provider", "result"], r
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
