"""IdAllocator with a fake store: ids come from blocks the store reserved, are never
handed out twice, and a store that refuses is the caller's error, not a hang."""

from __future__ import annotations

import asyncio

import pytest

from bridge.core.ids import IdAllocator
from bridge.core.ports import StoreUnavailable
from tests.core.fakes import FakeStore


async def test_ids_are_consecutive_and_the_next_block_is_reserved_before_the_first_runs_out() -> None:
    store = FakeStore()
    ids = IdAllocator(store, block=8)
    got = [await ids.next_id() for _ in range(7)]
    assert got == list(range(1000, 1007))
    await asyncio.sleep(0)  # the refill started when fewer than a quarter were left
    assert store.reserved == [8, 8]
    assert [await ids.next_id() for _ in range(3)] == [1007, 1008, 1009]


async def test_concurrent_callers_never_get_the_same_id() -> None:
    store = FakeStore()
    ids = IdAllocator(store, block=10)
    got = await asyncio.gather(*(ids.next_id() for _ in range(95)))
    assert len(set(got)) == 95
    assert sum(store.reserved) <= 95 + 2 * 10  # blocks are taken one at a time, not one per caller


async def test_two_allocators_on_one_store_hand_out_disjoint_ids() -> None:
    store = FakeStore()
    first, second = IdAllocator(store, block=4), IdAllocator(store, block=4)
    a = [await first.next_id() for _ in range(10)]
    b = [await second.next_id() for _ in range(10)]
    assert not set(a) & set(b)


async def test_a_store_that_refuses_raises_to_the_caller_and_the_next_call_works() -> None:
    store = FakeStore()
    store.fail_reserve = StoreUnavailable("disk full")
    ids = IdAllocator(store, block=4)
    with pytest.raises(StoreUnavailable):
        await ids.next_id()
    store.fail_reserve = None
    assert await ids.next_id() == 1000


async def test_take_hands_out_the_block_in_hand_without_an_await_and_none_once_it_is_used_up() -> None:
    store = FakeStore()
    ids = IdAllocator(store, block=4)
    assert not ids.has_id() and ids.take() is None  # no block yet: await next_id
    first = await ids.next_id()
    assert [ids.take() for _ in range(3)] == [first + 1, first + 2, first + 3]
    assert not ids.has_id() and ids.take() is None  # used up (the next block is still on its way)
    assert await ids.next_id() == first + 4
