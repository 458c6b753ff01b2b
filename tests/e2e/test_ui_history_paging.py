"""History paging in Chromium against the real stack: a chat opens on its newest page
(`GET /api/sessions/{id}?limit=` answering `has_more`), and older pages load as the reader
scrolls up, the view held steady (the state is unit-tested in chatState.test.ts,
chatController.test.ts, components/components.test.tsx)."""

from __future__ import annotations

import pytest
from playwright.sync_api import APIRequestContext, expect

from tests.conftest import Stack
from tests.e2e.conftest import Chat, screenshot

pytestmark = pytest.mark.browser

TURNS = 65  # 130 messages: the newest page of 50, then two older pages
HEADERS = {"X-Requested-With": "chatui"}


@pytest.fixture
def chat_checked_clean() -> bool:
    """This module's test asserts what paging shows, not the page's dialogs and errors."""
    return False


def make_long_chat(request: APIRequestContext, base_url: str) -> str:
    """A chat of TURNS questions and their replies, created with the page's own cookie."""
    created = request.post(f"{base_url}/api/sessions", data={"name": "long chat"}, headers=HEADERS)
    assert created.ok, created.text()
    sid: str = created.json()["session_id"]
    for i in range(TURNS):
        turn = request.post(
            f"{base_url}/api/sessions/{sid}/messages",
            data={"content": f"question {i}"},
            headers={**HEADERS, "Accept": "text/event-stream"},
        )
        assert turn.ok and "event: done" in turn.text(), turn.text()
    return sid


def test_older_messages_load_on_scrolling_up_and_the_view_stays(chat: Chat, stack: Stack) -> None:
    chat.open()
    sid = make_long_chat(chat.page.request, stack.url)
    chat.open(f"/c/{sid}")
    articles = chat.page.locator("article.msg")
    expect(articles).to_have_count(50)
    expect(chat.last_reply.locator(".markdown")).to_have_text(f"Echo: question {TURNS - 1}")
    thread = chat.page.locator(".thread")
    # The oldest reply shown: it must stay where it is on screen while older ones arrive above.
    anchor = chat.page.get_by_text(f"Echo: question {TURNS - 22}", exact=True)
    anchor.evaluate("el => el.scrollIntoView({ block: 'start' })")
    expect(anchor).to_be_in_viewport()
    before = anchor.bounding_box()
    assert before is not None
    thread.hover()
    chat.page.mouse.wheel(0, -600)
    expect(articles).to_have_count(100)
    expect(chat.page.get_by_text("Loading older messages…")).to_have_count(0)
    after = anchor.bounding_box()
    assert after is not None
    # The wheel moved the view 600 px (less when it reached the top); the older page none.
    assert 0 < after["y"] - before["y"] <= 600, (before, after)
    expect(anchor).to_be_in_viewport()
    screenshot(chat.page, "18-older-messages")
    thread.evaluate("el => { el.scrollTop = 0; }")
    expect(articles).to_have_count(2 * TURNS)
    expect(chat.user_messages.first).to_have_text("question 0")
    chat.assert_clean()
