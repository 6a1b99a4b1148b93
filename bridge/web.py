"""The HTTP port's routes: /metrics, /healthz, /readyz and provider callbacks (the
admin API's are in bridge/admin.py); served by bridge/http_server.py.

Callbacks arrive at /callbacks/{provider}/{token}: `{provider}` is the provider's
name in the config, `{token}` its `callback_token`, compared in constant time. A
wrong name or token gets the same 404 and changes nothing. Parsing a provider's
payload belongs to its connector, which gets the request as a plain
`CallbackRequest`: this module only routes and checks the token and the source
address (the server has bounded the body: MAX_CALLBACK_BODY, 413 beyond).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bridge.core.auth import address_allowed
from bridge.core.ports import CallbackRequest, Provider
from bridge.http_server import Request, Response, Router
from bridge.metrics import Metrics

MAX_CALLBACK_BODY = 64 * 1024
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# readiness() -> (check -> passed, check -> why it failed)
Check = Callable[[], Awaitable[tuple[dict[str, bool], dict[str, str]]]]


def make_routes(
    metrics: Metrics,
    providers: Mapping[str, Provider],
    readiness: Check,
    log: Any,
    details: Callable[[], dict[str, Any]] | None = None,
) -> Router:
    """`details`: more for /readyz to show (the provider access checks), not checked."""
    router = Router()

    async def callback(request: Request, params: dict[str, str]) -> Response:
        name = params["provider"]
        provider = providers.get(name)
        expected = provider.callback_token() if provider is not None else None
        if provider is None or expected is None or not hmac.compare_digest(expected.encode(), params["token"].encode()):
            metrics.callbacks.labels(name if provider is not None else "unknown", "not_found").inc()
            log.warning("callback_refused", provider=name if provider is not None else "unknown", remote=request.peer)
            return Response.error(404)
        networks = provider.settings.callback_allowed_networks
        if networks and not address_allowed(networks, request.peer):
            metrics.callbacks.labels(name, "forbidden").inc()
            log.warning("callback_refused", provider=name, remote=request.peer, reason="source not allowed")
            return Response.error(403)
        answer = await provider.handle_callback(callback_request(request))
        return Response(answer.status, answer.body.encode(), headers=answer.headers)

    async def metrics_handler(request: Request, params: dict[str, str]) -> Response:
        return Response(body=metrics.exposition(), content_type=METRICS_TYPE)

    async def healthz(request: Request, params: dict[str, str]) -> Response:
        return Response.json({"status": "ok"})

    async def readyz(request: Request, params: dict[str, str]) -> Response:
        checks, errors = await readiness()
        ready = all(checks.values())
        body: dict[str, Any] = {"ready": ready, "checks": checks}
        if errors:
            body["errors"] = errors
        if details is not None:
            body.update(details())
        return Response.json(body, status=200 if ready else 503)

    router.add("*", "/callbacks/{provider}/{token}", callback)  # first: the busy one
    router.add("GET", "/metrics", metrics_handler)
    router.add("GET", "/healthz", healthz)
    router.add("GET", "/readyz", readyz)
    return router


def callback_request(request: Request) -> CallbackRequest:
    """The server's request as the neutral value connectors take."""
    return CallbackRequest(request.method, request.path, request.query, request.headers, request.body, request.peer)
