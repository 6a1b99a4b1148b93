"""ProviderSet with fake connectors: a reload builds only what changed, a connector that
cannot start changes nothing, a swap is one step, and a replaced connector is closed
only once the work it serves is done (or after the retire timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from bridge.config import ConfigError, ProviderBase
from bridge.core.ports import Provider, ProviderCheck, ProviderContext
from bridge.core.provider_set import ProviderSet
from bridge.core.sender import InFlight
from bridge.metrics import Metrics
from tests.core.fakes import FakeProvider, RecordingLog, provider_settings
from tests.support.waiting import until


async def no_report(report: Any) -> bool:
    return False


CONTEXT = ProviderContext(no_report, Metrics(), "http://x")


class Builder:
    """Builds FakeProviders from settings; names in `failing` raise at start."""

    def __init__(self) -> None:
        self.built: list[FakeProvider] = []
        self.failing: set[str] = set()

    def __call__(self, name: str, settings: ProviderBase, context: ProviderContext) -> Provider:
        provider = FakeProvider(name, context=context)
        provider.settings = settings
        if name in self.failing:

            async def fail() -> None:
                raise OSError("cannot start")

            provider.start = fail  # type: ignore[method-assign]  # failure injection: a start that raises
        self.built.append(provider)
        return provider


def fake(provider: Provider) -> FakeProvider:
    """A provider the Builder made: ProviderSet hands it out as a Provider."""
    assert isinstance(provider, FakeProvider)
    return provider


def config(**names: dict[str, Any]) -> Mapping[str, ProviderBase]:
    return {name: provider_settings(**settings) for name, settings in names.items()}


async def started(*names: str, retire_timeout: float = 60.0) -> tuple[ProviderSet, Builder, InFlight, RecordingLog]:
    builder, in_flight, log = Builder(), InFlight(), RecordingLog()
    providers = ProviderSet(builder, in_flight, log, retire_timeout=retire_timeout)
    providers.build(config(**{name: {} for name in names}), CONTEXT)
    await providers.start()
    return providers, builder, in_flight, log


async def test_a_reload_rebuilds_only_new_and_changed_providers() -> None:
    providers, _, _, _ = await started("a", "b", "c")
    a, b, c = (fake(providers[name]) for name in "abc")
    replacement = await providers.prepare(config(a={}, b={"timeout": 3}, d={}), CONTEXT)
    assert sorted(replacement.fresh) == ["b", "d"] and all(fake(p).started for p in replacement.fresh.values())
    assert providers["b"] is b  # nothing in service changes before the swap
    swapped = providers.swap(replacement)
    assert (swapped.added, swapped.replaced, swapped.removed) == (["d"], ["b"], ["c"])
    assert providers["a"] is a and providers["b"] is not b and "c" not in providers
    await until(lambda: b.closed and c.closed)
    assert not a.closed
    everything = await providers.prepare(config(a={}, b={"timeout": 3}, d={}), CONTEXT, rebuild_all=True)
    assert sorted(everything.fresh) == ["a", "b", "d"]


async def test_a_provider_that_cannot_start_changes_nothing() -> None:
    providers, builder, _, log = await started("a")
    a = fake(providers["a"])
    builder.failing = {"z"}
    with pytest.raises(ConfigError, match=r"providers\.z: cannot start \(OSError: cannot start\)"):
        await providers.prepare(config(a={"timeout": 3}, z={}), CONTEXT)
    new_a = next(p for p in builder.built if p.name == "a" and p is not a)
    assert new_a.closed and not a.closed  # the one started for the reload is closed again
    assert providers["a"] is a and list(providers) == ["a"]
    assert log.events("provider_start_failed") == [{"provider": "z", "exc_info": True}]


async def test_a_replaced_provider_is_closed_once_its_work_is_done() -> None:
    providers, _, in_flight, log = await started("a")
    old = fake(providers["a"])
    release = asyncio.Event()

    async def serving() -> None:
        async with in_flight.using(old):
            await release.wait()

    busy_when_closed: list[int] = []
    close = old.close

    async def noted_close() -> None:
        busy_when_closed.append(in_flight.busy(old))
        await close()

    old.close = noted_close  # type: ignore[method-assign]  # spy: what was busy when it closed
    work = asyncio.ensure_future(serving())
    await until(lambda: in_flight.busy(old) == 1)
    providers.swap(await providers.prepare(config(a={"timeout": 3}), CONTEXT))
    assert providers["a"] is not old
    release.set()
    await work
    await until(lambda: old.closed)
    assert busy_when_closed == [0]  # not under the work it was serving
    assert log.events("provider_replaced") == [{"provider": "a"}]


async def test_a_retirement_waits_no_longer_than_its_timeout() -> None:
    providers, _, in_flight, log = await started("a", retire_timeout=0.01)
    old = fake(providers["a"])
    async with in_flight.using(old):
        providers.swap(await providers.prepare(config(), CONTEXT))  # "a" removed
        await until(lambda: old.closed)
    assert log.events("provider_retire_timeout") == [{"provider": "a", "timeout": 0.01}]
    assert log.events("provider_removed") == [{"provider": "a"}]


async def test_close_closes_the_retiring_and_the_current_ones() -> None:
    providers, _, in_flight, _ = await started("a")
    old = fake(providers["a"])
    async with in_flight.using(old):
        providers.swap(await providers.prepare(config(a={"timeout": 3}), CONTEXT))
        new = fake(providers["a"])
        await providers.close()
        assert old.closed and new.closed


async def test_checks_stop_even_when_a_check_ends_as_the_stop_comes() -> None:
    """A check that answers in the very loop turn of the stop must not lose the
    cancellation, or the checker goes on and the bridge's stop waits for it."""
    started, answer, never = asyncio.Event(), asyncio.Event(), asyncio.Event()
    calls = 0

    async def check_access() -> ProviderCheck:
        nonlocal calls
        calls += 1
        if calls > 1:
            await never.wait()  # a checker that went on after its stop waits here
        started.set()
        await answer.wait()
        return ProviderCheck(checked=True, reachable=True, credentials="ok")

    providers = ProviderSet(Builder(), InFlight(), RecordingLog())
    providers.build(config(a={"check_interval": 0.01}), CONTEXT)
    providers["a"].check_access = check_access  # type: ignore[method-assign]  # a check the test paces
    await providers.start()
    await asyncio.wait_for(started.wait(), 5)  # a check is under way
    answer.set()  # it answers ...
    stopping = asyncio.ensure_future(providers.stop_checks())  # ... in the same turn as the stop
    done, _ = await asyncio.wait([stopping], timeout=5)
    assert stopping in done and calls == 1
    await providers.close()
