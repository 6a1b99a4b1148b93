"""Builds the compiled modules (bridge/native.py) with the package; everything else is
in pyproject.toml. Without a C compiler the build still succeeds, pure Python, and the
daemon says so at start-up."""

import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithNative(build_py):
    def run(self) -> None:
        super().run()
        sys.path.insert(0, str(ROOT))
        from bridge.native import COMPILED_DIR_NAME
        from bridge.native_build import build

        # An editable install runs the source tree: the compiled modules go beside it,
        # in bridge/_compiled/ (checked against the sources at every start).
        base = ROOT if getattr(self, "editable_mode", False) else Path(self.build_lib)
        target = base / "bridge" / COMPILED_DIR_NAME
        error = build(ROOT, target)
        print(f"smpp-bridge: compiled modules {'not built: ' + error if error else 'built'} ({target})")


class BinaryDistribution(Distribution):
    """A wheel with the compiled modules is for this platform and interpreter only."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildWithNative}, distclass=BinaryDistribution)
