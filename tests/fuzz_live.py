"""Throw random and mutated PDUs at a running daemon over TCP.

Each round opens a connection and sends one kind of abuse: random bytes, valid PDUs
with flipped bits or changed lengths, truncated PDUs, PDUs valid for the wrong state,
or a bind followed by mutated submits. After every round a control session (a normal
bind + enquire_link + submit on its own connection) must still work: a failure there
counts as a crash. The daemon's resident memory is read from /proc before and after.

    python -m tests.fuzz_live --port 2775 --pid <daemon pid> --seconds 60
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import time
from dataclasses import asdict, dataclass
from typing import Any

from bridge.smpp.pdu import (
    BindTransceiver,
    DataSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    QuerySm,
    SubmitMulti,
    SubmitSm,
    Unbind,
    encode_pdu,
)


@dataclass
class Report:
    rounds: int = 0
    bytes_sent: int = 0
    answers: int = 0
    closed_by_daemon: int = 0
    control_failures: int = 0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    rss_max_kib: int = 0


def rss_kib(pid: int) -> int:
    """Resident memory of `pid`; raises when it cannot be read (a bound checked
    against 0 would pass for nothing)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def valid_pdus(system_id: str, password: str) -> list[bytes]:
    text: dict[str, Any] = {
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": "123",
        "esm_class": 0x40,
        "registered_delivery": 1,
        "data_coding": 8,
        "short_message": bytes((5, 0, 3, 7, 2, 1)) + "héllo 😀".encode("utf-16-be"),
    }
    destination: dict[str, Any] = {"dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "4917012345"}
    return [
        encode_pdu(BindTransceiver(1, system_id=system_id, password=password)),
        encode_pdu(SubmitSm(2, 0, {0x0424: b"x" * 40, 0x020C: b"\x00\x01"}, **text, **destination)),
        encode_pdu(EnquireLink(3)),
        encode_pdu(QuerySm(4, message_id="12", source_addr="1")),
        encode_pdu(SubmitMulti(5, dest_addresses=[DistributionList("x")], **text)),
        encode_pdu(DataSm(6, destination_addr="1", source_addr="2")),
        encode_pdu(DeliverSmResp(7, message_id="")),
        encode_pdu(Unbind(8)),
    ]


def mutate(rng: random.Random, pdu: bytes) -> bytes:
    data = bytearray(pdu)
    kind = rng.randrange(6)
    if kind == 0:  # flip bits
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # a wrong command_length
        struct.pack_into(">I", data, 0, rng.choice([0, 1, 15, 16, len(data) - 1, len(data) + 7, 2**31, 2**32 - 1]))
    elif kind == 2:  # truncate, keeping the declared length
        data = data[: rng.randrange(len(data))]
    elif kind == 3:  # random command_id
        struct.pack_into(">I", data, 4, rng.getrandbits(32))
    elif kind == 4:  # garbage appended inside the declared length (bad TLVs)
        extra = rng.randbytes(rng.randint(1, 30))
        data += extra
        struct.pack_into(">I", data, 0, len(data))
    else:  # a random byte string in the body
        if len(data) > 16:
            start = rng.randrange(16, len(data))
            data[start:] = rng.randbytes(len(data) - start)
    return bytes(data)


def one_round(host: str, port: int, rng: random.Random, pdus: list[bytes], report: Report) -> None:
    kind = rng.randrange(4)
    if kind == 0:
        payload = rng.randbytes(rng.randint(1, 4096))
    elif kind == 1:
        payload = b"".join(mutate(rng, rng.choice(pdus)) for _ in range(rng.randint(1, 20)))
    elif kind == 2:  # a real bind, then abuse in the bound state
        payload = pdus[0] + b"".join(
            mutate(rng, rng.choice(pdus[1:])) if rng.random() < 0.7 else rng.choice(pdus[1:])
            for _ in range(rng.randint(1, 30))
        )
    else:  # valid PDUs in random order and state
        payload = b"".join(rng.choice(pdus) for _ in range(rng.randint(1, 30)))
    with socket.create_connection((host, port), timeout=2) as sock:
        try:
            sock.sendall(payload)
            report.bytes_sent += len(payload)
            sock.settimeout(0.3)
            while sock.recv(65536):
                report.answers += 1
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            return
        report.closed_by_daemon += 1


def control(host: str, port: int, system_id: str, password: str) -> bool:
    """A well-behaved session: bind, enquire_link, submit; every answer ESME_ROK."""
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            frames = [
                encode_pdu(BindTransceiver(1, system_id=system_id, password=password)),
                encode_pdu(EnquireLink(2)),
                encode_pdu(
                    SubmitSm(3, source_addr="1", dest_addr_ton=1, destination_addr="4917012345", short_message=b"ok")
                ),
            ]
            statuses = {}
            buffer = b""
            for frame in frames:
                sock.sendall(frame)
                while True:
                    while len(buffer) >= 16 and len(buffer) >= int.from_bytes(buffer[:4], "big"):
                        length, command_id, status, sequence = struct.unpack(">IIII", buffer[:16])
                        buffer = buffer[length:]
                        if command_id & 0x80000000:
                            statuses[sequence] = status
                    sequence = int.from_bytes(frame[12:16], "big")
                    if sequence in statuses:
                        break
                    chunk = sock.recv(65536)
                    if not chunk:
                        return False
                    buffer += chunk
            return all(status == 0 for status in statuses.values())
    except OSError:
        return False


def run(
    host: str,
    port: int,
    seconds: float | None,
    seed: int,
    pid: int,
    system_id: str,
    password: str,
    rounds: int | None = None,
) -> Report:
    """Fuzz for `seconds`, or for `rounds` rounds (whichever ends first when both are given)."""
    rng = random.Random(seed)
    pdus = valid_pdus(system_id, password)
    report = Report(rss_before_kib=rss_kib(pid) if pid else 0)
    deadline = time.monotonic() + seconds if seconds is not None else None
    while (deadline is None or time.monotonic() < deadline) and (rounds is None or report.rounds < rounds):
        one_round(host, port, rng, pdus, report)
        report.rounds += 1
        if report.rounds % 10 == 0:
            if not control(host, port, system_id, password):
                report.control_failures += 1
            if pid:
                report.rss_max_kib = max(report.rss_max_kib, rss_kib(pid))
    if not control(host, port, system_id, password):
        report.control_failures += 1
    if pid:
        report.rss_after_kib = rss_kib(pid)
        report.rss_max_kib = max(report.rss_max_kib, report.rss_after_kib)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--pid", type=int, default=0, help="the daemon's pid, to report its memory")
    parser.add_argument("--system-id", default="demo")
    parser.add_argument("--password", default="demo123")
    args = parser.parse_args()
    report = run(args.host, args.port, args.seconds, args.seed, args.pid, args.system_id, args.password)
    print(json.dumps({"seed": args.seed, **asdict(report)}, indent=2))
    return 1 if report.control_failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
