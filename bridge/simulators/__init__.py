"""Faithful HTTP doubles of the four provider APIs (aiohttp apps).

Used by the tests over real HTTP on 127.0.0.1, by `smpp-bridge simulate NAME`, and
by anyone who wants to try a connector without a provider account.
"""

from __future__ import annotations

import importlib
from typing import Any

from aiohttp import web

# provider -> "module:factory"; each factory returns an aiohttp Application.
SIMULATORS = {
    "contacta": "bridge.simulators.contacta:make_app",
    "kaleyra": "bridge.simulators.kaleyra:make_app",
    "flashsms": "bridge.simulators.flashsms:make_app",
    "skycore": "bridge.simulators.skycore:make_app",
}


def build_simulator(name: str, **options: Any) -> web.Application:
    module_name, factory = SIMULATORS[name].split(":")
    app: web.Application = getattr(importlib.import_module(module_name), factory)(**options)
    return app
