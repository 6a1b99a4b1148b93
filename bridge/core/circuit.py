"""A circuit breaker per provider: stop sending to a provider that keeps failing.

Closed: requests flow; `failure_threshold` failures in a row (NOT_SENT or UNKNOWN)
open it. Open: requests are not attempted (the route fails over, the outbox waits)
for `reset_timeout` seconds, doubling on each failed trial up to `max_reset`.
Half-open: one trial request; success closes, failure re-opens. Fed with the clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        max_reset: float = 300.0,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.max_reset = max_reset
        self.on_change = on_change
        self.state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._current_reset = reset_timeout
        self._trial_in_flight = False

    def allow(self, now: float) -> bool:
        """May a request be attempted now? (Half-open lets exactly one through.)"""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if now - self._opened_at < self._current_reset:
                return False
            self._set(CircuitState.HALF_OPEN)
        if self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._trial_in_flight = False
        self._current_reset = self.reset_timeout
        if self.state is not CircuitState.CLOSED:
            self._set(CircuitState.CLOSED)

    def record_failure(self, now: float) -> None:
        self._failures += 1
        if self.state is CircuitState.HALF_OPEN:
            self._trial_in_flight = False
            self._current_reset = min(self.max_reset, self._current_reset * 2)
            self._open(now)
        elif self.state is CircuitState.CLOSED and self._failures >= self.failure_threshold:
            self._open(now)

    def retry_in(self, now: float) -> float:
        """Seconds until a trial may be made (0 when closed)."""
        if self.state is CircuitState.CLOSED:
            return 0.0
        return max(0.0, self._opened_at + self._current_reset - now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._set(CircuitState.OPEN)

    def _set(self, state: CircuitState) -> None:
        if state is not self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(state)
