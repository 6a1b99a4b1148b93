"""The HTTP side: /metrics, /healthz, /readyz and provider callbacks.

Callbacks arrive at /callbacks/{provider}/{token}: `{provider}` is the provider's
name in the config, `{token}` its `callback_token`, compared in constant time. A
wrong name or token gets the same 404 and changes nothing. Parsing a provider's
payload belongs to its connector, which gets the request as a plain
`CallbackRequest` (no aiohttp type): this module only routes, bounds the body and
checks the token and the source address.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from bridge.core.auth import address_allowed
from bridge.core.ports import CallbackRequest, Provider
from bridge.metrics import Metrics

MAX_CALLBACK_BODY = 64 * 1024

# readiness() -> (check -> passed, check -> why it failed)
Check = Callable[[], Awaitable[tuple[dict[str, bool], dict[str, str]]]]


def make_app(
    metrics: Metrics,
    providers: Mapping[str, Provider],
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
        provider = providers.get(name)
        expected = provider.callback_token() if provider is not None else None
        given = request.match_info["token"]
        if provider is None or expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
            metrics.callbacks.labels(name if provider is not None else "unknown", "not_found").inc()
            log.warning("callback_refused", provider=name if provider is not None else "unknown", remote=request.remote)
            raise web.HTTPNotFound()
        networks = provider.settings.callback_allowed_networks
        if networks and not address_allowed(networks, request.remote):
            metrics.callbacks.labels(name, "forbidden").inc()
            log.warning("callback_refused", provider=name, remote=request.remote, reason="source not allowed")
            raise web.HTTPForbidden()
        answer = await provider.handle_callback(await callback_request(request))
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/callbacks/{provider}/{token}", callback)
    return app


async def callback_request(request: web.Request) -> CallbackRequest:
    """aiohttp's request as the neutral value connectors take (the body read here, up
    to MAX_CALLBACK_BODY: aiohttp answers 413 beyond)."""
    return CallbackRequest(
        method=request.method,
        path=request.path,
        query={name: request.query[name] for name in request.query},
        headers={name.lower(): value for name, value in request.headers.items()},
        body=await request.read(),
        peer=request.remote,
    )
