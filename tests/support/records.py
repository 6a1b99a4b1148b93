"""The built-in simulator's `record_path` file: one JSON object per message the
"provider" accepted (id, message_id, to, from, text, flash)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def simulator_records(path: Path) -> list[dict[str, Any]]:
    """Every record, oldest first; none if the file does not exist yet. A line cut
    short by a SIGKILL is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def simulator_texts(path: Path) -> list[str]:
    return [record["text"] for record in simulator_records(path)]
