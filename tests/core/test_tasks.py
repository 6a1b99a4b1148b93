"""`run_together`: the jobs of one read run concurrently and all end before it returns;
a cancellation reaches every job; a job's exception is not lost."""

from __future__ import annotations

import asyncio

import pytest

from bridge.core.tasks import run_together


async def test_jobs_run_concurrently_and_all_end_before_it_returns() -> None:
    started: list[int] = []
    ended: list[int] = []
    go = asyncio.Event()

    async def job(n: int) -> None:
        started.append(n)
        if len(started) == 3:
            go.set()
        await go.wait()  # no job can end before every one has started: they run side by side
        ended.append(n)

    await asyncio.wait_for(run_together([job(1), job(2), job(3)]), 10)
    assert sorted(ended) == [1, 2, 3]


async def test_no_jobs_returns_at_once() -> None:
    await asyncio.wait_for(run_together([]), 10)


async def test_cancelling_the_caller_cancels_every_job_and_waits_for_them() -> None:
    waiting: list[int] = []
    all_waiting = asyncio.Event()
    cancelled: list[int] = []

    async def job(n: int) -> None:
        waiting.append(n)
        if len(waiting) == 2:
            all_waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # still cleaning up: the caller waits for this
            cancelled.append(n)
            raise

    caller = asyncio.ensure_future(run_together([job(1), job(2)]))
    await asyncio.wait_for(all_waiting.wait(), 10)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, 10)
    assert sorted(cancelled) == [1, 2]


async def test_a_job_that_raises_reaches_the_caller_after_the_others_ended() -> None:
    ended: list[str] = []

    async def broken() -> None:
        raise RuntimeError("bug")

    async def fine() -> None:
        await asyncio.sleep(0)
        ended.append("fine")

    with pytest.raises(RuntimeError, match="bug"):
        await asyncio.wait_for(run_together([broken(), fine()]), 10)
    assert ended == ["fine"]
