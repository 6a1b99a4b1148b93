"""The admin API: /admin/... on the HTTP port, for the operator and the CLI.

Off unless `[http] admin_token` is set: then every /admin/ path is a 404, as if it
did not exist. With a token, each request must carry `Authorization: Bearer <token>`
(compared in constant time); a missing or wrong one gets a bare 401. The JSON is the
CLI's `--json` output (bridge/core/lookup.py builds it; this module only routes).

    GET  /admin/messages/{id}                    one message's life (?numbers=full)
    GET  /admin/messages?to=N&since=1h[&until=][&limit=]   messages to a number
    GET  /admin/messages?provider_id=X[&provider=NAME]     by the provider's id
    GET  /admin/queues                           outbox, receipts, sets, overdue reports
    GET  /admin/providers                        the last provider access checks
    POST /admin/messages/{id}/retry              {"reason": "..."} optional
    POST /admin/messages/{id}/give-up            {"reason": "..."} required
    POST /admin/receipts/{id}/redeliver          {"reason": "..."} optional
    POST /admin/providers/{name}/retry           every message waiting for that provider
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from bridge.core.actions import ActionRefused, Actions
from bridge.core.lookup import LookupFailed, parse_time
from bridge.core.message import Message

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_FIND = 1000


def add_admin_routes(
    app: web.Application,
    token: Callable[[], str | None],
    actions: Actions,
    provider_checks: Callable[[], Mapping[str, Any]],
    log: Any,
) -> None:
    lookup = actions.lookup

    def guarded(handler: Handler) -> Handler:
        async def check(request: web.Request) -> web.StreamResponse:
            expected = token()
            if not expected:
                raise web.HTTPNotFound()
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected.encode()):
                log.warning("admin_refused", who=request.remote, path=request.path)
                raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
            try:
                return await handler(request)
            except ActionRefused as exc:
                return web.json_response({"error": exc.reason}, status=exc.status)
            except LookupFailed as exc:
                return web.json_response({"error": str(exc)}, status=400)

        return check

    def full_numbers(request: web.Request) -> bool:
        return request.query.get("numbers") == "full"

    async def view(request: web.Request, message: Message | None) -> web.StreamResponse:
        """One message's life (its full numbers only when asked, and audited)."""
        if message is None:
            return web.json_response({"error": "no such message"}, status=404)
        numbers = full_numbers(request)
        if numbers:
            await actions.numbers_shown(_who(request), message)
        return web.json_response(await lookup.message_view(message, numbers))

    async def show(request: web.Request) -> web.StreamResponse:
        return await view(request, await lookup.find_message(request.match_info["id"]))

    async def find(request: web.Request) -> web.StreamResponse:
        query = request.query
        if "provider_id" in query:
            return await view(
                request, await lookup.find_by_provider_id(query["provider_id"], query.get("provider") or None)
            )
        if "to" not in query:
            raise LookupFailed("give to=NUMBER (with since=) or provider_id=ID")
        now = time.time()
        since = parse_time(query.get("since", "1d"), now)
        until = parse_time(query["until"], now) if "until" in query else None
        try:
            limit = max(1, min(MAX_FIND, int(query.get("limit", "100"))))
        except ValueError:
            raise LookupFailed("limit must be a number") from None
        numbers = full_numbers(request)
        found = await lookup.find(query["to"], since, until, limit, numbers)
        if numbers:
            await actions.numbers_shown(_who(request), listed=len(found["messages"]))
        return web.json_response(found)

    async def queues(request: web.Request) -> web.StreamResponse:
        return web.json_response(await lookup.queues())

    async def providers(request: web.Request) -> web.StreamResponse:
        return web.json_response({"providers": dict(provider_checks())})

    def action(run: Callable[[str, str, str], Awaitable[dict[str, Any]]], key: str = "id") -> Handler:
        """POST handler: `run(the path's {key}, who, reason)` answered as JSON."""

        async def handle(request: web.Request) -> web.StreamResponse:
            reason = await _reason(request)
            return web.json_response(await run(request.match_info[key], _who(request), reason))

        return handle

    async def unknown(request: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    app.router.add_get("/admin/messages/{id}", guarded(show))
    app.router.add_get("/admin/messages", guarded(find))
    app.router.add_get("/admin/queues", guarded(queues))
    app.router.add_get("/admin/providers", guarded(providers))
    app.router.add_post("/admin/messages/{id}/retry", guarded(action(actions.retry)))
    app.router.add_post("/admin/messages/{id}/give-up", guarded(action(actions.give_up)))
    app.router.add_post("/admin/receipts/{id}/redeliver", guarded(action(actions.redeliver_receipt)))
    app.router.add_post("/admin/providers/{name}/retry", guarded(action(actions.retry_provider, "name")))
    # Anything else under /admin/ is refused like the rest (401 without a good token).
    app.router.add_route("*", "/admin/{tail:.*}", guarded(unknown))


def _who(request: web.Request) -> str:
    return request.remote or "unknown"


async def _reason(request: web.Request) -> str:
    """`reason` from a JSON body or a form; empty when none was given."""
    if not request.can_read_body:
        return request.query.get("reason", "")
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise LookupFailed("the body is not JSON") from None
        return str(body.get("reason", "")) if isinstance(body, dict) else ""
    form = await request.post()
    return str(form.get("reason", ""))
