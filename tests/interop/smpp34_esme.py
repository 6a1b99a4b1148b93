"""An smpp34 (PyPI, Rust/tokio core) ESME for tests/interop/test_smpp34.py.

Run as a separate process (`python smpp34_esme.py < scenario.json`): smpp34 1.5.0 can
abort the interpreter at exit after a failed bind ("PyGILState_Release: thread state
must be current"), which must not take the test run down with it.

Scenario: {host, port, system_id, password, bind: TX|RX|TRX, source_addr,
           messages: [{destination_addr, text, data_coding, registered_delivery,
                       flash_subunit, sar: [ref, total, seq]}],
           receipts: how many receipts to wait for, timeout}
Flow: Client.connect() (binds), submit_sm each message (awaiting its response), wait
for the receipts (smpp34 answers deliver_sm itself), unbind, stop. Prints one JSON
report of what smpp34 returned and yielded.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import smpp34

# smpp34 re-exports its extension's TLV_* constants at import time (through globals()),
# which a type checker cannot follow; the extension's own stub (_smpp34.pyi) declares them.
from smpp34._smpp34 import (
    TLV_DEST_ADDR_SUBUNIT,
    TLV_SAR_MSG_REF_NUM,
    TLV_SAR_SEGMENT_SEQNUM,
    TLV_SAR_TOTAL_SEGMENTS,
)


def tlvs(message: dict[str, Any]) -> list[smpp34.Tlv]:
    found = []
    if message.get("flash_subunit"):
        found.append(smpp34.Tlv(TLV_DEST_ADDR_SUBUNIT, bytes([1])))  # 1 = MS display: class 0
    if message.get("sar"):
        reference, total, sequence = message["sar"]
        found.append(smpp34.Tlv(TLV_SAR_MSG_REF_NUM, reference.to_bytes(2, "big")))
        found.append(smpp34.Tlv(TLV_SAR_TOTAL_SEGMENTS, bytes([total])))
        found.append(smpp34.Tlv(TLV_SAR_SEGMENT_SEQNUM, bytes([sequence])))
    return found


async def run(scenario: dict[str, Any], report: dict[str, Any]) -> None:
    client = smpp34.Client(
        scenario.get("host", "127.0.0.1"),
        scenario["port"],
        scenario["system_id"],
        scenario["password"],
        bind_type=scenario.get("bind", "TRX"),
        connect_timeout_ms=int(scenario.get("connect_timeout", 3) * 1000),
    )
    try:
        session = await client.connect()
    except smpp34.SmppError as exc:
        report["bind_error"] = str(exc)
        return
    report["bound"] = {"system_id": session.system_id}
    for message in scenario.get("messages", []):
        resp = await session.submit_sm(
            message["destination_addr"],
            message["text"].encode("latin-1"),
            source_addr=scenario["source_addr"],
            source_addr_ton=1,
            source_addr_npi=1,
            dest_addr_ton=1,
            dest_addr_npi=1,
            data_coding=message.get("data_coding", 0),
            registered_delivery=message.get("registered_delivery", 0),
            tlvs=tlvs(message),
        )
        report["submits"].append(
            {"message_id": resp.message_id, "command_status": resp.command_status, "is_success": resp.is_success}
        )
    while len(report["deliver_sms"]) < scenario.get("receipts", 0):
        event = await session.next()
        if isinstance(event, smpp34.Disconnected):
            report["errors"].append("disconnected")
            break
        report["deliver_sms"].append(
            {
                "esm_class": event.esm_class,
                "source_addr": event.source_addr,
                "destination_addr": event.destination_addr,
                "source_addr_ton": event.source_addr_ton,
                "dest_addr_ton": event.dest_addr_ton,
                "data_coding": event.data_coding,
                "short_message": event.short_message.decode("latin-1"),
                "tlvs": {str(t.tag): t.value.hex() for t in event.tlvs},
            }
        )
    await session.unbind()
    report["unbound"] = True
    await client.stop()


def main() -> None:
    scenario = json.load(sys.stdin)
    report: dict[str, Any] = {"bound": None, "bind_error": None, "submits": [], "deliver_sms": [], "errors": []}
    try:
        asyncio.run(asyncio.wait_for(run(scenario, report), scenario.get("timeout", 15)))
    except Exception as exc:  # reported, not raised: the test reads the report
        report["errors"].append(f"{type(exc).__name__}: {exc}")
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter finalization (see the module docstring)


if __name__ == "__main__":
    main()
