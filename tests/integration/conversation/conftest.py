"""Real servers for conversation's tests: redis-server, fake models, assistant, replicas.

`fast`: a fake model that echoes at once, behind assistant, behind one conversation.
`slow`: a fake model writing SLOW_TOKENS tokens SLOW_DELAY_MS apart, behind assistant,
behind two conversation replicas sharing one Redis (resume and cancel across replicas).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

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
