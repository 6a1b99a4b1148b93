"""The backoff of delivery-status polling, shared by the connectors whose provider
must be asked (FlashSMS always, Kaleyra when no callback came).

A message is first polled `interval` seconds after its acceptance (its first due
time, `Provider.due_after`), then after twice that per poll so far, capped at
`interval_max`, and never sooner than a provider's Retry-After. The due times and
the poll counts live in the store (`Message.due_at`, `Message.polls`), so a restart
or another instance of a cluster goes on with the same backoff.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.core.message import Message
from bridge.smpp.constants import MessageState


def next_poll(now: float, interval: float, interval_max: float, polls: int, at_least: float | None = None) -> float:
    """When to poll again after the poll number `polls` (1 for the first): `interval`
    doubled per poll done, at most `interval_max`, at least `at_least` seconds."""
    delay = min(interval * 2 ** min(polls, 64), interval_max)
    return now + max(delay, at_least or 0.0)


def hold_off(due: list[float | None], positions: Iterable[int], wait: float | None, now: float) -> None:
    """A refused poll (429, 5xx): the next poll of the messages at `positions` no
    sooner than the provider's Retry-After (`wait` seconds; None: the backoff stands)."""
    if wait is None:
        return
    for i in positions:
        at = due[i]
        if at is not None:
            due[i] = max(at, now + wait)


def worth_reporting(message: Message, state: MessageState) -> bool:
    """A polled status is reported when it is final or differs from the last one
    reported, not at every poll."""
    return state.is_final or state is not message.state
