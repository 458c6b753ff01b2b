"""The chat page in Debian's Chromium, through nginx, against the real stack (fake model).

Each test opens a fresh browser context, so it has its own cookie and sees only its own
chats. The fake model answers "Echo: <message>" one word per chunk; a test that needs a
reply in a given state (stalled mid-way, slow to start, failing) queues that behaviour on
the fake with POST /_fake/script first. A screenshot of each main state is written to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Route,
    expect,
)

from tests.conftest import Stack
from tests.e2e.conftest import REPLY_TIMEOUT_MS, Chat, screenshot

pytestmark = pytest.mark.browser


def fake(stack: Stack, *behaviours: dict[str, object]) -> None:
    """Queue behaviours for the next model requests (see tests/fakes/script.py)."""
    upstream = stack.upstream
    assert upstream is not None
    httpx.post(f"{upstream.url}/_fake/script", json=list(behaviours), timeout=5).raise_for_status()


def fake_recovers(stack: Stack) -> None:
    """Drop the behaviours still queued: the model answers normally again."""
    upstream = stack.upstream
    assert upstream is not None
    httpx.post(f"{upstream.url}/_fake/reset", timeout=5).raise_for_status()


def words(n: int, prefix: str = "w") -> list[str]:
    return [f"{prefix}{i} " for i in range(n)]


def test_send_stream_and_history_after_reload(chat: Chat) -> None:
    chat.open()
    expect(chat.page.get_by_role("heading", name="How can I help?")).to_be_visible()
    screenshot(chat.page, "01-empty")
    # Record every text the reply shows while it streams.
    chat.page.evaluate(
        """() => {
          window.__seen = [];
          new MutationObserver(() => {
            const r = document.querySelector('article.msg-assistant .markdown');
            if (r) window.__seen.push(r.textContent);
          }).observe(document.body, {subtree: true, childList: true, characterData: true});
        }"""
    )
    text = "tell me about streaming replies one word at a time please"
    chat.send(text)
    expect(chat.user_messages.first).to_have_text(text)
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        f"Echo: {text}", timeout=REPLY_TIMEOUT_MS
    )
    chat.wait_reply_done()
    seen = [s for s in chat.page.evaluate("window.__seen") if s]
    partial = {s for s in seen if s != f"Echo: {text}"}
    assert len(partial) >= 3, f"the reply should appear word by word, saw {seen}"
    assert all(f"Echo: {text}".startswith(s.rstrip()) for s in partial)
    expect(chat.page).to_have_url(re.compile(r"/c/[0-9a-f]{32}$"))
    expect(chat.sidebar_link(text[:47] + "…")).to_be_visible()
    screenshot(chat.page, "02-reply")

    # The credential is an HttpOnly cookie: nothing a script can read holds it.
    assert chat.page.evaluate("document.cookie") == ""
    assert chat.page.evaluate("localStorage.length + sessionStorage.length") == 0

    chat.page.reload()
    expect(chat.user_messages).to_have_count(1)
    expect(chat.last_reply.locator(".markdown")).to_have_text(f"Echo: {text}")
    expect(chat.page.get_by_role("heading", level=1)).to_have_text(text[:47] + "…")


def test_markdown_reply_with_code_and_copy(chat: Chat, stack: Stack) -> None:
    chat.open()
    fake(
        stack,
        {
            "tokens": [
                "Here ",
                "is **code**:\n\n",
                "```python\n",
                "def add(a, b):\n",
                "    return a + b\n",
                "```\n\n",
                "| a | b |\n|---|---|\n| 1 | 2 |\n",
            ]
        },
    )
    chat.send("show me code")
    code = chat.last_reply.locator("pre code")
    expect(code).to_have_text("def add(a, b):\n    return a + b", timeout=REPLY_TIMEOUT_MS)
    chat.wait_reply_done()
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    expect(chat.last_reply.locator("table td")).to_have_count(2)
    expect(chat.last_reply.locator("strong")).to_have_text("code")
    chat.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    chat.last_reply.get_by_role("button", name="Copy code").click()
    expect(chat.last_reply.get_by_role("button", name="Copy code")).to_have_text("Copied")
    assert (
        chat.page.evaluate("navigator.clipboard.readText()") == "def add(a, b):\n    return a + b"
    )
    chat.last_reply.get_by_role("button", name="Copy reply").click()
    copied = chat.page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("Here is **code**:") and "| 1 | 2 |" in copied
    screenshot(chat.page, "03-markdown")
    chat.page.emulate_media(color_scheme="dark")
    screenshot(chat.page, "03-markdown-dark")


def test_stop_keeps_the_partial_reply(chat: Chat, stack: Stack) -> None:
    chat.open()
    fake(stack, {"tokens": words(40), "stall_after": 5})
    chat.send("a long answer please")
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        "w0 w1 w2 w3 w4", timeout=REPLY_TIMEOUT_MS
    )
    screenshot(chat.page, "04-streaming")
    chat.stop_button.click()
    expect(chat.last_reply.get_by_text("Stopped.")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(chat.last_reply.locator(".markdown")).to_have_text("w0 w1 w2 w3 w4")
    chat.wait_reply_done()
    screenshot(chat.page, "05-stopped")
    chat.page.reload()
    expect(chat.last_reply.locator(".markdown")).to_have_text("w0 w1 w2 w3 w4")
    expect(chat.last_reply.get_by_text("Stopped.")).to_be_visible()


def test_regenerate_replaces_the_last_reply(chat: Chat, stack: Stack) -> None:
    chat.open()
    fake(stack, {"tokens": ["first ", "try"]})
    chat.send("regenerate me")
    expect(chat.last_reply.locator(".markdown")).to_have_text("first try", timeout=REPLY_TIMEOUT_MS)
    chat.wait_reply_done()
    chat.page.get_by_role("button", name="Regenerate reply").click()
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        "Echo: regenerate me", timeout=REPLY_TIMEOUT_MS
    )
    chat.wait_reply_done()
    expect(chat.replies).to_have_count(1)
    chat.page.reload()
    expect(chat.replies).to_have_count(1)
    expect(chat.last_reply.locator(".markdown")).to_have_text("Echo: regenerate me")


def test_edit_the_last_message_and_resend(chat: Chat) -> None:
    chat.open()
    chat.ask("first question")
    chat.user_messages.last.hover()
    chat.page.get_by_role("button", name="Edit message").click()
    editor = chat.page.get_by_role("textbox", name="Edit your message")
    expect(editor).to_be_focused()
    editor.fill("second question")
    screenshot(chat.page, "06-editing")
    chat.page.get_by_role("button", name="Save and send").click()
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        "Echo: second question", timeout=REPLY_TIMEOUT_MS
    )
    chat.wait_reply_done()
    expect(chat.user_messages).to_have_text(["second question"])
    chat.page.reload()
    expect(chat.user_messages).to_have_text(["second question"])
    expect(chat.replies).to_have_count(1)


def test_switch_rename_and_delete_chats(chat: Chat) -> None:
    chat.open()
    chat.ask("alpha chat")
    alpha_url = chat.page.url
    chat.page.get_by_role("button", name="New chat").click()
    expect(chat.page.get_by_role("heading", name="How can I help?")).to_be_visible()
    chat.ask("beta chat")
    expect(chat.sidebar_link("alpha chat")).to_be_visible()
    expect(chat.sidebar_link("beta chat")).to_be_visible()

    chat.sidebar_link("alpha chat").click()
    expect(chat.page).to_have_url(alpha_url)
    expect(chat.user_messages).to_have_text(["alpha chat"])
    expect(chat.last_reply.locator(".markdown")).to_have_text("Echo: alpha chat")
    screenshot(chat.page, "07-two-chats")

    chat.page.go_back()
    expect(chat.user_messages).to_have_text(["beta chat"])

    chat.page.get_by_role("button", name="Rename alpha chat").click()
    name = chat.page.get_by_label("Chat name")
    name.fill("Renamed alpha")
    name.press("Enter")
    expect(chat.sidebar_link("Renamed alpha")).to_be_visible()
    chat.page.reload()
    expect(chat.sidebar_link("Renamed alpha")).to_be_visible()

    chat.page.get_by_role("button", name="Delete beta chat").click()
    chat.page.get_by_role("button", name="Delete", exact=True).click()
    expect(chat.sidebar_link("beta chat")).to_have_count(0)
    expect(chat.page.get_by_role("heading", name="How can I help?")).to_be_visible()
    expect(chat.page).to_have_url(chat.base_url + "/")


def test_reload_mid_reply_resumes_without_duplicates(chat: Chat, stack: Stack) -> None:
    chat.open()
    # The reply stalls after 8 words: it is still being written when the page comes back.
    fake(stack, {"tokens": words(30), "stall_after": 8})
    chat.send("resume me")
    expected = "w0 w1 w2 w3 w4 w5 w6 w7"
    expect(chat.last_reply.locator(".markdown")).to_have_text(expected, timeout=REPLY_TIMEOUT_MS)
    with chat.page.expect_request(re.compile(r"/api/sessions/[0-9a-f]+/messages/[^/]+/stream$")):
        chat.page.reload()
    expect(chat.last_reply.locator(".markdown")).to_have_text(expected, timeout=REPLY_TIMEOUT_MS)
    expect(chat.stop_button).to_be_visible()
    screenshot(chat.page, "08-resumed")
    chat.stop_button.click()
    expect(chat.last_reply.get_by_text("Stopped.")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(chat.last_reply.locator(".markdown")).to_have_text(expected)


def test_reload_while_the_reply_goes_on(chat: Chat, stack: Stack) -> None:
    chat.open()
    fake(stack, {"tokens": words(120)})
    chat.send("keep going")
    expect(chat.last_reply.locator(".markdown")).to_contain_text("w3", timeout=REPLY_TIMEOUT_MS)
    chat.page.reload()
    full = " ".join(f"w{i}" for i in range(120))
    expect(chat.last_reply.locator(".markdown")).to_have_text(full, timeout=REPLY_TIMEOUT_MS)
    chat.wait_reply_done()
    expect(chat.replies).to_have_count(1)


XSS = (
    '<script>window.__pwned = 1; alert("script")</script> '
    '<img src="/pwned-img" onerror="alert(\'img\')"> '
    "[click me](javascript:alert('link')) "
    '<a href="javascript:alert(1)">raw link</a> '
    "<svg onload=\"alert('svg')\"></svg> "
    "![pic](/pwned-md-img)"
)


def test_xss_payloads_are_inert(chat: Chat) -> None:
    chat.open()
    chat.send(XSS)
    reply = chat.last_reply.locator(".markdown")
    expect(reply).to_contain_text('alert("script")', timeout=REPLY_TIMEOUT_MS)
    chat.wait_reply_done()
    expect(chat.user_messages.first).to_have_text(XSS)
    assert reply.locator("script, img, svg, iframe, [onerror], [onload]").count() == 0
    # A script link keeps its text and loses its target: an inert element.
    hrefs = reply.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not [h for h in hrefs if h and h.strip().lower().startswith("javascript")], hrefs
    reply.get_by_text("click me").click()
    assert chat.page.evaluate("window.__pwned") is None
    assert chat.watch.dialogs == []
    assert [u for u in chat.watch.requests if "pwned" in u] == []
    screenshot(chat.page, "09-xss-inert")


def test_expired_session_says_what_to_do(chat: Chat) -> None:
    chat.open()
    chat.ask("remember me")
    # The cookie is the browser's hold on its chats; without it the chat is not ours anymore.
    chat.page.context.clear_cookies()
    chat.send("are you still there")
    alert = chat.page.locator(".error-notice")
    expect(alert).to_contain_text("This chat has expired")
    expect(alert).to_contain_text("Start a new chat")
    screenshot(chat.page, "10-expired")
    alert.get_by_role("button", name="Start a new chat").click()
    expect(chat.page.get_by_role("heading", name="How can I help?")).to_be_visible()
    chat.ask("a fresh start")


def test_too_long_message_is_kept_for_editing(chat: Chat) -> None:
    chat.open()
    chat.ask("hello")
    long = "x" * 8001
    chat.send(long)
    expect(chat.page.locator(".error-notice")).to_contain_text("limit")
    expect(chat.composer).to_have_value(long)
    expect(chat.user_messages).to_have_count(1)


def test_assistant_failure_shows_in_the_reply_with_retry(chat: Chat, stack: Stack) -> None:
    chat.open()
    chat.ask("warm up")
    fake(stack, {"tokens": words(10), "error_after": 3, "message": "the model crashed"})
    chat.send("this one fails")
    expect(chat.last_reply.locator(".msg-note.note-error")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    # Said once, in the reply, with what to do.
    expect(chat.page.locator(".error-notice")).to_have_count(0)
    retry = chat.last_reply.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    screenshot(chat.page, "11-assistant-error")
    retry.click()
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        "Echo: this one fails", timeout=REPLY_TIMEOUT_MS
    )
    chat.wait_reply_done()
    expect(chat.page.locator(".error-notice")).to_have_count(0)


def test_slow_first_token_shows_progress(chat: Chat, stack: Stack) -> None:
    chat.open()
    fake(stack, {"first_token_delay_ms": 8000})
    chat.send("are you awake")
    expect(chat.last_reply.get_by_text("Waking up the model")).to_be_visible(
        timeout=REPLY_TIMEOUT_MS
    )
    screenshot(chat.page, "12-model-loading")
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        "Echo: are you awake", timeout=REPLY_TIMEOUT_MS
    )


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, color_scheme="dark"
    )
    yield ctx
    ctx.close()


def test_phone_width_dark_theme(phone: BrowserContext, stack: Stack) -> None:
    chat = Chat(phone.new_page(), stack.url)
    chat.open()
    chat.ask("hello from a phone")
    background = chat.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(31, 32, 35)", background
    sidebar = chat.page.get_by_role("complementary", name="Chats")
    expect(sidebar).to_be_hidden()
    no_scroll = chat.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert no_scroll, "the page must fit a phone's width"
    screenshot(chat.page, "13-phone-dark")
    chat.page.get_by_role("button", name="Open the chat list").click()
    expect(sidebar).to_be_visible()
    expect(chat.sidebar_link("hello from a phone")).to_be_visible()
    # the drawer slides in: take the picture once it is in place
    expect(sidebar).to_be_in_viewport(ratio=1)
    screenshot(chat.page, "14-phone-drawer")
    chat.sidebar_link("hello from a phone").click()
    expect(sidebar).to_be_hidden()
    chat.assert_clean()


def test_keyboard_only(chat: Chat) -> None:
    chat.open()
    expect(chat.composer).to_be_focused()
    chat.page.keyboard.type("line one")
    chat.page.keyboard.press("Shift+Enter")
    chat.page.keyboard.type("line two")
    expect(chat.composer).to_have_value("line one\nline two")
    chat.page.keyboard.press("Enter")
    expect(chat.last_reply.locator(".markdown")).to_contain_text(
        "line two", timeout=REPLY_TIMEOUT_MS
    )
    expect(chat.page.get_by_role("log", name="Conversation")).to_have_attribute(
        "aria-live", "polite"
    )


def test_lost_connection_resumes_without_duplicates(chat: Chat) -> None:
    """The reply's connection ends after a few words (as a dropped network would); the page
    resumes from the characters it has and ends with the whole reply, once."""
    cut_at: list[str] = []

    def cut(route: Route) -> None:
        response = route.fetch()  # the whole real stream, as conversation sent it
        kept, deltas = [], 0
        for event in response.text().split("\n\n"):
            kept.append(event)
            if "event: delta" in event:
                deltas += 1
                cut_at.append(re.findall(r"^id: (\d+)$", event, re.M)[0])
            if deltas == 3:
                break
        route.fulfill(response=response, body="\n\n".join(kept) + "\n\n")

    chat.open()
    chat.page.route(re.compile(r"/api/sessions/[0-9a-f]+/messages$"), cut)
    text = "one two three four five six seven"
    with chat.page.expect_request(re.compile(r"/messages/[^/]+/stream$")) as resumed:
        chat.send(text)
    assert resumed.value.headers.get("last-event-id") == cut_at[-1]
    reply = chat.last_reply.locator(".markdown")
    expect(reply).to_have_text(f"Echo: {text}", timeout=REPLY_TIMEOUT_MS)
    chat.wait_reply_done()


AT_BOTTOM = "el => el.scrollHeight - el.scrollTop - el.clientHeight <= 48"


def test_scroll_follows_the_reply_unless_scrolled_up(chat: Chat, stack: Stack) -> None:
    chat.open()
    fake(stack, {"tokens": [f"line {i}\n\n" for i in range(150)]})
    chat.send("a very long reply")
    thread = chat.page.locator(".thread")
    expect(chat.last_reply.get_by_text("line 40", exact=True)).to_be_visible(
        timeout=REPLY_TIMEOUT_MS
    )
    assert thread.evaluate(AT_BOTTOM), "the page follows the reply as it grows"
    thread.hover()
    chat.page.mouse.wheel(0, -100_000)  # the person scrolls up to read from the start
    chat.wait_reply_done()
    expect(chat.last_reply.get_by_text("line 149", exact=True)).to_be_attached()
    assert thread.evaluate("el => el.scrollTop") < 48, "scrolled up to read: the page stays"
    chat.page.get_by_role("button", name="Scroll to the latest message").click()
    assert thread.evaluate(AT_BOTTOM)


def test_rate_limited_send_keeps_the_text_and_says_when(chat: Chat) -> None:
    chat.open()
    chat.ask("first")

    def limited(route: Route) -> None:
        # The answer nginx gives when the address sends too fast.
        body = {"detail": "Too many requests from this address; retry in a moment."}
        route.fulfill(
            status=429, json={**body, "code": "rate_limited"}, headers={"Retry-After": "2"}
        )

    messages = re.compile(r"/api/sessions/[0-9a-f]+/messages$")
    chat.page.route(messages, limited)
    chat.send("second")
    notice = chat.page.locator(".error-notice")
    expect(notice).to_contain_text("Too many requests from this address")
    expect(notice).to_contain_text(re.compile(r"You can try again in [12] s\."))
    # Nothing is lost: the text is back in the composer, ready to send again.
    expect(chat.composer).to_have_value("second")
    expect(chat.user_messages).to_have_text(["first"])
    expect(notice.get_by_role("button", name="Send again")).to_have_count(0)
    screenshot(chat.page, "16-rate-limited")
    expect(notice).to_contain_text("You can try again now.", timeout=REPLY_TIMEOUT_MS)
    chat.page.unroute(messages)
    chat.composer.press("Enter")
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        "Echo: second", timeout=REPLY_TIMEOUT_MS
    )
    expect(notice).to_have_count(0)
    expect(chat.user_messages).to_have_text(["first", "second"])


def test_an_unreachable_model_says_so_and_retry_answers(chat: Chat, stack: Stack) -> None:
    chat.open()
    chat.ask("hello")
    # The model server behind assistant answers 503 to every attempt: assistant says, in its
    # own words (never the upstream's), that the provider cannot be reached.
    fake(stack, {"status": 503, "message": "upstream at 10.0.0.7 down", "times": 5})
    chat.send("are you ready")
    note = chat.last_reply.locator(".msg-note")
    expect(note).to_contain_text("cannot be reached", timeout=REPLY_TIMEOUT_MS)
    expect(note).not_to_contain_text("10.0.0.7")
    fake_recovers(stack)
    chat.last_reply.get_by_role("button", name="Retry").click()
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        "Echo: are you ready", timeout=REPLY_TIMEOUT_MS
    )


def test_a_reply_cut_at_the_length_limit_can_be_continued(chat: Chat, stack: Stack) -> None:
    chat.open()
    fake(
        stack,
        {"tokens": ["The first ", "half"], "finish_reason": "length"},
        {"tokens": [" and the ", "rest."]},
    )
    chat.send("write at length")
    note = chat.last_reply.locator(".msg-note")
    expect(note).to_contain_text("Cut at the length limit.", timeout=REPLY_TIMEOUT_MS)
    expect(chat.last_reply.locator(".markdown")).to_have_text("The first half")
    screenshot(chat.page, "reply-cut-at-length")
    chat.last_reply.get_by_role("button", name="Continue").click()
    expect(chat.last_reply.locator(".markdown")).to_have_text(
        "The first half and the rest.", timeout=REPLY_TIMEOUT_MS
    )
    chat.wait_reply_done()
    expect(chat.last_reply.locator(".msg-note")).to_have_count(0)
    # What the server stored: one reply, the whole text.
    chat.page.reload()
    expect(chat.replies).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
    expect(chat.last_reply.locator(".markdown")).to_have_text("The first half and the rest.")
    chat.assert_clean()
