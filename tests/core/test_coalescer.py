"""Coalescer: the same text from one account to several destinations within the
window shares one request; each message still gets its own result."""

from __future__ import annotations

import asyncio

from bridge.core.coalesce import Coalescer
from bridge.core.ports import Outcome, SendResult
from tests.core.fakes import FakeProvider, RecordingLog
from tests.support.providers import make_message


def coalescer(provider: FakeProvider, window: float = 0.05, limit: int = 0) -> tuple[Coalescer, RecordingLog]:
    log = RecordingLog()
    return Coalescer(provider, window, limit, provider.send_batch, log), log


async def test_same_text_within_the_window_is_one_request_with_a_result_each() -> None:
    provider = FakeProvider(max_batch=10)
    c, _ = coalescer(provider)
    messages = [make_message("Sale", to=f"4917000000{i}", message_id=i) for i in range(3)]
    results = await asyncio.gather(*(c.send(m) for m in messages))
    assert provider.batches == [[0, 1, 2]]
    assert [r.provider_ids for r in results] == [("p-0",), ("p-1",), ("p-2",)]


async def test_different_texts_and_a_repeated_destination_go_in_separate_requests() -> None:
    provider = FakeProvider(max_batch=10)
    c, _ = coalescer(provider)
    messages = [
        make_message("A", to="491700000001", message_id=1),
        make_message("B", to="491700000002", message_id=2),
        make_message("A", to="491700000001", message_id=3),  # same destination again: a new batch
    ]
    await asyncio.gather(*(c.send(m) for m in messages))
    assert sorted(provider.batches) == [[1], [2], [3]]


async def test_a_full_batch_leaves_at_once_at_the_limit() -> None:
    provider = FakeProvider(max_batch=10)
    c, _ = coalescer(provider, window=3600, limit=2)  # the window alone would never end
    messages = [make_message("Hi", to=f"4917000000{i}", message_id=i) for i in range(2)]
    results = await asyncio.wait_for(asyncio.gather(*(c.send(m) for m in messages)), 10)
    assert provider.batches == [[0, 1]] and all(r.outcome is Outcome.ACCEPTED for r in results)


async def test_a_batch_send_that_raises_is_unknown_for_each_message_and_logged_with_its_traceback() -> None:
    provider = FakeProvider(max_batch=10, results=[RuntimeError("connector bug")])
    c, log = coalescer(provider)
    messages = [make_message("Hi", to=f"4917000000{i}", message_id=i) for i in range(2)]
    results = await asyncio.gather(*(c.send(m) for m in messages))
    assert [r.outcome for r in results] == [Outcome.UNKNOWN, Outcome.UNKNOWN]
    assert log.with_traceback("batch_send_failed")


async def test_a_batch_answer_with_the_wrong_number_of_results_strands_no_message() -> None:
    provider = FakeProvider(max_batch=10)

    async def short_answer(messages: object) -> list[SendResult]:
        return [SendResult.accepted("only-one")]

    log = RecordingLog()
    c = Coalescer(provider, 0.01, 0, short_answer, log)
    messages = [make_message("Hi", to=f"4917000000{i}", message_id=i) for i in range(2)]
    results = await asyncio.wait_for(asyncio.gather(*(c.send(m) for m in messages)), 10)
    assert [r.outcome for r in results] == [Outcome.UNKNOWN, Outcome.UNKNOWN]
    assert log.events("batch_results_mismatch")
