"""SMPP time formats (v3.4 section 7.1.1): absolute `YYMMDDhhmmsstnnp` and relative
`YYMMDDhhmmss000R`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def parse_smpp_time(text: str, now: float) -> float | None:
    """Unix time of an SMPP time string; None for the empty string. ValueError if
    it is not one."""
    if not text:
        return None
    if len(text) != 16 or not text[:15].isdigit() or text[15] not in "+-R":
        raise ValueError("not an SMPP time")
    yy, mm, dd, hh, mi, ss = (int(text[i : i + 2]) for i in range(0, 12, 2))
    if text[15] == "R":
        # Relative: years and months as 365 / 30 days, which is what SMSCs do.
        return now + timedelta(days=yy * 365 + mm * 30 + dd, hours=hh, minutes=mi, seconds=ss).total_seconds()
    tenths = int(text[12])
    quarters = int(text[13:15])
    if quarters > 48:
        raise ValueError("UTC offset out of range")
    offset = timedelta(minutes=15 * quarters) * (1 if text[15] == "+" else -1)
    local = datetime(2000 + yy, mm, dd, hh, mi, ss, tenths * 100_000, tzinfo=UTC)
    return (local - offset).timestamp()


def format_smpp_time(timestamp: float) -> str:
    """Absolute SMPP time in UTC: YYMMDDhhmmss t 00 +."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%y%m%d%H%M%S") + f"{moment.microsecond // 100_000}00+"
