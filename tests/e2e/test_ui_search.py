"""A search result far back in a long chat, in Chromium through nginx: the chat opens at
the page around the message (`GET /api/sessions/{id}?around=`), newer pages load as the
reader scrolls down (`after=`), the jump button shows the newest, and a message sent then
goes after the newest (the state is unit-tested in chatState.test.ts and
chatController.test.ts; the API in tests/integration/conversation/test_history_pages.py)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import BrowserContext, FilePayload, expect

from tests.conftest import Stack
from tests.e2e.conftest import Chat, screenshot
from tests.e2e.test_ui_sharing import document

pytestmark = pytest.mark.browser

PAIRS = 80  # 160 messages: the page of 50 around a message near the start leaves 110 newer


def test_a_result_far_back_opens_there_and_reads_on_to_the_newest(
    stack: Stack, context: BrowserContext
) -> None:
    chat = Chat(context.new_page(), stack.url).open()
    pairs = [(f"question {i}", f"answer {i}") for i in range(PAIRS)]
    pairs[5] = ("what does a narwhal eat?", "A narwhal eats halibut and squid.")
    doc = json.dumps(document("Sea creatures", pairs))
    with chat.page.expect_response("**/api/import"):
        chat.page.get_by_label("Import chats from a file").set_input_files(
            files=[FilePayload(name="chat.json", mimeType="application/json", buffer=doc.encode())]
        )
    expect(chat.page.get_by_text("Imported 1 chat.")).to_be_visible()
    chat.page.get_by_label("Search your chats").fill("halibut")
    results = chat.page.get_by_role("list", name="Search results").get_by_role("link")
    expect(results).to_have_count(1)
    with chat.page.expect_response("**/api/sessions/*?*around=m11*") as around:
        results.first.click()
    assert around.value.ok
    found = chat.page.locator('[data-message-id="m11"]')
    expect(found).to_have_class("msg msg-assistant is-found")
    expect(found).to_be_in_viewport()
    articles = chat.page.locator("article.msg")
    expect(articles).to_have_count(50)
    expect(chat.page.get_by_text(f"answer {PAIRS - 1}", exact=True)).to_have_count(0)
    screenshot(chat.page, "22-search-result-far-back")

    # Scrolling down reads the next page after the last message shown.
    thread = chat.page.locator(".thread")
    with chat.page.expect_response("**/api/sessions/*?*after=*"):
        thread.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(articles).to_have_count(100)
    expect(chat.page.get_by_text("Loading newer messages…")).to_have_count(0)
    # The jump button shows the newest page at once, and a message sent goes after it.
    chat.page.get_by_role("button", name="Scroll to the latest message").click()
    newest = chat.page.get_by_text(f"answer {PAIRS - 1}", exact=True)
    expect(newest).to_be_in_viewport()
    chat.ask("one more question")
    texts = chat.user_messages.all_inner_texts()
    assert texts[-2:] == [f"question {PAIRS - 1}", "one more question"], texts[-3:]
    # The address of a message far back opens the chat there too, on a fresh load.
    chat.page.goto(f"{chat.page.url.split('#')[0]}#m-m11")
    chat.page.reload()
    expect(found).to_have_class("msg msg-assistant is-found")
    expect(found).to_be_in_viewport()
    expect(articles).to_have_count(50)
    chat.assert_clean()
