"""kill -9 under load, restart, repeat: nothing acknowledged is lost (tests/crash_scenario.py)."""

from __future__ import annotations

from pathlib import Path

from tests import crash_scenario


def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    report = crash_scenario.run(tmp_path, kills=3, seconds=6, seed=20261123)
    assert report["kills"] == 3
    assert all(n > 0 for n in report["acked"].values())
    assert report["lost"] == []
    duplicates = report["duplicates"]
    assert isinstance(duplicates, dict)
    assert sum(n - 1 for n in duplicates.values()) <= report["duplicates_counted"]
    assert all(text.startswith("st-") for text in duplicates)  # only the outbox ever sends again
    assert report["missing_receipts"] == {"up": [], "st": []}
    assert report["not_delivered"] == {"up": [], "st": []}
    assert report["reused_ids"] == 0
    assert report["exit_code"] == 0
