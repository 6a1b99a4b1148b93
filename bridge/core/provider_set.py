"""The running provider connectors by name: started with the bridge, swapped by a
reload, closed at stop; and their periodic access checks.

A reload is two steps. `prepare` builds and starts a connector for each name that is
new or whose settings changed (every one when callback URLs change); if one cannot
start, those already started are closed and nothing changes. `swap` then puts them
in place in one step, with no await, so that routes and providers change together,
and retires each replaced or removed connector in the background: it is closed once
the work it is serving (`InFlight`: sends, coalesced batches) is done, or after
`retire_timeout` at the latest. Its successor takes over what it left waiting for a
report: those messages' due times are in the store, under the provider's name.

Connectors are built by a function the wiring passes in (`bridge.providers.
build_provider`), so that core needs nothing from `bridge/providers/` but the port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.config import ConfigError, ProviderBase
from bridge.core.ports import Provider, ProviderCheck, ProviderContext
from bridge.core.sender import InFlight
from bridge.core.tasks import Tasks

RETIRE_TIMEOUT = 120.0  # longest wait for a replaced provider's requests before closing it anyway
FIRST_CHECK_AFTER = 60.0  # the first access check, at most this long after a connector starts

Build = Callable[[str, ProviderBase, ProviderContext], Provider]


@dataclass
class Replacement:
    """What `prepare` made for a reload: the started connectors, by name, and the
    settings of every provider of the new config."""

    fresh: dict[str, Provider]
    settings: Mapping[str, ProviderBase]


@dataclass(frozen=True)
class Swapped:
    """The names a swap changed, for the reload's log line and the per-name state
    (circuit breakers) the wiring resets."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def rebuilt(self) -> list[str]:
        """Names now served by a new connector."""
        return sorted([*self.added, *self.replaced])


async def check_access(provider: Provider) -> dict[str, Any]:
    """`provider.check_access()` as JSON (with the provider's type), never raising."""
    try:
        async with asyncio.timeout(provider.settings.timeout + 5):  # not wait_for: see bridge.core.tasks
            check = await provider.check_access()
    except Exception as exc:
        check = ProviderCheck(checked=True, reachable=False, detail=f"check failed: {type(exc).__name__}")
    return {"type": provider.kind, **check.as_dict()}


class ProviderSet(Mapping[str, Provider]):
    """The connectors in service, read like a dict by name (the sender, the due
    timers and the callback intake look them up at each use)."""

    def __init__(self, build: Build, in_flight: InFlight, log: Any, retire_timeout: float = RETIRE_TIMEOUT) -> None:
        self._build = build
        self._in_flight = in_flight
        self._log = log
        self._retire_timeout = retire_timeout
        self._current: dict[str, Provider] = {}
        self._retiring: dict[asyncio.Task[None], Provider] = {}
        self._retirements = Tasks(log, "provider_retire")
        self._checking = Tasks(log, "provider_check")
        self._checkers: dict[str, tuple[Provider, asyncio.Task[None]]] = {}
        self.checks: dict[str, dict[str, Any]] = {}  # the last access check of each name, as JSON

    def __getitem__(self, name: str) -> Provider:
        return self._current[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)

    # -- start and stop --------------------------------------------------------------

    def build(self, settings: Mapping[str, ProviderBase], context: ProviderContext) -> None:
        """The connectors of the config at start-up, not started yet."""
        for name, provider_settings in settings.items():
            self._current[name] = self._build(name, provider_settings, context)

    async def start(self) -> None:
        """Start them, in config order, and their access checks."""
        for provider in self._current.values():
            await provider.start()
        self.start_checks()

    async def close(self) -> None:
        """Close every connector, those being retired first; one that fails to close
        does not keep the others open."""
        await self.stop_checks()
        closing = [*self._retiring.values(), *self._current.values()]
        await self._retirements.cancel()
        for provider in closing:
            await self._close(provider)

    # -- reload ----------------------------------------------------------------------

    async def prepare(
        self, settings: Mapping[str, ProviderBase], context: ProviderContext, rebuild_all: bool = False
    ) -> Replacement:
        """New connectors, started, for names that are new or whose settings changed
        (all of them with `rebuild_all`). Raises ConfigError, having closed them, if one
        cannot start."""
        fresh: dict[str, Provider] = {}
        name = ""
        try:
            for name, provider_settings in settings.items():
                current = self._current.get(name)
                if current is not None and current.settings == provider_settings and not rebuild_all:
                    continue
                provider = fresh[name] = self._build(name, provider_settings, context)
                await provider.start()
        except Exception as exc:
            self._log.exception("provider_start_failed", provider=name)
            for provider in fresh.values():
                await self._close(provider)
            raise ConfigError([f"providers.{name}: cannot start ({type(exc).__name__}: {exc})"]) from exc
        return Replacement(fresh, settings)

    def swap(self, replacement: Replacement) -> Swapped:
        """Put the prepared connectors in service and retire those they replace or
        whose name is gone, all at once; access checks follow the new connectors."""
        fresh = replacement.fresh
        retired = {
            name: self._current.pop(name)
            for name in list(self._current)
            if name in fresh or name not in replacement.settings
        }
        self._current.update(fresh)
        for name, old in retired.items():
            task = self._retirements.spawn(self._retire(name, old, replaced=name in fresh))
            self._retiring[task] = old
            task.add_done_callback(self._retired)
        self.start_checks()
        return Swapped(
            added=sorted(set(fresh) - set(retired)),
            replaced=sorted(set(fresh) & set(retired)),
            removed=sorted(set(retired) - set(fresh)),
        )

    async def _retire(self, name: str, old: Provider, replaced: bool) -> None:
        """Close a replaced or removed connector after its in-flight work."""
        if not await self._in_flight.wait_idle(old, self._retire_timeout):
            self._log.warning("provider_retire_timeout", provider=name, timeout=self._retire_timeout)
        await self._close(old)
        self._log.info("provider_replaced" if replaced else "provider_removed", provider=name)

    def _retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.pop(task, None)

    async def _close(self, provider: Provider) -> None:
        try:
            await provider.close()
        except Exception:
            self._log.exception("provider_close_failed", provider=provider.name)

    # -- access checks ---------------------------------------------------------------

    def start_checks(self) -> None:
        """One checker per connector with a `check_interval`; a replaced connector's
        checker (and its last result) goes with it."""
        for name, (checked, task) in list(self._checkers.items()):
            if self._current.get(name) is not checked:
                task.cancel()
                del self._checkers[name]
                self.checks.pop(name, None)
        for name, provider in self._current.items():
            if name not in self._checkers and provider.settings.check_interval > 0:
                self._checkers[name] = (provider, self._checking.spawn(self._check_forever(provider)))

    async def stop_checks(self) -> None:
        self._checkers.clear()
        await self._checking.cancel()

    async def _check_forever(self, provider: Provider) -> None:
        interval = provider.settings.check_interval
        await asyncio.sleep(min(interval, FIRST_CHECK_AFTER))
        while True:
            await self.check(provider.name)
            await asyncio.sleep(interval)

    async def check(self, name: str) -> dict[str, Any]:
        """Check the access of the connector `name` now; the result is kept in `checks`."""
        check = self.checks[name] = await check_access(self._current[name])
        if not check["ok"]:
            self._log.warning(
                "provider_check_failed",
                provider=name,
                reachable=check["reachable"],
                credentials=check["credentials"],
                detail=check["detail"],
            )
        return check
