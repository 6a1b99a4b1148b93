"""Interop tests: third-party SMPP clients (Kannel, smpplib, node-smpp) against a real bridge.

The external programs come from the environment: Debian's `kannel` (bearerbox,
smsbox) and node with `npm ci --prefix tests/interop/node` (node-smpp 0.5.1); .ci/run
installs both. Outside CI a missing one skips its tests with the reason; with CI set
it fails them, so an interop run can never pass by testing nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.interop.kannel import kannel_binaries

NODE_DIR = Path(__file__).resolve().parent / "node"


def require(available: bool, what: str, how: str) -> None:
    """Skip unless `available` (under CI a skip fails: tests/conftest.py)."""
    if not available:
        pytest.skip(f"{what} is missing: {how}")


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
