"""Provider connectors, one module each, found by the config `type`: the connector
of type "kaleyra" is the Provider subclass of `bridge.providers.kaleyra` whose
`kind` is "kaleyra". The types themselves come from the config (`PROVIDER_TYPES`).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from bridge.config import PROVIDER_TYPES
from bridge.core.ports import Provider, ProviderContext


def connector_class(kind: str) -> type[Provider]:
    if kind not in PROVIDER_TYPES:
        raise KeyError(kind)
    module = importlib.import_module(f"bridge.providers.{kind}")
    for value in vars(module).values():
        if inspect.isclass(value) and issubclass(value, Provider) and value.kind == kind:
            return value
    raise LookupError(f"bridge.providers.{kind} has no Provider of kind {kind!r}")


def build_provider(name: str, settings: Any, context: ProviderContext) -> Provider:
    return connector_class(settings.type)(name, settings, context)
