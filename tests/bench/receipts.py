"""Receipts per second from provider callbacks to bound ESMEs.

1. N messages go out through the Skycore connector to the zero-latency upstream
   (no postbacks yet), each asking for a receipt.
2. Receivers bind (4 transceivers by default) and count deliver_sm receipts.
3. N Skycore "N202 Delivered" postbacks are fired at the bridge's callback URL over
   keep-alive connections as fast as it answers them.
The rate is receipts counted at the ESMEs over the time from the first postback to
the last receipt.

    python -m tests.bench.receipts --messages 20000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import tempfile
import time
from pathlib import Path
from typing import cast

from bridge.bench import tree_cpu_seconds
from bridge.smpp.constants import Command
from bridge.smpp.pdu import BindTransceiver, encode_pdu
from tests.bench.compare import bench, bridge, upstream

HEADER = struct.Struct(">IIII")


class Receiver(asyncio.Protocol):
    def __init__(self, counter: list[float]) -> None:
        self.counter = counter
        self.buffer = bytearray()
        self.bound = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's (typed by its base here)
        bind = BindTransceiver(1, system_id="bench", password="bench")
        self.transport.write(encode_pdu(bind))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        while len(self.buffer) >= 16:
            length, command_id, status, sequence = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < length:
                break
            del self.buffer[:length]
            if command_id == Command.DELIVER_SM:
                self.counter[0] += 1
                self.counter[1] = time.perf_counter()
                out.append(HEADER.pack(17, Command.DELIVER_SM_RESP, 0, sequence) + b"\x00")
            elif command_id == Command.ENQUIRE_LINK:
                out.append(HEADER.pack(16, Command.ENQUIRE_LINK_RESP, 0, sequence))
            elif command_id == Command.BIND_TRANSCEIVER_RESP and not self.bound.done():
                self.bound.set_result(status)
        if out:
            self.transport.write(b"".join(out))


def postbacks(trackings: list[str]) -> list[bytes]:
    """The requests, built before the clock starts: the load generator's own work is
    not the bridge's (it shares the bridge's two cores)."""
    requests = []
    for tracking in trackings:
        body = json.dumps({"origin": "SMS_MT", "code": "N202", "status": "Delivered", "tracking-id": tracking}).encode()
        requests.append(
            b"POST /callbacks/sky/tok HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    return requests


async def fire(http_port: int, requests: list[bytes], connections: int) -> None:
    """POST the postbacks over `connections` keep-alive connections, one at a time each."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
        while not queue.empty():
            writer.write(queue.get_nowait())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))


async def measure(smpp_port: int, http_port: int, messages: int, receivers: int, connections: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    counter = [0.0, 0.0]
    clients = []
    for _ in range(receivers):
        _, client = await loop.create_connection(lambda: Receiver(counter), "127.0.0.1", smpp_port)
        clients.append(client)
    await asyncio.gather(*(c.bound for c in clients))
    requests = postbacks([f"T{n}" for n in range(1, messages + 1)])
    started = time.perf_counter()
    await fire(http_port, requests, connections)
    fired = time.perf_counter()
    deadline = fired + 60
    while counter[0] < messages and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    return {
        "receipts": counter[0],
        "postback_seconds": round(fired - started, 2),
        "receipts_per_s": round(counter[0] / (counter[1] - started), 1) if counter[0] else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--receivers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections firing postbacks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        from tests.bench.compare import free_port

        upstream_port = free_port()
        with bridge(Path(tmp), "upstream", upstream_port) as b, upstream(upstream_port):
            # The upstream counts tracking ids from T1: these N messages get T1..TN.
            sent = bench(b["smpp_port"], b["pid"], "--count", str(args.messages), "--receipt-timeout", "0")
            before = tree_cpu_seconds(b["pid"]) or {}
            run = asyncio.run
            with contextlib.suppress(ImportError):  # the same loop as the other load generators
                import uvloop

                run = uvloop.run
            result = run(measure(b["smpp_port"], b["http_port"], args.messages, args.receivers,
                                         args.connections))  # fmt: skip
            after = tree_cpu_seconds(b["pid"]) or {}
            # The bridge's whole process tree (its store's writer is a child), and its
            # main process alone.
            spent = {pid: seconds - before.get(pid, 0.0) for pid, seconds in after.items()}
            receipts = max(1, result["receipts"])
            result["bridge_cpu_us_per_receipt"] = round(sum(spent.values()) / receipts * 1e6, 1)
            result["bridge_main_cpu_us_per_receipt"] = round(spent.get(b["pid"], 0.0) / receipts * 1e6, 1)
            result["submitted"] = sent["acked"]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
