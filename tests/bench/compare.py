"""Benchmark scenarios: the bridge beside the node-smpp bridge, on this machine.

Every scenario starts its own processes (bridge, zero-latency upstream, load
generator) on 127.0.0.1, runs `smpp-bridge bench`, and reads each process's CPU
seconds from /proc so the report says which one saturated. The bridge's CPU is its
whole process tree (its store's writer is a child process), with the main process's
share beside it (`bridge_main`, `target_main_cpu_seconds`). Results go to
tests/bench/results/<time>.json and a table is printed.

    python -m tests.bench.compare                      # all scenarios, short
    python -m tests.bench.compare --scenario upstream --rounds 3 --duration 15
    python -m tests.bench.compare --scenario soak --soak-minutes 10

Scenarios:
  upstream  ack = "upstream", a real HTTP request per message, receipts on (Skycore
            postbacks from the upstream; --no-receipts: none), interleaved with the
            node-smpp bridge
  stored    ack = "stored": submits accepted durably per second (outbox draining behind)
  burst     ack = "stored": --count submits as fast as accepted, then the outbox drained
  ceiling   the same burst with the provider paused (never answers): the stored intake
            alone, the most a burst can be accepted at
  latency   1,000 submit_sm/s: p99 submit_sm->resp with stored and with upstream
  sessions  5,000 bound sessions with enquire_link running: resident memory
  soak      1,000/s for --soak-minutes: resident memory at the start and the end
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "bench" / "results"
NODE_MODULES = ROOT / "tests" / "interop" / "node" / "node_modules"
PYTHON = sys.executable

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
window = 200
enquire_link_interval = {enquire_link_interval}
max_sessions = 20000
[http]
host = "127.0.0.1"
port = {http_port}
public_url = "http://127.0.0.1:{http_port}"
[store]
url = "sqlite:///{db}"
[outbox]
limit = 10000000
[log]
level = "warning"
format = "json"
[[accounts]]
system_id = "bench"
password = "bench"
throughput = 0
max_binds = 10000
ack = "{ack}"
route = "sky"
[providers.sky]
type = "skycore"
url = "http://127.0.0.1:{upstream_port}/API"
api_key = "k"
from = "60856"
callback_token = "tok"
max_connections = 64
circuit_failures = 1000
"""


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, ready_port: int | None = None, cwd: Path = ROOT
) -> Iterator[int]:
    proc = subprocess.Popen(
        args, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if ready_port is not None:
            wait_port(ready_port)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def bridge(
    tmp: Path,
    ack: str,
    upstream_port: int,
    enquire_link_interval: float = 30,
    tree: Path = ROOT,
    env: dict[str, str] | None = None,
) -> Iterator[dict[str, int]]:
    """The bridge of the source tree `tree` (default: this checkout), with `env` added
    to its environment (e.g. SMPP_BRIDGE_PURE=1)."""
    smpp_port, http_port = free_port(), free_port()
    config = tmp / f"bridge-{smpp_port}.toml"
    config.write_text(
        CONFIG.format(
            smpp_port=smpp_port,
            http_port=http_port,
            db=tmp / f"b-{smpp_port}.db",
            ack=ack,
            upstream_port=upstream_port,
            enquire_link_interval=enquire_link_interval,
        )
    )
    config.chmod(0o600)
    with process(
        [PYTHON, "-m", "bridge", "run", "--config", str(config)], env=env, ready_port=smpp_port, cwd=tree
    ) as pid:
        yield {"pid": pid, "smpp_port": smpp_port, "http_port": http_port}


@contextmanager
def upstream(port: int, postback: str | None = None, silent: bool = False) -> Iterator[int]:
    args = [PYTHON, "-m", "tests.bench.upstream", "--port", str(port)]
    if postback:
        args += ["--postback", postback]
    if silent:
        args.append("--silent")
    with process(args, ready_port=port) as pid:
        yield pid


def bench(port: int, pid: int, *extra: str, system_id: str = "bench", password: str = "bench") -> dict[str, Any]:
    """Run the load generator; also samples the target's resident memory meanwhile."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = [rss_mb(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out = subprocess.run(
            [
                PYTHON,
                "-m",
                "bridge",
                "bench",
                "--port",
                str(port),
                "--pid",
                str(pid),
                "--system-id",
                system_id,
                "--password",
                password,
                "--json",
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,  # a target that died mid-run must not hang the whole comparison
        )
    finally:
        done.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report: dict[str, Any] = json.loads(out.stdout)
    report["bench_cpu_seconds"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
    report["target_peak_rss_mb"] = round(peak[0], 1)
    return report


def saturation(report: dict[str, Any], cpu: dict[str, float]) -> dict[str, float]:
    """CPU share of each process over the run (1.0 = one core busy all the time)."""
    wall = report["wall_seconds"] or 1.0
    return {name: round(seconds / wall, 2) for name, seconds in cpu.items()}


def measured_run(port: int, pid: int, upstream_pid: int, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """A warm-up, then the measured run, with each process's share of a core."""
    bench(port, pid, "--count", "2000", "--binds", "2", *extra)
    up_cpu = cpu_seconds(upstream_pid)
    report = bench(
        port, pid, "--binds", str(args.binds), "--window", str(args.window), "--duration", str(args.duration), *extra
    )
    report["processes_cpu"] = saturation(
        report,
        {
            "bridge": report["target_cpu_seconds"],
            # Of which: its main process, and its children (the store's writer).
            "bridge_main": report.get("target_main_cpu_seconds", report["target_cpu_seconds"]),
            "bridge_children": sum(report.get("target_children_cpu_seconds", {}).values()),
            "upstream": cpu_seconds(upstream_pid) - up_cpu,
            "bench": report["bench_cpu_seconds"],
        },
    )
    return report


def ours_upstream(
    tmp: Path, args: argparse.Namespace, tree: Path = ROOT, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """ack = "upstream"; receipts (Skycore postbacks) unless `args.no_receipts`."""
    upstream_port = free_port()
    receipts = not getattr(args, "no_receipts", False)
    with bridge(tmp, "upstream", upstream_port, tree=tree, env=env) as b:
        postback = f"http://127.0.0.1:{b['http_port']}/callbacks/sky/tok" if receipts else None
        with upstream(upstream_port, postback) as up:
            report = measured_run(b["smpp_port"], b["pid"], up, args, *(() if receipts else ("--no-receipts",)))
    return report


def node_upstream(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "smpp").exists():
        raise RuntimeError(
            "node and tests/interop/node/node_modules/smpp are needed (npm ci --prefix tests/interop/node)"
        )
    upstream_port, port = free_port(), free_port()
    with (
        upstream(upstream_port) as up,
        process(
            [node, str(ROOT / "tests/bench/node_bridge.js"), str(port), f"http://127.0.0.1:{upstream_port}/API"],
            env={"NODE_PATH": str(NODE_MODULES)},
            ready_port=port,
        ) as pid,
    ):
        report = measured_run(port, pid, up, args, "--no-receipts")
    return report


def scenario_upstream(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    rounds = []
    for _ in range(args.rounds):
        ours = ours_upstream(tmp, args)
        node = node_upstream(tmp, args)
        rounds.append(
            {
                "ours": ours,
                "node": node,
                "throughput_ratio": round(ours["throughput_per_s"] / node["throughput_per_s"], 2),
            }
        )
    return {"rounds": rounds}


def unanswered_submits(b: dict[str, int], args: argparse.Namespace, *amount: str) -> dict[str, Any]:
    """The load generator on `args.binds` binds of `args.window`, no receipts asked, for `amount`
    (`--duration S` or `--count N`)."""
    extra = ("--binds", str(args.binds), "--window", str(args.window), *amount, "--no-receipts")
    return bench(b["smpp_port"], b["pid"], *extra)


def scenario_stored(
    tmp: Path, args: argparse.Namespace, tree: Path = ROOT, env: dict[str, str] | None = None
) -> dict[str, Any]:
    upstream_port = free_port()
    with bridge(tmp, "stored", upstream_port, tree=tree, env=env) as b, upstream(upstream_port):
        report = unanswered_submits(b, args, "--duration", str(args.duration))
        report["outbox_after"] = scrape(b["http_port"], "smpp_bridge_outbox_messages")
    return report


def scenario_burst(
    tmp: Path, args: argparse.Namespace, tree: Path = ROOT, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """ack = "stored": a burst of `args.count` submits (default 100,000) as fast as
    they are accepted, then the time until the outbox has sent them all upstream."""
    upstream_port = free_port()
    count = getattr(args, "count", None) or 100_000
    with bridge(tmp, "stored", upstream_port, tree=tree, env=env) as b, upstream(upstream_port):
        started = time.monotonic()
        report = unanswered_submits(b, args, "--count", str(count))
        accepted_at = time.monotonic()
        report["outbox_after_burst"] = scrape(b["http_port"], "smpp_bridge_outbox_messages")
        deadline = accepted_at + 900
        while scrape(b["http_port"], "smpp_bridge_outbox_messages") > 0:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("outbox drain", 900)
            time.sleep(0.2)  # polling a gauge; the interval only bounds how late the end is seen
        drained_at = time.monotonic()
        report["drain_seconds"] = round(drained_at - accepted_at, 2)
        report["sent_upstream_per_s"] = round(report["acked"] / (drained_at - started), 1)
    return report


def scenario_ceiling(
    tmp: Path, args: argparse.Namespace, tree: Path = ROOT, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The stored intake alone: `burst`'s submits with the provider paused (it never
    answers, so the outbox sends its first few and then waits), the most a burst can
    be accepted at; the report has the daemon's and its writer's CPU apart."""
    upstream_port = free_port()
    count = getattr(args, "count", None) or 100_000
    with bridge(tmp, "stored", upstream_port, tree=tree, env=env) as b, upstream(upstream_port, silent=True):
        report = unanswered_submits(b, args, "--count", str(count))
        report["outbox_after_burst"] = scrape(b["http_port"], "smpp_bridge_outbox_messages")
    return report


def scenario_latency(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for ack in ("stored", "upstream"):
        upstream_port = free_port()
        with bridge(tmp, ack, upstream_port) as b, upstream(upstream_port):
            report = bench(
                b["smpp_port"],
                b["pid"],
                "--binds",
                "4",
                "--window",
                "50",
                "--rate",
                "1000",
                "--duration",
                str(args.duration),
                "--no-receipts",
            )
            report["provider_p99_ms"] = histogram_p99(b["http_port"], "smpp_bridge_upstream_request_duration_seconds")
            out[ack] = report
    return out


def scenario_sessions(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    upstream_port = free_port()
    with bridge(tmp, "upstream", upstream_port, enquire_link_interval=5) as b, upstream(upstream_port):
        rss_before = rss_mb(b["pid"])
        report = bench(
            b["smpp_port"],
            b["pid"],
            "--binds",
            str(args.sessions),
            "--window",
            "1",
            "--rate",
            "200",
            "--duration",
            "20",
            "--no-receipts",
            "--processes",
            "2",
        )
        report["rss_mb_before"] = round(rss_before, 1)
    return report


def scenario_soak(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    upstream_port = free_port()
    with (
        bridge(tmp, "upstream", upstream_port) as b,
        upstream(upstream_port, f"http://127.0.0.1:{b['http_port']}/callbacks/sky/tok"),
    ):
        # Warm-up until bounded caches are full (e.g. recent postback keys), so what
        # follows is growth, not filling.
        bench(b["smpp_port"], b["pid"], "--rate", "1000", "--duration", "180")
        rss_start = rss_mb(b["pid"])
        report = bench(b["smpp_port"], b["pid"], "--rate", "1000", "--duration", str(args.soak_minutes * 60))
        rss_end = rss_mb(b["pid"])
    report["rss_mb_start"] = round(rss_start, 1)
    report["rss_mb_end"] = round(rss_end, 1)
    report["rss_growth_pct"] = round((rss_end - rss_start) / rss_start * 100, 1)
    return report


def scrape(http_port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def histogram_p99(http_port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = buckets.get(
                float("inf") if le == "+Inf" else float(le), 0.0
            ) + float(line.rsplit(" ", 1)[1])
    if not buckets:
        return None
    total = buckets[float("inf")]
    for le in sorted(buckets):
        if buckets[le] >= 0.99 * total:
            return le * 1000
    return None


SCENARIOS = {
    "upstream": scenario_upstream,
    "stored": scenario_stored,
    "burst": scenario_burst,
    "ceiling": scenario_ceiling,
    "latency": scenario_latency,
    "sessions": scenario_sessions,
    "soak": scenario_soak,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--count", type=int, default=100_000, help="burst: submits in the burst")
    parser.add_argument("--soak-minutes", type=float, default=10)
    parser.add_argument("--no-receipts", action="store_true", help="upstream: no postbacks, no receipts asked")
    args = parser.parse_args()
    names = [n for n in SCENARIOS if n != "soak"] if args.scenario == "all" else [args.scenario]
    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"== {name}", flush=True)
            results[name] = SCENARIOS[name](Path(tmp), args)
            print(json.dumps(results[name], indent=1)[:4000], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written {path}")
    return 0


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "python": sys.version.split()[0]}


if __name__ == "__main__":
    raise SystemExit(main())
