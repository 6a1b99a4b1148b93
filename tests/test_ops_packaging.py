"""Packaging for operators: the systemd unit (systemd-analyze verify, hardening, notify)
and the container image (hadolint, structure, build context)."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_metrics import require_tool
from tests.test_ops_process import dockerfile_instructions

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd/smpp-bridge.service"
SYSUSERS = ROOT / "systemd/smpp-bridge.sysusers"
INSTALLED_SCRIPT = "/opt/smpp-bridge/bin/smpp-bridge"


def unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) in file order; repeated keys stay separate (systemd semantics)."""
    section = ""
    out = []
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def unit_value(key: str, section: str = "Service") -> str:
    values = [v for s, k, v in unit_entries() if s == section and k == key]
    assert values, f"{key} is not set in [{section}]"
    return values[-1]


# -- systemd ---------------------------------------------------------------------------


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified as installed, except that ExecStart points at this venv's console script
    (verify checks that the binary exists)."""
    analyze = require_tool("systemd-analyze")  # Debian package systemd, installed by .ci/run
    script = Path(sys.executable).parent / "smpp-bridge"
    assert script.exists()
    unit = tmp_path / "smpp-bridge.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_SCRIPT, str(script)))
    assert INSTALLED_SCRIPT not in unit.read_text()
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_unit_is_type_notify_with_reload_restart_and_watchdog() -> None:
    assert unit_value("Type") == "notify"
    assert unit_value("NotifyAccess") == "main"
    assert unit_value("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unit_value("Restart") == "on-failure"
    assert unit_value("WatchdogSec")
    start = unit_value("ExecStart").split()
    assert start == [INSTALLED_SCRIPT, "run", "--config", "/etc/smpp-bridge/bridge.toml"]
    assert unit_value("ExecStartPre").split() == [INSTALLED_SCRIPT, "check-config", "/etc/smpp-bridge/bridge.toml"]
    assert unit_value("WantedBy", "Install") == "multi-user.target"


def test_unit_runs_as_a_dedicated_user_with_state_and_config_directories() -> None:
    assert unit_value("User") == "smpp-bridge"
    assert unit_value("StateDirectory") == "smpp-bridge"
    assert unit_value("ConfigurationDirectory") == "smpp-bridge"
    assert unit_value("WorkingDirectory") == "/var/lib/smpp-bridge"
    assert int(unit_value("LimitNOFILE")) >= 65536
    [entry] = [line for line in SYSUSERS.read_text().splitlines() if line and not line.startswith("#")]
    kind, name, uid, *_ = entry.split()
    assert (kind, name, uid) == ("u", "smpp-bridge", "-")


def test_sysusers_file_is_accepted_by_systemd_sysusers(tmp_path: Path) -> None:
    sysusers = require_tool("systemd-sysusers")  # Debian package systemd, installed by .ci/run
    (tmp_path / "etc").mkdir()
    result = subprocess.run([sysusers, f"--root={tmp_path}", str(SYSUSERS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc/passwd").read_text()
    assert re.search(r"^smpp-bridge:x:\d+:\d+:smpp-bridge daemon:/var/lib/smpp-bridge:/usr/sbin/nologin$", passwd, re.M)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_unit_hardening(key: str, value: str) -> None:
    assert unit_value(key) == value


def test_unit_filters_system_calls_and_grants_no_capability() -> None:
    filters = [v for s, k, v in unit_entries() if k == "SystemCallFilter"]
    assert filters[0] == "@system-service"
    keys = {k for _, k, _ in unit_entries()}
    assert "AmbientCapabilities" not in keys  # only for a port below 1024, documented in the unit
    assert "#AmbientCapabilities=CAP_NET_BIND_SERVICE" in UNIT.read_text()


# -- Docker ------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = require_tool("hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_dockerfile_is_a_slim_multi_stage_build_running_as_non_root() -> None:
    steps = dockerfile_instructions()
    stages = [args for instruction, args in steps if instruction == "FROM"]
    assert stages == ["python:3.11-slim AS build", "python:3.11-slim"]
    build = [args for instruction, args in steps if instruction == "RUN" and "pip wheel" in args]
    assert build and "--wheel-dir /wheels" in build[0]
    final = steps[[i for i, (instruction, _) in enumerate(steps) if instruction == "FROM"][-1] :]
    [user] = [args for instruction, args in final if instruction == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "2775 8080") in final
    assert ("VOLUME", '["/var/lib/smpp-bridge"]') in final
    [healthcheck] = [args for instruction, args in final if instruction == "HEALTHCHECK"]
    assert "urllib.request" in healthcheck and "/healthz" in healthcheck and "curl" not in healthcheck
    copies = [args for instruction, args in final if instruction == "COPY"]
    assert any(args.endswith("config/docker.toml /etc/smpp-bridge/bridge.toml") for args in copies)
    assert not any(instruction == "RUN" and "apt-get" in args for instruction, args in final)


def test_dockerignore_keeps_what_the_build_copies_and_drops_the_rest() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negate
        return keep

    sources = []
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY" and "--from=" not in args:
            sources += [a for a in args.split()[:-1] if not a.startswith("--")]
    assert sources
    for source in sources:
        assert included(source.rstrip("/")), source
        assert (ROOT / source).exists(), source
    assert included("bridge/app.py")
    for dropped in (
        ".git/HEAD",
        "tests/test_metrics.py",
        "state/bridge.db",
        ".venv/bin/python",
        "config/bridge.toml",
        "bridge/_compiled/manifest.json",
    ):
        assert not included(dropped), dropped


def test_container_config_listens_on_all_interfaces_and_stores_in_the_volume() -> None:
    from bridge.config import load_config

    config = load_config(ROOT / "config/docker.toml", environ={"SMPP_BRIDGE_PASSWORD": "x"})
    assert config.smpp.host == "0.0.0.0" and config.smpp.port == 2775
    assert config.http.host == "0.0.0.0" and config.http.port == 8080
    assert config.store.sqlite_path == Path("/var/lib/smpp-bridge/bridge.db")
    assert "format" not in config.log.model_fields_set  # "auto": JSON lines without a terminal
    # The password comes from the environment, not from the image.
    assert 'password = "${SMPP_BRIDGE_PASSWORD}"' in (ROOT / "config/docker.toml").read_text()
