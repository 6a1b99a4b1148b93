"""The HTTP side: /metrics, /healthz, /readyz and provider callbacks.

Callbacks arrive at /callbacks/{provider}/{token}: `{provider}` is the provider's
name in the config, `{token}` its `callback_token`, compared in constant time. A
wrong name or token gets the same 404 and changes nothing. Parsing a provider's
payload belongs to its connector; this module only routes.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from bridge.core.auth import address_allowed
from bridge.metrics import Metrics
from bridge.providers.base import Provider

MAX_CALLBACK_BODY = 64 * 1024

# readiness() -> (check -> passed, check -> why it failed)
Check = Callable[[], Awaitable[tuple[dict[str, bool], dict[str, str]]]]


def make_app(
    metrics: Metrics,
    providers: Callable[[], Mapping[str, Provider]],
    readiness: Check,
    log: Any,
    details: Callable[[], dict[str, Any]] | None = None,
) -> web.Application:
    """`details`: more for /readyz to show (the provider access checks), not checked."""
    app = web.Application(client_max_size=MAX_CALLBACK_BODY)

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks, errors = await readiness()
        ready = all(checks.values())
        body: dict[str, Any] = {"ready": ready, "checks": checks}
        if errors:
            body["errors"] = errors
        if details is not None:
            body.update(details())
        return web.json_response(body, status=200 if ready else 503)

    async def callback(request: web.Request) -> web.StreamResponse:
        name = request.match_info["provider"]
        provider = providers().get(name)
        expected = provider.callback_token() if provider is not None else None
        given = request.match_info["token"]
        if provider is None or expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
            metrics.callbacks.labels(name if provider is not None else "unknown", "not_found").inc()
            log.warning("callback_refused", provider=name if provider is not None else "unknown", remote=request.remote)
            raise web.HTTPNotFound()
        if not _source_allowed(provider, request.remote):
            metrics.callbacks.labels(name, "forbidden").inc()
            log.warning("callback_refused", provider=name, remote=request.remote, reason="source not allowed")
            raise web.HTTPForbidden()
        return await provider.handle_callback(request)

    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/callbacks/{provider}/{token}", callback)
    return app


def _source_allowed(provider: Provider, remote: str | None) -> bool:
    """The provider's `callback_allowed_networks` (empty: every address)."""
    networks = getattr(provider.settings, "callback_allowed_networks", None)
    return not networks or address_allowed(networks, remote)
