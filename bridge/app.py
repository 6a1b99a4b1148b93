"""The running bridge: builds every part from a Config, starts and stops them in order.

Start: store -> stored receipts -> cluster -> providers -> HTTP -> outbox (recovery)
-> due timers (polls, synthetic receipts: `bridge.core.due`) -> SMPP. Each part is
entered on one `AsyncExitStack`, so a start-up that fails halfway (a port taken)
tears down what had started, in reverse order, and so does stop (SIGTERM/SIGINT):
refuse new binds and submits, answer what was already read, unbind every session,
let in-flight HTTP calls finish or stay stored, close the store; all within
`shutdown_timeout`. A stop step that fails is logged and the others still run: the
store is always closed, its queued writes flushed. Reload (SIGHUP): accounts,
routes, timers and provider settings change in place while sessions stay bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bridge.admin import add_admin_routes
from bridge.config import Config, ConfigError
from bridge.core.actions import Actions
from bridge.core.auth import Authenticator
from bridge.core.cluster import Cluster, LocalCluster, LocalReceiptQueue, ReceiptQueue
from bridge.core.due import DueTimers
from bridge.core.ids import IdAllocator
from bridge.core.lookup import Lookup
from bridge.core.outbox import Outbox
from bridge.core.pipeline import Pipeline
from bridge.core.ports import ProviderContext, Store
from bridge.core.provider_set import ProviderSet, Replacement
from bridge.core.receipts import ReceiptEngine
from bridge.core.registry import SessionRegistry
from bridge.core.sender import InFlight, Sender
from bridge.core.smsc import Smsc
from bridge.core.tasks import Tasks
from bridge.http_server import HttpServer, Limits
from bridge.logging import get_logger
from bridge.metrics import LiveCollector, Metrics
from bridge.providers import build_provider
from bridge.server import SmppServer
from bridge.smpp.session import PduCounters
from bridge.web import MAX_CALLBACK_BODY, make_routes

MAINTENANCE_INTERVAL = 30.0
READINESS_TIMEOUT = 5.0  # /readyz: a store write that takes longer counts as failed
# Settings a reload cannot change in a running process (listeners, store, pool sizes).
RESTART_KEYS = (
    "smpp.host",
    "smpp.port",
    "smpp.tls_port",
    "smpp.tls_cert",
    "smpp.tls_key",
    "smpp.tls_client_ca",
    "http.host",
    "http.port",
    "store.url",
    "store.synchronous",
    "store.prefix",
    "store.instance_ttl",
    "store.redis_timeout",
    "outbox.concurrency",
)


def open_store(config: Config) -> Store:
    path = config.store.sqlite_path
    if path is not None:
        from bridge.store.sqlite import SqliteStore

        return SqliteStore(path, synchronous=config.store.synchronous.upper())
    try:
        from bridge.store.redis import RedisStore  # redis-py only when it is used
    except ImportError as exc:
        raise ConfigError(
            [f"store.url: the Redis store needs redis-py: pip install 'smpp-bridge[redis]' ({exc})"]
        ) from exc
    s = config.store
    return RedisStore(s.url, prefix=s.prefix, timeout=s.redis_timeout, retention=s.retention)


def open_cluster(config: Config, store: Store) -> tuple[Cluster, ReceiptQueue]:
    """The single-instance pieces for SQLite; the shared ones for Redis."""
    if config.store.sqlite_path is not None:
        return LocalCluster(), LocalReceiptQueue(store)
    from bridge.store.redis import RedisCluster, RedisReceiptQueue, RedisStore

    assert isinstance(store, RedisStore)
    return RedisCluster(store, config.store.instance_ttl), RedisReceiptQueue(store)


def tls_context(config: Config) -> ssl.SSLContext | None:
    s = config.smpp
    if s.tls_port is None or s.tls_cert is None or s.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(s.tls_cert, s.tls_key)
    if s.tls_client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(s.tls_client_ca)
    return context


def restart_needed(old: Config, new: Config) -> list[str]:
    """The RESTART_KEYS whose value differs between two configs."""
    changed = []
    for key in RESTART_KEYS:
        section, name = key.split(".")
        if getattr(getattr(old, section), name) != getattr(getattr(new, section), name):
            changed.append(key)
    return changed


class Bridge:
    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.log = get_logger("bridge")
        self.metrics = Metrics()
        self.counters = PduCounters()
        self.store = open_store(config)
        self.cluster, self.receipt_queue = open_cluster(config, self.store)
        self.registry = SessionRegistry()
        self.ids = IdAllocator(self.store)
        self.authenticator = Authenticator(config)
        self.receipts = ReceiptEngine(
            self.store,
            self.registry,
            self.authenticator.account,
            self.metrics,
            get_logger("receipts"),
            max_attempts=config.smpp.receipt_max_attempts,
            retry_base=config.smpp.receipt_retry_base,
            queue=self.receipt_queue,
        )
        in_flight = InFlight()  # what each provider object is serving: a replaced one is closed once idle
        self.providers = ProviderSet(build_provider, in_flight, get_logger("providers"))
        self.sender = Sender(
            self.providers, self.metrics, get_logger("sender"), journal=self.store.journal, in_flight=in_flight
        )
        self.outbox = outbox = Outbox(
            config.outbox, self.store, self.sender, self.receipts, self.metrics, get_logger("outbox")
        )
        self.sender.on_circuit_closed = outbox.wake
        # In a cluster a provider's due timers run on the instance holding its lease.
        self.timers = DueTimers(
            self.providers, self.store, self.cluster, get_logger("due"), lease_ttl=config.store.instance_ttl
        )
        self.sender.on_due_set = self.timers.wake
        self.pipeline = Pipeline(
            config,
            self.store,
            self.ids,
            self.sender,
            self.receipts,
            self.outbox,
            self.metrics,
            get_logger("pipeline"),
            cluster=self.cluster,
        )
        self.smsc = Smsc(
            config,
            self.authenticator,
            self.registry,
            self.pipeline,
            self.receipts,
            self.metrics,
            get_logger("smsc"),
            cluster=self.cluster,
        )
        self.server = SmppServer(config.smpp, config.security, self.smsc, self.counters, get_logger("smpp"))
        self.lookup = Lookup(self.store, config, receivers=lambda system_id: len(self.registry.receivers(system_id)))
        self.actions = Actions(self.lookup, self.outbox, self.receipts, get_logger("admin"))
        self.metrics.attach_live(
            LiveCollector(
                self.counters,
                self.registry.metric_rows,
                {
                    "receipts_waiting": (
                        "Receipts not yet acknowledged by an ESME",
                        "system_id",
                        self.receipts.waiting,
                    ),
                    "outbox_messages": ("Stored messages not yet accepted upstream", "provider", self.outbox.depth),
                    "provider_usable": (
                        "1 while a provider may be sent to, 0 while its circuit is open",
                        "provider",
                        self._provider_usable,
                    ),
                },
            )
        )
        self._tls: ssl.SSLContext | None = None
        self._http: HttpServer | None = None
        self._background = Tasks(self.log, "background")
        self._reload_lock = asyncio.Lock()
        self._stack: contextlib.AsyncExitStack | None = None
        self._stop_by = 0.0  # monotonic deadline of the stop under way
        self._readiness_errors: dict[str, str] = {}
        self.ports: dict[str, int] = {}

    # -- start -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every part; if one fails, what had started is stopped again (in
        reverse order) before the error is raised."""
        self._stop_by = time.monotonic() + self.config.smpp.shutdown_timeout
        async with contextlib.AsyncExitStack() as stack:
            await self.store.open()
            self._on_stop(stack, "store", self.store.close)
            self._on_stop(stack, "receipt_queue", self.receipt_queue.close)
            self._on_stop(stack, "receipts", self._stop_receipts)
            self.providers.build(self.config.providers, self._provider_context(self.config))
            # Stored receipts first: a report a provider makes while starting must not be
            # queued twice (once from its own report, once from the store).
            waiting = await self.receipts.load_pending()
            self._on_stop(stack, "cluster", self.cluster.stop)
            await self.cluster.start(self.outbox.adopt)
            self._on_stop(stack, "providers", self.providers.close)
            await self.providers.start()
            self._on_stop(stack, "http", self._stop_http)
            await self._start_http()
            self._on_stop(stack, "outbox", self._stop_outbox)
            self.outbox.start()
            # One instance re-queues its whole outbox; in a cluster each instance's outbox
            # is its own, and that of a gone instance is adopted by the others.
            queued = 0 if self.cluster.shared else await self.outbox.recover()
            self._on_stop(stack, "due_timers", self.timers.stop)
            self.timers.sync(self.providers)
            self._on_stop(stack, "smpp", self._stop_smpp)
            self._tls = tls_context(self.config)
            await self.server.start(self._tls)
            self.ports.update(self.server.ports)
            self._on_stop(stack, "background", self._stop_background)
            self._background.spawn(self._maintain())
            self._stack = stack.pop_all()
        self.log.info(
            "started",
            smpp_port=self.ports.get("smpp"),
            http_port=self.ports.get("http"),
            receipts_waiting=waiting,
            outbox=queued,
        )

    def _on_stop(self, stack: contextlib.AsyncExitStack, step: str, action: Callable[[], Awaitable[Any]]) -> None:
        """Run `action` when the stack unwinds; a failure is logged with its traceback
        (and raised once every other step has run)."""

        async def run() -> None:
            try:
                await action()
            except Exception:
                self.log.exception("stop_step_failed", step=step)
                raise

        stack.push_async_callback(run)

    def _provider_context(self, config: Config) -> ProviderContext:
        return ProviderContext(
            report=self.receipts.on_report,
            metrics=self.metrics,
            public_url=config.http.public_url,
            log=get_logger("provider"),
        )

    def _provider_usable(self) -> list[tuple[str, float]]:
        return [(name, 1.0 if self.sender.usable(name) else 0.0) for name in sorted(self.providers)]

    async def _start_http(self) -> None:
        log = get_logger("http")
        routes = make_routes(
            self.metrics,
            self.providers,
            self.readiness,
            log,
            details=lambda: {"providers": self.providers.checks} if self.providers.checks else {},
        )
        add_admin_routes(routes, self._admin_token, self.actions, lambda: self.providers.checks, get_logger("admin"))
        self._http = server = HttpServer(routes, log, Limits(max_body=MAX_CALLBACK_BODY))
        # The port taken when the config says 0.
        self.ports["http"] = await server.start(self.config.http.host, self.config.http.port)

    async def _stop_http(self) -> None:
        """Callbacks under way get until the stop's deadline to be committed and answered."""
        server, self._http = self._http, None
        if server is not None:
            await server.stop(grace=self._time_left())

    async def readiness(self) -> tuple[dict[str, bool], dict[str, str]]:
        """/readyz: the SMPP listener is up, the store takes a write, a provider is
        usable; and for each check that fails, why (no secret: exception texts of
        the store, which never carry a password)."""
        errors: dict[str, str] = {}
        try:
            # A real write through the path submits use: reserving zero ids rewrites
            # the id counter unchanged (a read-only or full disk fails here).
            async with asyncio.timeout(READINESS_TIMEOUT):  # not wait_for: see bridge.core.tasks
                await self.store.reserve_ids(0)
        except TimeoutError:
            errors["store"] = f"a write took longer than {READINESS_TIMEOUT:g} s"
        except Exception as exc:
            errors["store"] = f"{type(exc).__name__}: {exc}"
            self._readiness_failed("store", errors["store"], exc)
        if "store" not in errors:
            self._readiness_failed("store", None, None)
        checks = {
            "smpp_listener": self.server.listening,
            "store": "store" not in errors,
            "provider": any(self.sender.usable(name) for name in self.providers),
        }
        if not checks["smpp_listener"]:
            errors["smpp_listener"] = "the SMPP port is not listening"
        if not checks["provider"]:
            errors["provider"] = "every provider's circuit is open" if self.providers else "no provider is configured"
        return checks, errors

    def _readiness_failed(self, check: str, error: str | None, exc: BaseException | None) -> None:
        """Log a readiness failure once (with its traceback), not at every probe."""
        before = self._readiness_errors.get(check)
        if error is None:
            if before is not None:
                del self._readiness_errors[check]
                self.log.info("ready_again", check=check)
            return
        if before != error:
            self._readiness_errors[check] = error
            self.log.error("not_ready", check=check, error=error, exc_info=exc)

    def _admin_token(self) -> str | None:
        token = self.config.http.admin_token
        return token.get_secret_value() if token is not None else None

    async def _maintain(self) -> None:
        """Expire incomplete concatenated sets and purge old finished messages: every
        quarter of the shorter timeout (at most every 30 s), until nothing is due."""
        while True:
            timeouts = (self.config.smpp.reassembly_timeout, self.config.store.retention)
            await asyncio.sleep(min(MAINTENANCE_INTERVAL, *(t / 4 for t in timeouts)))
            try:
                await self.pipeline.expire_segments(self.config.smpp.reassembly_timeout)
                cutoff = time.time() - self.config.store.retention
                purged = await self.store.purge_due(cutoff)
                if purged:
                    self.log.debug("purged", messages=purged)
                await self.store.purge_history(cutoff)
            except Exception:
                self.log.exception("maintenance_failed")

    # -- reload ----------------------------------------------------------------------

    async def reload(self, config: Config) -> None:
        """Accounts, passwords, routes, timers and provider settings change in place;
        bound sessions stay. A provider whose settings changed is rebuilt: the new one
        starts, takes over, and the old one is closed once the requests it is serving
        are answered. Raises ConfigError, changing nothing, if a provider cannot start."""
        async with self._reload_lock:
            replacement = await self.providers.prepare(
                config.providers,
                self._provider_context(config),
                rebuild_all=config.http.public_url != self.config.http.public_url,  # callback URLs change
            )
            self._apply(config, replacement)

    def _apply(self, config: Config, replacement: Replacement) -> None:
        """Swap everything at once (no await): routes and providers change together."""
        restart = restart_needed(self.config, config)
        swapped = self.providers.swap(replacement)
        for name in swapped.rebuilt:
            self.sender.forget(name)  # new settings, new breaker
        self.config = config
        self._reload_certificate(config)
        self.authenticator.reload(config)
        self.receipts.max_attempts = config.smpp.receipt_max_attempts
        self.receipts.retry_base = config.smpp.receipt_retry_base
        self.outbox.settings = config.outbox
        self.timers.sync(config.providers)
        self.pipeline.reload(config)
        self.lookup.config = config
        self.smsc.reload(config)
        self.server.reload(config.smpp, config.security)
        unbound = self._rebind_sessions()
        self.log.info(
            "reloaded",
            accounts=len(config.accounts),
            routes=len(config.routes),
            providers=len(config.providers),
            providers_added=swapped.added,
            providers_replaced=swapped.replaced,
            providers_removed=swapped.removed,
            sessions_unbound=unbound,
        )
        if restart:
            self.log.warning("reload_needs_restart", keys=restart)

    def _reload_certificate(self, config: Config) -> None:
        """A renewed certificate at the same paths applies to new TLS connections."""
        s = config.smpp
        if self._tls is None or s.tls_cert is None or s.tls_key is None:
            return
        try:
            self._tls.load_cert_chain(s.tls_cert, s.tls_key)
            self.log.info("tls_certificate_reloaded")
        except (OSError, ssl.SSLError) as exc:
            self.log.error("tls_certificate_reload_failed", error=str(exc))

    def _rebind_sessions(self) -> int:
        """Bound sessions take their account's new settings (route, throughput, ack);
        sessions of an account that is gone are unbound. Returns how many were."""
        unbound = 0
        for conn in list(self.registry.all()):
            account = self.authenticator.account(conn.session.system_id or "")
            if account is not None:
                conn.account = account
                continue
            conn.log.warning("unbinding", reason="account removed from the config")
            conn.unbind()
            unbound += 1
        return unbound

    # -- stop ------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every part started, in reverse order, within `shutdown_timeout`. Every
        step runs even if an earlier one failed; the first failure is raised after."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        self._stop_by = time.monotonic() + self.config.smpp.shutdown_timeout
        self.log.info("stopping", sessions=len(self.server.connections), in_flight=self.smsc.in_flight)
        try:
            await stack.aclose()
        finally:
            self.log.info("stopped")

    def _time_left(self) -> float:
        return max(0.0, self._stop_by - time.monotonic())

    async def _stop_smpp(self) -> None:
        """No new binds or submits; answer what was read; unbind; close what is left."""
        self.smsc.accepting = False
        self.server.stop_listening()
        await self.smsc.drain(self._time_left())
        self.server.unbind_all()
        await self.server.wait_closed(min(2.0, self._time_left()))
        self.server.abort_all()
        await self.smsc.stop()

    async def _stop_outbox(self) -> None:
        await self.outbox.stop(self._time_left())

    async def _stop_background(self) -> None:
        await self.providers.stop_checks()
        await self._background.cancel()

    async def _stop_receipts(self) -> None:
        self.receipts.stop()

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
