"""Building the compiled modules (bridge/native.py says which and how they are used):
run by `pip install` (setup.py), or by hand after editing one of them:

    python -m bridge.native_build            # rebuild in place (needs mypy and a C compiler)
    python -m bridge.native_build --status   # which mode a process would run in, and why
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import shutil
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from bridge.native import (
    COMPILED_DIR_NAME,
    COMPILED_SOURCES,
    ENV_PURE,
    GROUP,
    MANIFEST,
    PACKAGE_DIR,
    decide,
    module_name,
    sha256,
    truthy,
)


def build(root: Path, target: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """Compile COMPILED_SOURCES of the tree at `root` with mypyc into `target`, with the
    manifest; None when built, else why not (written to the manifest too, so the
    daemon's start-up line can say it). Never raises: a machine without a C compiler
    still installs, and runs pure Python."""
    environ = os.environ if environ is None else environ
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        if old.is_file():
            old.unlink()
    modules: dict[str, str] = {}
    error: str | None = None
    if truthy(environ.get(ENV_PURE)):
        error = f"{ENV_PURE} was set when installing"
    else:
        try:
            modules = _compile(root, target)
        except Exception as exc:  # any failure means "pure Python", with why
            error = _why(exc)
        except SystemExit as exc:  # what distutils raises for a compiler that failed
            error = _why(exc)
    manifest = {
        "suffix": importlib.machinery.EXTENSION_SUFFIXES[0],
        "error": error,
        "modules": modules,
        "sources": {source: sha256(root / source) for source in COMPILED_SOURCES} if error is None else {},
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return error


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}: {type(exc).__name__}: {text})"
    return f"{type(exc).__name__}: {text}"


def _compile(root: Path, target: Path) -> dict[str, str]:
    from mypyc.build import mypycify
    from setuptools import Distribution
    from setuptools.command.build_ext import build_ext

    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    with tempfile.TemporaryDirectory(prefix="smpp-bridge-mypyc-") as tmp:
        work = Path(tmp)
        previous = Path.cwd()
        os.chdir(root)  # mypyc names the modules by their paths from here
        try:
            extensions = mypycify(
                [
                    # The project's mypy config loads the pydantic plugin, which a build
                    # environment need not have; these modules need none of it.
                    "--config-file=",
                    "--ignore-missing-imports",
                    "--follow-imports=silent",
                    "--python-version=3.11",
                    f"--cache-dir={work / 'mypy-cache'}",
                    *COMPILED_SOURCES,
                ],
                opt_level="3",
                debug_level="0",
                group_name=GROUP,
                target_dir=str(work / "c"),
            )
            command = build_ext(Distribution({"ext_modules": extensions}))
            command.build_lib = str(work / "lib")
            command.build_temp = str(work / "temp")
            command.inplace = False
            command.ensure_finalized()
            command.run()
        finally:
            os.chdir(previous)
        modules: dict[str, str] = {}
        for ext in extensions:
            file = f"{ext.name}{suffix}"
            shutil.copyfile(command.get_ext_fullpath(ext.name), target / file)
            modules[ext.name] = file
    missing = {module_name(s) for s in COMPILED_SOURCES} - set(modules)
    if missing:
        raise RuntimeError(f"mypyc built no module for {sorted(missing)}")
    return modules


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.native_build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--status", action="store_true", help="only say which mode a process would run in")
    args = parser.parse_args(argv)
    if not args.status:
        error = build(PACKAGE_DIR.parent, PACKAGE_DIR / COMPILED_DIR_NAME)
        if error:
            print(f"not built: {error}")
            return 1
    mode = decide(PACKAGE_DIR, os.environ)
    print("compiled modules in use" if mode.compiled else f"pure Python: {mode.reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
