"""The running provider connectors."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.core.ports import Provider, ProviderCheck


async def check_access(provider: Provider) -> dict[str, Any]:
    """`provider.check_access()` as JSON (with the provider's type), never raising."""
    try:
        check = await asyncio.wait_for(provider.check_access(), provider.settings.timeout + 5)
    except Exception as exc:
        check = ProviderCheck(checked=True, reachable=False, detail=f"check failed: {type(exc).__name__}")
    return {"type": provider.kind, **check.as_dict()}
