"""SMPP time formats (testing level 1): v3.4 section 7.1.1, absolute and relative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.smpp.times import format_smpp_time, parse_smpp_time

NOW = datetime(2024, 6, 15, 12, 0, 0, tzinfo=UTC).timestamp()


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_empty_is_no_time() -> None:
    assert parse_smpp_time("", NOW) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("240131235959000+", utc(2024, 1, 31, 23, 59, 59)),
        ("240131235959000-", utc(2024, 1, 31, 23, 59, 59)),
        ("240131235959300+", utc(2024, 1, 31, 23, 59, 59) + 0.3),
        # local time 1 hour ahead of UTC: 23:59:59 local is 22:59:59 UTC
        ("240131235959004+", utc(2024, 1, 31, 22, 59, 59)),
        # local time 1 hour behind UTC
        ("240131235959004-", utc(2024, 2, 1, 0, 59, 59)),
        ("240131235959022+", utc(2024, 1, 31, 18, 29, 59)),  # +05:30 (India)
        ("240131235959048-", utc(2024, 2, 1, 11, 59, 59)),  # the largest offset, 12 hours
        ("000101000000000+", utc(2000, 1, 1, 0, 0, 0)),
        ("991231235959900+", utc(2099, 12, 31, 23, 59, 59) + 0.9),
        ("240229120000000+", utc(2024, 2, 29, 12, 0, 0)),  # leap day
    ],
)
def test_absolute_time(text: str, expected: float) -> None:
    assert parse_smpp_time(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("000000000000000R", timedelta(0)),
        ("000001000000000R", timedelta(days=1)),
        ("000000010203000R", timedelta(hours=1, minutes=2, seconds=3)),
        ("000100000000000R", timedelta(days=30)),
        ("010000000000000R", timedelta(days=365)),
        ("000002120000000R", timedelta(days=2, hours=12)),
    ],
)
def test_relative_time(text: str, delta: timedelta) -> None:
    assert parse_smpp_time(text, NOW) == pytest.approx(NOW + delta.total_seconds())


@pytest.mark.parametrize(
    "text",
    [
        "2401312359590",  # too short
        "24013123595900+",  # 15 characters
        "2401312359590000+",  # 17 characters
        "240131235959000X",  # no +, - or R
        "2401312a5959000+",  # not digits
        "241331235959000+",  # month 13
        "240230000000000+",  # 30 February
        "240131245959000+",  # hour 24
        "240131236059000+",  # minute 60
        "240131235959049+",  # offset beyond 48 quarter hours
        " 40131235959000+",
        "²40131235959000+",
    ],
)
def test_malformed_time_is_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_smpp_time(text, NOW)


def test_format_absolute_time_in_utc() -> None:
    assert format_smpp_time(utc(2024, 1, 31, 23, 59, 59) + 0.35) == "240131235959300+"
    assert format_smpp_time(utc(2000, 1, 1, 0, 0, 0)) == "000101000000000+"


@pytest.mark.parametrize("timestamp", [NOW, NOW + 0.1, utc(2031, 7, 4, 5, 6, 7) + 0.9])
def test_format_parse_round_trip(timestamp: float) -> None:
    text = format_smpp_time(timestamp)
    assert len(text) == 16
    assert parse_smpp_time(text, 0.0) == pytest.approx(timestamp)
