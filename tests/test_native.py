"""Compiled modules (bridge/native.py): which mode runs, why, and that a stale or
missing build never runs in place of the source.

The README's test command runs the suite twice: with the compiled modules (built by
`pip install -e`) and with SMPP_BRIDGE_PURE=1. Under CI the first run must really be
compiled: `test_the_mode_is_the_one_asked_for` fails otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
from pathlib import Path

import pytest

from bridge import native
from tests.support.daemon import Daemon
from tests.support.waiting import wait_for

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_the_mode_is_the_one_asked_for() -> None:
    loaded = native.loaded_from()
    assert set(loaded) == {native.module_name(s) for s in native.COMPILED_SOURCES}
    if native.truthy(os.environ.get(native.ENV_PURE)):
        assert not native.MODE.compiled
        assert native.MODE.reason.startswith("SMPP_BRIDGE_PURE=")
        assert set(loaded.values()) == {"source"}
    elif os.environ.get("CI"):
        assert native.MODE.compiled, f"CI runs the compiled modules, but: {native.MODE.reason}"
        assert set(loaded.values()) == {"compiled"}
    else:  # a developer's checkout: either, but all of one kind, and a reason when pure
        assert set(loaded.values()) == {"compiled" if native.MODE.compiled else "source"}
        assert native.MODE.compiled or native.MODE.reason


def test_compiled_modules_load_from_the_build_directory_never_from_beside_the_source() -> None:
    import bridge.smpp.pdu

    location = Path(bridge.smpp.pdu.__file__ or "")
    if native.MODE.compiled:
        assert location.parent == native.PACKAGE_DIR / native.COMPILED_DIR_NAME
        assert location.name.endswith(SUFFIX)
    else:
        assert location == native.PACKAGE_DIR / "smpp" / "pdu.py"
    assert not list((native.PACKAGE_DIR / "smpp").glob(f"*{SUFFIX}")), "nothing compiled beside the source"


# -- decide(): a package directory made here, nothing compiled ---------------------------


def package(tmp_path: Path, manifest: dict[str, object] | None, *, sources: dict[str, str] | None = None) -> Path:
    """A fake `bridge/` with two sources and, if given, a manifest and the files it names."""
    pkg = tmp_path / "bridge"
    (pkg / "smpp").mkdir(parents=True)
    for source, text in (sources or {"bridge/smpp/pdu.py": "x = 1\n", "bridge/smpp/text.py": "y = 2\n"}).items():
        (tmp_path / source).write_text(text)
    if manifest is not None:
        compiled = pkg / native.COMPILED_DIR_NAME
        compiled.mkdir()
        (compiled / native.MANIFEST).write_text(json.dumps(manifest))
        modules = manifest.get("modules") or {}
        assert isinstance(modules, dict)
        for file in modules.values():
            (compiled / file).write_bytes(b"\x7fELF")
    return pkg


def good_manifest() -> dict[str, object]:
    return {
        "suffix": SUFFIX,
        "error": None,
        "modules": {"bridge.smpp.pdu": f"bridge.smpp.pdu{SUFFIX}", "bridge.smpp.text": f"bridge.smpp.text{SUFFIX}"},
        "sources": {
            "bridge/smpp/pdu.py": hashlib.sha256(b"x = 1\n").hexdigest(),
            "bridge/smpp/text.py": hashlib.sha256(b"y = 2\n").hexdigest(),
        },
    }


def test_a_current_build_is_used(tmp_path: Path) -> None:
    mode = native.decide(package(tmp_path, good_manifest()), {})
    assert mode.compiled and mode.reason == ""
    assert mode.modules == {
        "bridge.smpp.pdu": f"bridge.smpp.pdu{SUFFIX}",
        "bridge.smpp.text": f"bridge.smpp.text{SUFFIX}",
    }


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_smpp_bridge_pure_forces_the_source_even_with_a_current_build(tmp_path: Path, value: str) -> None:
    mode = native.decide(package(tmp_path, good_manifest()), {"SMPP_BRIDGE_PURE": value})
    assert not mode.compiled
    assert mode.reason == f"SMPP_BRIDGE_PURE={value} forces pure Python"


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_smpp_bridge_pure_off(tmp_path: Path, value: str) -> None:
    assert native.decide(package(tmp_path, good_manifest()), {"SMPP_BRIDGE_PURE": value}).compiled


def test_an_edited_source_falls_back_to_pure_python_and_names_the_file(tmp_path: Path) -> None:
    pkg = package(
        tmp_path, good_manifest(), sources={"bridge/smpp/pdu.py": "x = 1\n", "bridge/smpp/text.py": "y = 3\n"}
    )
    mode = native.decide(pkg, {})
    assert not mode.compiled
    assert mode.reason.startswith("stale: bridge/smpp/text.py changed since the build")


def test_a_build_that_failed_says_why(tmp_path: Path) -> None:
    manifest: dict[str, object] = {
        "suffix": SUFFIX,
        "error": "no C compiler (cc: CompileError: ...)",
        "modules": {},
        "sources": {},
    }
    mode = native.decide(package(tmp_path, manifest), {})
    assert not mode.compiled
    assert mode.reason == "not built: no C compiler (cc: CompileError: ...)"


def test_no_build_at_all(tmp_path: Path) -> None:
    mode = native.decide(package(tmp_path, None), {})
    assert not mode.compiled
    assert mode.reason.startswith("not built: no _compiled/manifest.json")


def test_a_build_for_another_interpreter_is_not_loaded(tmp_path: Path) -> None:
    manifest = {**good_manifest(), "suffix": ".cpython-312-x86_64-linux-gnu.so"}
    mode = native.decide(package(tmp_path, manifest), {})
    assert not mode.compiled
    assert "built for another interpreter" in mode.reason


def test_a_missing_compiled_file_falls_back(tmp_path: Path) -> None:
    pkg = package(tmp_path, good_manifest())
    (pkg / native.COMPILED_DIR_NAME / f"bridge.smpp.text{SUFFIX}").unlink()
    mode = native.decide(pkg, {})
    assert not mode.compiled
    assert mode.reason == "incomplete build: bridge.smpp.text missing"


def test_the_build_records_why_it_did_not_compile(tmp_path: Path) -> None:
    from bridge.native_build import build

    target = tmp_path / "bridge" / native.COMPILED_DIR_NAME
    assert (
        build(native.PACKAGE_DIR.parent, target, {"SMPP_BRIDGE_PURE": "1"})
        == "SMPP_BRIDGE_PURE was set when installing"
    )
    mode = native.decide(tmp_path / "bridge", {})
    assert mode.reason == "not built: SMPP_BRIDGE_PURE was set when installing"


@pytest.mark.slow
def test_without_a_c_compiler_the_build_records_why_and_the_package_runs_pure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `pip install` on a machine without a compiler does (failure injected: CC
    names no program); mypyc runs, the C compile fails, nothing raises."""
    from bridge.native_build import build

    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    target = tmp_path / "bridge" / native.COMPILED_DIR_NAME
    error = build(native.PACKAGE_DIR.parent, target, {})
    assert error is not None and error.startswith(f"no C compiler ({tmp_path / 'no-such-cc'}: ")
    assert sorted(p.name for p in target.iterdir()) == [native.MANIFEST]
    assert native.decide(tmp_path / "bridge", {}).reason == f"not built: {error}"


# -- the daemon's start-up line ---------------------------------------------------------

CONFIG = """
[smpp]
host = "127.0.0.1"
port = {smpp_port}
[http]
host = "127.0.0.1"
port = {http_port}
[store]
url = "sqlite:///{workdir}/b.db"
[log]
level = "info"
format = "json"
[[accounts]]
system_id = "demo"
password = "demo123"
route = "sim"
[providers.sim]
type = "simulator"
"""


def startup_line(tmp_path: Path) -> dict[str, object]:
    """The daemon's `compiled_modules` log line (started and stopped here)."""
    daemon = Daemon(tmp_path, CONFIG).start()
    try:
        wait_for(lambda: daemon.events("compiled_modules"))
        (line,) = daemon.events("compiled_modules")
    finally:
        assert daemon.stop() == 0
    return line


def test_the_daemon_says_at_start_up_that_pure_python_was_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMPP_BRIDGE_PURE", "1")
    line = startup_line(tmp_path)
    assert line["in_use"] is False
    assert line["reason"] == "SMPP_BRIDGE_PURE=1 forces pure Python"
    assert line["level"] == "info"


def test_the_daemon_says_at_start_up_whether_the_compiled_modules_run(tmp_path: Path) -> None:
    line = startup_line(tmp_path)
    assert line["in_use"] is native.MODE.compiled
    if not native.MODE.compiled:
        assert line["reason"] == native.MODE.reason
