"""The fault suite's stack (one for the module, restored after every fault) and its figures.

FAULTS_SCALE (default 1) multiplies the clients per fault: 4 at the default, 40 with
FAULTS_SCALE=10 (the full run; see tests/README.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.faults.figures import Figures
from tests.integration.faults.stack import FaultStack, fault_stack


def scale() -> int:
    return max(int(os.environ.get("FAULTS_SCALE", "1")), 1)


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
