"""History pages anywhere on the active path: around a message (a search result opens its
chat there) and after one (reading on towards the newest), against real redis-server.

A page is read in steps (where the cursor is on the path, then the page ending there); the
tests of a path changing between the steps run a conversation whose Redis connection passes
a relay (redis_interposer) that shows the change right before the page's read.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conversation.history_pages import ATTEMPTS
from conversation.redis_scripts import READ_HISTORY
from tests.integration.conversation.conftest import Fast
from tests.integration.conversation.redis_interposer import Command, Interposer
from tests.support.conversation import KEYS, start_replica
from tests.support.servers import Server

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


def import_long_chat(server: Server) -> tuple[str, dict[str, str]]:
    """A long chat imported by a browser, read with its token."""
    with httpx.Client(base_url=server.url) as browser:
        response = browser.post("/api/import", json=long_chat())
        assert response.status_code == 200, response.text
        [made] = response.json()["imported"]
    return made["session_id"], {"Authorization": f"Bearer {made['token']}"}


@pytest.fixture
def chat(fast: Fast) -> tuple[str, dict[str, str]]:
    return import_long_chat(fast.conversation)


def page(fast: Fast, chat: tuple[str, dict[str, str]], **params: Any) -> httpx.Response:
    return read_page(fast.conversation, chat, **params)


def read_page(server: Server, chat: tuple[str, dict[str, str]], **params: Any) -> httpx.Response:
    sid, auth = chat
    url = f"{server.url}/api/sessions/{sid}"
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


@pytest.mark.parametrize("cursor", ["after", "before"])
def test_a_cursor_on_a_branch_not_shown_is_a_409_naming_it(
    fast: Fast, chat: tuple[str, dict[str, str]], cursor: str
) -> None:
    hidden = page(fast, chat, **{cursor: "p20b"})
    assert hidden.status_code == 409, hidden.text
    assert hidden.json()["code"] == "conflict"
    assert f"`{cursor}`" in hidden.json()["detail"] and "branch" in hidden.json()["detail"]
    assert page(fast, chat, **{cursor: "nope"}).status_code == 404


@dataclass
class Relayed:
    conversation: Server  # its Redis connection passes `relay`
    relay: Interposer


@pytest.fixture(scope="module")
def relayed(fast: Fast) -> Iterator[Relayed]:
    relay = Interposer(fast.redis.port)
    try:
        conversation = start_replica(
            fast.redis, fast.assistant.url, REDIS_URL=f"redis://127.0.0.1:{relay.port}/0"
        )
        try:
            yield Relayed(conversation, relay)
        finally:
            conversation.stop()
    finally:
        relay.close()


# How conversation's commands look on the wire: the script reading a page, by its digest.
EVALSHA = b"EVALSHA"
READ_HISTORY_SHA = hashlib.sha1(READ_HISTORY.encode()).hexdigest().encode()


@dataclass(frozen=True)
class Read:
    """A page read with `cursor`=`mid`: the messages it holds, and the message its page read
    ends before (Store.history's `before`)."""

    cursor: str
    mid: str
    expected: list[str]
    ends_before: str


READS = [
    Read("around", "p30", [f"p{i}" for i in range(25, 35)], "p35"),
    # The page of `after` is read from `mid` itself, PAGE + 1 messages.
    Read("after", "p30", [f"p{i}" for i in range(31, 41)], "p41"),
]


class PathFlipper:
    """Makes a read of a page (both past the branch at p20) find the path changed: right
    before the page itself is read, the other version of p20 is shown (the page leaves the
    path), and right before the cursor is looked up again, p20 is shown again (the path is as
    it was). `flips`: how many page reads meet a changed path."""

    def __init__(
        self, server: Server, chat: tuple[str, dict[str, str]], read: Read, flips: int
    ) -> None:
        self.server, self.chat, self.read = server, chat, read
        self.flips_left = flips
        self.lookups = 0  # of the cursor's place on the path
        self.hidden = False
        self.path = KEYS.session(chat[0]).encode() + b":o"

    def show(self, mid: str) -> None:
        sid, auth = self.chat
        url = f"{self.server.url}/api/sessions/{sid}/messages/{mid}/active"
        response = httpx.patch(url, json={}, headers=auth)
        assert response.status_code == 200, response.text

    def hook(self, command: Command) -> None:
        if command == [b"LPOS", self.path, self.read.mid.encode()]:
            self.lookups += 1
            if self.hidden:
                self.show("p20")
                self.hidden = False
        elif (
            command[:2] == [EVALSHA, READ_HISTORY_SHA]
            and command[-1] == self.read.ends_before.encode()
            and self.flips_left
            and not self.hidden
        ):
            self.show("p20b")
            self.hidden = True
            self.flips_left -= 1


@contextlib.contextmanager
def flipping(relayed: Relayed, read: Read, flips: int) -> Iterator[PathFlipper]:
    """A new long chat on `relayed`'s conversation, its path flipped by a PathFlipper."""
    chat = import_long_chat(relayed.conversation)
    flipper = PathFlipper(relayed.conversation, chat, read, flips)
    relayed.relay.hook = flipper.hook
    try:
        yield flipper
    finally:
        relayed.relay.hook = no_hook


def no_hook(command: Command) -> None:
    pass


def read_flipped(relayed: Relayed, read: Read, flips: int) -> tuple[httpx.Response, PathFlipper]:
    with flipping(relayed, read, flips) as flipper:
        response = read_page(relayed.conversation, flipper.chat, **{read.cursor: read.mid})
    assert relayed.relay.errors == []
    return response, flipper


@pytest.mark.parametrize("read", READS, ids=lambda r: r.cursor)
def test_a_page_whose_path_changed_while_it_was_read_is_read_again(
    relayed: Relayed, read: Read
) -> None:
    response, flipper = read_flipped(relayed, read, flips=1)
    assert response.status_code == 200, response.text
    assert ids(response.json()) == read.expected
    # The first read met the other branch and was thrown away: the cursor was looked up again.
    assert flipper.flips_left == 0 and flipper.lookups == 2
    # Unchanged, the same read gives the same page at once.
    unchanged, flipper = read_flipped(relayed, read, flips=0)
    assert ids(unchanged.json()) == read.expected and flipper.lookups == 1


@pytest.mark.parametrize("read", READS, ids=lambda r: r.cursor)
def test_a_path_that_changes_at_every_read_is_a_409_saying_ask_again(
    relayed: Relayed, read: Read
) -> None:
    response, flipper = read_flipped(relayed, read, flips=ATTEMPTS)
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "conflict"
    assert "changed while its history was read" in body["detail"]
    assert "ask again" in body["detail"]
    assert flipper.flips_left == 0 and flipper.lookups == ATTEMPTS
