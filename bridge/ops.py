"""The operator's commands: `messages show|find|retry|give-up`, `receipts redeliver`,
`queues`, `check-providers`.

They ask the running daemon through its admin API (`--url`, or the `[http]` address
of `--config`; token from `--token`, $SMPP_BRIDGE_ADMIN_TOKEN or the config's
`admin_token`). Reading also works without the daemon, straight from its SQLite file
opened read-only (`--db PATH`, or the config's store when the daemon does not
answer); actions always need the daemon. `--json` prints exactly the admin API's JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config

TOKEN_ENV = "SMPP_BRIDGE_ADMIN_TOKEN"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
HTTP_TIMEOUT = 30.0


class Failed(Exception):
    """Printed as it is, exit 1 (2 for `usage`)."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class DaemonAway(Failed):
    """The admin API did not answer at all."""


# -- the command line --------------------------------------------------------------------


def add_commands(commands: Any) -> None:
    """The operator's sub-commands on the main parser's sub-parsers."""
    messages = commands.add_parser("messages", help="look up messages, retry or give up on one")
    actions = messages.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="one message's whole life, by our id or the provider's")
    show.add_argument("id", help="our message_id (as the ESME got it), or the provider's id with --provider-id")
    show.add_argument("--provider-id", action="store_true", help="ID is the provider's id for the message")
    show.add_argument("--provider", help="the provider's name in the config (with --provider-id)")
    _reading(show)
    find = actions.add_parser("find", help="messages to one number within a time range")
    find.add_argument("--to", required=True, help="destination number (as the ESME sent it)")
    find.add_argument("--since", default="1d", help="1h, 30m, 2d or an ISO 8601 time (default 1d)")
    find.add_argument("--until", help="end of the range (default now)")
    find.add_argument("--limit", type=int, default=100)
    _reading(find)
    retry = actions.add_parser("retry", help="try a message waiting in the outbox now (or a provider's backlog)")
    retry.add_argument("id", nargs="?", help="our message_id")
    retry.add_argument("--provider", help="every message waiting for this provider instead")
    retry.add_argument("--reason", default="", help="for the audit log and the message's history")
    _acting(retry)
    give_up = actions.add_parser("give-up", help="end a waiting message with UNDELIV and its receipt")
    give_up.add_argument("id")
    give_up.add_argument("--reason", required=True)
    _acting(give_up)

    receipts = commands.add_parser("receipts", help="deliver a message's receipt again")
    receipt_actions = receipts.add_subparsers(dest="action", required=True)
    redeliver = receipt_actions.add_parser("redeliver", help="queue a finished message's receipt again")
    redeliver.add_argument("id")
    redeliver.add_argument("--reason", default="")
    _acting(redeliver)

    queues = commands.add_parser("queues", help="outbox, waiting receipts, incomplete sets, overdue reports")
    _reading(queues, numbers=False)

    check = commands.add_parser("check-providers", help="one harmless authenticated call per provider")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    check.add_argument("--json", action="store_true")


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=f"the daemon's config (default {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--url", help="the daemon's HTTP address, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", help=f"admin token (default ${TOKEN_ENV}, then the config's admin_token)")
    parser.add_argument("--json", action="store_true", help="print the admin API's JSON")
    parser.set_defaults(db=None, show_numbers=False, reason="")  # options some commands have


def _reading(parser: argparse.ArgumentParser, numbers: bool = True) -> None:
    _connection(parser)
    parser.add_argument("--db", type=Path, help="read a stopped daemon's SQLite file directly (read-only)")
    if numbers:
        parser.add_argument("--show-numbers", action="store_true", help="full phone numbers (audited)")


def _acting(parser: argparse.ArgumentParser) -> None:
    _connection(parser)


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "check-providers":
            return check_providers(args.config, args.json)
        view, render = _dispatch(args)
    except Failed as exc:
        print(exc, file=sys.stderr)
        return exc.code
    print(json.dumps(view, indent=2, ensure_ascii=False) if args.json else render(view))
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> tuple[Any, Callable[[Any], str]]:
    command = args.command if args.command == "queues" else f"{args.command} {args.action}"
    reading = command in ("messages show", "messages find", "queues")
    config = _config(args.config) if args.config or (args.url is None and DEFAULT_CONFIG_PATH.exists()) else None
    if reading and args.db is not None:
        return _read_directly(args.db, config, args), _RENDER[command]
    client = AdminClient(_url(args.url, config), _token(args.token, config))
    try:
        return _ask(client, command, args), _RENDER[command]
    except DaemonAway:
        path = config.store.sqlite_path if config is not None else None
        if not reading or path is None:
            raise
        print(f"the daemon does not answer at {client.url}: reading {path} directly (read-only)", file=sys.stderr)
        return _read_directly(path, config, args), _RENDER[command]


def _config(path: Path | None) -> Config:
    try:
        return load_config(path or DEFAULT_CONFIG_PATH)
    except ConfigError as exc:
        raise Failed("\n".join(exc.problems), EXIT_USAGE) from None


def _url(url: str | None, config: Config | None) -> str:
    if url:
        return url.rstrip("/")
    if config is None:
        raise Failed("give --url or --config (or --db to read a stopped daemon's file)", EXIT_USAGE)
    host = config.http.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    return f"http://{host}:{config.http.port}"


def _token(token: str | None, config: Config | None) -> str | None:
    if token:
        return token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    if config is not None and config.http.admin_token is not None:
        return config.http.admin_token.get_secret_value()
    return None


# -- through the admin API -----------------------------------------------------------------


class AdminClient:
    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token

    def call(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise Failed(_http_error(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DaemonAway(f"cannot reach the daemon at {self.url}: {getattr(exc, 'reason', exc)}") from None


def _http_error(exc: urllib.error.HTTPError) -> str:
    if exc.code == 401:
        return f"the admin API refused the token (give --token or ${TOKEN_ENV})"
    if exc.code == 404 and not exc.headers.get("Content-Type", "").startswith("application/json"):
        return "the admin API is off (set [http] admin_token in the daemon's config)"
    try:
        detail = json.loads(exc.read()).get("error", "")
    except ValueError:
        detail = ""
    return f"HTTP {exc.code}: {detail}" if detail else f"HTTP {exc.code}"


def _numbers(args: argparse.Namespace) -> dict[str, str]:
    return {"numbers": "full"} if args.show_numbers else {}


def _ask(client: AdminClient, command: str, args: argparse.Namespace) -> Any:
    quote = urllib.parse.quote
    reason = {"reason": args.reason or ""}
    if command == "messages show":
        if args.provider_id:
            query = {"provider_id": args.id, **({"provider": args.provider} if args.provider else {})}
            return client.call("GET", "/admin/messages", {**query, **_numbers(args)})
        return client.call("GET", f"/admin/messages/{quote(args.id, safe='')}", _numbers(args))
    if command == "messages find":
        query = {"to": args.to, "since": args.since, "limit": str(args.limit), **_numbers(args)}
        if args.until:
            query["until"] = args.until
        return client.call("GET", "/admin/messages", query)
    if command == "queues":
        return client.call("GET", "/admin/queues")
    if command == "messages retry":
        if args.provider and not args.id:
            return client.call("POST", f"/admin/providers/{quote(args.provider, safe='')}/retry", body=reason)
        if not args.id or args.provider:
            raise Failed("give a message id or --provider NAME", EXIT_USAGE)
        return client.call("POST", f"/admin/messages/{quote(args.id, safe='')}/retry", body=reason)
    if command == "messages give-up":
        return client.call("POST", f"/admin/messages/{quote(args.id, safe='')}/give-up", body=reason)
    return client.call("POST", f"/admin/receipts/{quote(args.id, safe='')}/redeliver", body=reason)


# -- straight from a stopped daemon's SQLite file ------------------------------------------


def _read_directly(path: Path, config: Config | None, args: argparse.Namespace) -> Any:
    if not path.exists():
        raise Failed(f"{path}: no such file")
    return asyncio.run(_read(path, config, args))


async def _read(path: Path, config: Config | None, args: argparse.Namespace) -> Any:
    from bridge.core.lookup import Lookup, LookupFailed, parse_time
    from bridge.core.ports import StoreUnavailable
    from bridge.store.sqlite import SqliteStore

    store = SqliteStore(path, read_only=True)
    try:
        await store.open()
        lookup = Lookup(store, config)
        numbers = args.show_numbers
        if args.command == "queues":
            return await lookup.queues()
        if args.action == "find":
            now = time.time()
            until = parse_time(args.until, now) if args.until else None
            return await lookup.find(args.to, parse_time(args.since, now), until, args.limit, numbers)
        if args.provider_id:
            message = await lookup.find_by_provider_id(args.id, args.provider)
        else:
            message = await lookup.find_message(args.id)
        if message is None:
            raise Failed("no such message")
        return await lookup.message_view(message, numbers)
    except (LookupFailed, StoreUnavailable) as exc:
        raise Failed(str(exc)) from None
    finally:
        await store.close()


# -- check-providers -----------------------------------------------------------------------


def check_providers(path: Path, as_json: bool) -> int:
    """One harmless authenticated call per configured provider; exit 1 if one failed."""
    config = _config(path)
    results = asyncio.run(_check_all(config))
    if as_json:
        print(json.dumps({"providers": results}, indent=2))
    else:
        print(render_checks({"providers": results}))
    return EXIT_OK if all(r["ok"] for r in results.values()) else EXIT_FAILURE


async def _check_all(config: Config) -> dict[str, dict[str, Any]]:
    from bridge.core.ports import ProviderContext
    from bridge.core.provider_set import check_access
    from bridge.metrics import Metrics
    from bridge.providers import build_provider

    async def no_report(report: Any) -> bool:
        return False

    context = ProviderContext(report=no_report, metrics=Metrics(), public_url=config.http.public_url)
    results: dict[str, dict[str, Any]] = {}
    for name, settings in config.providers.items():
        provider = build_provider(name, settings, context)
        try:
            results[name] = await check_access(provider)
        finally:
            await provider.close()
    return results


# -- text ------------------------------------------------------------------------------------


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


def _list(values: Any) -> str:
    return ", ".join(str(v) for v in values) if values else "-"


# How each history event reads, one line each.
EVENT_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {
    "received": lambda e: f"session {e.get('session')}, parts {_list(e.get('parts'))}, route {_list(e.get('route'))}",
    "attempt": lambda e: " ".join(
        part
        for part in (
            f"{e.get('provider')}: {e.get('outcome')} ({e.get('command_status')})",
            f"HTTP {e['http_status']}" if e.get("http_status") is not None else "",
            f"code {e['provider_code']}" if e.get("provider_code") else "",
            f"in {e['latency_ms']} ms" if e.get("latency_ms") is not None else "",
            f"ids {_list(e['provider_ids'])}" if e.get("provider_ids") else "",
            f"- {e['reason']}" if e.get("reason") and e["reason"] != f"HTTP {e.get('http_status')}" else "",
        )
        if part
    ),
    "retry_scheduled": lambda e: f"attempt {e.get('attempts')} failed; next at {e.get('next_attempt_at')}",
    "recovered": lambda e: f"taken up again ({e.get('reason')}), was {e.get('lifecycle')}",
    "gave_up": lambda e: f"outbox gave up after {e.get('attempts')} attempts: {e.get('stat')} ({e.get('reason')})",
    "report": lambda e: (
        f"{e.get('provider')} says {e.get('stat')} err {e.get('err')}"
        + (f' (raw "{e["raw"]}")' if e.get("raw") else "")
        + f", provider id {e.get('provider_id')}"
    ),
    "receipt_sent": lambda e: (
        f"receipt {e.get('stat')} for part {e.get('part')} on session {e.get('session')}: "
        f"deliver_sm_resp {e.get('deliver_sm_resp')} (attempt {e.get('attempt')})"
    ),
    "receipt_retry": lambda e: (
        f"receipt for part {e.get('part')} retried: attempt {e.get('attempts')}, next at {e.get('next_attempt_at')}"
    ),
    "receipt_dropped": lambda e: f"receipt for part {e.get('part')} dropped after {e.get('attempts')} attempts",
    "operator": lambda e: f"{e.get('action')} by {e.get('who')}" + (f": {e['reason']}" if e.get("reason") else ""),
}


def render_message(v: dict[str, Any]) -> str:
    status = f"{v['lifecycle']}" + (f" {v['state']} err {v['error']}" if v.get("state") else "")
    if v.get("done_at"):
        status += f" at {v['done_at']}"
    lines = [
        f"message {v['message_id']}  account {v['system_id']}  session {v.get('session') or '-'}",
        f"  received   {v['received_at']}  from {v['source']} to {v['destination']}  "
        f"flash {_yes(v['flash'])}  ack {v['ack']}",
        f"  parts      {_list(p['message_id'] for p in v['parts'])}",
        f"  route      {' -> '.join(v['route']) or '-'}",
        f"  provider   {v.get('provider') or '-'}  ids {_list(v['provider_ids'])}  attempts {v['attempts']}"
        + (f"  next attempt {v['next_attempt_at']}" if v.get("next_attempt_at") else ""),
        f"  status     {status}",
        "history",
    ]
    for event in v["history"] or []:
        detail = EVENT_TEXT.get(event["event"], lambda e: json.dumps(e))(event)
        lines.append(f"  {event['at']}  {event['event']:<15} {detail}")
    if not v["history"]:
        lines.append("  (none recorded)")
    for r in v.get("receipts") or []:
        if r["asked"] is None:
            state = "no final state yet"
        elif not r["asked"]:
            state = f"not asked for (registered_delivery {r['registered_delivery']})"
        else:
            state = f"queued {r['queued_at']}, sent {r['sent']} time(s)" + (
                ", acknowledged" if r["acknowledged"] else ", waiting" if r["waiting"] else ""
            )
        lines.append(f"receipt for part {r['part']}: {state}")
    waiting = v.get("receipts_waiting") or []
    lines.append("receipts waiting: " + ("none" if not waiting else ""))
    for r in waiting:
        lines.append(f"  part {r['part']} {r['stat']}  attempts {r['attempts']}  next {r['next_attempt_at'] or 'now'}")
    return "\n".join(lines)


def render_find(v: dict[str, Any]) -> str:
    lines = [f"messages to {v['destination']} from {v['since']} to {v['until']}: {len(v['messages'])}"]
    for m in v["messages"]:
        lines.append(
            f"  {m['message_id']}  {m['received_at']}  {m['system_id']}  {m['lifecycle']}"
            f"  {m['state'] or '-'}  via {m['provider'] or '-'}  parts {m['parts']}"
        )
    return "\n".join(lines)


def render_queues(v: dict[str, Any]) -> str:
    lines = [f"queues at {v['at']}", "outbox (by first provider of the route):"]
    for o in v["outbox"]:
        lines.append(
            f"  {o['provider']}: {o['messages']} ({o['sending']} sending)  next attempt {o['next_attempt_at'] or '-'}"
            f"  oldest {o['oldest_received_at']}  first {_list(m['message_id'] for m in o['first'][:5])}"
        )
    lines.append("receipts waiting (by account):")
    for r in v["receipts"]:
        lines.append(
            f"  {r['system_id']}: {r['waiting']} ({r['retrying']} retrying"
            + (f", next {r['next_attempt_at']}" if r["next_attempt_at"] else "")
            + f")  receivers bound {'-' if r['receivers_bound'] is None else r['receivers_bound']}  why: {r['why']}"
        )
    lines.append("incomplete concatenated sets:")
    for s in v["incomplete_sets"]:
        lines.append(
            f"  {s['system_id']} to {s['destination']}: {s['received']}/{s['total']} parts, {s['age_seconds']} s old"
            f"  parts {_list(s['parts'])}"
        )
    lines.append("awaiting a provider report:")
    for a in v["awaiting_reports"]:
        lines.append(
            f"  {a['provider']}: {a['awaiting']} awaiting, {a['overdue']} past their due time"
            + (f"  next due {a['next_due_at']}" if a["next_due_at"] else "  none due")
            + (f"  oldest {a['oldest_overdue_received_at']}" if a["oldest_overdue_received_at"] else "")
            + (f"  first {_list(a['first_overdue'][:5])}" if a["first_overdue"] else "")
        )
    if not v["awaiting_reports"]:
        lines.append("  (needs the config: --config)")
    return "\n".join(lines)


def render_action(v: dict[str, Any]) -> str:
    return " ".join(f"{k}={_list(val) if isinstance(val, list) else val}" for k, val in v.items())


def render_checks(v: dict[str, Any]) -> str:
    lines = []
    for name, c in v["providers"].items():
        if not c["checked"]:
            lines.append(f"{name} ({c['type']}): not checked - {c['detail']}")
            continue
        verdict = "ok" if c["ok"] else "FAILED"
        lines.append(
            f"{name} ({c['type']}): {verdict}  reachable {_yes(c['reachable'])}  credentials {c['credentials']}"
            + (f"  HTTP {c['http_status']}" if c["http_status"] is not None else "")
            + (f"  {c['latency_ms']} ms" if c["latency_ms"] is not None else "")
            + f"  {c['detail']}"
        )
    return "\n".join(lines)


_RENDER: dict[str, Callable[[Any], str]] = {
    "messages show": render_message,
    "messages find": render_find,
    "queues": render_queues,
    "messages retry": render_action,
    "messages give-up": render_action,
    "receipts redeliver": render_action,
}
