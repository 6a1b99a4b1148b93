"""One attempt to hand a Message to the providers of its route, primary first.

Failover follows DESIGN.md: NOT_SENT (refused, 429, 5xx, circuit open) moves on to
the next provider; REJECTED and UNKNOWN stop here. A provider that cannot send
flash is skipped when its `flash_fallback` is "reject", and sends a normal SMS
when it is "normal".

Every send goes through here, coalesced or not, so this is where the requests in
flight on each provider object are counted (`InFlight`): a provider replaced by a
reload is closed only once none is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from bridge.core.circuit import CircuitBreaker, CircuitState
from bridge.core.coalesce import Coalescer
from bridge.core.history import Journal
from bridge.core.message import Lifecycle, Message
from bridge.core.ports import Outcome, Provider, SendResult
from bridge.metrics import Metrics, labels
from bridge.smpp.constants import Status

NO_FLASH = SendResult.rejected(Status.ESME_RSUBMITFAIL, "no provider on the route can send flash")
NO_PROVIDER = SendResult.not_sent(Status.ESME_RSYSERR, "no provider on the route is usable")


class InFlight:
    """Work in progress on each provider object (a send, a message waiting in a
    coalesced batch, a batch request), keyed by the object itself: the replaced and
    the replacing provider of one name are counted apart."""

    def __init__(self) -> None:
        self._busy: dict[int, int] = {}
        self._idle: dict[int, asyncio.Event] = {}

    @contextlib.asynccontextmanager
    async def using(self, provider: Provider) -> AsyncIterator[None]:
        self.enter(provider)
        try:
            yield
        finally:
            self.leave(provider)

    def enter(self, provider: Provider) -> None:
        """One more piece of work on `provider` (`leave` ends it): the send path's plain
        pair, since `using`'s async context manager cost ~1.7 µs per message."""
        key = id(provider)
        self._busy[key] = self._busy.get(key, 0) + 1
        idle = self._idle.get(key)
        if idle is not None:
            idle.clear()

    def leave(self, provider: Provider) -> None:
        key = id(provider)
        self._busy[key] -= 1
        if not self._busy[key]:
            del self._busy[key]
            idle = self._idle.pop(key, None)
            if idle is not None:
                idle.set()

    def busy(self, provider: Provider) -> int:
        """Work in progress on `provider`."""
        return self._busy.get(id(provider), 0)

    async def wait_idle(self, provider: Provider, timeout: float) -> bool:
        """True once nothing is in progress on `provider` (False: timed out)."""
        key = id(provider)
        if not self._busy.get(key):
            return True
        idle = self._idle.setdefault(key, asyncio.Event())
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see bridge.core.tasks
                await idle.wait()
        except TimeoutError:
            return False
        return True


class Sender:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        metrics: Metrics,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
        journal: Journal | None = None,
        in_flight: InFlight | None = None,
    ) -> None:
        self.providers = providers
        self._metrics = metrics
        self._log = log
        self._journal = journal or Journal()  # each attempt goes into the message's history
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._coalescers: dict[str, Coalescer] = {}
        self.in_flight = in_flight if in_flight is not None else InFlight()
        self.on_circuit_closed: Callable[[str], None] | None = None
        self.on_due_set: Callable[[str, float], None] | None = None  # (provider, due time): DueTimers.wake
        self._request_children: dict[tuple[str, ...], Any] = {}
        self._duration_children: dict[tuple[str, ...], Any] = {}

    def breaker(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            settings = self.providers[name].settings
            breaker = CircuitBreaker(
                settings.circuit_failures,
                settings.circuit_reset,
                on_change=lambda state: self._circuit_changed(name, state),
            )
            self._breakers[name] = breaker
        return breaker

    def forget(self, name: str) -> None:
        """Drop a provider's breaker (it was rebuilt with new settings)."""
        if self._breakers.pop(name, None) is not None:
            self._metrics.circuit_open.labels(name).set(0)

    def usable(self, name: str) -> bool:
        """False while the provider's circuit is open (and not yet due a trial)."""
        breaker = self._breakers.get(name)
        return breaker is None or breaker.state is CircuitState.CLOSED or breaker.retry_in(self._clock()) == 0

    def _circuit_changed(self, name: str, state: CircuitState) -> None:
        self._metrics.circuit_open.labels(name).set(1 if state is CircuitState.OPEN else 0)
        log = self._log.info if state is CircuitState.CLOSED else self._log.warning
        log("provider_circuit", provider=name, state=state.value)
        if state is CircuitState.CLOSED and self.on_circuit_closed is not None:
            self.on_circuit_closed(name)

    async def send(self, message: Message) -> tuple[SendResult, str | None]:
        """(result, provider name that gave it)."""
        last: SendResult | None = None
        for name in message.route:
            provider = self.providers.get(name)
            if provider is None:
                continue
            if message.flash and not provider.supports_flash and provider.settings.flash_fallback == "reject":
                last = last or NO_FLASH
                continue
            breaker = self.breaker(name)
            if not breaker.allow(self._clock()):
                last = SendResult.not_sent(
                    Status.ESME_RSYSERR,
                    "circuit open",
                    retry_after=breaker.retry_in(self._clock()),
                    metric="circuit_open",
                )
                labels(self._metrics.upstream_requests, self._request_children, name, "circuit_open").inc()
                self._journal.attempt(message, name, last, None)
                continue
            result = await self._attempt(provider, message)
            if result.outcome in (Outcome.NOT_SENT, Outcome.UNKNOWN) and result.metric != "throttled":
                breaker.record_failure(self._clock())
            else:
                breaker.record_success()
            if result.outcome is not Outcome.NOT_SENT:
                return result, name
            last = result
            self._log.warning(
                "provider_not_sent",
                provider=name,
                message_id=message.id,
                reason=result.reason,
                next_provider=_after(message.route, name),
            )
        return last or NO_PROVIDER, None

    def accepted(self, message: Message, result: SendResult, name: str | None, now: float) -> None:
        """Record on `message` that provider `name` accepted it (`now`: epoch seconds),
        before the store write that saves it: its provider ids, its first due time
        (`Provider.due_after`, stored by that same write), and no more text than needed."""
        message.lifecycle = Lifecycle.ACCEPTED
        message.provider = name
        message.provider_ids = list(result.provider_ids)
        provider = self.providers.get(name) if name is not None else None
        delay = provider.due_after(message) if provider is not None else None
        message.due_at = None if delay is None else now + delay
        message.polls = 0
        message.text = ""  # handed over: keep no more personal data than needed
        if name is not None and message.due_at is not None and self.on_due_set is not None:
            self.on_due_set(name, message.due_at)

    def _coalescer(self, provider: Provider) -> Coalescer | None:
        """The provider's coalescer, when coalescing is on and its API takes batches."""
        settings = provider.settings
        if not settings.coalesce_window or provider.max_batch <= 1:
            return None
        coalescer = self._coalescers.get(provider.name)
        if coalescer is None or coalescer.provider is not provider:
            coalescer = Coalescer(
                provider,
                settings.coalesce_window,
                settings.coalesce_max,
                self._counted_batch(provider),
                self._log,
            )
            self._coalescers[provider.name] = coalescer
        return coalescer

    def _counted_batch(self, provider: Provider) -> Callable[[Sequence[Message]], Awaitable[list[SendResult]]]:
        """`provider.send_batch`, counted in flight for as long as its request runs
        (even if every message waiting for it has been given up on)."""

        async def send_batch(messages: Sequence[Message]) -> list[SendResult]:
            async with self.in_flight.using(provider):
                return await provider.send_batch(messages)

        return send_batch

    async def _attempt(self, provider: Provider, message: Message) -> SendResult:
        started = time.perf_counter()
        coalescer = self._coalescer(provider)
        self.in_flight.enter(provider)  # includes the wait in a coalesced batch
        try:
            result = await (coalescer.send(message) if coalescer is not None else provider.send(message))
        except Exception as exc:  # a connector bug must not become a bridge fault
            self._log.exception("provider_exception", provider=provider.name, message_id=message.id)
            result = SendResult.unknown(f"connector raised {type(exc).__name__}", metric="error")
        finally:
            self.in_flight.leave(provider)
        elapsed = time.perf_counter() - started
        self._journal.attempt(message, provider.name, result, elapsed)
        labels(self._metrics.upstream_requests, self._request_children, provider.name, result.metric).inc()
        labels(self._metrics.upstream_duration, self._duration_children, provider.name).observe(elapsed)
        return result


def _after(route: list[str], name: str) -> str | None:
    index = route.index(name)
    return route[index + 1] if index + 1 < len(route) else None
