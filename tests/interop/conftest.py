"""Interop tests: third-party SMPP clients against a real bridge.

The clients come from the environment: Debian's `kannel` (bearerbox, smsbox),
`libnet-smpp-perl` (Net::SMPP) and `libsmpp34-dev` (built into a small C driver with
the system's gcc), node with `npm ci --prefix tests/interop/node` (node-smpp 0.5.1),
and the `test` extra's smpplib, aiosmpplib and smpp34; .ci/run installs them all.
A missing one skips its tests with the reason, and under CI a skip fails
(tests/conftest.py), so an interop run can never pass by testing nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.interop.common import account, require
from tests.interop.kannel import kannel_binaries
from tests.support.running import RunningBridge

INTEROP_DIR = Path(__file__).resolve().parent
NODE_DIR = INTEROP_DIR / "node"


@pytest.fixture(scope="session")
def kannel_installed() -> dict[str, str]:
    binaries = kannel_binaries()
    missing = [name for name, path in binaries.items() if path is None]
    require(not missing, " and ".join(missing), "apt-get install kannel (Debian puts the boxes in /usr/sbin)")
    return {name: path for name, path in binaries.items() if path is not None}


@pytest.fixture(scope="session")
def node_smpp() -> list[str]:
    """The command that runs the node-smpp driver (tests/interop/node/esme.js)."""
    node = shutil.which("node")
    require(node is not None, "node", "install Node.js (>= 18) and npm")
    package = NODE_DIR / "node_modules" / "smpp" / "package.json"
    require(package.exists(), "the npm package smpp", "npm ci --prefix tests/interop/node")
    version = json.loads(package.read_text())["version"]
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/smpp"]["version"]
    require(version == wanted, f"smpp {wanted} (found {version})", "npm ci --prefix tests/interop/node")
    assert node is not None
    return [node, str(NODE_DIR / "esme.js")]


@pytest.fixture(scope="session")
def net_smpp() -> list[str]:
    """The command that runs the Net::SMPP driver (tests/interop/perl/esme.pl)."""
    perl = shutil.which("perl")
    require(perl is not None, "perl", "apt-get install perl")
    assert perl is not None
    found = subprocess.run([perl, "-MNet::SMPP", "-MJSON::PP", "-e", "1"], capture_output=True, check=False)
    require(found.returncode == 0, "the Perl module Net::SMPP", "apt-get install libnet-smpp-perl")
    return [perl, str(INTEROP_DIR / "perl" / "esme.pl")]


@pytest.fixture(scope="session")
def libsmpp34_esme(tmp_path_factory: pytest.TempPathFactory) -> str:
    """tests/interop/c/esme.c built against libsmpp34 with the system's C compiler."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    require(compiler is not None, "a C compiler", "apt-get install gcc libc6-dev")
    header = Path("/usr/include/libsmpp34/smpp34.h")
    require(header.exists(), "libsmpp34", "apt-get install libsmpp34-dev")
    assert compiler is not None
    binary = tmp_path_factory.mktemp("libsmpp34") / "esme"
    build = [compiler, "-Wall", "-Wextra", "-Werror", "-O1", "-o", str(binary), str(INTEROP_DIR / "c" / "esme.c")]
    build += [f"-I{header.parent}", "-lsmpp34"]
    result = subprocess.run(build, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(build)}\n{result.stderr}"
    return str(binary)


@pytest.fixture
def interop_bridge(start_bridge: Callable[..., RunningBridge], tmp_path: Path) -> Callable[..., RunningBridge]:
    """interop_bridge(**smpp) -> a bridge with the account SYSTEM_ID / PASSWORD routed to
    the simulator, which records what it accepts in tmp_path/records.jsonl (see
    tests.support.records)."""

    def start(message_id_format: str = "decimal", **smpp: Any) -> RunningBridge:
        simulator = {"type": "simulator", "delivery_delay": 0.05, "record_path": str(tmp_path / "records.jsonl")}
        accounts = [account(message_id_format=message_id_format)]
        return start_bridge(accounts=accounts, providers={"sim": simulator}, smpp=smpp)

    return start
