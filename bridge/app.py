"""The running bridge: builds every part from a Config, starts and stops them in order.

Start: store -> recovery (receipts, outbox, unfinished messages) -> providers ->
HTTP -> SMPP. Stop (SIGTERM/SIGINT): refuse new binds and submits, answer what was
already read, unbind every session, let in-flight HTTP calls finish or stay stored,
close the store; all within `shutdown_timeout`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge.config import Config
from bridge.core.auth import Authenticator
from bridge.core.ids import IdAllocator
from bridge.core.message import Lifecycle
from bridge.core.outbox import Outbox
from bridge.core.pipeline import Pipeline
from bridge.core.receipts import ReceiptEngine
from bridge.core.registry import SessionRegistry
from bridge.core.sender import Sender
from bridge.core.smsc import Smsc
from bridge.logging import get_logger
from bridge.metrics import LiveCollector, Metrics
from bridge.providers import build_provider
from bridge.providers.base import Provider, ProviderContext
from bridge.server import SmppServer
from bridge.smpp.session import PduCounters
from bridge.store.base import Store
from bridge.web import make_app

MAINTENANCE_INTERVAL = 30.0


def open_store(config: Config) -> Store:
    path = config.store.sqlite_path
    if path is not None:
        from bridge.store.sqlite import SqliteStore

        return SqliteStore(path, synchronous=config.store.synchronous.upper())
    raise NotImplementedError("the Redis store is not built yet")


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


class Bridge:
    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.log = get_logger("bridge")
        self.metrics = Metrics()
        self.counters = PduCounters()
        self.store = open_store(config)
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
        )
        self.providers: dict[str, Provider] = {}
        self.sender = Sender(self.providers, self.metrics, get_logger("sender"))
        self.outbox = outbox = Outbox(config.outbox, self.store, self.sender, self.receipts, self.metrics, get_logger("outbox"))
        self.sender.on_circuit_closed = outbox.wake
        self.pipeline = Pipeline(
            config, self.store, self.ids, self.sender, self.receipts, self.outbox, self.metrics, get_logger("pipeline")
        )
        self.smsc = Smsc(
            config, self.authenticator, self.registry, self.pipeline, self.receipts, self.metrics, get_logger("smsc")
        )
        self.server = SmppServer(config.smpp, self.smsc, self.counters, get_logger("smpp"))
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
                },
            )
        )
        self._web_runner: web.AppRunner | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self.ports: dict[str, int] = {}
        self.started_at = 0.0

    # -- start -----------------------------------------------------------------------

    async def start(self) -> None:
        self.started_at = time.time()
        await self.store.open()
        context = ProviderContext(
            report=self.receipts.on_report,
            metrics=self.metrics,
            public_url=self.config.http.public_url,
            log=get_logger("provider"),
            find_messages=self.store.messages_in,
        )
        for name, settings in self.config.providers.items():
            self.providers[name] = build_provider(name, settings, context)
        for provider in self.providers.values():
            await provider.start()
        waiting = await self.receipts.load_pending()
        queued = await self.outbox.recover()
        resumed = await self._resume_providers()
        await self._start_http()
        await self.server.start(tls_context(self.config))
        self.ports.update(self.server.ports)
        self._maintenance = asyncio.ensure_future(self._maintain())
        self.log.info(
            "started",
            smpp_port=self.ports.get("smpp"),
            http_port=self.ports.get("http"),
            receipts_waiting=waiting,
            outbox=queued,
            awaiting_reports=resumed,
        )

    async def _resume_providers(self) -> int:
        count = 0
        for name, provider in self.providers.items():
            after = 0
            while True:
                batch = await self.store.messages_in([Lifecycle.ACCEPTED], provider=name, limit=1000, after_id=after)
                if not batch:
                    break
                await provider.resume(batch)
                count += len(batch)
                after = batch[-1].id
        return count

    async def _start_http(self) -> None:
        app = make_app(self.metrics, lambda: self.providers, self.readiness, get_logger("http"))
        self._web_runner = web.AppRunner(app, access_log=None)
        await self._web_runner.setup()
        site = web.TCPSite(self._web_runner, self.config.http.host, self.config.http.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.ports["http"] = sockets[0].getsockname()[1]

    async def readiness(self) -> dict[str, bool]:
        try:
            await self.store.count_outbox()
            store_ok = True
        except Exception:
            store_ok = False
        return {
            "smpp_listener": self.server.listening,
            "store": store_ok,
            "provider": any(self.sender.usable(name) for name in self.providers),
        }

    async def _maintain(self) -> None:
        """Expire incomplete concatenated sets and purge old finished messages."""
        while True:
            await asyncio.sleep(min(MAINTENANCE_INTERVAL, self.config.smpp.reassembly_timeout / 4))
            try:
                await self.pipeline.expire_segments(self.config.smpp.reassembly_timeout)
                await self.store.purge(time.time() - self.config.store.retention)
            except Exception:
                self.log.exception("maintenance_failed")

    # -- reload ----------------------------------------------------------------------

    def reload(self, config: Config) -> None:
        """Accounts, passwords, routes and timers change in place; bound sessions stay."""
        self.config = config
        self.authenticator.reload(config)
        self.receipts.max_attempts = config.smpp.receipt_max_attempts
        self.receipts.retry_base = config.smpp.receipt_retry_base
        self.pipeline.reload(config)
        self.smsc.reload(config)
        self.server.reload(config.smpp)
        self.log.info("reloaded", accounts=len(config.accounts), routes=len(config.routes))

    # -- stop ------------------------------------------------------------------------

    async def stop(self) -> None:
        deadline = time.monotonic() + self.config.smpp.shutdown_timeout
        self.log.info("stopping", sessions=len(self.server.connections), in_flight=self.smsc.in_flight)
        self.smsc.accepting = False
        self.server.stop_listening()
        await self.smsc.drain(max(0.0, deadline - time.monotonic()))
        self.server.unbind_all()
        await self.server.wait_closed(max(0.0, min(2.0, deadline - time.monotonic())))
        self.server.abort_all()
        await self.outbox.stop(max(0.0, deadline - time.monotonic()))
        if self._maintenance is not None:
            self._maintenance.cancel()
        for provider in self.providers.values():
            await provider.close()
        await self.receipts.drain()
        if self._web_runner is not None:
            await self._web_runner.cleanup()
        await self.store.close()
        self.log.info("stopped")

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
