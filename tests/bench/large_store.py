"""How long start-up takes on a large store: fill an SQLite store with finished and
unfinished messages and pending receipts, then time the daemon until /readyz.

    python -m tests.bench.large_store --finished 1000000 --unfinished 10000 --receipts 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bridge.core.message import Address, Lifecycle, Message, Part, Receipt
from bridge.core.numbers import Number
from bridge.smpp.constants import MessageState
from bridge.store.sqlite import SqliteStore
from tests.support.servers import free_port


def make(message_id: int, final: bool) -> Message:
    return Message(
        id=message_id,
        system_id="demo",
        source=Address(1, 1, "12345"),
        destination=Address(1, 1, "4917012345"),
        number=Number("4917012345"),
        text="",
        flash=False,
        parts=[Part(message_id, 1, time.time(), "Your code is 123456")],
        route=["sim"],
        ack="upstream",
        created_at=time.time(),
        lifecycle=Lifecycle.FINAL if final else Lifecycle.ACCEPTED,
        provider="sim",
        provider_ids=[f"sim-{message_id}"],
        state=MessageState.DELIVERED if final else None,
        done_at=time.time() if final else None,
    )


async def fill(path: Path, finished: int, unfinished: int, receipts: int) -> None:
    store = SqliteStore(path, synchronous="OFF")
    await store.open()
    first = await store.reserve_ids(finished + unfinished + 1)
    batch = 20_000
    for start in range(0, finished + unfinished, batch):
        messages = [make(first + i, i < finished) for i in range(start, min(start + batch, finished + unfinished))]
        await store.insert_messages(messages)
    pending = [
        Receipt(
            system_id="demo",
            message_id=first + i,
            state=MessageState.DELIVERED,
            error=0,
            submitted_at=1.0,
            done_at=2.0,
            preview="x",
            source=Address(1, 1, "4917012345"),
            destination=Address(1, 1, "12345"),
            provider="sim",
            id=f"{first + i}:{first + i}:2",
        )
        for i in range(receipts)
    ]
    for start in range(0, receipts, batch):
        await store.add_receipts(pending[start : start + batch])
    await store.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--unfinished", type=int, default=10_000)
    parser.add_argument("--receipts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.db"
        started = time.perf_counter()
        asyncio.run(fill(db, args.finished, args.unfinished, args.receipts))
        fill_seconds = time.perf_counter() - started
        smpp_port, http_port = free_port(), free_port()
        config = Path(tmp) / "bridge.toml"
        config.write_text(
            f'[smpp]\nhost = "127.0.0.1"\nport = {smpp_port}\n[http]\nport = {http_port}\n'
            f'[store]\nurl = "sqlite:///{db}"\n[log]\nlevel = "warning"\nformat = "json"\n'
            '[[accounts]]\nsystem_id = "demo"\npassword = "demo123"\nroute = "sim"\n'
            '[providers.sim]\ntype = "simulator"\ndelivery_delay = 3600\n'
        )
        config.chmod(0o600)
        started = time.perf_counter()
        daemon = subprocess.Popen([sys.executable, "-m", "bridge", "run", "--config", str(config)])
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        ready_seconds = time.perf_counter() - started
        daemon.terminate()
        daemon.wait(30)
        size_mb = db.stat().st_size / 1e6
    print(
        json.dumps(
            {
                **vars(args),
                "db_mb": round(size_mb, 1),
                "fill_seconds": round(fill_seconds, 1),
                "start_to_ready_seconds": round(ready_seconds, 2),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
