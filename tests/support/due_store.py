"""What every Store promises about due times (bridge/store/base.py), checked the same
way on SQLite and on Redis: written with the acceptance, kept while ACCEPTED,
changed by `reschedule`, dropped with the final state, and still there after the
store is closed and opened again (a restart)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bridge.core.message import UPGRADE_DUE, Lifecycle, Message
from bridge.smpp.constants import MessageState
from bridge.store.base import Store
from tests.support.providers import stored_message


def accepted(message_id: int, due_at: float | None, provider: str = "p") -> Message:
    message = stored_message(message_id, Lifecycle.ACCEPTED)
    message.provider, message.due_at = provider, due_at
    return message


def due(found: list[Message]) -> list[tuple[int, float | None, int]]:
    return [(m.id, m.due_at, m.polls) for m in found]


async def check_due_times_survive_a_restart(open_store: Callable[[], Awaitable[Store]]) -> None:
    store = await open_store()
    try:
        queued = stored_message(3, Lifecycle.QUEUED)
        queued.provider, queued.due_at = "p", 999.0  # not accepted: no due time
        await store.insert_messages([accepted(1, 100.0), accepted(2, 300.0), queued, accepted(4, 50.0, "q")])
        assert due(await store.due_messages("p", 200.0)) == [(1, 100.0, 0)]
        assert await store.next_due("p") == 100.0
        [first] = await store.due_messages("p", 200.0)
        first.due_at, first.polls = 500.0, 1
        await store.reschedule([first])
        # An intermediate state of a message read without its due time: the stored one stays.
        second = await store.get_message(2)
        assert second is not None
        second.state, second.due_at = MessageState.ENROUTE, None
        await store.update_messages([second])
        # Accepted from the outbox: the due time comes with the acceptance.
        queued.lifecycle, queued.provider_ids, queued.due_at = Lifecycle.ACCEPTED, ["p-3"], 400.0
        await store.update_messages([queued])
    finally:
        await store.close()

    store = await open_store()  # a restart
    try:
        assert due(await store.due_messages("p", 1000.0)) == [(2, 300.0, 0), (3, 400.0, 0), (1, 500.0, 1)]
        assert due(await store.due_messages("p", 1000.0, limit=1)) == [(2, 300.0, 0)]
        assert due(await store.due_messages("q", 10.0)) == [] and await store.next_due("q") == 50.0
        [second, *_] = await store.due_messages("p", 1000.0)
        second.lifecycle, second.state, second.done_at = Lifecycle.FINAL, MessageState.DELIVERED, 2.0
        await store.update_messages([second])
        second.due_at = 600.0
        await store.reschedule([second])  # too late: it is final
        assert due(await store.due_messages("p", 1000.0)) == [(3, 400.0, 0), (1, 500.0, 1)]
        [third, *_] = await store.due_messages("p", 1000.0)
        third.due_at = None
        await store.reschedule([third])  # nothing more to do for it
        assert due(await store.due_messages("p", 1000.0)) == [(1, 500.0, 1)]
        assert await store.next_due("p") == 500.0
    finally:
        await store.close()


async def check_upgraded(store: Store) -> None:
    """After an upgrade: message 1, accepted by provider "p" before due times were
    stored, is due at once (UPGRADE_DUE); then the store is closed."""
    try:
        [found] = await store.due_messages("p", 0.0)
        assert (found.id, found.due_at, found.polls) == (1, UPGRADE_DUE, 0)
    finally:
        await store.close()
