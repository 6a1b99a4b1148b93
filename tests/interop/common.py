"""Small helpers shared by the interop tests."""

from __future__ import annotations

import importlib
import json
import sqlite3
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.records import simulator_records

# The account every client binds with (tests/interop/conftest.py: interop_bridge).
SYSTEM_ID = "esme1"
PASSWORD = "secret1"
WRONG_PASSWORD = "wrong1"
# Realistic international numbers (TON 1, NPI 1): a German landline sends to German
# mobiles; the simulator refuses any destination starting with 999 (ESME_RINVDSTADR).
SENDER = "493012345678"
REFUSED_DESTINATION = "9991234567"


def destination(n: int) -> str:
    """A distinct valid German mobile number per message of a test."""
    return f"49151234567{n:02d}"


def receipt_fields(text: str) -> dict[str, str]:
    """The `key:value` fields of an SMSC delivery receipt (SMPP 3.4 Appendix B), as
    written in the spec: `id:... sub:... dlvrd:... submit date:... done date:...
    stat:... err:... text:...` (text runs to the end)."""
    head, _, rest = text.partition(" text:")
    fields = {"text": rest}
    for name in ("err", "stat", "done date", "submit date", "dlvrd", "sub", "id"):
        head, _, value = head.rpartition(f"{name}:")
        fields[name] = value.strip()
    return fields


def seed_next_id(database: Path, first: int) -> None:
    """Make a fresh SQLite store hand out message ids from `first` on (the store takes
    its next id block from meta.next_id), e.g. hex ids made only of digits."""
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?)", (first,))
    db.close()


def account(system_id: str = SYSTEM_ID, password: str = PASSWORD, message_id_format: str = "decimal") -> dict[str, Any]:
    """An [[accounts]] entry for local clients, routed to the simulator `sim`, unthrottled."""
    return {
        "system_id": system_id,
        "password": password,
        "allowed_networks": ["127.0.0.0/8"],
        "throughput": 0,
        "route": "sim",
        "message_id_format": message_id_format,
    }


def provider_records(tmp_path: Path) -> list[dict[str, Any]]:
    """What the simulator of `interop_bridge` accepted (tests/interop/conftest.py)."""
    return simulator_records(tmp_path / "records.jsonl")


def assert_provider_got(tmp_path: Path, to: str, text: str, flash: bool = False) -> None:
    """The simulator accepted exactly one message: this one, from SENDER, whole."""
    [record] = provider_records(tmp_path)
    assert (record["to"], record["from"], record["text"], record["flash"]) == (to, SENDER, text, flash)


def run_json_driver(command: list[str], spec: dict[str, Any], timeout: float = 30) -> Any:
    """Run a driver that reads its scenario as JSON on stdin and prints one JSON report
    (tests/interop/node/esme.js, tests/interop/perl/esme.pl)."""
    result = subprocess.run(command, input=json.dumps(spec), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def require(available: bool, what: str, how: str) -> None:
    """Skip unless `available` (under CI a skip fails: tests/conftest.py)."""
    if not available:
        pytest.skip(f"{what} is missing: {how}", allow_module_level=True)


def python_client(module: str, requirement: str) -> ModuleType:
    """Import a client library of the `test` extra (skip as `require` does)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        require(False, requirement, "pip install -e '.[test]'")
        raise
