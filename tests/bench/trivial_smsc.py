"""The smallest SMPP server that answers: binds OK, submit_sm_resp at once, and a
receipt right behind it. It shows how fast `smpp-bridge bench` can drive a server
that costs nothing (the load generator must not be the bottleneck).

    python -m tests.bench.trivial_smsc --port 2776
"""

from __future__ import annotations

import argparse
import asyncio
import struct
from typing import cast

HEADER = struct.Struct(">IIII")


class Trivial(asyncio.Protocol):
    counter = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's (typed by its base here)
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        out = []
        offset = 0
        while len(buffer) - offset >= 16:
            length, command_id, _, sequence = HEADER.unpack_from(buffer, offset)
            if len(buffer) - offset < length:
                break
            offset += length
            if command_id in (1, 2, 9):
                body = b"TRIVIAL\x00"
                out.append(HEADER.pack(16 + len(body), command_id | 0x80000000, 0, sequence) + body)
            elif command_id == 4:
                Trivial.counter += 1
                message_id = str(Trivial.counter).encode()
                out.append(HEADER.pack(17 + len(message_id), 0x80000004, 0, sequence) + message_id + b"\x00")
                text = b"id:" + message_id + b" sub:001 dlvrd:001 stat:DELIVRD err:000 text:"
                body = b"\x00\x01\x01x\x00\x01\x01y\x00\x04\x00\x00\x00\x00\x00\x00\x00" + bytes((len(text),)) + text
                tlv = b"\x00\x1e" + struct.pack(">H", len(message_id) + 1) + message_id + b"\x00"
                out.append(HEADER.pack(16 + len(body) + len(tlv), 5, 0, Trivial.counter) + body + tlv)
            elif command_id in (6, 0x15):
                out.append(HEADER.pack(16, command_id | 0x80000000, 0, sequence))
        del buffer[:offset]
        if out:
            self.transport.write(b"".join(out))


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Trivial, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=2776)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
