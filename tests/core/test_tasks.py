"""`run_together`: the jobs of one read run concurrently and all end before it returns;
a cancellation reaches every job; a job's exception is not lost. `TurnWrite.add_own`:
an item's own future is settled with the turn's write, and cancelling it is its own."""

from __future__ import annotations

import asyncio

import pytest

from bridge.core.tasks import TurnWrite, run_together


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


async def test_a_turn_write_item_with_a_future_of_its_own_cancelled_leaves_the_others_alone() -> None:
    """`TurnWrite.add_own`: one write for the turn; cancelling one item's future (its
    awaiter gone) neither cancels the write nor the futures of the turn's other items."""
    written: list[list[str]] = []
    committed: list[list[str]] = []

    async def write(items: list[str]) -> None:
        written.append(list(items))

    turn: TurnWrite[str] = TurnWrite(write, committed.append)
    shared_a, own_a = turn.add_own("a")
    shared_b, own_b = turn.add_own("b")
    assert shared_a is shared_b and own_a is not own_b
    own_a.cancel()
    await own_b
    assert written == [["a", "b"]] and committed == [["a", "b"]]
    assert own_a.cancelled() and shared_a.result() is None


async def test_a_failed_turn_write_fails_every_future_of_its_own() -> None:
    async def write(items: list[str]) -> None:
        raise RuntimeError("store down")

    turn: TurnWrite[str] = TurnWrite(write)
    owns = [turn.add_own(item)[1] for item in ("a", "b")]
    for own in owns:
        with pytest.raises(RuntimeError, match="store down"):
            await own
