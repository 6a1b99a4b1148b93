"""Sender with fake providers and a fake clock: failover (DESIGN.md "Failover and
retries"), the circuit breaker, flash fallback, connector bugs, and the count of
work in flight per provider object that a reload waits for."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from bridge.core.message import Message
from bridge.core.ports import Outcome, Provider, SendResult
from bridge.core.sender import Sender
from bridge.metrics import Metrics
from bridge.smpp.constants import Status
from tests.core.fakes import FakeClock, FakeProvider, RecordingLog
from tests.support.providers import make_message

NOT_SENT = SendResult.not_sent(Status.ESME_RSYSERR, "HTTP 503")
REJECTED = SendResult.rejected(Status.ESME_RINVDSTADR, "bad number")
UNKNOWN = SendResult.unknown("read timeout")


def routed(*route: str, **kw: Any) -> Message:
    message = make_message(**kw)
    message.route = list(route)
    return message


def requested(provider: FakeProvider) -> asyncio.Event:
    """Set once `provider` has a request under way."""
    event = asyncio.Event()
    provider.on_send = lambda message: event.set()
    return event


def sender(providers: dict[str, Provider], clock: FakeClock | None = None) -> tuple[Sender, RecordingLog]:
    log = RecordingLog()
    return Sender(providers, Metrics(), log, clock=clock or FakeClock()), log


async def test_not_sent_fails_over_to_the_next_provider() -> None:
    a, b = FakeProvider("a", results=[NOT_SENT]), FakeProvider("b")
    s, log = sender({"a": a, "b": b})
    result, name = await s.send(routed("a", "b"))
    assert (result.outcome, name) == (Outcome.ACCEPTED, "b")
    assert log.events("provider_not_sent")[0]["next_provider"] == "b"


async def test_rejected_and_unknown_stop_at_the_provider_that_said_so() -> None:
    for answer in (REJECTED, UNKNOWN):
        a, b = FakeProvider("a", results=[answer]), FakeProvider("b")
        s, _ = sender({"a": a, "b": b})
        result, name = await s.send(routed("a", "b"))
        assert (result, name) == (answer, "a")
        assert b.sent == []  # never sent twice


async def test_every_provider_not_sending_returns_the_last_answer() -> None:
    a = FakeProvider("a", results=[NOT_SENT])
    s, _ = sender({"a": a})
    assert await s.send(routed("a", "gone")) == (NOT_SENT, None)


async def test_flash_skips_a_provider_that_rejects_flash_and_sends_plain_where_allowed() -> None:
    strict = FakeProvider("strict", flash_fallback="reject")
    plain = FakeProvider("plain", flash_fallback="normal")
    s, _ = sender({"strict": strict, "plain": plain})
    result, name = await s.send(routed("strict", "plain", flash=True))
    assert (result.outcome, name) == (Outcome.ACCEPTED, "plain") and strict.sent == []
    s, _ = sender({"strict": strict})
    result, name = await s.send(routed("strict", flash=True))
    assert (result.outcome, result.status, name) == (Outcome.REJECTED, Status.ESME_RSUBMITFAIL, None)


async def test_the_circuit_opens_after_failures_in_a_row_and_a_closing_trial_wakes_the_outbox() -> None:
    clock = FakeClock()
    a = FakeProvider("a", results=[NOT_SENT, NOT_SENT], circuit_failures=2, circuit_reset=30)
    s, _ = sender({"a": a}, clock)
    woken: list[str] = []
    s.on_circuit_closed = woken.append
    for _ in range(2):
        await s.send(routed("a"))
    assert not s.usable("a")
    result, _ = await s.send(routed("a"))
    assert result.metric == "circuit_open" and len(a.sent) == 2  # not even tried
    clock.advance(30)
    assert s.usable("a")
    result, _ = await s.send(routed("a"))  # the trial
    assert result.outcome is Outcome.ACCEPTED and woken == ["a"]


async def test_a_connector_that_raises_is_unknown_and_logged_with_its_traceback() -> None:
    a = FakeProvider("a", results=[RuntimeError("bug")])
    s, log = sender({"a": a})
    result, name = await s.send(routed("a"))
    assert (result.outcome, name) == (Outcome.UNKNOWN, "a")
    assert log.with_traceback("provider_exception")


async def test_work_in_flight_is_counted_per_provider_object_for_plain_and_coalesced_sends() -> None:
    plain = FakeProvider("plain")
    batched = FakeProvider("batched", max_batch=10, coalesce_window=0.01)
    s, _ = sender({"plain": plain, "batched": batched})
    for provider in (plain, batched):
        provider.gate = asyncio.Event()
        sending = asyncio.ensure_future(s.send(routed(provider.name)))
        await asyncio.wait_for(requested(provider).wait(), 10)
        assert s.in_flight.busy(provider) > 0
        assert not await s.in_flight.wait_idle(provider, 0.05)
        provider.gate.set()
        assert await s.in_flight.wait_idle(provider, 10)
        assert (await sending)[0].outcome is Outcome.ACCEPTED
        assert s.in_flight.busy(provider) == 0
    assert batched.batches  # the coalesced path went through send_batch


async def test_a_coalesced_batch_counts_as_in_flight_while_its_request_runs_even_if_its_caller_gave_up() -> None:
    batched = FakeProvider("batched", max_batch=10, coalesce_window=0.01)
    batched.gate = asyncio.Event()
    s, _ = sender({"batched": batched})
    request = requested(batched)
    sending = asyncio.ensure_future(s.send(routed("batched")))
    await asyncio.wait_for(request.wait(), 10)
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    assert s.in_flight.busy(batched) == 1  # the HTTP request is still under way
    batched.gate.set()
    assert await s.in_flight.wait_idle(batched, 10)


def test_an_answered_result_keeps_every_field_and_notes_the_http_answer() -> None:
    """`answered` copies the result field by field: every field keeps its value, the
    HTTP status and the provider's code are noted, the code cut at 64."""
    result = SendResult(
        Outcome.NOT_SENT, Status.ESME_RTHROTTLED, ("a", "b"), 7.5, "throttled", "throttled", None, "OLD"
    )
    noted = result.answered(429, "X" * 70)
    assert noted == dataclasses.replace(result, http_status=429, provider_code="X" * 64)
    assert result.answered(503).provider_code == "OLD"
