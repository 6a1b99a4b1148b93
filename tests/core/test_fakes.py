"""The fakes take exactly the calls of the ports they stand in for: same parameters,
defaults and return types, coroutine where the port's is one. mypy checks only that an
override is compatible (a fake may still drop a default or narrow a return); a fake
that drifts lets core code pass its tests with a call the real stores would refuse."""

from __future__ import annotations

import inspect

import pytest

from bridge.core.ports import Provider, Store
from tests.core.fakes import FakeProvider, FakeStore


@pytest.mark.parametrize(("fake", "port"), [(FakeStore, Store), (FakeProvider, Provider)], ids=["store", "provider"])
def test_a_fake_overrides_its_port_with_the_same_signature(fake: type, port: type) -> None:
    overridden = [
        name
        for name, member in vars(port).items()
        if inspect.isfunction(member) and not name.startswith("__") and getattr(fake, name) is not member
    ]
    assert overridden  # the fake does stand in for something
    for name in overridden:
        ours, theirs = getattr(fake, name), getattr(port, name)
        assert inspect.signature(ours) == inspect.signature(theirs), name
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name
