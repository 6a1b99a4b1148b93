"""Bulk coalescing, measured: the same text to many FlashSMS numbers through the
FlashSMS double (100 requests a minute, as the API), with and without
`coalesce_window`. Prints how many submits were accepted and how many HTTP requests
carried them.

    python -m tests.bench.coalescing --rate 200 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bridge.simulators import build_simulator
from tests.bench.compare import PYTHON, bench, free_port, process
from tests.support.servers import AppThread

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
[http]
port = {http_port}
[store]
url = "sqlite:///{db}"
[log]
level = "warning"
format = "json"
[[accounts]]
system_id = "bench"
password = "bench"
throughput = 0
route = "fl"
[providers.fl]
type = "flashsms"
base_url = "http://127.0.0.1:{sim_port}/api/v1"
api_key = "bms_live_sim_key"
poll_interval = 3600
rate_limit_wait = 0
circuit_failures = 100000
coalesce_window = {window}
"""


def run(window: float, rate: float, seconds: float, tmp: Path) -> dict[str, float]:
    sim_port, smpp_port, http_port = free_port(), free_port(), free_port()
    config = tmp / f"c-{window}.toml"
    config.write_text(CONFIG.format(smpp_port=smpp_port, http_port=http_port, db=tmp / f"{window}.db",
                                    sim_port=sim_port, window=window))  # fmt: skip
    config.chmod(0o600)
    sim = build_simulator("flashsms", balance=10**9)
    with (
        AppThread(sim, port=sim_port),
        process([PYTHON, "-m", "bridge", "run", "--config", str(config)], ready_port=smpp_port) as pid,
    ):
        report = bench(smpp_port, pid, "--rate", str(rate), "--duration", str(seconds), "--no-receipts",
                       "--destination", "233201000000", "--destinations", "1000")  # fmt: skip
        requests = sum(1 for r in sim["received"] if r["path"].endswith("/sms/send"))
    return {
        "coalesce_window": window,
        "submitted": report["sent"],
        "accepted": report["acked"],
        "refused": report["failed"],
        "accepted_per_minute": round(report["acked"] / report["submit_seconds"] * 60),
        "provider_requests": requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(window, args.rate, args.seconds, Path(tmp)) for window in (0.0, 0.5)]
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
