"""`observed`: the whole product with its services' logs at DEBUG, for the metrics and logs
tests, which read the services' `/metrics` and log files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Stack, build_stack
from tests.support.conversation import assistant_env
from tests.support.fake_control import FakeControl
from tests.support.servers import start_fake_upstream

# DEBUG, so the test that looks for secrets in the logs sees every line there could be.
LOGS = {"LOG_FORMAT": "json", "LOG_LEVEL": "debug"}


@pytest.fixture(scope="module")
def observed() -> Iterator[Stack]:
    upstream = start_fake_upstream(FAKE_DELAY_MS="5")
    # Retries a moment apart, so a scripted upstream failure costs the test no time.
    env = {**assistant_env(upstream), **LOGS, "UPSTREAM_RETRY_BACKOFF": "0.01"}
    with build_stack(env, upstream, LOGS) as stack:
        yield stack


def fake(stack: Stack) -> FakeControl:
    """The control of the stack's fake model, to script its next answers."""
    assert stack.upstream is not None
    return FakeControl(stack.upstream)
