"""A zero-latency keep-alive HTTP upstream for benchmarks, speaking Skycore's answer.

Every POST gets `{"status":"Success","tracking-id":"<n>",...}` at once. With
`--postback URL` it also POSTs a Skycore N202 "Delivered" postback for each accepted
message to the bridge, over a few keep-alive connections, so receipts flow from a
provider callback to the ESMEs exactly as in production.

Raw asyncio protocols on purpose: the upstream must cost far less per request than
the bridge it measures.

    python -m tests.bench.upstream --port 18099 [--postback http://127.0.0.1:8080/callbacks/sky/TOKEN]

`--silent`: a provider that is paused: requests are read and never answered (the
bridge's stored intake measured with its outbox doing nothing: `ceiling` in
tests.bench.compare).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from typing import cast
from urllib.parse import urlsplit

_counter = itertools.count(1)


class Upstream(asyncio.Protocol):
    def __init__(self, postbacks: asyncio.Queue[str] | None, silent: bool = False) -> None:
        self.postbacks = postbacks
        self.silent = silent
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's (typed by its base here)

    def data_received(self, data: bytes) -> None:
        if self.silent:
            return
        buffer = self.buffer
        buffer += data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buffer[:end]).lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
            if len(buffer) < end + 4 + length:
                break
            del buffer[: end + 4 + length]
            tracking = f"T{next(_counter)}"
            body = (
                b'{"status":"Success","tracking-id":"' + tracking.encode() + b'","to":"x","from":"y",'
                b'"status-details":"SMS request accepted and queued for delivery"}'
            )
            out.append(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            if self.postbacks is not None:
                self.postbacks.put_nowait(tracking)
        if out:
            self.transport.write(b"".join(out))


class PostbackSender(asyncio.Protocol):
    """One keep-alive connection to the bridge, pipelining postbacks."""

    def __init__(self, host: str, path: str, queue: asyncio.Queue[str]) -> None:
        self.host = host
        self.path = path
        self.queue = queue
        self.buffer = bytearray()
        self.waiting = 0
        self.room = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's (typed by its base here)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n")[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self.waiting -= 1
            self.room.set()

    async def run(self) -> None:
        while True:
            tracking = await self.queue.get()
            while self.waiting >= 32:
                self.room.clear()
                await self.room.wait()
            body = json.dumps(
                {
                    "origin": "SMS_MT",
                    "code": "N202",
                    "sent-as": "SMS",
                    "status": "Delivered",
                    "to": "4917012345",
                    "from": "60856",
                    "timestamp": "2026-11-23T18:00:07.990498+00:00",
                    "tracking-id": tracking,
                }
            ).encode()
            request = (
                f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            self.waiting += 1
            self.transport.write(request)


async def serve(port: int, postback: str | None, connections: int, silent: bool = False) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] | None = asyncio.Queue() if postback else None
    senders: list[asyncio.Task[None]] = []
    if postback and queue is not None:
        url = urlsplit(postback)
        if url.hostname is None:
            raise SystemExit(f"--postback {postback!r} names no host")
        host = url.hostname
        for _ in range(connections):
            _, sender = await loop.create_connection(
                lambda: PostbackSender(url.netloc, url.path, queue), host, url.port or 80
            )
            senders.append(loop.create_task(sender.run()))
    server = await loop.create_server(lambda: Upstream(queue, silent), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18099)
    parser.add_argument("--postback", default=None, help="bridge callback URL for N202 postbacks")
    parser.add_argument("--postback-connections", type=int, default=4)
    parser.add_argument("--silent", action="store_true", help="never answer (a paused provider)")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.postback, args.postback_connections, args.silent))


if __name__ == "__main__":
    main()
