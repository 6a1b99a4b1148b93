"""Provider connectors, one module each, found by the config `type`."""

from __future__ import annotations

import importlib
from typing import Any

from bridge.providers.base import Provider, ProviderContext

# config `type` -> "module:class"
CONNECTORS = {
    "simulator": "bridge.providers.simulator:Simulator",
    "contacta": "bridge.providers.contacta:Contacta",
    "kaleyra": "bridge.providers.kaleyra:Kaleyra",
    "flashsms": "bridge.providers.flashsms:FlashSms",
    "skycore": "bridge.providers.skycore:Skycore",
}


def connector_class(kind: str) -> type[Provider]:
    module_name, class_name = CONNECTORS[kind].split(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_provider(name: str, settings: Any, context: ProviderContext) -> Provider:
    return connector_class(settings.type)(name, settings, context)
