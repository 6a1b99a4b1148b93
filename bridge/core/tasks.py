"""Background tasks that are never lost silently.

A `Tasks` set keeps each task it spawned until the task ends, logs a task that dies
with an exception (with its traceback) the moment it does, and on `cancel` cancels
and awaits every task still running, so that nothing outlives the part that
started it. `wait` lets the running ones finish first (a drain with a deadline).

A task that may be cancelled (every task here, at stop) bounds a wait with
`asyncio.timeout()`, never `asyncio.wait_for()`: on Python 3.11, when what wait_for
awaits completes in the very loop turn the task is cancelled (an event set as the
stop comes), wait_for returns its result and the cancellation is lost
(bpo-42130, fixed in 3.12), so the task goes on (a due timer, a provider check) and
`cancel` waits for it for ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Tasks:
    def __init__(self, log: Any, name: str) -> None:
        self._log = log
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)  # (ensure_future's checks: Python code per read)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._log.error("task_failed", task=self._name, error=repr(error), exc_info=error)

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task: object) -> bool:
        return task in self._tasks

    async def wait(self, timeout: float) -> bool:
        """Let the running tasks (and any they spawn meanwhile) finish, up to `timeout`
        seconds; True when none is left."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.wait(list(self._tasks), timeout=remaining)
        return True

    async def cancel(self) -> None:
        """Cancel every running task and wait until each has ended."""
        while self._tasks:
            running = list(self._tasks)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)


async def run_together(jobs: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run `jobs` concurrently, each in its own task, until all have ended:
    `asyncio.gather(*jobs)` for jobs that handle their own errors, at less than
    half its cost per job on uvloop (no per-job results or bookkeeping: ~1 µs each
    less, and this runs once per message in `ack = "upstream"`). As with gather, a
    cancellation of the caller cancels every job, and an exception of a job (a bug)
    reaches the caller; unlike gather, the caller hears of it once all have ended."""
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    left = len(jobs)

    def one_ended(_: asyncio.Task[None]) -> None:
        nonlocal left
        left -= 1
        if not left and not ended.done():
            ended.set_result(None)

    tasks = [loop.create_task(job) for job in jobs]
    for task in tasks:
        task.add_done_callback(one_ended)
    try:
        if left:
            await ended
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # cancelled, they end first
        raise
    for task in tasks:
        if task.cancelled():
            raise asyncio.CancelledError
        error = task.exception()
        if error is not None:
            raise error


class TurnWrite(Generic[T]):
    """What one event-loop turn adds, written by one call at the turn's end: the
    submits accepted upstream and the provider reports each come one HTTP answer at
    a time, and one store write (one transaction) for all of a turn's costs about
    what one write for each would.

    `add` returns the future of that write, shared by everything added in the turn.
    `write(items)` starts it (a store that is closed may raise at once: the future
    gets the error); once it has succeeded, `committed(items)` runs before the future
    settles. A future cancelled by its awaiters stays cancelled. `add_own` also gives
    the item a future of its own, settled with the shared one: cancelling it
    leaves the turn's other awaiters alone (what `asyncio.shield` of the shared
    future would do, without its two callbacks per awaiter)."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[None]],
        committed: Callable[[list[T]], None] | None = None,
    ) -> None:
        self._write = write
        self._committed = committed
        self._future: asyncio.Future[None] | None = None
        self._items: list[T] = []
        self._own: list[asyncio.Future[None]] = []

    def add(self, item: T) -> asyncio.Future[None]:
        future = self._future
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._future = loop.create_future()
            loop.call_soon(self._flush)
        self._items.append(item)
        return future

    def add_own(self, item: T) -> tuple[asyncio.Future[None], asyncio.Future[None]]:
        """(the turn's shared future, the item's own)."""
        shared = self.add(item)
        own = shared.get_loop().create_future()
        self._own.append(own)
        return shared, own

    def _flush(self) -> None:
        future, items, own = self._future, self._items, self._own
        self._future, self._items, self._own = None, [], []
        assert future is not None
        try:
            write = asyncio.ensure_future(self._write(items))
        except Exception as exc:  # a store that is closed says so at once
            _fail(future, exc)
            for each in own:
                _fail(each, exc)
            return
        write.add_done_callback(lambda done: self._settle(future, items, own, done))

    def _settle(
        self, future: asyncio.Future[None], items: list[T], own: list[asyncio.Future[None]], done: asyncio.Future[None]
    ) -> None:
        if done.cancelled():
            for each in (future, *own):
                if not each.done():
                    each.cancel()
            return
        error = done.exception()
        if error is not None:
            _fail(future, error)
            for each in own:
                _fail(each, error)
            return
        try:
            if self._committed is not None:
                self._committed(items)
        finally:
            for each in (future, *own):
                if not each.done():
                    each.set_result(None)


def _fail(future: asyncio.Future[None], error: BaseException) -> None:
    """Fail `future`, its error marked as retrieved: each awaiter raises it on its own,
    and a turn nobody awaits any more is not logged as a lost exception."""
    if not future.done():
        future.set_exception(error)
        future.exception()
