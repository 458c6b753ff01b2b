"""Hostile model output in Debian's Chromium, through the real stack.

The fake model answers with the vectors of chatui/src/xss-corpus.json (the corpus the vitest
suite renders one by one), each streamed in a few chunks as a reply. Every vector would set
`window.__xss` if any of it ran. The page runs with its Content-Security-Policy bypassed, so
what is checked is the renderer alone: nginx's CSP is a second wall, not the one relied on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Request, expect

from tests.conftest import Stack
from tests.e2e.conftest import REPLY_TIMEOUT_MS, Chat, screenshot
from tests.e2e.test_ui_chat import fake
from tests.support.servers import ROOT

pytestmark = pytest.mark.browser

CORPUS: dict[str, Any] = json.loads((ROOT / "chatui/src/xss-corpus.json").read_text())
CANARY: str = CORPUS["canary"]
VECTORS: list[dict[str, str]] = CORPUS["vectors"]
# Every other vector, so that each family is in the sample: enough to show the real page
# matches jsdom, at half the time of all of them.
SAMPLE = VECTORS[::2]

FORBIDDEN_TAGS = (
    *("script", "iframe", "frame", "object", "embed", "applet", "style", "link", "base", "meta"),
    *("form", "img", "svg", "math", "template", "noscript", "textarea", "select", "video"),
    *("audio", "source", "details", "xmp", "noembed"),
)
# Attributes that load or run a URL (all but href, which is checked for its scheme).
URL_ATTRIBUTES = ("src", "srcdoc", "action", "formaction", "data", "poster", "background", "style")
SAFE_PROTOCOLS = ("http:", "https:", "mailto:")
RULES = {"forbidden": FORBIDDEN_TAGS, "urlAttributes": URL_ATTRIBUTES, "safe": SAFE_PROTOCOLS}

# What a rendered reply must not hold, judged in the page (the unit suite's rules); links
# must also open in a new tab without opener, referrer or endorsement.
INSPECT = """(root, rules) => {
  const found = [];
  for (const el of root.querySelectorAll("*")) {
    const tag = el.localName;
    if (rules.forbidden.includes(tag)) found.push(`<${tag}>`);
    if (tag === "a" && (el.rel !== "noopener noreferrer nofollow" || el.target !== "_blank"))
      found.push(`<a rel="${el.rel}" target="${el.target}">`);
    for (const { name, value } of el.attributes) {
      if (name.startsWith("on")) found.push(`<${tag} ${name}>`);
      if (rules.urlAttributes.includes(name) || name === "xlink:href")
        found.push(`<${tag} ${name}="${value}">`);
      if (name === "href" && !rules.safe.includes(new URL(value, document.baseURI).protocol))
        found.push(`<${tag} href="${value}">`);
    }
  }
  return found;
}"""


def inspect(target: Locator) -> list[str]:
    found: list[str] = target.evaluate(INSPECT, RULES)
    return found


# Fire every event a smuggled handler could wait for and follow every link. A click on an
# http(s) or mailto link is cancelled only once its target is known to be one of those, so
# a script URL that got through would still run.
PROVOKE = """(root) => {
  const events = ["load", "error", "click", "mouseover", "focus", "toggle", "animationstart",
    "pointerenter"];
  const block = (e) => {
    const a = e.target.closest && e.target.closest("a[href]");
    if (a && ["http:", "https:", "mailto:"].includes(a.protocol)) e.preventDefault();
  };
  document.addEventListener("click", block, true);
  try {
    for (const el of root.querySelectorAll("*")) {
      for (const type of events) el.dispatchEvent(new Event(type));
      el.dispatchEvent(new MouseEvent("click", { bubbles: true, cancelable: true }));
    }
  } finally {
    document.removeEventListener("click", block, true);
  }
  return root.querySelectorAll("a").length;
}"""


def chunks(text: str, n: int = 3) -> list[str]:
    """The reply in n pieces, so half-written markup is rendered on the way too."""
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.fixture
def no_csp(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(no_csp: BrowserContext) -> Page:
    return no_csp.new_page()


@pytest.fixture
def chat_checked_clean() -> bool:
    """These tests judge the page by its canary (and what it renders), not by its dialogs
    and script errors."""
    return False


def take_canary(page: Page) -> object:
    """The canary's value, cleared so that each vector is judged on its own."""
    return page.evaluate(
        f"() => {{ const v = window.{CANARY}; delete window.{CANARY}; return v; }}"
    )


def test_the_canary_would_show_a_payload_that_ran(chat: Chat) -> None:
    """The checks can fail: in this page, with the CSP bypassed, an unsanitized vector runs."""
    chat.open()
    chat.page.evaluate(
        """() => {
          const div = document.createElement("div");
          div.id = "unsanitized";
          div.innerHTML = '<img src="/none.png" onerror="window.__xss = 1">';
          document.body.append(div);
        }"""
    )
    expect(chat.page.locator("#unsanitized img")).to_have_count(1)
    chat.page.wait_for_function(f"window.{CANARY} === 1")
    assert inspect(chat.page.locator("#unsanitized")) == [
        "<img>",
        '<img src="/none.png">',
        "<img onerror>",
    ]


def test_model_output_with_xss_vectors_runs_nothing(chat: Chat, stack: Stack) -> None:
    assert len(SAMPLE) >= 20
    requests: list[Request] = []
    chat.page.on("request", lambda r: requests.append(r))
    chat.open()
    report: dict[str, list[str]] = {}
    for n, vector in enumerate(SAMPLE, start=1):
        fake(stack, {"tokens": chunks(vector["markdown"])})
        chat.send(f"vector {vector['id']}")
        expect(chat.replies).to_have_count(n, timeout=REPLY_TIMEOUT_MS)
        expect(chat.last_reply).to_have_attribute(
            "data-status", "complete", timeout=REPLY_TIMEOUT_MS
        )
        reply = chat.last_reply.locator(".markdown")
        bad = inspect(reply)
        reply.evaluate(PROVOKE)
        if take_canary(chat.page) is not None:
            bad.append("the canary was set")
        if bad:
            report[vector["id"]] = bad
    chat.wait_reply_done()
    screenshot(chat.page, "17-xss-corpus")
    assert report == {}, f"{len(report)} of {len(SAMPLE)} vectors got through: {report}"
    assert take_canary(chat.page) is None
    assert chat.watch.dialogs == []
    assert chat.watch.errors == []
    # Nothing in a reply made the page fetch anything: no image, frame, style or object.
    own = [r.url for r in requests if not r.url.startswith(chat.base_url)]
    page_own = ("document", "script", "stylesheet", "fetch", "xhr")
    fetched = [
        r.url
        for r in requests
        if r.resource_type not in page_own and r.url != f"{chat.base_url}/favicon.svg"
    ]
    assert own == [] and fetched == [], (own, fetched)
