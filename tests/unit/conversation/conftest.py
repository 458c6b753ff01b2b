"""Conversation's domain objects (Store, Hub, Turns, Limits) as a replica wires them, against a
real redis-server and an assistant scripted by the test in its own event loop."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from conversation.config import Settings
from tests.support.replica import Replica, Rig
from tests.support.scripted_assistant import scripted_assistant
from tests.support.servers import Server


@pytest.fixture
async def rig(redis_server: Server) -> AsyncIterator[Rig]:
    async with scripted_assistant() as assistant:
        settings = Settings(
            redis_url=f"redis://127.0.0.1:{redis_server.port}/0",
            # Each test its own keys: tests share one redis-server.
            key_prefix=f"t{secrets.token_hex(4)}",
            assistant_url=assistant.url,
            # A resume's blocking read gives up (to check on the writer) after this.
            heartbeat_interval=0.2,
            # The tests answer assistant's requests one by one: a title would be one more.
            titles=False,
        )
        yield Rig(assistant, settings)


@pytest.fixture
async def one(rig: Rig) -> AsyncIterator[Replica]:
    async with rig.replica() as started:
        yield started
