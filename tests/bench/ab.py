"""Before/after of a change, in one run, beside the node-smpp bridge: the scenarios of
tests.bench.compare, each variant of the bridge in turn, round after round, so every
variant sees the same machine (it is shared: run-to-run spread is large).

    python -m tests.bench.ab --variant compiled=. --variant pure=.:SMPP_BRIDGE_PURE=1 \\
        --scenario bare --rounds 3 --duration 10
    git worktree add /tmp/before <commit> && \\
        python -m tests.bench.ab --variant before=/tmp/before --variant after=. --scenario bare

A variant is NAME=TREE[:VAR=VALUE,...]: the bridge is started from the source tree TREE
(`python -m bridge` in it, so its own code runs, compiled modules included when it
has them) with those variables added. The load generator, the upstream and the node
bridge are this checkout's. Scenarios: `bare` (ack = "upstream", no receipts), `upstream`
(receipts from Skycore postbacks), `stored` (ack = "stored", submits accepted per
second), `burst` (ack = "stored", --count submits as fast as accepted, then the
outbox drained; its accepted rate is also given as a multiple of the same variant's
`bare` rate when both ran), `ceiling` (the same submits with the provider paused: the
stored intake alone, the most a burst can be accepted at; also as a multiple of
`bare`). Prints each run, then per variant the median and the range (min-max) of
msg/s, bridge CPU µs per message and submit latency p50/p99, with the ratios to the
node bridge's medians; the JSON goes to tests/bench/results/ab-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench import compare

SCENARIOS = ("bare", "upstream", "stored", "burst", "ceiling")


def parse_variant(text: str) -> tuple[str, Path, dict[str, str]]:
    name, _, rest = text.partition("=")
    tree, _, variables = rest.partition(":")
    env = dict(item.split("=", 1) for item in variables.split(",") if item)
    return name, Path(tree or ".").resolve(), env


def run(scenario: str, tree: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    options = argparse.Namespace(**{**vars(args), "no_receipts": scenario == "bare"})
    with tempfile.TemporaryDirectory() as tmp:
        if scenario == "stored":
            return compare.scenario_stored(Path(tmp), options, tree=tree, env=env)
        if scenario == "burst":
            return compare.scenario_burst(Path(tmp), options, tree=tree, env=env)
        if scenario == "ceiling":
            return compare.scenario_ceiling(Path(tmp), options, tree=tree, env=env)
        return compare.ours_upstream(Path(tmp), options, tree=tree, env=env)


def node(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return compare.node_upstream(Path(tmp), args)


def figures(report: dict[str, Any]) -> dict[str, float]:
    return {
        "msg_s": report["throughput_per_s"],
        "cpu_us": report["target_cpu_seconds"] / max(1, report["acked"]) * 1e6,
        # The main process alone (cpu_us is it and its children: the store's writer).
        "main_us": report.get("target_main_cpu_seconds", report["target_cpu_seconds"]) / max(1, report["acked"]) * 1e6,
        "p50_ms": report["submit_latency"]["p50_ms"],
        "p99_ms": report["submit_latency"]["p99_ms"],
        **({"drain_s": report["drain_seconds"]} if "drain_seconds" in report else {}),
    }


def line(figs: dict[str, float]) -> str:
    return (
        f"{figs['msg_s']:>8.0f} msg/s {figs['cpu_us']:>5.0f} µs/msg (main {figs['main_us']:>4.0f}) "
        f"p50 {figs['p50_ms']:>6.1f} ms p99 {figs['p99_ms']:>6.1f} ms"
    )


def summary(runs: list[dict[str, float]], reference: dict[str, float] | None) -> str:
    parts = []
    for key, unit, fmt in (("msg_s", "msg/s", ".0f"), ("cpu_us", "µs/msg", ".0f"), ("main_us", "µs/msg main", ".0f"),
                           ("p50_ms", "ms p50", ".1f"), ("p99_ms", "ms p99", ".1f")):  # fmt: skip
        values = [r[key] for r in runs]
        median = statistics.median(values)
        text = f"{median:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}}) {unit}"
        if reference and key in ("msg_s", "cpu_us"):
            text += f" = {median / reference[key]:.2f}x node"
        parts.append(text)
    return ", ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=TREE[:VAR=VALUE,...]")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: bare")
    parser.add_argument("--no-node", action="store_true", help="leave the node-smpp bridge out")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--count", type=int, default=100_000, help="burst: submits in the burst")
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    scenarios = args.scenario or ["bare"]
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    raw: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        if not args.no_node and set(scenarios) & {"bare", "upstream"}:
            try:
                figs = figures(node(args))
            except (subprocess.SubprocessError, OSError) as exc:  # the machine is shared: keep going
                print(f"round {round_ + 1} node failed: {exc}", flush=True)
            else:
                results.setdefault("node", {}).setdefault("node", []).append(figs)
                print(f"round {round_ + 1} {'node':<9} {'node':<12} {line(figs)}", flush=True)
        for scenario in scenarios:
            for name, tree, env in variants:
                try:
                    report = run(scenario, tree, env, args)
                except (subprocess.SubprocessError, OSError) as exc:
                    print(f"round {round_ + 1} {scenario} {name} failed: {exc}", flush=True)
                    continue
                if not report["acked"]:  # nothing went through: a failed run, not a slow one
                    print(f"round {round_ + 1} {scenario} {name} failed: no submit_sm acknowledged", flush=True)
                    continue
                raw.append({"round": round_ + 1, "scenario": scenario, "variant": name, "report": report})
                figs = figures(report)
                results.setdefault(scenario, {}).setdefault(name, []).append(figs)
                print(f"round {round_ + 1} {scenario:<9} {name:<12} {line(figs)}", flush=True)
    node_runs = results.get("node", {}).get("node")
    reference = {k: statistics.median(r[k] for r in node_runs) for k in ("msg_s", "cpu_us")} if node_runs else None
    print(f"medians (range) of {args.rounds} rounds, {args.binds} binds x window {args.window}, {args.duration} s:")
    for scenario, by_variant in results.items():
        for name, runs in by_variant.items():
            ref = reference if scenario in ("bare", "upstream") else None
            print(f"  {scenario:<9} {name:<12} {summary(runs, ref)}")
            p99_p50 = statistics.median(r["p99_ms"] / r["p50_ms"] for r in runs if r["p50_ms"])
            print(f"  {'':<9} {'':<12} p99/p50 {p99_p50:.1f}")
            if scenario in ("burst", "ceiling"):
                bare = results.get("bare", {}).get(name)
                against = statistics.median(r["msg_s"] for r in bare) if bare else None
                rate = statistics.median(r["msg_s"] for r in runs)
                times = f" = {rate / against:.2f}x its bare rate" if against else ""
                if scenario == "burst":
                    drain = statistics.median(r["drain_s"] for r in runs)
                    print(f"  {'':<9} {'':<12} outbox drained {drain:.1f} s after the burst{times}")
                else:
                    writer = statistics.median(r["cpu_us"] - r["main_us"] for r in runs)
                    print(f"  {'':<9} {'':<12} accepted{times}; the writer {writer:.0f} µs/msg")
    compare.RESULTS.mkdir(parents=True, exist_ok=True)
    path = compare.RESULTS / f"ab-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": compare.machine(), "args": vars(args), "runs": raw}, indent=2))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
