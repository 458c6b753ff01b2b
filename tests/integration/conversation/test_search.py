"""Search: the caller's chats only, by title and message text, kept up to date."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import httpx
import redis

from tests.integration.conversation.conftest import Fast
from tests.support.conversation import Session, send

COUNTER = itertools.count()


def chat(name: str, *texts: str) -> dict[str, Any]:
    n = next(COUNTER)
    messages = [
        {
            "id": f"m{n}x{i}",
            "parent_id": f"m{n}x{i - 1}" if i else None,
            "role": "user" if i % 2 == 0 else "assistant",
            "content": text,
            "status": "complete",
            "created_at": "2026-01-01T00:00:00Z",
        }
        for i, text in enumerate(texts)
    ]
    return {
        "schema": "chatstack.chat/v1",
        "session_id": f"search{n}",
        "name": name,
        "created_at": f"2026-01-01T00:00:{n % 60:02d}Z",
        "current_id": messages[-1]["id"],
        "messages": messages,
    }


def add_chats(browser: httpx.Client, *chats: dict[str, Any]) -> list[str]:
    bundle = {"schema": "chatstack.export/v1", "exported_at": "2026-01-01T00:00:00Z"}
    response = browser.post("/api/import", json={**bundle, "chats": list(chats)})
    assert response.status_code == 200, response.text
    return [i["session_id"] for i in response.json()["imported"]]


def search(client: httpx.Client, q: str, **headers: str) -> list[dict[str, Any]]:
    response = client.get("/api/search", params={"q": q}, headers=headers)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def hits(result: dict[str, Any]) -> list[str]:
    return [s["text"] for s in result["snippet"] if s["hit"]]


def test_search_finds_titles_and_messages_of_the_callers_chats_only(fast: Fast) -> None:
    base = fast.conversation.url
    with httpx.Client(base_url=base) as mine, httpx.Client(base_url=base) as theirs:
        bread, plants = add_chats(
            mine,
            chat("Sourdough notes", "My starter smells of acetone", "Feed your starter more"),
            chat("Houseplants", "The fern droops", "Water the fern less, keep it warm"),
        )
        [their_chat] = add_chats(theirs, chat("Their starter", "their starter secret"))
        results = search(mine, "STARTER")
        assert [(r["session_id"], r["message_id"]) for r in results] == [
            (bread, "m0x0"),
            (bread, "m0x1"),
        ]
        assert results[0]["title"] == "Sourdough notes" and results[0]["role"] == "user"
        assert hits(results[0]) == ["starter"]
        assert "".join(s["text"] for s in results[0]["snippet"]) == "My starter smells of acetone"
        # Every word must be in one message; each matches the words it begins.
        assert [r["message_id"] for r in search(mine, "fer wa")] == ["m1x1"]
        assert search(mine, "fern acetone") == []
        title = search(mine, "houseplant")
        assert [(r["session_id"], r["message_id"]) for r in title] == [(plants, None)]
        assert hits(title[0]) == ["Houseplants"]
        # The other browser finds its own chat only.
        found = search(theirs, "starter")
        assert [(r["session_id"], r["message_id"]) for r in found] == [
            (their_chat, None),
            (their_chat, found[1]["message_id"]),
        ]
        assert search(theirs, "acetone") == []


def test_a_token_searches_its_own_session_only(fast: Fast) -> None:
    base = fast.conversation.url
    with httpx.Client(base_url=base) as browser:
        add_chats(browser, chat("Cookie chat", "zebra crossing"))
        created = httpx.post(f"{base}/api/sessions", json={"name": "token chat"}).json()
        session = Session(base, created["session_id"], created["token"], created)
        send(session, "zebra stripes")
        by_token = search(httpx.Client(base_url=base), "zebra", **session.auth)
        assert {r["session_id"] for r in by_token} == {session.session_id}
        # Both credentials: both sets of chats.
        both = search(browser, "zebra", **session.auth)
        assert len({r["session_id"] for r in both}) == 2
        wrong = browser.get(
            "/api/search", params={"q": "zebra"}, headers={"Authorization": "Bearer x"}
        )
        assert wrong.status_code == 404


def test_results_follow_new_messages_renames_and_deletes(fast: Fast) -> None:
    base = fast.conversation.url
    with httpx.Client(base_url=base) as browser:
        [sid] = add_chats(browser, chat("Garden", "tomatoes ripen late"))
        assert len(search(browser, "tomatoes")) == 1
        r = redis.Redis(port=fast.redis.port, decode_responses=True)
        owner = hashlib.sha256(browser.cookies["chat_browser"].encode()).hexdigest()
        index = r.keys(f"chat:x:{{{owner}}}:*")
        postings = f"chat:x:{{{owner}}}:w"
        # An import indexes what it brings: no search needed first.
        [other] = add_chats(browser, chat("Orchard", "pears and plums"))
        assert r.hexists(f"chat:x:{{{owner}}}:c", other)
        assert index and all(r.ttl(key) > 0 for key in index)
        assert sorted(str(key).rsplit(":", 1)[1] for key in index) == ["c", "d", "n", "t", "w"]
        assert r.hget(postings, "tomatoes") == " 1 "
        assert search(browser, "cucumbers") == []
        sent = browser.post(f"/api/sessions/{sid}/messages", json={"content": "and cucumbers?"})
        assert sent.status_code == 200
        assert search(browser, "cucumbers")[0]["role"] == "user"
        assert browser.patch(f"/api/sessions/{sid}", json={"name": "Allotment"}).status_code == 200
        assert [r["message_id"] for r in search(browser, "allotment")] == [None]
        assert search(browser, "garden") == []
        gone = browser.delete(f"/api/sessions/{sid}", headers={"X-Requested-With": "test"})
        assert gone.status_code == 204
        assert search(browser, "tomatoes") == []
        assert not r.hexists(postings, "tomatoes")
        assert "tomatoes" not in r.zrange(f"chat:x:{{{owner}}}:d", 0, -1)


def test_the_result_count_is_bounded(fast: Fast) -> None:
    with httpx.Client(base_url=fast.conversation.url) as browser:
        add_chats(browser, chat("Many", *[f"repeat {i}" for i in range(30)]))
        assert len(search(browser, "repeat")) == 20  # SEARCH_MAX_RESULTS
        few = browser.get("/api/search", params={"q": "repeat", "limit": 3}).json()
        assert len(few["results"]) == 3


def test_bad_queries_name_the_field(fast: Fast) -> None:
    with httpx.Client(base_url=fast.conversation.url) as browser:
        add_chats(browser, chat("x", "y"))
        bad: list[dict[str, str | int]] = [
            {"q": ""},
            {"q": "!!!"},
            {"q": "x" * 201},
            {},
            {"q": "x", "limit": 0},
        ]
        for params in bad:
            response = browser.get("/api/search", params=params)
            assert response.status_code == 422, params
            assert response.json()["detail"][0]["loc"][0] == "query"
        assert httpx.get(f"{fast.conversation.url}/api/search?q=x").status_code == 401
        cross = browser.get(
            "/api/search", params={"q": "y"}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 401


def test_case_and_unicode_folding(fast: Fast) -> None:
    with httpx.Client(base_url=fast.conversation.url) as browser:
        [sid] = add_chats(browser, chat("Reise", "Die Große Straße ist ÜBERFÜLLT", "Café OK"))
        found = search(browser, "strasse über")
        assert [(r["session_id"], r["message_id"]) for r in found] == [
            (sid, found[0]["message_id"])
        ]
        assert hits(found[0]) == ["Straße", "ÜBERFÜLLT"]
        assert [hits(r) for r in search(browser, "CAFÉ")] == [["Café"]]


def test_messages_on_branches_not_shown_are_found_too(fast: Fast) -> None:
    with httpx.Client(base_url=fast.conversation.url) as browser:
        doc = chat("Versions", "first try with kiwis", "an answer")
        doc["messages"].append({**doc["messages"][0], "id": "retry", "content": "bananas instead"})
        [sid] = add_chats(browser, doc)
        shown = browser.get(f"/api/sessions/{sid}").json()["messages"]
        assert "retry" not in [m["id"] for m in shown]
        assert [(r["session_id"], r["message_id"]) for r in search(browser, "banana")] == [
            (sid, "retry")
        ]
