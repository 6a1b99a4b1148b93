"""The command line, run as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from bridge.core.auth import verify_hash
from bridge.smpp.constants import Status
from tests.support.esme import Esme
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_check_config_ok_exits_0() -> None:
    result = cli("check-config", "config/bridge.toml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_config_problems_exit_2_one_line_each(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[smpp]\nport = "x"\nbogus = 1\n[[accounts]]\nsystem_id = "a"\npassword = "${NOT_SET_ANYWHERE}"\n')
    bad.chmod(0o600)
    result = cli("check-config", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert sorted(lines) == [
        "accounts[0].password: environment variable NOT_SET_ANYWHERE is not set",
        "smpp.bogus: unknown key",
        "smpp.port: Input should be a valid integer, unable to parse string as an integer",
    ]


def test_check_config_missing_file_exits_2(tmp_path: Path) -> None:
    result = cli("check-config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_hash_password_output_is_accepted_as_password_hash() -> None:
    result = cli("hash-password", stdin="s3cret\n")
    assert result.returncode == 0
    hashed = result.stdout.strip()
    assert hashed.startswith("$argon2id$")
    assert verify_hash(hashed, "s3cret") and not verify_hash(hashed, "other")
    assert "s3cret" not in result.stdout


def test_console_script_is_the_same_cli() -> None:
    script = Path(sys.executable).parent / "smpp-bridge"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("smpp-bridge ")


def test_run_serves_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    smpp_port, http_port = free_port(), free_port()
    config = (ROOT / "config/bridge.toml").read_text()
    config = config.replace("port = 2775", f"port = {smpp_port}").replace("port = 8080", f"port = {http_port}")
    config = config.replace('url = "sqlite:///state/bridge.db"', f'url = "sqlite:///{tmp_path}/b.db"')
    path = tmp_path / "bridge.toml"
    path.write_text(config)
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--config", str(path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if " started " in line or '"started"' in line:
                break
        client = Esme(smpp_port)
        assert client.bind(system_id="demo", password="demo123").status == Status.ESME_ROK
        assert client.submit(destination="4917012345").status == Status.ESME_ROK
        process.send_signal(signal.SIGTERM)
        client.wait_until(lambda: client.unbinds > 0, timeout=15)  # the daemon unbinds us
        assert process.wait(timeout=30) == 0
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
