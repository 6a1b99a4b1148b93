"""The lock-free families counted per message (bridge.metrics.LoopCounter and
LoopHistogram) expose exactly what prometheus_client's own Counter and Histogram
expose for the same calls: the library is the oracle, its text compared line by line
(only the `_created` times differ: each side's own clock reading)."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bridge.metrics import _FAST, _SLOW, LoopCounter, LoopHistogram

CREATED = re.compile(r"^(\w+_created\{[^}]*\}) \S+$", re.MULTILINE)


def exposition(registry: CollectorRegistry) -> str:
    """The registry's text with each `_created` sample's value replaced by a mark."""
    return CREATED.sub(r"\1 <created>", generate_latest(registry).decode())


def test_counter_exposes_what_the_library_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopCounter("smpp_bridge_things", "Things by kind", ["system_id", "kind"], ours)
    library = Counter("smpp_bridge_things", "Things by kind", ["system_id", "kind"], registry=theirs)
    for metric in (mine, library):
        metric.labels("esme1", "a").inc()
        metric.labels("esme1", "a").inc(3)
        metric.labels("esme2", "b").inc(0)
        metric.labels("esme1", "c").inc(2.5)
    text = exposition(ours)
    assert text == exposition(theirs)
    assert 'smpp_bridge_things_total{kind="a",system_id="esme1"} 4.0' in text
    assert "smpp_bridge_things_created" in text


@pytest.mark.parametrize("buckets", [_FAST, _SLOW])
def test_histogram_exposes_what_the_library_does(buckets: tuple[float, ...]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopHistogram("smpp_bridge_wait_seconds", "Waits", ["provider"], ours, buckets)
    library = Histogram("smpp_bridge_wait_seconds", "Waits", ["provider"], buckets=buckets, registry=theirs)
    # On a bound (le is "less or equal"), between bounds, zero, above every bound.
    amounts = [0.0, 0.0005, 0.0007, 0.1, 0.1000001, 1, 2.5, 30.0, 86400, 99999.0]
    for amount in amounts:
        mine.labels("sky").observe(amount)
        library.labels("sky").observe(amount)
    mine.labels("kal").observe_times(0.004, 3)  # the answers of one read share their duration
    for _ in range(3):
        library.labels("kal").observe(0.004)
    text = exposition(ours)
    assert text == exposition(theirs)
    assert 'smpp_bridge_wait_seconds_bucket{le="+Inf",provider="sky"} 10.0' in text
    assert 'smpp_bridge_wait_seconds_count{provider="kal"} 3.0' in text


def test_loop_families_refuse_what_the_library_refuses() -> None:
    registry = CollectorRegistry()
    counter = LoopCounter("smpp_bridge_things", "Things", ["kind"], registry)
    with pytest.raises(ValueError):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError):
        counter.labels("a", "b")
    with pytest.raises(ValueError):
        LoopHistogram("smpp_bridge_waits", "Waits", ["kind"], registry, (1.0, 0.5))
    with pytest.raises(ValueError):  # a name taken twice in one registry, as the library refuses it
        LoopCounter("smpp_bridge_things", "Things again", ["kind"], registry)
