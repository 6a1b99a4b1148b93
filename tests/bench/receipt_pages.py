"""The SQLite store's work per receipt: pages written a commit, by b-tree, and the
writer's CPU, for the receipt path's writes as the store sends them.

N messages accepted upstream (one receipt asked each), then reports in groups of K
(one store write a group: the final states and their receipts), the previous group's
receipts deleted in the same write, as the receipt engine does. The frames the store
sends its writer are recorded, then run again in this process on a fresh file of the
same schema (`bridge.store.sqlite_writer.run_batch`, no checkpoints meanwhile), so
that the pages each commit appended to the WAL can be read back and named by the
table or index they belong to at the end (SQLite's dbstat: a page freed by one b-tree
and taken by another counts for the latter). Run it from a tree to measure that
tree's schema and statements:

    python -m tests.bench.receipt_pages --messages 20000 --group 4 [--synchronous FULL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import bridge.store.sqlite as sqlite_store
from bridge.core.message import Lifecycle
from bridge.core.receipts import receipts_for
from bridge.smpp.constants import MessageState
from bridge.store import sqlite_writer
from tests.support.providers import stored_message

WAL_HEADER, FRAME_HEADER, PAGE = 32, 24, 4096


async def record_frames(tmp: Path, messages: int, group: int) -> tuple[list[Any], list[Any]]:
    """The frames sent for the acceptances, and those sent for the reports."""
    sent: list[Any] = []
    encode = sqlite_store.frame

    def keep(items: Any) -> bytes:
        sent.append(items)
        return encode(items)

    sqlite_store.frame = keep  # type: ignore[assignment]  # a spy on what the store encodes; restored below
    try:
        store = sqlite_store.SqliteStore(tmp / "recorded.db", synchronous="OFF")
        await store.open()
        accepted = [stored_message(n * 10, provider_id=f"T{n}") for n in range(1, messages + 1)]
        for m in accepted:
            m.parts[0].registered_delivery = 1
            m.due_at = time.time() + 86400
            store.journal.note(m.id, "received", session="bench", parts=[m.id], route=["p"], ack="upstream")
        for start in range(0, messages, 500):
            await store.insert_messages(accepted[start : start + 500])
        acceptances = len(sent)
        delivered: list[Any] = []
        for start in range(0, messages, group):
            batch = accepted[start : start + group]
            receipts = []
            for m in batch:
                store.journal.note(m.id, "report", provider="p", provider_id=m.provider_ids[0], stat="DELIVRD")
                m.state, m.lifecycle, m.done_at = MessageState.DELIVERED, Lifecycle.FINAL, time.time()
                receipts.extend(receipts_for(m, m.parts, MessageState.DELIVERED, 0, m.done_at))
            for receipt in delivered:
                store.journal.note(receipt.message_id, "receipt_sent", stat="DELIVRD", deliver_sm_resp="ESME_ROK")
            if delivered:
                store.delete_receipts([receipt.id for receipt in delivered])
            await store.update_messages(batch, receipts)
            delivered = receipts
        await store.close()
    finally:
        sqlite_store.frame = encode
    return sent[:acceptances], sent[acceptances:]


def pages_by_btree(path: str, conn: sqlite3.Connection, commits: int) -> dict[str, float]:
    """The pages the WAL holds, a commit, by the table or index they belong to."""
    with open(path + "-wal", "rb") as wal:
        data = wal.read()
    names = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
    counted: Counter[str] = Counter()
    for offset in range(WAL_HEADER, len(data) - FRAME_HEADER + 1, FRAME_HEADER + PAGE):
        (page,) = struct.unpack_from(">I", data, offset)
        counted[names.get(page, "(free)")] += 1
    return {name: round(count / commits, 2) for name, count in counted.most_common()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--group", type=int, default=4, help="reports a store write (a loop turn's)")
    parser.add_argument("--synchronous", default="OFF", help="of the replay (FULL adds the fsyncs' CPU)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        acceptances, reports = asyncio.run(record_frames(Path(tmp), args.messages, args.group))
        path = os.path.join(tmp, "replayed.db")
        conn = sqlite_writer.connect(path, args.synchronous)
        for items in acceptances:
            sqlite_writer.run_batch(conn, items)
        warm = len(reports) // 4  # the tables at their steady state first
        for items in reports[:warm]:
            sqlite_writer.run_batch(conn, items)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        measured = reports[warm:]
        receipts = sum(len(i.get("insert_receipt", ())) for items in measured for i in items if isinstance(i, dict))
        cpu = time.process_time()
        for items in measured:
            sqlite_writer.run_batch(conn, items)
        cpu = time.process_time() - cpu
        by_btree = pages_by_btree(path, conn, len(measured))
        conn.close()
    print(
        json.dumps(
            {
                "receipts_per_commit": round(receipts / len(measured), 2),
                "pages_per_commit": round(sum(by_btree.values()), 2),
                "pages_per_receipt": round(sum(by_btree.values()) * len(measured) / receipts, 2),
                "replay_cpu_us_per_receipt": round(cpu / receipts * 1e6, 1),
                "pages_per_commit_by_btree": by_btree,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
