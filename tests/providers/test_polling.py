"""The polling backoff shared by Kaleyra and FlashSMS (their documents' "poll, then
back off" as docs/providers/*.md state it: first after poll_interval, doubling up
to poll_interval_max, never sooner than Retry-After)."""

from __future__ import annotations

from bridge.core.message import Message
from bridge.providers.polling import hold_off, next_poll, worth_reporting
from bridge.smpp.constants import MessageState
from tests.support.providers import make_message


def test_the_wait_doubles_per_poll_up_to_the_cap() -> None:
    # FlashSMS's documented defaults: 30 s, 1, 2, 4, 8, 16, 32 min, then hourly.
    waits = [next_poll(1000.0, 30, 3600, polls) - 1000.0 for polls in range(1, 9)]
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_retry_after_wins_over_a_shorter_backoff_only() -> None:
    assert next_poll(1000.0, 1, 10, 1, at_least=60) == 1060
    assert next_poll(1000.0, 30, 3600, 3, at_least=5) == 1240


def test_a_refused_poll_holds_off_what_still_has_a_next_poll() -> None:
    due: list[float | None] = [1010.0, None, 1100.0]
    hold_off(due, [0, 1, 2], 60, now=1000.0)
    assert due == [1060.0, None, 1100.0]
    hold_off(due, [0], None, now=1000.0)
    assert due == [1060.0, None, 1100.0]


def test_a_status_is_reported_when_it_changes_or_is_final() -> None:
    message: Message = make_message()
    assert worth_reporting(message, MessageState.ENROUTE)
    message.state = MessageState.ENROUTE
    assert not worth_reporting(message, MessageState.ENROUTE)
    assert worth_reporting(message, MessageState.DELIVERED)
