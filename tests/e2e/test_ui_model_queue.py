"""A chat in the browser waiting for the embedded model, one reply at a time: it shows its
place in the model's queue, keeps it across a reload, then gets its reply once the replies
before it are gone.

Its own stack: redis-server, assistant with the real SmolLM2 (LOCAL_PARALLEL=1), conversation
and nginx. The replies ahead are two other people's requests straight to assistant's API (each
its own `user`, holding nothing else: the fair queue keeps them ahead of the browser's,
which came later): greedy ones that hold the only slot for their 1000-token cap, far longer
than the test, until the test closes them (a chat's reply, sampled, could end at any token).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import REPLY_TIMEOUT_MS, Chat, screenshot
from tests.integration.assistant.test_local_batching import Chat as ApiChat
from tests.integration.assistant.test_local_model import LONG
from tests.support.conversation import conversation_env
from tests.support.nginx import start_nginx
from tests.support.servers import Server, start_assistant, start_conversation, start_redis

pytestmark = [pytest.mark.browser, pytest.mark.model]


@dataclass
class LocalStack:
    url: str
    assistant_url: str


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    started: list[Server] = []
    try:
        redis = start_redis()
        started.append(redis)
        assistant = start_assistant(
            {
                "ASSISTANT_PROVIDER": "local",
                "LOCAL_PARALLEL": "1",
                "LOCAL_QUEUE_SIZE": "2",
                "LOCAL_MAX_TOKENS": "1000",
            },
            timeout=180,
        )
        started.append(assistant)
        conversation = start_conversation(conversation_env(redis, assistant.url))
        started.append(conversation)
        nginx = start_nginx([f"127.0.0.1:{conversation.port}"])
        started.append(nginx)
        yield LocalStack(nginx.url, assistant.url)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def chat_url(local_stack: LocalStack) -> str:
    return local_stack.url


def test_a_chat_waits_in_the_models_queue_then_gets_its_reply(
    chat: Chat, local_stack: LocalStack
) -> None:
    with (
        httpx.Client(base_url=local_stack.assistant_url, timeout=60) as api,
        ExitStack() as requests,
    ):
        writing = ApiChat(requests, api, {**LONG, "user": "someone"})
        writing.first_text()
        waiting = ApiChat(requests, api, {**LONG, "user": "someone else"})
        assert waiting.place() == 0

        chat.open().send("What is the capital of France?")
        one_ahead = chat.last_reply.get_by_text("Waiting for the model: 1 ahead of you")
        expect(one_ahead).to_be_visible(timeout=REPLY_TIMEOUT_MS)
        screenshot(chat.page, "model-queue-waiting")
        # A reload while waiting resumes the reply's stream, and its place comes with it.
        chat.page.reload()
        expect(one_ahead).to_be_visible(timeout=REPLY_TIMEOUT_MS)

        waiting.close()
        expect(chat.last_reply.get_by_text("Waiting for the model: you are next")).to_be_visible(
            timeout=REPLY_TIMEOUT_MS
        )
        writing.close()
        expect(chat.last_reply.locator(".markdown")).not_to_be_empty(timeout=REPLY_TIMEOUT_MS)
        chat.wait_reply_done()
    expect(chat.last_reply.get_by_text("Waiting for the model")).to_have_count(0)
