"""Where the bridge's CPU goes under load: py-spy samples the bridge process during a
scenario of tests.bench.compare and this prints the share of samples per area of the
code (by the innermost frame of ours, or the library the time is spent in).

    pip install py-spy
    python -m tests.bench.profile --scenario bare --duration 15 [--tree DIR] [--env SMPP_BRIDGE_PURE=1]

`bare` is ack = "upstream" without receipts, `upstream` with Skycore postbacks,
`stored` ack = "stored", `ceiling` the same with the provider paused (the stored
intake alone). py-spy's own stacks (collapsed) go to
tests/bench/results/profile-<time>.txt, for a flame graph (e.g. speedscope).
Compiled modules have no Python frames: their time shows under the caller, which is
why a profile of the compiled bridge is read beside one of the pure bridge.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.bench import compare

# Area of a frame, by the first matching piece of its file path (ours first).
AREAS: list[tuple[str, str]] = [
    ("bridge/smpp/", "smpp codec + session"),
    ("bridge/server.py", "server (SMPP socket edge)"),
    ("bridge/core/pipeline.py", "core pipeline"),
    ("bridge/core/sender.py", "core sender"),
    ("bridge/core/receipts.py", "core receipts"),
    ("bridge/core/outbox.py", "core outbox"),
    ("bridge/core/history.py", "core history"),
    ("bridge/core/", "core (other)"),
    ("bridge/providers/wire.py", "HTTP client (wire)"),
    ("bridge/providers/http.py", "HTTP request building"),
    ("bridge/providers/", "provider connectors"),
    ("bridge/store/records.py", "store records (JSON)"),
    ("bridge/store/sqlite.py", "store SQLite"),
    ("bridge/store/", "store (other)"),
    ("bridge/http_server.py", "HTTP server (callbacks, probes)"),
    ("bridge/web.py", "web (callbacks)"),
    ("bridge/metrics.py", "metrics"),
    ("bridge/", "bridge (other)"),
    ("prometheus_client", "prometheus_client"),
    ("aiohttp", "aiohttp"),
    ("structlog", "structlog"),
    ("json/", "json"),
    ("urllib/", "urllib"),
    ("asyncio/", "asyncio"),
    ("sqlite3", "sqlite3"),
    ("threading.py", "threading"),
]


def area(frame: str) -> str | None:
    for piece, name in AREAS:
        if piece in frame:
            return name
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("bare", "upstream", "stored", "ceiling"), default="bare")
    parser.add_argument("--tree", type=Path, default=compare.ROOT, help="source tree of the bridge")
    parser.add_argument("--env", action="append", default=[], help="VAR=VALUE for the bridge")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is needed: pip install py-spy")
    env = dict(item.split("=", 1) for item in args.env)
    compare.RESULTS.mkdir(parents=True, exist_ok=True)
    out = compare.RESULTS / f"profile-{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    receipts = args.scenario == "upstream"
    with tempfile.TemporaryDirectory() as tmp:
        upstream_port = compare.free_port()
        ack = "stored" if args.scenario in ("stored", "ceiling") else "upstream"
        with compare.bridge(Path(tmp), ack, upstream_port, tree=args.tree.resolve(), env=env) as b:
            postback = f"http://127.0.0.1:{b['http_port']}/callbacks/sky/tok" if receipts else None
            with compare.upstream(upstream_port, postback, silent=args.scenario == "ceiling"):
                extra = () if receipts else ("--no-receipts",)
                compare.bench(b["smpp_port"], b["pid"], "--count", "2000", "--binds", "2", *extra)  # warm-up
                spy = subprocess.Popen(
                    [py_spy, "record", "--pid", str(b["pid"]), "--rate", str(args.rate), "--format", "raw",
                     "--threads", "--nonblocking", "--output", str(out), "--duration", str(int(args.duration) + 2)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                report = compare.bench(
                    b["smpp_port"], b["pid"], "--binds", str(args.binds), "--window", str(args.window),
                    "--duration", str(args.duration), *extra,
                )  # fmt: skip
                spy.wait()
    per_msg = report["target_cpu_seconds"] / max(1, report["acked"]) * 1e6
    print(f"{report['throughput_per_s']:.0f} msg/s, {per_msg:.0f} µs bridge CPU/msg; samples in {out}")
    by_area: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any("(threading.py)" in f and "wait" in f for f in frames[-2:]) or "select" in frames[-1]:
            continue  # idle: the event loop waiting, a thread parked
        total += count
        innermost = next((a for a in map(area, reversed(frames)) if a is not None), "other")
        by_area[innermost] += count
        by_function[frames[-1]] += count
    print(f"{total} busy samples; share by area (innermost frame):")
    for name, count in by_area.most_common():
        print(f"  {count / total:6.1%}  {name}")
    print("self time by function:")
    for name, count in by_function.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
