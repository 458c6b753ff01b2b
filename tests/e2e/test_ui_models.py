"""Models in the chat page, in Debian's Chromium through nginx: pick a model, see which model
wrote each reply and what it cost, switch chats and see each chat's model, regenerate with
another model, and the title written after the first reply.

The stack: three fake model upstreams behind one assistant whose MODELS_FILE serves one model
from each (alpha, the default; beta; gamma, which writes the titles).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import Stack, build_stack
from tests.e2e.conftest import REPLY_TIMEOUT_MS, Chat, screenshot
from tests.support.conversation import models_file
from tests.support.fake_control import FakeControl
from tests.support.servers import Server, start_fake_upstream

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def models_stack() -> Iterator[tuple[Stack, dict[str, Server]]]:
    upstreams: dict[str, Server] = {}
    try:
        for model in ("alpha", "beta", "gamma"):
            upstreams[model] = start_fake_upstream(FAKE_DELAY_MS="10")
        env = {"MODELS_FILE": str(models_file(upstreams, "alpha")), "FAKE_KEY": "test-key"}
        with build_stack(env, None, {"TITLES": "true", "TITLE_MODEL": "gamma"}) as stack:
            yield stack, upstreams
    finally:
        for server in upstreams.values():
            server.stop()


def picker(page: Page) -> Locator:
    return page.get_by_label("Model", exact=True)


def reply_meta(chat: Chat) -> Locator:
    return chat.last_reply.get_by_test_id("reply-meta")


def test_pick_a_model_see_it_under_replies_and_per_chat(
    models_stack: tuple[Stack, dict[str, Server]], page: Page
) -> None:
    stack, upstreams = models_stack
    FakeControl(upstreams["gamma"]).script({"tokens": ["Greeting ", "in ", "beta"]})
    chat = Chat(page, stack.url).open()
    expect(picker(page)).to_have_value("alpha")  # the default
    expect(picker(page).locator("option")).to_have_text(
        ["Model alpha", "Model beta", "Model gamma"]
    )

    # A new chat with the model picked for it.
    picker(page).select_option("beta")
    chat.ask("hello there")
    meta = reply_meta(chat)
    expect(meta).to_contain_text("Model beta")
    # The fake counts the reply's chunks (3) and the prompt's words.
    expect(meta).to_contain_text(re.compile(r"\d+ tokens \(\d+ prompt, 3 reply\)"))
    assert FakeControl(upstreams["beta"]).requests()[0]["body"]["model"] == "beta"
    # The title written after the first reply reaches the header and the list.
    expect(page.locator("h1.chat-title")).to_have_text("Greeting in beta", timeout=REPLY_TIMEOUT_MS)
    first = chat.sidebar_link("Greeting in beta")
    expect(first.locator(".chat-item-model")).to_have_text("Model beta")
    screenshot(page, "models-reply-meta")

    # Another chat, with the default model.
    page.get_by_role("button", name="New chat").first.click()
    expect(picker(page)).to_have_value("alpha")
    chat.ask("second chat")
    expect(reply_meta(chat)).to_contain_text("Model alpha")

    # Switching chats shows each chat's model, in the picker and under its replies.
    first.click()
    expect(picker(page)).to_have_value("beta")
    expect(reply_meta(chat)).to_contain_text("Model beta")
    expect(chat.last_reply.locator(".markdown")).to_have_text("Echo: hello there")

    # Changing the open chat's model: the next reply is written by it.
    picker(page).select_option("alpha")
    chat.ask("now alpha")
    expect(reply_meta(chat)).to_contain_text("Model alpha")
    page.reload()
    expect(picker(page)).to_have_value("alpha")
    expect(chat.replies.first.get_by_test_id("reply-meta")).to_contain_text("Model beta")
    chat.assert_clean()


def test_regenerate_with_another_model(
    models_stack: tuple[Stack, dict[str, Server]], page: Page
) -> None:
    stack, _ = models_stack
    chat = Chat(page, stack.url).open()
    chat.ask("try me")
    expect(reply_meta(chat)).to_contain_text("Model alpha")
    page.get_by_label("Regenerate with another model").select_option("beta")
    expect(reply_meta(chat)).to_contain_text("Model beta", timeout=REPLY_TIMEOUT_MS)
    expect(chat.last_reply.locator(".markdown")).to_have_text("Echo: try me")
    expect(chat.replies).to_have_count(1)
    # The first reply is kept as the other version, with its own model.
    expect(chat.last_reply.locator(".siblings-count")).to_have_text("2 / 2")
    chat.last_reply.get_by_label("Previous version").click()
    expect(reply_meta(chat)).to_contain_text("Model alpha")
    expect(picker(page)).to_have_value("alpha")  # the chat keeps its model
    chat.assert_clean()
