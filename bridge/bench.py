"""`smpp-bridge bench`: an SMPP load generator.

Opens N binds (transceiver) with a window of W outstanding submit_sm each, submits
at a fixed rate or as fast as answered, for a duration or a count, then waits for
the receipts, and prints sent / acked / failed counts, throughput, submit_sm ->
submit_sm_resp latency (p50/p95/p99/max), receipt latency, and the CPU seconds per
message of a given process (the bridge under test). `--json` prints the same as JSON.

It must not be the bottleneck, so it stays off everything generic: PDUs are built
from a pre-encoded template (only the sequence number and destination change),
responses are read by their 16-byte header, and `--processes` splits the binds
over several processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.smpp.constants import Command, Tag, status_name
from bridge.smpp.pdu import BindTransceiver, SubmitSm, encode_pdu

_HEADER = struct.Struct(">IIII")
_SUBMIT_SM_RESP = Command.SUBMIT_SM_RESP.value
_DELIVER_SM = Command.DELIVER_SM.value
_ENQUIRE_LINK = Command.ENQUIRE_LINK.value
_GENERIC_NACK = Command.GENERIC_NACK.value


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "demo"
    password: str = "demo123"
    binds: int = 4
    window: int = 50
    rate: float = 0.0  # submits per second over all binds; 0 = as fast as answered
    duration: float = 10.0
    count: int = 0  # stop after this many submits (0 = run for `duration`)
    receipts: bool = True
    receipt_timeout: float = 30.0
    destination: str = "4917012345"
    destinations: int = 1  # distinct numbers, counting up from `destination`
    text: str = "Your verification code is 123456"
    pid: int = 0
    processes: int = 1


@dataclass
class Tally:
    sent: int = 0
    acked: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    receipt_latencies: list[float] = field(default_factory=list)
    receipts: int = 0
    submit_started: float = 0.0
    submit_ended: float = 0.0
    last_receipt: float = 0.0
    id_sent_at: dict[bytes, float] = field(default_factory=dict)


class BenchClient(asyncio.Protocol):
    """One bind: keeps `window` submit_sm in flight, answers deliver_sm at once."""

    def __init__(self, options: Options, tally: Tally, index: int, pacer: Pacer) -> None:
        self.o = options
        self.tally = tally
        self.pacer = pacer
        self.index = index
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.bound = asyncio.get_running_loop().create_future()
        self.sequence = 1
        self.in_flight: dict[int, float] = {}
        self.id_sent_at = tally.id_sent_at  # shared: a receipt may come back on another bind
        self.room = asyncio.Event()
        self.closed = asyncio.Event()
        first = int(options.destination)
        self.submit_bodies = [
            encode_pdu(
                SubmitSm(
                    source_addr_ton=1,
                    source_addr_npi=1,
                    source_addr="BENCH",
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    destination_addr=str(first + i),
                    registered_delivery=1 if options.receipts else 0,
                    data_coding=0,
                    short_message=options.text.encode("ascii"),
                )
            )[16:]
            for i in range(max(1, options.destinations))
        ]
        # Each bind starts at its own place in the numbers, so binds do not send to
        # the same number at the same moment.
        self.next_body = index * len(self.submit_bodies) // max(1, options.binds) % len(self.submit_bodies)

    # -- protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        bind = BindTransceiver(
            self._next_sequence(), system_id=self.o.system_id, password=self.o.password, interface_version=0x34
        )
        self.transport.write(encode_pdu(bind))  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        self.room.set()
        if not self.bound.done():
            self.bound.set_exception(ConnectionError("connection lost before bind"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        offset = 0
        size = len(buffer)
        now = time.perf_counter()
        out: list[bytes] = []
        tally = self.tally
        while size - offset >= 16:
            length, command_id, status, sequence = _HEADER.unpack_from(buffer, offset)
            if size - offset < length:
                break
            if command_id == _SUBMIT_SM_RESP or (command_id == _GENERIC_NACK and sequence in self.in_flight):
                sent_at = self.in_flight.pop(sequence, None)
                if sent_at is not None:
                    tally.latencies.append(now - sent_at)
                    if status == 0:
                        tally.acked += 1
                        if self.o.receipts:
                            message_id = bytes(buffer[offset + 16 : offset + length - 1])
                            self.id_sent_at[message_id] = sent_at
                    else:
                        name = status_name(status)
                        tally.failed[name] = tally.failed.get(name, 0) + 1
                    self.room.set()
            elif command_id == _DELIVER_SM:
                out.append(_HEADER.pack(17, Command.DELIVER_SM_RESP, 0, sequence) + b"\x00")
                receipted = _receipted_message_id(bytes(buffer[offset : offset + length]))
                sent_at = self.id_sent_at.pop(receipted, None) if receipted is not None else None
                tally.receipts += 1
                tally.last_receipt = now
                if sent_at is not None:
                    tally.receipt_latencies.append(now - sent_at)
            elif command_id == _ENQUIRE_LINK:
                out.append(_HEADER.pack(16, Command.ENQUIRE_LINK_RESP, 0, sequence))
            elif command_id & 0x80000000 and not self.bound.done():
                if status == 0:
                    self.bound.set_result(None)
                else:
                    self.bound.set_exception(ConnectionError(f"bind refused: {status_name(status)}"))
            offset += length
        del buffer[:offset]
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    # -- sending ---------------------------------------------------------------------

    def unbind(self) -> None:
        """Send unbind (the answer is not waited for)."""
        if self.transport is not None:
            self.transport.write(_HEADER.pack(16, Command.UNBIND, 0, self._next_sequence()))

    def _next_sequence(self) -> int:
        sequence = self.sequence
        self.sequence = sequence + 1 if sequence < 0x7FFFFFFF else 1
        return sequence

    async def run(self, stop_at: float, budget: Budget) -> None:
        window = self.o.window
        pack = _HEADER.pack
        bodies = self.submit_bodies
        tally = self.tally
        while time.perf_counter() < stop_at and not self.closed.is_set():
            room = window - len(self.in_flight)
            if room <= 0:
                self.room.clear()
                await self.room.wait()
                continue
            room = await self.pacer.take(room)
            room = budget.take(room)
            if room <= 0:
                if budget.exhausted:
                    break
                continue
            now = time.perf_counter()
            chunks = []
            for _ in range(room):
                sequence = self._next_sequence()
                self.in_flight[sequence] = now
                body = bodies[self.next_body]
                self.next_body = (self.next_body + 1) % len(bodies)
                chunks.append(pack(16 + len(body), Command.SUBMIT_SM, 0, sequence))
                chunks.append(body)
            tally.sent += room
            assert self.transport is not None
            self.transport.write(b"".join(chunks))
            await asyncio.sleep(0)
        deadline = time.perf_counter() + self.o.receipt_timeout
        while self.in_flight and time.perf_counter() < deadline and not self.closed.is_set():
            self.room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.room.wait(), 1.0)


def _receipted_message_id(frame: bytes) -> bytes | None:
    """The receipted_message_id TLV (or the receipt text's id:) of a deliver_sm frame."""
    tag = Tag.RECEIPTED_MESSAGE_ID.to_bytes(2, "big")
    index = frame.rfind(tag)
    while index > 16:
        size = int.from_bytes(frame[index + 2 : index + 4], "big")
        value = frame[index + 4 : index + 4 + size]
        if len(value) == size and size > 0:
            return value.rstrip(b"\x00")
        index = frame.rfind(tag, 16, index)
    start = frame.find(b"id:")
    if start < 0:
        return None
    end = frame.find(b" ", start)
    return frame[start + 3 : end]


class Pacer:
    """Hands out submit permits at `rate` per second (0 = unlimited)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = 0.0
        self.last = time.perf_counter()

    async def take(self, wanted: int) -> int:
        if self.rate <= 0:
            return wanted
        while True:
            now = time.perf_counter()
            self.tokens = min(self.rate * 0.05 + 1, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                granted = min(wanted, int(self.tokens))
                self.tokens -= granted
                return granted
            await asyncio.sleep((1 - self.tokens) / self.rate)


class Budget:
    """A total submit count shared by the binds of one process (0 = unlimited)."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.unlimited = count <= 0

    @property
    def exhausted(self) -> bool:
        return not self.unlimited and self.left <= 0

    def take(self, wanted: int) -> int:
        if self.unlimited:
            return wanted
        granted = min(wanted, self.left)
        self.left -= granted
        return granted


def _factory(options: Options, tally: Tally, index: int, pacer: Pacer) -> Callable[[], BenchClient]:
    return lambda: BenchClient(options, tally, index, pacer)


async def _run_process(options: Options) -> Tally:
    loop = asyncio.get_running_loop()
    tally = Tally()
    pacer = Pacer(options.rate / options.processes if options.rate else 0)
    clients: list[BenchClient] = []
    for index in range(options.binds):
        _, client = await loop.create_connection(_factory(options, tally, index, pacer), options.host, options.port)
        clients.append(client)
    await asyncio.gather(*(c.bound for c in clients))
    budget = Budget(options.count)
    tally.submit_started = time.perf_counter()
    stop_at = tally.submit_started + (options.duration if not options.count else 86400 * 365)
    await asyncio.gather(*(c.run(stop_at, budget) for c in clients))
    tally.submit_ended = time.perf_counter()
    if options.receipts:
        deadline = time.perf_counter() + options.receipt_timeout
        while tally.receipts < tally.acked and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    for client in clients:
        client.unbind()
    await asyncio.sleep(0.05)
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return tally


def _process_main(options: Options, queue: Any) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        tally = asyncio.run(_run_process(options))
        tally.id_sent_at = {}  # not worth pickling back
        queue.put(("ok", tally.__dict__))
    except Exception as exc:
        queue.put(("error", repr(exc)))


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (and its reaped children), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / ticks


def descendants(pid: int) -> list[int]:
    """The live processes started by `pid`, their children too (the store's writer)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as handle:
                    children = [int(child) for child in handle.read().split()]
            except OSError:
                continue
            found.extend(children)
            todo.extend(children)
    return found


def tree_cpu_seconds(pid: int) -> dict[int, float] | None:
    """CPU seconds of a process and of each of its live descendants, by pid: a bridge
    whose store writes in a process of its own costs both (issue 16)."""
    main = cpu_seconds(pid)
    if main is None:
        return None
    out = {pid: main}
    for child in descendants(pid):
        seconds = cpu_seconds(child)
        if seconds is not None:
            out[child] = seconds
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": ordered[-1] * 1000}


def run(options: Options) -> dict[str, Any]:
    """Run the load and return the report (also what --json prints)."""
    cpu_before = tree_cpu_seconds(options.pid) if options.pid else None
    shares = _split(options)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_process_main, args=(share, queue)) for share in shares]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    cpu_after = tree_cpu_seconds(options.pid) if options.pid else None
    errors = [value for kind, value in results if kind == "error"]
    if errors:
        raise RuntimeError("; ".join(errors))
    tallies = [Tally(**value) for _, value in results]
    sent = sum(t.sent for t in tallies)
    acked = sum(t.acked for t in tallies)
    failed: dict[str, int] = {}
    for t in tallies:
        for name, n in t.failed.items():
            failed[name] = failed.get(name, 0) + n
    submit_seconds = max(t.submit_ended for t in tallies) - min(t.submit_started for t in tallies)
    report: dict[str, Any] = {
        "binds": options.binds,
        "window": options.window,
        "processes": options.processes,
        "rate_target": options.rate,
        "sent": sent,
        "acked": acked,
        "failed": failed,
        "submit_seconds": round(submit_seconds, 3),
        "throughput_per_s": round(acked / submit_seconds, 1) if submit_seconds > 0 else 0.0,
        "submit_latency": percentiles([x for t in tallies for x in t.latencies]),
        "receipts": sum(t.receipts for t in tallies),
        "receipts_per_s": _receipt_rate(tallies),
        "receipt_latency": percentiles([x for t in tallies for x in t.receipt_latencies]),
        "wall_seconds": round(wall, 3),
    }
    if cpu_before is not None and cpu_after is not None:
        # The whole tree: the main process, and its children (a child that started
        # during the run counts from zero; one reaped is in its parent's figure).
        spent = {pid: seconds - cpu_before.get(pid, 0.0) for pid, seconds in cpu_after.items()}
        main = spent.pop(options.pid)
        children = sum(spent.values())
        report["target_pid"] = options.pid
        report["target_cpu_seconds"] = round(main + children, 3)
        report["target_cpu_us_per_message"] = round((main + children) / acked * 1e6, 1) if acked else None
        report["target_main_cpu_seconds"] = round(main, 3)
        report["target_main_cpu_us_per_message"] = round(main / acked * 1e6, 1) if acked else None
        report["target_children_cpu_seconds"] = {str(pid): round(seconds, 3) for pid, seconds in spent.items()}
    return report


def _receipt_rate(tallies: list[Tally]) -> float:
    """Receipts per second from the first submit to the last receipt."""
    receipts = sum(t.receipts for t in tallies)
    last = max((t.last_receipt for t in tallies), default=0.0)
    first = min(t.submit_started for t in tallies)
    return round(receipts / (last - first), 1) if receipts and last > first else 0.0


def _split(options: Options) -> list[Options]:
    processes = max(1, min(options.processes, options.binds))
    shares = []
    for i in range(processes):
        binds = options.binds // processes + (1 if i < options.binds % processes else 0)
        count = options.count // processes + (1 if i < options.count % processes else 0) if options.count else 0
        shares.append(Options(**{**options.__dict__, "binds": binds, "count": count, "processes": processes}))
    return shares


def _latency_line(latency: dict[str, float], digits: int) -> str:
    return "  ".join(f"{key[:-3]} {latency[key]:.{digits}f} ms" for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))


def format_report(report: dict[str, Any]) -> str:
    lat = report["submit_latency"]
    rlat = report["receipt_latency"]
    lines = [
        f"binds {report['binds']} x window {report['window']} ({report['processes']} process(es))",
        f"sent {report['sent']}  acked {report['acked']}  failed {sum(report['failed'].values())} {report['failed']}",
        f"throughput {report['throughput_per_s']:.0f} submit_sm/s over {report['submit_seconds']:.2f} s",
    ]
    if lat:
        lines.append("submit_sm->resp  " + _latency_line(lat, 2))
    lines.append(f"receipts {report['receipts']} ({report['receipts_per_s']:.0f}/s)")
    if rlat:
        lines.append("submit->receipt  " + _latency_line(rlat, 1))
    if "target_cpu_seconds" in report:
        lines.append(
            f"pid {report['target_pid']} and its children: {report['target_cpu_seconds']:.2f} CPU s, "
            f"{report['target_cpu_us_per_message']} us per acked message"
            f" (the main process {report['target_main_cpu_us_per_message']} us)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smpp-bridge bench", description=__doc__.split("\n\n")[0])
    defaults = Options()
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--system-id", default=defaults.system_id)
    parser.add_argument("--password", default=defaults.password)
    parser.add_argument("--binds", type=int, default=defaults.binds)
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--rate", type=float, default=0.0, help="submits/s over all binds (0: as fast as answered)")
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds of submitting")
    parser.add_argument("--count", type=int, default=0, help="submits in all (instead of --duration)")
    parser.add_argument("--no-receipts", action="store_true", help="registered_delivery 0; do not wait")
    parser.add_argument("--receipt-timeout", type=float, default=defaults.receipt_timeout)
    parser.add_argument("--destination", default=defaults.destination)
    parser.add_argument("--destinations", type=int, default=1, help="distinct numbers, counting up from --destination")
    parser.add_argument("--text", default=defaults.text)
    parser.add_argument("--pid", type=int, default=0, help="report this process's CPU seconds per message")
    parser.add_argument("--processes", type=int, default=1, help="load generator processes")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    options = Options(
        host=args.host,
        port=args.port,
        system_id=args.system_id,
        password=args.password,
        binds=args.binds,
        window=args.window,
        rate=args.rate,
        duration=args.duration,
        count=args.count,
        receipts=not args.no_receipts,
        receipt_timeout=args.receipt_timeout,
        destination=args.destination,
        text=args.text,
        pid=args.pid,
        processes=args.processes,
        destinations=args.destinations,
    )
    try:
        report = run(options)
    except (OSError, RuntimeError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
