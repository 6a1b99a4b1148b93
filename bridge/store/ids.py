"""Where a store's message_id counter starts and how it wraps (both stores reserve
id blocks the same way; `Store.reserve_ids` says what the caller gets)."""

from __future__ import annotations

from bridge.core.ports import MAX_MESSAGE_ID

# Blocks looked at before a store gives up finding free ids (it would have to be full).
MAX_ID_PROBES = 10_000


def id_seed(now: float) -> int:
    """Where a new counter starts (a fresh store, or one whose counter is outside the
    range, from before ids were bounded): the clock in milliseconds folded into the
    range, so ids of a deleted store stay unused unless it averaged over 1000/s."""
    return int(now * 1000) % MAX_MESSAGE_ID + 1


def wrapped(first: int, count: int) -> int:
    """`first`, or 1 when a block of `count` from there would leave the range."""
    return first if first >= 1 and first + count - 1 <= MAX_MESSAGE_ID else 1
