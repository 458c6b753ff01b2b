"""The load suite's stack: the whole product (redis-server, the fake model, assistant, two
conversation replicas, nginx) with its default limits, nginx trusting no proxy, so each
client is the address it connects from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Stack, build_stack
from tests.integration.load.run import LoadRun, run_load
from tests.support.conversation import assistant_env
from tests.support.servers import start_fake_upstream

# The model's pace and its cap: an abuser's reply (the cap) takes 6 s to write, a polite
# client's (a few tokens) tens of milliseconds. Short enough that the replies the abuser
# left are all written soon after it stops, for the second unloaded phase.
FAKE_DELAY_MS = "20"
MAX_TOKENS = "300"
# As the product runs by default (CONVERSATION_REPLICAS in .env.example, the compose file and
# the local run): two conversation replicas behind nginx.
REPLICAS = 2


@pytest.fixture(scope="package")
def load_stack() -> Iterator[Stack]:
    upstream = start_fake_upstream(FAKE_DELAY_MS=FAKE_DELAY_MS)
    env = {**assistant_env(upstream), "OPENAI_MAX_TOKENS": MAX_TOKENS}
    with build_stack(env, upstream, replicas=REPLICAS) as stack:
        yield stack


@pytest.fixture(scope="package")
async def load_run(load_stack: Stack) -> LoadRun:
    """The suite's one run (a few tens of seconds), shared by its tests (target_load.py's
    too, when it is named)."""
    return await run_load(load_stack)
