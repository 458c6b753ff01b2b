"""Fixtures shared by every test level: real servers on free ports, torn down at the end.

`stack` is the whole product (redis-server, a fake OpenAI-compatible model, assistant,
conversation and nginx serving the built UI). `model_stack` is the same path with the
embedded SmolLM2 model instead of the fake, for the few tests that exercise the real model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.conversation import assistant_env, conversation_env
from tests.support.nginx import start_nginx
from tests.support.servers import (
    Server,
    start_assistant,
    start_conversation,
    start_fake_upstream,
    start_redis,
)


@dataclass
class Stack:
    redis: Server
    upstream: Server | None
    assistant: Server
    conversation: Server
    nginx: Server
    # Replicas of conversation beside the first, behind the same nginx.
    replicas: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nginx.url

    def servers(self) -> list[Server]:
        found = [self.nginx, self.conversation, *self.replicas, self.assistant]
        return [s for s in [*found, self.upstream, self.redis] if s is not None]

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.log()[-4000:]}" for s in self.servers())


@contextlib.contextmanager
def build_stack(
    assistant_env: dict[str, str],
    upstream: Server | None,
    conversation_extra: dict[str, str] | None = None,
    replicas: int = 1,
) -> Iterator[Stack]:
    started: list[Server] = [upstream] if upstream else []
    try:
        redis = start_redis()
        started.append(redis)
        assistant = start_assistant(assistant_env, timeout=180)
        started.append(assistant)
        env = conversation_env(redis, assistant.url, **(conversation_extra or {}))
        conversations = []
        for _ in range(replicas):
            conversations.append(start_conversation(env))
            started.append(conversations[-1])
        nginx = start_nginx([f"127.0.0.1:{c.port}" for c in conversations])
        started.append(nginx)
        yield Stack(redis, upstream, assistant, conversations[0], nginx, conversations[1:])
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    """A redis-server of its own for tests that wire their own services to it."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The whole product in front of a fake model that streams one word every 30 ms."""
    upstream = start_fake_upstream(FAKE_DELAY_MS=os.environ.get("TEST_FAKE_DELAY_MS", "30"))
    # The browser tests seed long chats from one browser within a minute (history paging:
    # 65 turns), past the default per-client turn rate; the limits have their own tests.
    with build_stack(assistant_env(upstream), upstream, {"LIMIT_CLIENT_TURNS": "1000"}) as s:
        yield s


@pytest.fixture(scope="session")
def model_stack() -> Iterator[Stack]:
    """The whole product with the embedded SmolLM2 model: no key, no network."""
    env = {"ASSISTANT_PROVIDER": "local", "LOCAL_MAX_TOKENS": "48"}
    with build_stack(env, None) as s:
        yield s
