"""Share links, search, export and import in Debian's Chromium, through nginx.

The shared page is opened in a fresh browser context (no cookie of anyone's): it must show
the snapshot with the chat's own sanitized markdown, no chat list, no composer, set no
cookie, and run none of the XSS corpus's vectors placed in a shared reply. Its CSP is
bypassed, as in test_ui_hostile_output.py, so the renderer alone is what is judged.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, FilePayload, expect

from tests.conftest import Stack
from tests.e2e.conftest import Chat, screenshot
from tests.e2e.test_ui_hostile_output import CANARY, INSPECT, PROVOKE, RULES, VECTORS

pytestmark = pytest.mark.browser


def document(name: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for question, answer in pairs:
        for role, text in (("user", question), ("assistant", answer)):
            n = len(messages)
            messages.append(
                {
                    "id": f"m{n}",
                    "parent_id": f"m{n - 1}" if n else None,
                    "role": role,
                    "content": text,
                    "status": "complete",
                    "created_at": "2026-01-01T00:00:00Z",
                }
            )
    return {
        "schema": "chatstack.chat/v1",
        "session_id": f"e2e-{name.replace(' ', '-')}",
        "name": name,
        "created_at": "2026-01-01T00:00:00Z",
        "current_id": messages[-1]["id"],
        "messages": messages,
    }


def import_as_api_client(stack: Stack, doc: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{stack.url}/api/import", json=doc, timeout=30)
    assert response.status_code == 200, response.text
    imported: dict[str, Any] = response.json()["imported"][0]
    return imported


def share_link(stack: Stack, chat: dict[str, Any]) -> str:
    response = httpx.post(
        f"{stack.url}/api/sessions/{chat['session_id']}/shares",
        json={},
        headers={"Authorization": f"Bearer {chat['token']}"},
    )
    assert response.status_code == 201, response.text
    path: str = response.json()["path"]
    return path


@pytest.fixture
def stranger(browser: Browser) -> BrowserContext:
    return browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)


def test_a_shared_chat_renders_read_only_sets_no_cookie_and_runs_no_vector(
    stack: Stack, stranger: BrowserContext
) -> None:
    vectors = VECTORS[::3]
    pairs = [("**not bold** <b>raw</b>", "A *normal* reply with `code`.")]
    pairs += [(f"vector {v['id']}", v["markdown"]) for v in vectors]
    chat = import_as_api_client(stack, document("Shared hostile chat", pairs))
    path = share_link(stack, chat)
    page = stranger.new_page()
    viewer = Chat(page, stack.url)
    page.goto(stack.url + path)
    expect(page.get_by_role("heading", name="Shared hostile chat")).to_be_visible()
    replies = page.locator("article.msg-assistant .markdown")
    expect(replies).to_have_count(len(pairs))
    # The same renderer as the chat: markdown in replies, plain text in the user's words.
    expect(replies.first.locator("em")).to_have_text("normal")
    expect(page.locator("article.msg-user .bubble").first).to_have_text("**not bold** <b>raw</b>")
    # Nothing of the app: no chat list, no composer, no other chats.
    expect(page.get_by_label("Message", exact=True)).to_have_count(0)
    expect(page.locator("aside.sidebar")).to_have_count(0)
    expect(page.get_by_role("navigation", name="Your chats")).to_have_count(0)
    bad: dict[str, list[str]] = {}
    for i, vector in enumerate(vectors, start=1):
        reply = replies.nth(i)
        found: list[str] = reply.evaluate(INSPECT, RULES)
        reply.evaluate(PROVOKE)
        if page.evaluate(f"() => window.{CANARY}") is not None:
            found.append("the canary was set")
        if found:
            bad[vector["id"]] = found
    screenshot(page, "20-shared-chat")
    assert bad == {}, bad
    assert stranger.cookies() == []
    viewer.assert_clean()
    # "Continue this chat": a chat of the viewer's own, with the composer, and a cookie now.
    page.get_by_role("button", name="Continue this chat").click()
    page.wait_for_url(f"{stack.url}/c/**")
    expect(viewer.composer).to_be_visible(timeout=10_000)
    expect(page.get_by_role("heading", name="Shared hostile chat")).to_be_visible()
    expect(page.locator("article.msg-user .bubble").last).to_have_text(pairs[-1][0])
    assert [c["name"] for c in stranger.cookies()] == ["chat_browser"]
    expect(viewer.sidebar_link("Shared hostile chat")).to_be_visible()


def test_a_revoked_or_unknown_link_says_so(stack: Stack, context: BrowserContext) -> None:
    """In a context that keeps nginx's Content-Security-Policy: the page works under it."""
    chat = import_as_api_client(stack, document("Soon revoked", [("q", "a")]))
    path = share_link(stack, chat)
    share_id = path.rsplit("/", 1)[1]
    revoked = httpx.delete(
        f"{stack.url}/api/sessions/{chat['session_id']}/shares/{share_id}",
        headers={"Authorization": f"Bearer {chat['token']}"},
    )
    assert revoked.status_code == 204
    page = context.new_page()
    viewer = Chat(page, stack.url)
    live = share_link(stack, chat)
    page.goto(stack.url + live)
    expect(page.get_by_role("button", name="Continue this chat")).to_be_visible()
    expect(page.locator("article.msg-assistant .markdown")).to_have_text("a")
    for gone in (path, "/s/" + "x" * 32):
        page.goto(stack.url + gone)
        expect(page.get_by_role("alert")).to_contain_text("does not exist")
        expect(page.get_by_role("button", name="Continue this chat")).to_have_count(0)
    assert context.cookies() == []
    viewer.assert_clean()


def test_search_opens_the_chat_at_the_message(stack: Stack, context: BrowserContext) -> None:
    chat = Chat(context.new_page(), stack.url).open()
    pairs = [(f"question {i}", f"answer {i}") for i in range(12)]
    pairs[2] = ("where is the quokka?", "The quokka lives on Rottnest Island.")
    tree = document("Animal facts", pairs)
    # Another version of the fourth question, on a branch not shown.
    other = {**tree["messages"][6], "id": "other", "content": "and wombat burrows?"}
    tree["messages"].append(other)
    doc = json.dumps(tree)
    with chat.page.expect_response("**/api/import"):
        chat.page.get_by_label("Import chats from a file").set_input_files(
            files=[FilePayload(name="chat.json", mimeType="application/json", buffer=doc.encode())]
        )
    expect(chat.page.get_by_text("Imported 1 chat.")).to_be_visible()
    expect(chat.sidebar_link("Animal facts")).to_be_visible()
    chat.page.get_by_label("Search your chats").fill("quok")
    results = chat.page.get_by_role("list", name="Search results").get_by_role("link")
    expect(results).to_have_count(2)
    expect(results.nth(1).locator("mark")).to_have_text("quokka")
    results.nth(1).click()
    found = chat.page.locator('[data-message-id="m5"]')
    expect(found).to_have_class("msg msg-assistant is-found")
    expect(found).to_be_in_viewport()
    screenshot(chat.page, "21-search-result")
    # A message on another branch: its branch is shown, then the message.
    chat.page.get_by_label("Search your chats").fill("wombat")
    expect(results).to_have_count(1)
    results.first.click()
    expect(chat.page.locator('[data-message-id="other"]')).to_have_class("msg msg-user is-found")
    expect(chat.page.get_by_text("question 3")).to_have_count(0)
    # The chat's menu offers its exports; the list's foot offers all of them.
    chat.page.get_by_text("Share or export").click()
    with chat.page.expect_download() as markdown:
        chat.page.get_by_role("menuitem", name="Export as Markdown").click()
    text = markdown.value.path().read_text()
    assert text.startswith("# Animal facts") and "Rottnest Island" in text
    with chat.page.expect_download() as everything:
        chat.page.get_by_role("link", name="Export all").click()
    exported = json.loads(everything.value.path().read_text())
    assert [c["name"] for c in exported["chats"]] == ["Animal facts"]
    chat.assert_clean()
