"""common.gc_freeze: startup objects leave the collector's generations; garbage does not stay."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from common.gc_freeze import freeze_startup_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_startup_objects_are_frozen_and_cycles_collected_first(unfrozen: None) -> None:
    kept = [Node()]
    garbage = weakref.ref(Node())
    assert garbage() is not None, "the cycle waits for the collector"

    freeze_startup_objects()

    assert garbage() is None, "garbage is collected before the freeze, not kept for good"
    assert gc.get_freeze_count() > 0
    assert not any(obj is kept for obj in gc.get_objects()), "live objects are frozen"
