"""The shared poll schedule, driven with a fake clock."""

from __future__ import annotations

from bridge.providers.polling import PollSchedule
from tests.support.clock import Clock


async def test_keys_come_due_in_order_and_back_off_to_the_cap() -> None:
    clock = Clock()
    schedule = PollSchedule(clock, interval=30, interval_max=100)
    schedule.watch("b", since=1000, due=1040)
    schedule.watch("a", since=1000, due=1030)
    assert schedule.due(1029, limit=10) == []
    assert schedule.next_due() == 1030
    assert schedule.due(1040, limit=10) == ["a", "b"]
    clock.now = 1040
    schedule.reschedule(["a"])  # first poll done: 2 x 30
    assert schedule.watches["a"].due == 1100
    schedule.reschedule(["a"])  # 4 x 30, capped at 100
    assert schedule.watches["a"].due == 1140


async def test_retry_after_wins_over_a_shorter_backoff_and_forget_removes() -> None:
    clock = Clock()
    schedule = PollSchedule(clock, interval=1, interval_max=10)
    schedule.watch("k", since=1000, due=1000)
    schedule.reschedule(["k"], at_least=60)
    assert schedule.watches["k"].due == 1060
    schedule.forget("k")
    assert schedule.due(2000, limit=10) == [] and schedule.next_due() is None


async def test_watching_twice_keeps_the_first_watch_and_limits_batches() -> None:
    schedule = PollSchedule(Clock(), interval=1, interval_max=10)
    first = schedule.watch("k", since=1, due=5)
    assert schedule.watch("k", since=2, due=9) is first
    for key in ("x", "y", "z"):
        schedule.watch(key, since=1, due=5)
    assert len(schedule.due(10, limit=2)) == 2
    assert len(schedule.due(10, limit=10)) == 2
