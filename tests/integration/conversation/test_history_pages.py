"""History pages anywhere on the active path: around a message (a search result opens its
chat there) and after one (reading on towards the newest), against real redis-server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conversation.conftest import Fast

LENGTH = 45
PAGE = 10


def long_chat() -> dict[str, Any]:
    """LENGTH messages in a line, and a second version of message 20 (not shown)."""
    messages = [
        {
            "id": f"p{i}",
            "parent_id": f"p{i - 1}" if i else None,
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"message {i}",
            "status": "complete",
            "created_at": "2026-01-01T00:00:00Z",
        }
        for i in range(LENGTH)
    ]
    messages.append({**messages[20], "id": "p20b", "content": "another version"})
    return {
        "schema": "chatstack.chat/v1",
        "session_id": "long",
        "name": "long chat",
        "created_at": "2026-01-01T00:00:00Z",
        "current_id": f"p{LENGTH - 1}",
        "messages": messages,
    }


@pytest.fixture
def chat(fast: Fast) -> tuple[str, dict[str, str]]:
    """A long chat imported by a browser, read with its token."""
    with httpx.Client(base_url=fast.conversation.url) as browser:
        response = browser.post("/api/import", json=long_chat())
        assert response.status_code == 200, response.text
        [made] = response.json()["imported"]
    return made["session_id"], {"Authorization": f"Bearer {made['token']}"}


def page(fast: Fast, chat: tuple[str, dict[str, str]], **params: Any) -> httpx.Response:
    sid, auth = chat
    url = f"{fast.conversation.url}/api/sessions/{sid}"
    return httpx.get(url, params={"limit": PAGE, **params}, headers=auth)


def contents(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"]]


def ids(body: dict[str, Any]) -> list[str]:
    return [m["id"] for m in body["messages"]]


def test_the_page_around_a_message_holds_it_in_the_middle(
    fast: Fast, chat: tuple[str, dict[str, str]]
) -> None:
    body = page(fast, chat, around="p20").json()
    assert ids(body) == [f"p{i}" for i in range(15, 25)]
    assert body["has_more"] and body["has_newer"]
    # Its siblings are counted as on any page.
    assert body["messages"][5]["sibling_count"] == 2
    # Near either end the page is still full, and says there is nothing beyond.
    first = page(fast, chat, around="p1").json()
    assert ids(first) == [f"p{i}" for i in range(PAGE)]
    assert not first["has_more"] and first["has_newer"]
    last = page(fast, chat, around=f"p{LENGTH - 2}").json()
    assert ids(last) == [f"p{i}" for i in range(LENGTH - PAGE, LENGTH)]
    assert last["has_more"] and not last["has_newer"]
    # The newest page, as before, has nothing newer.
    assert not page(fast, chat).json()["has_newer"]


def test_reading_on_with_after_reaches_the_newest_and_older_with_before(
    fast: Fast, chat: tuple[str, dict[str, str]]
) -> None:
    start = page(fast, chat, around="p20").json()
    seen = ids(start)
    body = start
    while body["has_newer"]:
        body = page(fast, chat, after=seen[-1]).json()
        assert body["messages"], body
        seen += ids(body)
    body = start
    while body["has_more"]:
        body = page(fast, chat, before=seen[0]).json()
        seen = ids(body) + seen
    assert seen == [f"p{i}" for i in range(LENGTH)]
    newest = page(fast, chat, after=f"p{LENGTH - 1}").json()
    assert newest["messages"] == [] and not newest["has_newer"]


def test_a_cursor_that_cannot_be_read_gets_a_4xx_naming_it(
    fast: Fast, chat: tuple[str, dict[str, str]]
) -> None:
    unknown = page(fast, chat, around="nope")
    assert unknown.status_code == 404 and "`around`" in unknown.json()["detail"]
    assert page(fast, chat, after="nope").status_code == 404
    hidden = page(fast, chat, around="p20b")
    assert hidden.status_code == 409 and hidden.json()["code"] == "conflict"
    assert "branch" in hidden.json()["detail"]
    both = page(fast, chat, before="p3", around="p20")
    assert both.status_code == 422
    assert both.json()["detail"][0]["loc"] == ["query", "around"]
    # Shown once its branch is: then it is on the path.
    sid, auth = chat
    url = f"{fast.conversation.url}/api/sessions/{sid}/messages/p20b/active"
    assert httpx.patch(url, json={}, headers=auth).status_code == 200
    shown = page(fast, chat, around="p20b").json()
    assert "another version" in contents(shown) and not shown["has_newer"]


def test_only_the_owner_reads_pages_around_its_messages(
    fast: Fast, chat: tuple[str, dict[str, str]]
) -> None:
    sid, _ = chat
    with httpx.Client(base_url=fast.conversation.url) as stranger:
        other = stranger.post("/api/sessions", json={}).json()
        for cursor in ("around", "after"):
            url = f"/api/sessions/{sid}"
            assert stranger.get(url, params={cursor: "p20"}).status_code == 404
            token = {"Authorization": f"Bearer {other['token']}"}
            assert stranger.get(url, params={cursor: "p20"}, headers=token).status_code == 404
