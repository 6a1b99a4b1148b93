"""Faithful HTTP doubles of the four provider APIs (aiohttp apps).

Used by the tests over real HTTP on 127.0.0.1, by `smpp-bridge simulate NAME`, and
by anyone who wants to try a connector without a provider account.
"""

from __future__ import annotations

import importlib
from typing import Any

from aiohttp import web

# One per provider with an HTTP API, named as its document names it (the simulators
# know nothing of the product's configuration; a test checks both lists agree):
# `bridge.simulators.<name>.make_app(**options)` returns its aiohttp Application.
SIMULATORS = ("contacta", "kaleyra", "flashsms", "skycore")


def build_simulator(name: str, **options: Any) -> web.Application:
    if name not in SIMULATORS:
        raise KeyError(name)
    app: web.Application = importlib.import_module(f"bridge.simulators.{name}").make_app(**options)
    return app
