"""What the four provider doubles share, and nothing of any provider's API.

- `make_double`: the double's Application. Every API request (any path outside /_sim/)
  is recorded in app["received"] as {"method", "path", "headers", "query", "json",
  "form", "body", "at"}: `json` and `form` are the parsed body when its Content-Type
  says so (else None), `body` the raw text. A double's own `records` (messages sent,
  postbacks, callbacks) are plain keys too; `POST /_sim/reset` clears them with the
  requests and the queued faults.
- `wait_for(app, condition)` blocks until `condition()` holds, checked whenever the
  double records something (`notify`); it runs on the double's loop (AppThread.call).
- Faults: `fault_control` handles a double's `/_sim/fail`-style endpoint, queueing
  {"status", "delay", "retry_after", <the double's error key>} for the next API
  requests; the API takes one with `next_fault` and answers an injected status with
  `injected`. Where the API looks at faults, and what its errors look like, is each
  double's own business.
- `by_prefix` looks a number up in a double's table of magic prefixes.
- `hold` waits, but no longer than until the double shuts down; `spawn` and `later`
  run background work that shutdown ends; `client` is the one HTTP session a double
  calls out with (callbacks, postbacks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import warnings
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure: hold the answer `delay` seconds, then answer `status` (with
    Retry-After when `retry_after` is set) or the double's own `error`."""

    status: int | None = None
    delay: float | None = None
    retry_after: float | None = None
    error: Any = None


@dataclass
class _Double:
    records: Mapping[str, list[Any]]
    received: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    client: aiohttp.ClientSession | None = None


DOUBLE = web.AppKey("double", _Double)


def make_double(
    records: Mapping[str, list[Any]] | None = None, state: Mapping[str, Any] | None = None
) -> web.Application:
    """An Application recording its API requests, with `/_sim/reset`. `records` and
    `state` (anything else a test reads) are exposed as app[name]."""
    double = _Double(dict(records or {}))
    app = web.Application(middlewares=[_record])
    app[DOUBLE] = double
    with warnings.catch_warnings():  # plain keys: the names tests use, app["received"]
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app["received"] = double.received
        for name, value in {**double.records, **(state or {})}.items():
            app[name] = value
    app.router.add_post("/_sim/reset", _reset)
    app.on_shutdown.append(_shut_down)
    app.on_cleanup.append(_close_client)
    return app


# -- recording -----------------------------------------------------------------------


@web.middleware
async def _record(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/_sim/"):
        raw = await request.read()
        text = raw.decode("utf-8", "replace")
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "headers": dict(request.headers),
            "query": dict(request.query),
            "json": None,
            "form": None,
            "body": text,
            "at": time.time(),
        }
        if raw and request.content_type == "application/json":
            with contextlib.suppress(ValueError):
                entry["json"] = json.loads(raw)
        elif raw and request.content_type == "application/x-www-form-urlencoded":
            entry["form"] = dict(parse_qsl(text, keep_blank_values=True))
        request.app[DOUBLE].received.append(entry)
        await notify(request.app)
    return await handler(request)


async def notify(app: web.Application) -> None:
    """Wake `wait_for`: the double recorded something."""
    changed = app[DOUBLE].changed
    async with changed:
        changed.notify_all()


async def wait_for(app: web.Application, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Block until `condition()` holds (checked whenever the double records something).
    Runs on the double's loop (AppThread.call)."""
    changed = app[DOUBLE].changed
    async with changed:
        await asyncio.wait_for(changed.wait_for(condition), timeout)


# -- faults --------------------------------------------------------------------------


def fault_control(*, error_key: str, errors: Collection[str] | None = None, count_key: str = "times") -> Handler:
    """The handler of a control endpoint that queues faults for the next API requests:
    {"status", "delay", "retry_after", error_key, count_key (how many, 1)}. `errors`:
    the values `error_key` may take (None: anything)."""

    async def queue(request: web.Request) -> web.Response:
        spec = await request.json()
        error = spec.get(error_key)
        if error is not None and errors is not None and error not in errors:
            raise web.HTTPBadRequest(text=f"{error_key} must be one of {sorted(errors)}")
        status = spec.get("status")
        fault = Fault(None if status is None else int(status), spec.get("delay"), spec.get("retry_after"), error)
        faults = request.app[DOUBLE].faults
        faults.extend([fault] * int(spec.get(count_key, 1)))
        return web.json_response({"queued": len(faults)})

    return queue


def next_fault(app: web.Application) -> Fault:
    """The next queued fault; one that does nothing when none is queued."""
    faults = app[DOUBLE].faults
    return faults.pop(0) if faults else Fault()


def injected(fault: Fault, body: Any) -> web.Response:
    """The answer to an injected `status`: `body` as JSON."""
    assert fault.status is not None
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    return web.json_response(body, status=fault.status, headers=headers)


def by_prefix(table: Mapping[str, T], number: str, default: T) -> T:
    """The entry of the first prefix in `table` that `number` starts with, else `default`."""
    return next((entry for prefix, entry in table.items() if number.startswith(prefix)), default)


# -- time and background work ----------------------------------------------------------


async def hold(app: web.Application, seconds: float | None) -> None:
    """Wait `seconds`, or less if the double shuts down meanwhile."""
    if seconds and seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(app[DOUBLE].released.wait(), seconds)


def stopping(app: web.Application) -> bool:
    """True once the double shuts down: background work stops."""
    return app[DOUBLE].released.is_set()


def spawn(app: web.Application, work: Coroutine[Any, Any, Any]) -> None:
    """Run `work` in the background; shutdown cancels it."""
    tasks = app[DOUBLE].tasks
    task = asyncio.ensure_future(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def later(app: web.Application, seconds: float, work: Callable[[], Awaitable[Any]]) -> None:
    """`work()` `seconds` from now, unless the double shuts down first."""

    async def run() -> None:
        await hold(app, seconds)
        if not stopping(app):
            await work()

    spawn(app, run())


def client(app: web.Application) -> aiohttp.ClientSession:
    """The double's session for its own calls out (opened on first use, closed at cleanup)."""
    double = app[DOUBLE]
    if double.client is None:
        double.client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    return double.client


# -- control and lifecycle -------------------------------------------------------------


async def _reset(request: web.Request) -> web.Response:
    double = request.app[DOUBLE]
    double.received.clear()
    double.faults.clear()
    for records in double.records.values():
        records.clear()
    return web.json_response({"reset": True})


async def _shut_down(app: web.Application) -> None:
    double = app[DOUBLE]
    double.released.set()
    for task in list(double.tasks):
        task.cancel()
    if double.tasks:
        await asyncio.gather(*double.tasks, return_exceptions=True)


async def _close_client(app: web.Application) -> None:
    double = app[DOUBLE]
    if double.client is not None:
        await double.client.close()
        double.client = None
