"""The fault suite's stack (one for the module, restored around every fault) and its
figures, printed per fault and in total (run with -s to see them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.faults.figures import Figures
from tests.integration.faults.stack import FaultStack, fault_stack


@pytest.fixture(scope="module")
def faulty_stack() -> Iterator[FaultStack]:
    with fault_stack() as s:
        yield s


@pytest.fixture
def healthy(faulty_stack: FaultStack) -> Iterator[FaultStack]:
    """The fault stack, whole again before and after the test, whatever a fault left."""
    faulty_stack.restore()
    yield faulty_stack
    faulty_stack.restore()


@pytest.fixture(scope="module")
def figures() -> Iterator[Figures]:
    found = Figures()
    yield found
    print(found.total())
