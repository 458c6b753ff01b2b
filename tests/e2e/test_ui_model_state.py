"""What the page shows while the model is not there, and how it recovers without a reload.

Each test has its own small stack: redis-server, conversation and nginx, with conversation's
ASSISTANT_URL on a port where nothing listens yet (the model service is unreachable). The test
then starts a real assistant on that port that is still loading its model (its Hugging Face
provider waits for its chat template at a gate the test holds), and finally opens the gate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Chat, screenshot
from tests.support.conversation import conversation_env
from tests.support.fake_control import start_hf_upstream
from tests.support.nginx import start_nginx
from tests.support.readiness import Gate, start_loading_assistant
from tests.support.servers import Server, free_port, start_conversation, start_redis

pytestmark = pytest.mark.browser

# The page polls with backoff (1, 2, 3, 5, 8, 10 s): recovery shows within one long delay.
RECOVERY_TIMEOUT_MS = 30_000
HF_REPLY = "Hello from text generation."


@dataclass
class NoModel:
    """The stack without its model service; `start_assistant` brings one up, still loading."""

    url: str
    assistant_port: int
    gate: Gate
    hf_upstream: Server
    started: list[Server]

    def start_assistant(self) -> Server:
        server = start_loading_assistant(self.gate, self.hf_upstream, port=self.assistant_port)
        self.started.append(server)
        return server


@contextlib.contextmanager
def stack_without_model() -> Iterator[NoModel]:
    started: list[Server] = []
    gate = Gate()
    try:
        redis = start_redis()
        started.append(redis)
        hf = start_hf_upstream()
        started.append(hf)
        port = free_port()
        conversation = start_conversation(conversation_env(redis, f"http://127.0.0.1:{port}"))
        started.append(conversation)
        nginx = start_nginx([f"127.0.0.1:{conversation.port}"])
        started.append(nginx)
        yield NoModel(nginx.url, port, gate, hf, started)
    finally:
        gate.close()
        for server in reversed(started):
            server.stop()


@pytest.fixture
def no_model() -> Iterator[NoModel]:
    with stack_without_model() as s:
        yield s


@pytest.fixture
def chat_url(no_model: NoModel) -> str:
    return no_model.url


def test_a_message_sent_before_the_model_is_there_is_answered_once_it_is(
    chat: Chat, no_model: NoModel
) -> None:
    page = chat.page
    chat.open()
    model_banner = page.locator(".model-banner")
    expect(model_banner).to_contain_text("The model service is unreachable")
    screenshot(page, "model-unreachable-banner")

    chat.send("are you there?")
    note = chat.last_reply.locator(".msg-note")
    expect(note).to_contain_text("The model service is unreachable", timeout=RECOVERY_TIMEOUT_MS)
    expect(note).to_contain_text("will be answered as soon as the model is ready")
    expect(note).to_have_attribute("role", "status")
    # Not a loop: the page keeps the message, and does not flood the server while it waits.
    expect(chat.user_messages).to_have_text(["are you there?"])

    no_model.start_assistant()  # reachable now, its model still loading
    expect(model_banner).to_contain_text("Loading the model", timeout=RECOVERY_TIMEOUT_MS)
    expect(note).to_contain_text("The model is loading", timeout=RECOVERY_TIMEOUT_MS)
    screenshot(page, "model-loading")

    no_model.gate.open()  # the model is in memory: the page sends the message again by itself
    expect(chat.last_reply.locator(".markdown")).to_have_text(HF_REPLY, timeout=RECOVERY_TIMEOUT_MS)
    expect(model_banner).to_have_count(0)
    expect(chat.last_reply.locator(".msg-note")).to_have_count(0)
    expect(chat.user_messages).to_have_text(["are you there?"])
    expect(chat.replies).to_have_count(1)
    screenshot(page, "model-ready-answered")


def test_a_reloaded_chat_whose_reply_failed_offers_retry_once_the_model_is_ready(
    chat: Chat, no_model: NoModel
) -> None:
    page = chat.page
    chat.open()
    chat.send("hello?")
    note = chat.last_reply.locator(".msg-note")
    expect(note).to_contain_text("The model service is unreachable", timeout=RECOVERY_TIMEOUT_MS)

    page.reload()  # the failure now comes from the stored reply's error code
    note = chat.last_reply.locator(".msg-note")
    expect(note).to_contain_text("The model service is unreachable")
    expect(note).to_contain_text("This page keeps checking")

    no_model.start_assistant()
    no_model.gate.open()
    expect(note).to_contain_text("The model is ready now", timeout=RECOVERY_TIMEOUT_MS)
    expect(page.locator(".model-banner")).to_have_count(0, timeout=RECOVERY_TIMEOUT_MS)
    chat.last_reply.get_by_role("button", name="Retry").click()
    expect(chat.last_reply.locator(".markdown")).to_have_text(HF_REPLY, timeout=RECOVERY_TIMEOUT_MS)
