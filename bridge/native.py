"""Compiled modules: the pure-logic modules of the hot path built with mypyc, with the
pure-Python source as the fallback (as aiohttp, yarl and msgpack ship).

The compiled modules never sit next to their source: `pip install` (or
`python -m bridge.native_build`, bridge/native_build.py) writes them and a manifest to `bridge/_compiled/`,
and `bridge/__init__.py` calls `install()`, which puts a finder for exactly those
modules in front of the import system when, and only when:
- SMPP_BRIDGE_PURE is not set (`SMPP_BRIDGE_PURE=1` forces pure Python);
- the manifest exists and says the build worked (no C compiler: it says why not);
- they were built for this interpreter;
- every compiled module's source is byte for byte the one they were built from, so
  an edited source is never shadowed by stale compiled code (the whole set falls
  back to pure Python, and the start-up log line says which file changed).
Otherwise every module loads from its source. `MODE` says which, and why.

Why mypyc rather than Cython: measured on these modules, mypyc's native classes cut
a session's submit_sm round trip by a third and Cython's generic objects by a fifth;
both equal on the codec. mypyc compiles the code as typed and checked by mypy, our
checker already, so the annotations are enforced at run time in the compiled run of
the suite. The one incompatibility met: a ClassVar in a dataclass body becomes a
field under mypyc (see `bridge.smpp.pdu.CommandOf`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

ENV_PURE = "SMPP_BRIDGE_PURE"
PACKAGE_DIR = Path(__file__).resolve().parent
COMPILED_DIR_NAME = "_compiled"
MANIFEST = "manifest.json"
GROUP = "bridge_native"  # mypyc's shared library of the group: `bridge_native__mypyc`

# The modules compiled: pure logic only (bytes, text, records in and out; no sockets,
# no event loop, no threads). Paths relative to the directory holding `bridge/`.
COMPILED_SOURCES: tuple[str, ...] = (
    "bridge/smpp/constants.py",
    "bridge/smpp/pdu.py",
    "bridge/smpp/session.py",
    "bridge/smpp/text.py",
    "bridge/smpp/udh.py",
    "bridge/smpp/receipt.py",
    "bridge/smpp/times.py",
    "bridge/smpp/versions.py",
    "bridge/core/checks.py",
    "bridge/store/records.py",
    "bridge/providers/render.py",
    "bridge/core/message.py",
    "bridge/core/numbers.py",
    "bridge/core/history.py",
    "bridge/core/intake.py",
)


def module_name(source: str) -> str:
    return source.removesuffix(".py").replace("/", ".")


@dataclass(frozen=True)
class Mode:
    """Whether the compiled modules are in use; `reason` says why not."""

    compiled: bool
    reason: str = ""
    directory: Path | None = None
    modules: Mapping[str, str] = field(default_factory=dict)  # module name -> file in `directory`


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decide(package_dir: Path, environ: Mapping[str, str], suffix: str | None = None) -> Mode:
    """Compiled or pure, and why, for the package in `package_dir` (reads the manifest
    and hashes the sources; imports nothing)."""
    if truthy(environ.get(ENV_PURE)):
        return Mode(False, f"{ENV_PURE}={environ[ENV_PURE]} forces pure Python")
    directory = package_dir / COMPILED_DIR_NAME
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        return Mode(False, f"not built: no {COMPILED_DIR_NAME}/{MANIFEST} (install with pip to build them)")
    except (OSError, ValueError) as exc:
        return Mode(False, f"unreadable {COMPILED_DIR_NAME}/{MANIFEST}: {exc}")
    if manifest.get("error"):
        return Mode(False, f"not built: {manifest['error']}")
    suffix = suffix or importlib.machinery.EXTENSION_SUFFIXES[0]
    if manifest.get("suffix") != suffix:
        return Mode(False, f"built for another interpreter ({manifest.get('suffix')}, this one loads {suffix})")
    root = package_dir.parent
    for source, digest in manifest.get("sources", {}).items():
        try:
            current = sha256(root / source)
        except OSError:
            return Mode(False, f"stale: {source} is gone since they were built")
        if current != digest:
            return Mode(False, f"stale: {source} changed since the build (rebuild: python -m bridge.native_build)")
    modules: dict[str, str] = manifest.get("modules", {})
    missing = [name for name, file in modules.items() if not (directory / file).is_file()]
    if missing or not modules:
        return Mode(False, f"incomplete build: {', '.join(missing) or 'no modules'} missing")
    return Mode(True, "", directory, modules)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds exactly the compiled modules, in `_compiled/`; every other module is left
    to the import system."""

    def __init__(self, directory: Path, modules: Mapping[str, str]) -> None:
        self.directory = directory
        self.modules = dict(modules)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.modules.get(fullname)
        if file is None:
            return None
        location = str(self.directory / file)
        loader = importlib.machinery.ExtensionFileLoader(fullname, location)
        return importlib.util.spec_from_file_location(fullname, location, loader=loader)


MODE = Mode(False, "install() not called")


def install() -> Mode:
    """Decide once per process (from `bridge/__init__.py`, before any other module of
    ours is imported) and, when compiled, put the finder first."""
    global MODE
    MODE = decide(PACKAGE_DIR, os.environ)
    if MODE.compiled and MODE.directory is not None:
        sys.meta_path.insert(0, _Finder(MODE.directory, MODE.modules))
    return MODE


def loaded_from() -> dict[str, str]:
    """Each compiled module's file as loaded in this process: `compiled` or `source`."""
    out = {}
    for source in COMPILED_SOURCES:
        name = module_name(source)
        module = importlib.import_module(name)
        out[name] = "source" if (module.__file__ or "").endswith(".py") else "compiled"
    return out
