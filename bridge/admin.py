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

from bridge.core.actions import ActionRefused, Actions
from bridge.core.lookup import LookupFailed, parse_time
from bridge.core.message import Message
from bridge.http_server import Request, Response, RouteHandler, Router
from bridge.web import callback_request

MAX_FIND = 1000


def add_admin_routes(
    router: Router,
    token: Callable[[], str | None],
    actions: Actions,
    provider_checks: Callable[[], Mapping[str, Any]],
    log: Any,
) -> None:
    lookup = actions.lookup

    def guarded(handler: RouteHandler) -> RouteHandler:
        async def check(request: Request, params: dict[str, str]) -> Response:
            expected = token()
            if not expected:
                return Response.error(404)
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected.encode()):
                log.warning("admin_refused", who=request.peer, path=request.path)
                return Response.error(401, {"WWW-Authenticate": "Bearer"})
            try:
                return await handler(request, params)
            except ActionRefused as exc:
                return Response.json({"error": exc.reason}, status=exc.status)
            except LookupFailed as exc:
                return Response.json({"error": str(exc)}, status=400)

        return check

    def full_numbers(request: Request) -> bool:
        return request.query.get("numbers") == "full"

    async def view(request: Request, message: Message | None) -> Response:
        """One message's life (its full numbers only when asked, and audited)."""
        if message is None:
            return Response.json({"error": "no such message"}, status=404)
        numbers = full_numbers(request)
        if numbers:
            await actions.numbers_shown(_who(request), message)
        return Response.json(await lookup.message_view(message, numbers))

    async def show(request: Request, params: dict[str, str]) -> Response:
        return await view(request, await lookup.find_message(params["id"]))

    async def find(request: Request, params: dict[str, str]) -> Response:
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
        return Response.json(found)

    async def queues(request: Request, params: dict[str, str]) -> Response:
        return Response.json(await lookup.queues())

    async def providers(request: Request, params: dict[str, str]) -> Response:
        return Response.json({"providers": dict(provider_checks())})

    def action(run: Callable[[str, str, str], Awaitable[dict[str, Any]]], key: str = "id") -> RouteHandler:
        """POST handler: `run(the path's {key}, who, reason)` answered as JSON."""

        async def handle(request: Request, params: dict[str, str]) -> Response:
            return Response.json(await run(params[key], _who(request), _reason(request)))

        return handle

    async def unknown(request: Request, params: dict[str, str]) -> Response:
        return Response.error(404)

    router.add("GET", "/admin/messages/{id}", guarded(show))
    router.add("GET", "/admin/messages", guarded(find))
    router.add("GET", "/admin/queues", guarded(queues))
    router.add("GET", "/admin/providers", guarded(providers))
    router.add("POST", "/admin/messages/{id}/retry", guarded(action(actions.retry)))
    router.add("POST", "/admin/messages/{id}/give-up", guarded(action(actions.give_up)))
    router.add("POST", "/admin/receipts/{id}/redeliver", guarded(action(actions.redeliver_receipt)))
    router.add("POST", "/admin/providers/{name}/retry", guarded(action(actions.retry_provider, "name")))
    # Anything else under /admin/ is refused like the rest (401 without a good token).
    router.add("*", "/admin/*", guarded(unknown))


def _who(request: Request) -> str:
    return request.peer or "unknown"


def _reason(request: Request) -> str:
    """`reason` from a JSON body or a form (urlencoded or multipart); from the query
    without a body; empty when none was given."""
    if not request.body:
        return request.query.get("reason", "")
    body = callback_request(request)
    if body.content_type == "application/json":
        try:
            data = body.json()
        except ValueError:
            raise LookupFailed("the body is not JSON") from None
        return str(data.get("reason", "")) if isinstance(data, dict) else ""
    try:
        return body.form().get("reason", "")
    except ValueError:
        raise LookupFailed("the body is not a readable form") from None
