"""The import rules of docs/architecture.md, read off the source with `ast`: each room
of `bridge/` imports only the rooms it may, so a wrong-way import fails here (and so
in CI), whatever line it is on (inside a function, under TYPE_CHECKING: all count)."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bridge"

# Module (dotted, under bridge.) or package -> its room. The longest match wins.
ROOMS: dict[str, str] = {
    "smpp": "smpp",
    "core": "core",
    "providers": "providers",
    "store": "store",
    "simulators": "simulators",
    "server": "edges",
    "web": "edges",
    "http_server": "edges",
    "admin": "edges",
    "config": "shared",
    "logging": "shared",
    "metrics": "shared",
    "notify": "shared",
    "native": "shared",
    "gc_policy": "shared",
    "app": "wiring",
    "cli": "wiring",
    "ops": "wiring",
    "bench": "wiring",
    "native_build": "wiring",
    "__main__": "wiring",
}
# Room -> the rooms it may import (its own always; `bridge` itself, the version, too).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "smpp": frozenset(),
    "shared": frozenset({"smpp"}),
    "core": frozenset({"smpp", "shared"}),
    "providers": frozenset({"core", "smpp", "shared"}),
    "store": frozenset({"core", "smpp", "shared"}),
    "edges": frozenset({"core", "smpp", "shared"}),
    "simulators": frozenset({"smpp", "shared"}),
    "wiring": frozenset({"core", "smpp", "shared", "providers", "store", "edges", "simulators"}),
}


def room_of(module: str) -> str | None:
    """The room of `bridge.x.y` (None: the package root)."""
    parts = module.split(".")[1:]
    for size in range(len(parts), 0, -1):
        room = ROOMS.get(".".join(parts[:size]))
        if room is not None:
            return room
    return None if not parts else "unplaced"


def imports(module: str, source: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of ours in `source`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from bridge.core import ports` imports bridge.core.ports
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "bridge" or name.startswith("bridge."):
                yield node.lineno, name


def violations(sources: Mapping[str, tuple[str, bool]]) -> list[str]:
    """Wrong-way imports in `sources` (module -> (source, is a package's __init__))."""
    known = set(sources)
    found = []
    for module, (source, is_package) in sorted(sources.items()):
        room = room_of(module)
        if room == "unplaced":
            found.append(f"{module}: in no room (add it to ROOMS and to docs/architecture.md)")
            continue
        if room is None:
            continue
        for line, name in imports(module, source, is_package):
            # the longest module the name is in: `from bridge.core import ports` imports the
            # module bridge.core.ports, `from bridge.core.ports import Store` a name in it
            parts = name.split(".")
            target = next((m for m in (".".join(parts[:n]) for n in range(len(parts), 1, -1)) if m in known), name)
            target_room = room_of(target)
            # None / "unplaced": the package root's own names (bridge.__version__)
            if target_room in (None, "unplaced", room) or target_room in MAY_IMPORT[room]:
                continue
            allowed = ", ".join(sorted(MAY_IMPORT[room])) or "nothing of ours"
            found.append(f"{module}:{line} imports {target}: {room} may import {allowed}")
    return sorted(set(found))


def package_sources() -> dict[str, tuple[str, bool]]:
    sources = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        sources[module] = (path.read_text(encoding="utf-8"), is_package)
    return sources


def test_imports_point_one_way() -> None:
    wrong = violations(package_sources())
    assert not wrong, "wrong-way imports (docs/architecture.md):\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("module", "source", "wrong"),
    [
        ("bridge.core.x", "from bridge.providers.kaleyra import Kaleyra", True),
        ("bridge.core.x", "def f():\n    from bridge.store import sqlite\n", True),  # inside a function too
        ("bridge.providers.x", "from bridge.store.sqlite import SqliteStore", True),
        ("bridge.store.x", "import bridge.providers.http", True),
        ("bridge.smpp.x", "from bridge.core.message import Message", True),
        ("bridge.smpp.x", "from ..core import message", True),  # relative
        ("bridge.simulators.x", "from bridge.providers import kaleyra", True),
        ("bridge.web", "from bridge.store.sqlite import SqliteStore", True),
        ("bridge.core.x", "from bridge.core.ports import Store\nfrom bridge.smpp import pdu", False),
        ("bridge.providers.x", "from bridge.core.ports import Provider\nfrom bridge import __version__", False),
        ("bridge.app", "from bridge.store.sqlite import SqliteStore", False),
    ],
)
def test_the_rules_catch_a_wrong_way_import(module: str, source: str, wrong: bool) -> None:
    sources = {module: (source, False), "bridge.core.ports": ("", False), "bridge.smpp.pdu": ("", False)}
    assert bool(violations(sources)) is wrong


def test_a_module_outside_every_room_is_reported() -> None:
    assert violations({"bridge.newthing": ("", False)}) == [
        "bridge.newthing: in no room (add it to ROOMS and to docs/architecture.md)"
    ]
