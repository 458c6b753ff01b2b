"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser).

`chat` is the chat page (`Chat`) on the test's `page`, at `chat_url` (the whole stack's nginx;
a module with a stack of its own overrides `chat_url`). After the test it checks that the
page showed no dialog and threw no script error, unless the module overrides
`chat_checked_clean` to False.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Request,
    expect,
    sync_playwright,
)

from tests.conftest import Stack
from tests.support.servers import ROOT

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
REPLY_TIMEOUT_MS = 20_000


@dataclass
class Watch:
    """What the page did that it must not: dialogs, script errors, CSP violations, requests."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error" and "Content Security Policy" in msg.text:
                self.errors.append(msg.text)

        def on_request(request: Request) -> None:
            self.requests.append(request.url)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", on_request)


class Chat:
    """The chat page, in the words a person would use."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.watch = Watch()
        self.watch.attach(page)

    def open(self, path: str = "/") -> Chat:
        self.page.goto(self.base_url + path)
        expect(self.composer).to_be_visible()
        return self

    @property
    def composer(self) -> Locator:
        return self.page.get_by_label("Message", exact=True)

    @property
    def replies(self) -> Locator:
        return self.page.locator("article.msg-assistant")

    @property
    def user_messages(self) -> Locator:
        return self.page.locator("article.msg-user .bubble")

    @property
    def last_reply(self) -> Locator:
        return self.replies.last

    @property
    def stop_button(self) -> Locator:
        return self.page.get_by_role("button", name="Stop generating")

    def send(self, text: str) -> None:
        self.composer.fill(text)
        self.composer.press("Enter")

    def wait_reply_done(self) -> None:
        expect(self.page.locator("article.msg-assistant.is-streaming")).to_have_count(
            0, timeout=REPLY_TIMEOUT_MS
        )
        expect(self.page.get_by_role("button", name="Send message")).to_be_visible(
            timeout=REPLY_TIMEOUT_MS
        )

    def ask(self, text: str) -> None:
        """Send and wait for the whole echo."""
        self.send(text)
        expect(self.last_reply.locator(".markdown")).to_have_text(
            f"Echo: {text}", timeout=REPLY_TIMEOUT_MS
        )
        self.wait_reply_done()

    def sidebar_link(self, name: str) -> Locator:
        return self.page.get_by_role("navigation", name="Your chats").get_by_role(
            "link", name=name, exact=True
        )

    def assert_clean(self) -> None:
        assert self.watch.dialogs == []
        assert self.watch.errors == []


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("Debian's chromium is not installed (./stack test installs it)")
    return found


# Module scope, not session: sync Playwright keeps an event loop running in this thread while
# it is open, which would break the async tests of later modules.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def chat_url(stack: Stack) -> str:
    """Where `chat` opens the page."""
    return stack.url


@pytest.fixture
def chat_checked_clean() -> bool:
    """Whether `chat` checks, after the test, that the page showed no dialog and threw no
    script error."""
    return True


@pytest.fixture
def chat(page: Page, chat_url: str, chat_checked_clean: bool) -> Iterator[Chat]:
    c = Chat(page, chat_url)
    yield c
    if chat_checked_clean:
        c.assert_clean()
