from __future__ import annotations

from bridge.core.circuit import CircuitBreaker, CircuitState
from bridge.core.outbox import backoff_delay


def test_opens_after_threshold_failures_in_a_row() -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10)
    for _ in range(2):
        breaker.record_failure(0)
    breaker.record_success()  # resets the run
    for _ in range(2):
        breaker.record_failure(1)
    assert breaker.state is CircuitState.CLOSED and breaker.allow(1)
    breaker.record_failure(1)
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow(5)
    assert breaker.retry_in(5) == 6


def test_half_open_lets_one_trial_through_and_closes_on_success() -> None:
    changes: list[CircuitState] = []
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, on_change=changes.append)
    breaker.record_failure(0)
    assert breaker.allow(10)
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow(10)  # only one trial at a time
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED and breaker.allow(10)
    assert changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_failed_trial_reopens_for_longer_up_to_the_cap() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, max_reset=25)
    breaker.record_failure(0)
    assert breaker.allow(10)
    breaker.record_failure(10)
    assert breaker.state is CircuitState.OPEN and breaker.retry_in(10) == 20
    assert breaker.allow(30)
    breaker.record_failure(30)
    assert breaker.retry_in(30) == 25


def test_backoff_grows_with_jitter_caps_and_honours_retry_after() -> None:
    assert backoff_delay(1, base=1, cap=300, retry_after=None, rand=1.0) == 1.0
    assert backoff_delay(1, base=1, cap=300, retry_after=None, rand=0.0) == 0.5
    assert backoff_delay(4, base=1, cap=300, retry_after=None, rand=1.0) == 8.0
    assert backoff_delay(20, base=1, cap=300, retry_after=None, rand=1.0) == 300.0
    assert backoff_delay(1, base=1, cap=300, retry_after=42.0, rand=0.5) == 42.0
