"""Crash safety: load from real smpplib clients while the daemon is killed with SIGKILL.

Runs the real daemon as a process (`python -m bridge run`) with two accounts, one
`ack = "upstream"` and one `ack = "stored"`, both on the built-in simulator with a
record file (one JSON line per message the "provider" accepted). ESME threads
submit unique texts as fast as they are answered and reconnect whenever the
daemon disappears; a killer thread SIGKILLs and restarts the daemon at random
moments. Afterwards the daemon runs until every acknowledged message has its
receipt, and the scenario checks:

- every message that got ESME_ROK reached the provider (the record);
- texts the provider got twice are no more than the duplicates the daemon counted
  and logged ("possible_duplicate"), and only stored-mode messages;
- every acknowledged message's receipt arrived (DELIVRD, same id);
- no message_id was handed out twice.

`tests/test_crash.py` runs it briefly; run it longer by hand:

    python -m tests.crash_scenario --kills 30 --seconds 120
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from bridge.smpp.constants import Status
from tests.support.daemon import Daemon as BridgeProcess
from tests.support.esme import Esme
from tests.support.records import simulator_texts

ACCOUNTS = {"up": "upstream", "st": "stored"}

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
system_id = "CRASHTEST"
shutdown_timeout = 5

[http]
host = "127.0.0.1"
port = {http_port}

[store]
url = "sqlite:///{db}"

[log]
level = "info"
format = "json"

[[accounts]]
system_id = "up"
password = "pw"
throughput = 0
ack = "upstream"
route = "sim"

[[accounts]]
system_id = "st"
password = "pw"
throughput = 0
ack = "stored"
route = "sim"

[providers.sim]
type = "simulator"
delivery_delay = 0.2
record_path = "{record}"
"""


@dataclass
class Outcome:
    acked: dict[str, dict[str, str]] = field(default_factory=lambda: {name: {} for name in ACCOUNTS})
    receipts: dict[str, dict[str, str]] = field(default_factory=lambda: {name: {} for name in ACCOUNTS})
    all_acked_ids: list[str] = field(default_factory=list)
    kills: int = 0
    submits_refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Report(TypedDict):
    """What `run` found: counts, and the texts / message_ids that went wrong."""

    kills: int
    acked: dict[str, int]  # per account
    refused: int
    provider_messages: int
    lost: list[str]
    duplicates: dict[str, int]  # text: times the provider got it
    duplicates_counted: int
    missing_receipts: dict[str, list[str]]  # per account
    not_delivered: dict[str, list[str]]
    reused_ids: int
    exit_code: int


class Daemon(BridgeProcess):
    """The daemon under test, and what it logged and sent."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, CONFIG, db=workdir / "bridge.db", record=workdir / "provider.jsonl")
        self.record = workdir / "provider.jsonl"

    def logged(self, event: str) -> int:
        return len(self.events(event))


def esme_worker(daemon: Daemon, account: str, worker: int, outcome: Outcome, stop: threading.Event) -> None:
    """Submit unique texts; reconnect after every crash; collect receipts."""
    n = 0
    client: Esme | None = None
    while not stop.is_set():
        try:
            if client is None:
                client = Esme(daemon.smpp_port, timeout=5)
                if client.bind(system_id=account, password="pw").status != Status.ESME_ROK:
                    raise ConnectionError("bind refused")
            text = f"{account}-{worker}-{n}"
            n += 1
            resp = client.submit(text=text.encode(), destination="4917012345", registered_delivery=1)
            _collect(client, account, outcome)
            with outcome.lock:
                if resp.status == Status.ESME_ROK:
                    message_id = resp.message_id.decode()
                    outcome.acked[account][message_id] = text
                    outcome.all_acked_ids.append(message_id)
                else:
                    outcome.submits_refused += 1
        except Exception:  # the daemon was killed under us: connect again
            if client is not None:
                _collect(client, account, outcome)
                client.close()
            client = None
            stop.wait(0.05)
    if client is not None:
        client.close()


def _collect(client: Esme, account: str, outcome: Outcome) -> None:
    with outcome.lock:
        for receipt in client.receipts():
            outcome.receipts[account][receipt["id"]] = receipt["stat"]
    client.delivered.clear()


def receipt_reader(daemon: Daemon, account: str, outcome: Outcome, until: float) -> None:
    """After the load: bind a receiver and read receipts until all are in or time is up."""
    while time.monotonic() < until:
        try:
            client = Esme(daemon.smpp_port, timeout=5)
            if client.bind("receiver", system_id=account, password="pw").status != Status.ESME_ROK:
                raise ConnectionError("bind refused")
            while time.monotonic() < until:
                client.read_one(min(until, time.monotonic() + 0.2))
                _collect(client, account, outcome)
                with outcome.lock:
                    if set(outcome.acked[account]) <= set(outcome.receipts[account]):
                        client.close()
                        return
        except Exception:
            time.sleep(0.1)


def run(workdir: Path, kills: int, seconds: float, seed: int, workers: int = 2) -> Report:
    rng = random.Random(seed)
    daemon = Daemon(workdir)
    daemon.start()
    outcome = Outcome()
    stop = threading.Event()
    threads = [
        threading.Thread(target=esme_worker, args=(daemon, account, w, outcome, stop), daemon=True)
        for account in ACCOUNTS
        for w in range(workers)
    ]
    for thread in threads:
        thread.start()
    interval = seconds / (kills + 1)
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 1.7) * interval)  # the random moment of the next crash
        daemon.kill()
        outcome.kills += 1
        daemon.start()
    time.sleep(interval)  # some load after the last restart
    stop.set()
    for thread in threads:
        thread.join(15)
    readers = [
        threading.Thread(target=receipt_reader, args=(daemon, account, outcome, time.monotonic() + 60))
        for account in ACCOUNTS
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    exit_code = daemon.stop()

    provider = Counter(simulator_texts(daemon.record))
    acked = {text for per_account in outcome.acked.values() for text in per_account.values()}
    lost = sorted(acked - set(provider))
    duplicates = {text: n for text, n in provider.items() if n > 1}
    missing_receipts = {
        account: sorted(set(ids) - set(outcome.receipts[account])) for account, ids in outcome.acked.items()
    }
    not_delivered = {
        account: sorted(i for i, stat in outcome.receipts[account].items() if stat != "DELIVRD") for account in ACCOUNTS
    }
    return {
        "kills": outcome.kills,
        "acked": {account: len(ids) for account, ids in outcome.acked.items()},
        "refused": outcome.submits_refused,
        "provider_messages": sum(provider.values()),
        "lost": lost,
        "duplicates": duplicates,
        "duplicates_counted": daemon.logged("possible_duplicate"),
        "missing_receipts": missing_receipts,
        "not_delivered": not_delivered,
        "reused_ids": len(outcome.all_acked_ids) - len(set(outcome.all_acked_ids)),
        "exit_code": exit_code,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--workers", type=int, default=2, help="ESME threads per account")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(Path(tmp), args.kills, args.seconds, args.seed, args.workers)
    print(json.dumps({"seed": args.seed, **report}, indent=2))
    ok = not report["lost"] and not any(report["missing_receipts"].values()) and not report["reused_ids"]
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
