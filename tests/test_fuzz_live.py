"""A few seconds of tests/fuzz_live.py against a real daemon process: no crash, a
well-behaved session keeps working, memory stays bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import fuzz_live
from tests.support.servers import free_port
from tests.support.waiting import wait_for

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
[security]
lockout = 0            # the fuzzer's mangled binds must not lock out the control session
[http]
host = "127.0.0.1"
port = {http_port}
[store]
url = "sqlite:///{db}"
[log]
level = "warning"
format = "json"
[[accounts]]
system_id = "demo"
password = "demo123"
throughput = 0
max_binds = 100
route = "sim"
[providers.sim]
type = "simulator"
delivery_delay = 0.01
"""


def test_fuzzing_a_live_daemon_crashes_nothing(tmp_path: Path) -> None:
    smpp_port, http_port = free_port(), free_port()
    config = tmp_path / "bridge.toml"
    config.write_text(CONFIG.format(smpp_port=smpp_port, http_port=http_port, db=tmp_path / "b.db"))
    config.chmod(0o600)
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: fuzz_live.control("127.0.0.1", smpp_port, "demo", "demo123"), timeout=30)
        report = fuzz_live.run(
            "127.0.0.1", smpp_port, seconds=4, seed=7, pid=daemon.pid, system_id="demo", password="demo123"
        )
        assert report.rounds > 20
        assert report.control_failures == 0
        assert daemon.poll() is None
        assert report.rss_max_kib - report.rss_before_kib < 64 * 1024
    finally:
        daemon.terminate()
        assert daemon.wait(30) == 0
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in text
