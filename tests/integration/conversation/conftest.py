"""Real servers for conversation's tests: redis-server, fake models, assistant, replicas.

`fast`: a fake model that echoes at once, behind assistant, behind one conversation.
`slow`: a fake model writing SLOW_TOKENS tokens SLOW_DELAY_MS apart, behind assistant,
behind two conversation replicas sharing one Redis (resume and cancel across replicas).
`store`: a `Store` on the session's redis-server, with the module's `store_settings`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from conversation.config import Settings
from conversation.store import Store
from tests.support.conversation import start_assistant_for, start_replica
from tests.support.servers import Server, start_fake_upstream

SLOW_TOKENS = 80
SLOW_DELAY_MS = 40


@dataclass
class Fast:
    redis: Server
    upstream: Server
    assistant: Server
    conversation: Server


@dataclass
class Slow:
    redis: Server
    upstream: Server
    assistant: Server
    a: Server
    b: Server


@contextlib.contextmanager
def echo_stack(redis: Server, **conversation_env: str) -> Iterator[Fast]:
    """An echoing fake model behind assistant behind one conversation with these settings."""
    started: list[Server] = []
    try:
        upstream = start_fake_upstream()
        started.append(upstream)
        assistant = start_assistant_for(upstream)
        started.append(assistant)
        conversation = start_replica(redis, assistant.url, **conversation_env)
        started.append(conversation)
        yield Fast(redis, upstream, assistant, conversation)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def store_settings() -> dict[str, Any]:
    """The `store` fixture's settings besides the Redis URL; a module overrides it (its own
    key prefix, say)."""
    return {}


@pytest.fixture
async def store(redis_server: Server, store_settings: dict[str, Any]) -> AsyncIterator[Store]:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    redis = Redis.from_url(url, decode_responses=True)
    yield Store(redis, Settings(redis_url=url, **store_settings))
    await redis.aclose()


@pytest.fixture(scope="session")
def fast(redis_server: Server) -> Iterator[Fast]:
    with echo_stack(redis_server, CONTEXT_TOKEN_BUDGET="64", CONTEXT_MAX_MESSAGES="5") as stack:
        yield stack


@pytest.fixture(scope="session")
def slow_upstream() -> Iterator[Server]:
    server = start_fake_upstream(FAKE_TOKENS=str(SLOW_TOKENS), FAKE_DELAY_MS=str(SLOW_DELAY_MS))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def slow(redis_server: Server, slow_upstream: Server) -> Iterator[Slow]:
    started: list[Server] = []
    try:
        assistant = start_assistant_for(slow_upstream)
        started.append(assistant)
        a = start_replica(redis_server, assistant.url)
        started.append(a)
        b = start_replica(redis_server, assistant.url)
        started.append(b)
        yield Slow(redis_server, slow_upstream, assistant, a, b)
    finally:
        for server in reversed(started):
            server.stop()
