"""Versions of messages in Chromium against the real stack: edit an earlier message and
regenerate a reply, then switch between the versions ("2 / 2" between the previous and next
arrows) without reloading (the state is unit-tested in chatState.test.ts,
chatController.test.ts, components.test.tsx)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Request, expect

from tests.e2e.conftest import REPLY_TIMEOUT_MS, Chat, screenshot

pytestmark = pytest.mark.browser


def versions(message: Locator) -> Locator:
    return message.get_by_role("navigation", name="Versions")


def test_edit_an_earlier_message_and_switch_between_versions(chat: Chat) -> None:
    chat.open()
    chat.ask("first question")
    chat.ask("second question")
    first = chat.page.locator("article.msg-user").first
    # Edit is offered on every user message, not only the last.
    first.hover()
    first.get_by_role("button", name="Edit message").click()
    editor = chat.page.get_by_role("textbox", name="Edit your message")
    editor.fill("first, reworded")
    chat.page.get_by_role("button", name="Save and send").click()
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        "Echo: first, reworded", timeout=REPLY_TIMEOUT_MS
    )
    chat.wait_reply_done()
    expect(chat.user_messages).to_have_text(["first, reworded"])
    first = chat.page.locator("article.msg-user").first
    expect(versions(first)).to_contain_text("2 / 2")
    screenshot(chat.page, "20-versions")

    # Back to the first version: the whole branch below it returns, with no page load.
    loads: list[str] = []

    def on_request(request: Request) -> None:
        if request.resource_type == "document":
            loads.append(request.url)

    chat.page.on("request", on_request)
    versions(first).get_by_role("button", name="Previous version").click()
    expect(chat.user_messages).to_have_text(["first question", "second question"])
    expect(chat.replies.locator(".markdown")).to_have_text(
        ["Echo: first question", "Echo: second question"]
    )
    expect(versions(chat.page.locator("article.msg-user").first)).to_contain_text("1 / 2")
    versions(chat.page.locator("article.msg-user").first).get_by_role(
        "button", name="Next version"
    ).click()
    expect(chat.user_messages).to_have_text(["first, reworded"])
    assert loads == []

    # And it is the server's active path: a reload shows the same version.
    chat.page.reload()
    expect(chat.user_messages).to_have_text(["first, reworded"])
    expect(versions(chat.page.locator("article.msg-user").first)).to_contain_text("2 / 2")


def test_regenerate_keeps_the_old_reply_as_a_version(chat: Chat) -> None:
    chat.open()
    chat.ask("tell me once")
    chat.last_reply.get_by_role("button", name="Regenerate reply").click()
    expect(versions(chat.last_reply)).to_contain_text("2 / 2", timeout=REPLY_TIMEOUT_MS)
    chat.wait_reply_done()
    expect(chat.replies).to_have_count(1)
    versions(chat.last_reply).get_by_role("button", name="Previous version").click()
    expect(versions(chat.last_reply)).to_contain_text("1 / 2")
    expect(chat.last_reply.locator(".markdown")).to_have_text("Echo: tell me once")
