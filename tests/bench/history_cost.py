"""What the per-message history costs on the hot path: the same scenarios of
tests.bench.compare, run alternately on two source trees in one run (the checkout
before the history, and this one), so that both see the same machine.

    git archive <commit-before> | tar -x -C /tmp/before
    python -m tests.bench.history_cost --before /tmp/before --rounds 3 --duration 10

Scenarios: `upstream` (ack = "upstream", one HTTP request per message, receipts on:
four history events per message) and `stored` (ack = "stored", submits accepted
durably, the outbox draining behind). Prints msg/s and bridge CPU µs per message.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

_RUN = """
import argparse, json, sys
from pathlib import Path
from tests.bench import compare
args = argparse.Namespace(**json.loads(sys.argv[1]))
tmp = Path(sys.argv[2])
if args.scenario == "upstream":
    report = compare.ours_upstream(tmp, args)
else:
    report = compare.scenario_stored(tmp, args)
print(json.dumps(report))
"""


def run(tree: Path, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measured run of `scenario` with the bridge of `tree` (imported from its checkout)."""
    options = {"scenario": scenario, "duration": args.duration, "binds": args.binds, "window": args.window}
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-c", _RUN, json.dumps(options), tmp],
            cwd=tree, capture_output=True, text=True, check=True,
        )  # fmt: skip
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def summary(report: dict[str, Any]) -> str:
    per_message = report["target_cpu_seconds"] / max(1, report["acked"]) * 1e6
    return f"{report['throughput_per_s']:>8.0f} msg/s  {per_message:>5.0f} µs bridge CPU/msg"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the commit before the history")
    parser.add_argument("--scenario", choices=["upstream", "stored", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=50)
    args = parser.parse_args()
    scenarios = ["upstream", "stored"] if args.scenario == "both" else [args.scenario]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for round_ in range(args.rounds):
        for scenario in scenarios:
            for name, tree in (("before", args.before), ("after", ROOT)):
                report = run(tree, scenario, args)
                results.setdefault(scenario, {}).setdefault(name, []).append(report)
                print(f"round {round_ + 1} {scenario:<8} {name:<6} {summary(report)}", flush=True)
    print(json.dumps({s: {n: [summary(r) for r in rs] for n, rs in v.items()} for s, v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
