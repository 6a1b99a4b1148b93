"""The daemon's GC policy: a full collection's survivors are frozen (the next ones do
not scan them); a garbage cycle among them is freed once `thaw_every` has passed; the
middle generation is collected after 1,000 young collections, not 10. Driven by
explicit `gc.collect()` calls and a fake clock."""

from __future__ import annotations

import gc
import weakref

from bridge.gc_policy import FreezeSurvivors


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_survivors_are_frozen_and_cycles_among_them_freed_after_the_thaw() -> None:
    now = [1000.0]
    policy = FreezeSurvivors(thaw_every=60.0, clock=lambda: now[0])
    gc.collect()
    callbacks = len(gc.callbacks)
    policy.install()
    try:
        node = Node()
        gone = weakref.ref(node)
        gc.collect()  # node survives: frozen with the rest
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert gone() is not None  # a cycle among frozen objects waits for the thaw
        now[0] += 59.0
        gc.collect()
        assert gone() is not None
        now[0] += 1.0
        gc.collect()  # the thaw: everything back in the oldest generation
        assert gc.get_freeze_count() == 0
        gc.collect()  # scans the whole heap, frees the cycle, freezes again
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        policy.uninstall()
    assert gc.get_freeze_count() == 0 and len(gc.callbacks) == callbacks


def test_young_collections_wait_for_20000_allocations_middle_ones_for_1000_young_ones_both_restored() -> None:
    before = gc.get_threshold()
    policy = FreezeSurvivors()
    policy.install()
    try:
        assert gc.get_threshold() == (20_000, 1000, before[2])  # CPython's old one kept
        for generation in (0, 1):  # a young and a middle collection still free a garbage cycle
            node = Node()
            gone = weakref.ref(node)
            del node
            gc.collect(generation)
            assert gone() is None
    finally:
        policy.uninstall()
    assert gc.get_threshold() == before
