"""Export (Markdown, JSON, everything at once) and import (our JSON, ChatGPT's export)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conversation.conftest import Fast, echo_stack
from tests.support.conversation import Session, create_session, get_session, send
from tests.support.servers import Server

SAMPLE = Path(__file__).parents[2] / "samples" / "chatgpt_conversations.json"
JSON = {"Content-Type": "application/json"}


def export_json(session: Session) -> dict[str, Any]:
    response = httpx.get(session.url("/export?format=json"), headers=session.auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment;")
    data: dict[str, Any] = response.json()
    return data


def import_file(client: httpx.Client, body: bytes | str | Any) -> httpx.Response:
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post("/api/import", content=content, headers=JSON)


def chat_with_history(server: Server) -> Session:
    session = create_session(server, name="Export me", system_prompt="Be brief.")
    send(session, "first question")
    send(session, "second *question*")
    return session


def test_json_export_is_a_tree_with_every_message(fast: Fast) -> None:
    session = chat_with_history(fast.conversation)
    doc = export_json(session)
    assert doc["schema"] == "chatstack.chat/v1"
    assert doc["name"] == "Export me" and doc["system_prompt"] == "Be brief."
    messages = doc["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert messages[0]["parent_id"] is None
    for parent, child in itertools.pairwise(messages):
        assert child["parent_id"] == parent["id"]
    assert doc["current_id"] == messages[-1]["id"]
    assert set(messages[1]) == {
        *("id", "parent_id", "role", "content", "status", "created_at", "model", "usage"),
        "error",
    }
    stored = get_session(session)["messages"]
    assert [m["content"] for m in messages] == [m["content"] for m in stored]


def test_markdown_export_reads_as_the_chat(fast: Fast) -> None:
    session = chat_with_history(fast.conversation)
    response = httpx.get(session.url("/export?format=md"), headers=session.auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert 'filename="export-me.md"' in response.headers["content-disposition"]
    text = response.text
    assert text.startswith("# Export me\n")
    assert text.index("first question") < text.index("second *question*")
    assert text.count("## You") == 2 and text.count("## Assistant") == 2


def test_export_format_is_checked(fast: Fast) -> None:
    session = create_session(fast.conversation)
    response = httpx.get(session.url("/export?format=pdf"), headers=session.auth)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "format"]


def test_round_trip_keeps_every_message(fast: Fast) -> None:
    original = export_json(chat_with_history(fast.conversation))
    with httpx.Client(base_url=fast.conversation.url) as browser:
        response = import_file(browser, original)
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["skipped"] == []
        [imported] = report["imported"]
        assert imported["messages"] == 4
        copy = Session(fast.conversation.url, imported["session_id"], imported["token"], {})
        again = export_json(copy)
        # The same chat under a new session id: everything else survives unchanged.
        assert again.pop("session_id") != original.pop("session_id")
        assert again == original
        # The browser's own list shows it, and it takes new messages.
        listed = browser.get("/api/sessions").json()["sessions"]
        assert [s["session_id"] for s in listed] == [copy.session_id]
        send(copy, "and a third")
        assert len(get_session(copy)["messages"]) == 6


def edit(session: Session, message_id: str, content: str) -> None:
    with httpx.stream(
        "PATCH",
        session.url(f"/messages/{message_id}"),
        json={"content": content},
        headers=session.auth,
        timeout=60,
    ) as response:
        assert response.status_code == 200, response.read()
        response.read()


def test_a_chat_with_branches_survives_export_and_import_unchanged(fast: Fast) -> None:
    session = chat_with_history(fast.conversation)
    first = get_session(session)["messages"][0]
    edit(session, first["id"], "first question, asked again")
    original = export_json(session)
    assert len(original["messages"]) == 6  # the first question's two versions, each answered
    roots = [m for m in original["messages"] if m["parent_id"] is None]
    assert [m["content"] for m in roots] == ["first question", "first question, asked again"]
    with httpx.Client(base_url=fast.conversation.url) as browser:
        [imported] = import_file(browser, original).json()["imported"]
        copy = Session(fast.conversation.url, imported["session_id"], imported["token"], {})
        again = export_json(copy)
        assert again.pop("session_id") != original.pop("session_id")
        assert again == original
        shown = get_session(copy)["messages"]
        assert shown[0]["content"] == "first question, asked again"
        assert (shown[0]["sibling_index"], shown[0]["sibling_count"]) == (2, 2)
        # The other version is there to switch to, with its answer.
        switched = httpx.patch(
            copy.url(f"/messages/{roots[0]['id']}/active"), json={}, headers=copy.auth
        )
        assert switched.status_code == 200, switched.text
        assert get_session(copy)["messages"][0]["content"] == "first question"


def test_importing_the_same_file_twice_adds_nothing(fast: Fast) -> None:
    original = export_json(chat_with_history(fast.conversation))
    with httpx.Client(base_url=fast.conversation.url) as browser:
        first = import_file(browser, original).json()
        second = import_file(browser, original).json()
        assert second["imported"] == []
        [skipped] = second["skipped"]
        assert skipped["reason"] == "already imported"
        assert skipped["session_id"] == first["imported"][0]["session_id"]
        assert len(browser.get("/api/sessions").json()["sessions"]) == 1
        # Another browser importing it gets its own copy.
    with httpx.Client(base_url=fast.conversation.url) as other:
        assert len(import_file(other, original).json()["imported"]) == 1


async def import_twice_at_once(base: str, body: str) -> tuple[list[dict[str, Any]], int]:
    """Two imports of one file by one browser, sent together; their reports and how many
    chats the browser has then."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as browser:
        assert (await browser.post("/api/sessions", json={})).status_code == 201
        replies = await asyncio.gather(
            *(browser.post("/api/import", content=body, headers=JSON) for _ in range(2))
        )
        assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
        listed = (await browser.get("/api/sessions")).json()["sessions"]
        return [r.json() for r in replies], len(listed)


def test_two_imports_of_one_file_at_once_store_each_chat_once(fast: Fast) -> None:
    """Many chats, so the two requests' work interleaves; tried again with a new browser
    until both stored some (they overlapped), every time checking nothing is stored twice."""
    chats = 120
    body = json.dumps(bundle_of([small_chat(i, messages=4) for i in range(chats)]))
    overlapped = False
    for _ in range(8):
        reports, listed = asyncio.run(import_twice_at_once(fast.conversation.url, body))
        imported = [chat for report in reports for chat in report["imported"]]
        sources = [chat["source"] for chat in imported]
        assert len(sources) == len(set(sources)) == chats
        assert listed == chats + 1
        made = {chat["source"]: chat["session_id"] for chat in imported}
        for report in reports:
            for skipped in report["skipped"]:
                if skipped["reason"] == "already imported":
                    assert skipped["session_id"] == made[skipped["source"]]
                else:
                    assert skipped["reason"] == "being imported by another request at this moment"
        if all(report["imported"] for report in reports):
            overlapped = True
            break
    assert overlapped, "the two imports never ran at the same time"


def test_chatgpt_export_sample(fast: Fast) -> None:
    with httpx.Client(base_url=fast.conversation.url) as browser:
        response = import_file(browser, SAMPLE.read_bytes())
        assert response.status_code == 200, response.text
        report = response.json()
        [imported] = report["imported"]
        assert imported["name"] == "Sourdough starter help"
        assert imported["source"] == "chatgpt:c0ffee00-1111-4222-8333-444455556666"
        # The regenerated answer comes along, on its own branch; the hidden system message,
        # the browsing call and its result are not shown by ChatGPT, nor here.
        assert imported["messages"] == 5
        reasons = {s["name"]: s["reason"] for s in report["skipped"]}
        assert reasons["Empty chat"] == "no messages to import"
        assert reasons["Broken conversation"].startswith("body.2.mapping")
        detail = browser.get(f"/api/sessions/{imported['session_id']}").json()
        answer = detail["messages"][1]
        assert (answer["sibling_index"], answer["sibling_count"]) == (2, 2)
        assert [(m["role"], m["content"][:12]) for m in detail["messages"]] == [
            ("user", "My sourdough"),
            ("assistant", "No, it is **"),
            ("user", "How warm?"),
            ("assistant", "Around 24-27"),
        ]
        assert detail["messages"][0]["created_at"].startswith("2024-04-24T23:06:50")
        assert detail["created_at"].startswith("2024-04-24T23:06:40")
        again = import_file(browser, SAMPLE.read_bytes()).json()
        assert again["imported"] == []


@pytest.mark.parametrize(
    ("body", "loc", "status"),
    [
        ("{not json", ["body"], 422),
        ({"schema": "other/v9"}, ["body", "schema"], 422),
        ({"schema": "chatstack.export/v1", "chats": "x"}, ["body", "chats"], 422),
        ({"schema": "chatstack.chat/v1", "name": "x"}, ["body", "session_id"], 422),
        ("\xff", ["body"], 422),
    ],
)
def test_bad_files_get_a_4xx_naming_the_field(
    fast: Fast, body: Any, loc: list[str], status: int
) -> None:
    with httpx.Client(base_url=fast.conversation.url) as browser:
        response = import_file(browser, body.encode("latin-1") if body == "\xff" else body)
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        assert detail[0]["loc"][: len(loc)] == loc
        assert "set-cookie" not in response.headers
        assert browser.get("/api/sessions").json()["sessions"] == []


def test_import_needs_json(fast: Fast) -> None:
    response = httpx.post(f"{fast.conversation.url}/api/import", content=b"[]")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_a_bad_chat_in_a_bundle_is_skipped_naming_the_field(fast: Fast) -> None:
    good = export_json(chat_with_history(fast.conversation))
    bad = json.loads(json.dumps(good))
    bad["session_id"] = "f" * 32
    bad["messages"][1]["role"] = "system"
    looped = json.loads(json.dumps(good))
    looped["session_id"] = "e" * 32
    looped["messages"][0]["parent_id"] = looped["messages"][3]["id"]
    bundle = {"schema": "chatstack.export/v1", "exported_at": good["created_at"]}
    with httpx.Client(base_url=fast.conversation.url) as browser:
        report = import_file(browser, {**bundle, "chats": [bad, good, looped]}).json()
        assert [i["source"] for i in report["imported"]] == [f"chatstack:{good['session_id']}"]
        reasons = [s["reason"] for s in report["skipped"]]
        assert reasons[0].startswith("body.chats.0.messages.1.role")
        assert reasons[1].startswith("messages.0.parent_id")


@pytest.fixture(scope="module")
def bounded(fast: Fast) -> Iterator[Fast]:
    env = {
        "IMPORT_MAX_CHATS": "3",
        "IMPORT_MAX_BYTES": "20000",
        "IMPORT_MAX_MESSAGE_CHARS": "50",
        "MAX_SESSIONS_PER_BROWSER": "2",
        "MAX_MESSAGES_PER_SESSION": "3",
    }
    with echo_stack(fast.redis, **env) as stack:
        yield stack


def bundle_of(chats: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": "chatstack.export/v1", "exported_at": "2026-01-01T00:00:00Z", "chats": chats}


def small_chat(n: int, messages: int = 2, length: int = 5) -> dict[str, Any]:
    items = [
        {
            "id": f"m{i}",
            "parent_id": f"m{i - 1}" if i else None,
            "role": "user" if i % 2 == 0 else "assistant",
            "content": "x" * length,
            "status": "complete",
            "created_at": "2026-01-01T00:00:00Z",
        }
        for i in range(messages)
    ]
    return {
        "schema": "chatstack.chat/v1",
        "session_id": f"source{n}",
        "name": f"chat {n}",
        "created_at": "2026-01-01T00:00:00Z",
        "current_id": items[-1]["id"],
        "messages": items,
    }


def test_import_bounds(bounded: Fast) -> None:
    with httpx.Client(base_url=bounded.conversation.url) as browser:
        many = import_file(browser, bundle_of([small_chat(i) for i in range(4)]))
        assert many.status_code == 422
        assert "at most 3" in many.json()["detail"][0]["msg"]
        big = import_file(browser, bundle_of([small_chat(0, length=30_000)]))
        assert big.status_code == 413 and big.json()["code"] == "too_large"
        chats = [small_chat(0, messages=4), small_chat(1, length=51), small_chat(2)]
        report = import_file(browser, bundle_of(chats)).json()
        reasons = [s["reason"] for s in report["skipped"]]
        assert reasons == [
            "4 messages; a chat keeps at most 3",
            "a message is 51 characters long; the limit is 50",
        ]
        assert len(report["imported"]) == 1


def test_import_respects_the_browsers_session_limit(bounded: Fast) -> None:
    with httpx.Client(base_url=bounded.conversation.url) as browser:
        assert browser.post("/api/sessions", json={}).status_code == 201
        report = import_file(browser, bundle_of([small_chat(5), small_chat(6)])).json()
        assert [i["name"] for i in report["imported"]] == ["chat 5"]
        [skipped] = report["skipped"]
        assert skipped["name"] == "chat 6" and "2 chats" in skipped["reason"]
        assert len(browser.get("/api/sessions").json()["sessions"]) == 2


def test_export_all_is_the_callers_chats_only(fast: Fast) -> None:
    base = fast.conversation.url
    with httpx.Client(base_url=base) as browser, httpx.Client(base_url=base) as stranger:
        mine = [browser.post("/api/sessions", json={"name": f"mine {i}"}).json() for i in range(2)]
        theirs = stranger.post("/api/sessions", json={"name": "theirs"}).json()
        everything = browser.get("/api/export")
        assert everything.status_code == 200
        doc = everything.json()
        assert doc["schema"] == "chatstack.export/v1"
        assert {c["session_id"] for c in doc["chats"]} == {m["session_id"] for m in mine}
        # A token exports its own session, with or without a cookie beside it.
        auth = {"Authorization": f"Bearer {theirs['token']}"}
        by_token = httpx.get(f"{base}/api/export", headers=auth).json()
        assert [c["name"] for c in by_token["chats"]] == ["theirs"]
        both = browser.get("/api/export", headers=auth).json()
        assert len(both["chats"]) == 3
        # Someone else's session: the same 404 as ever; no credentials: 401.
        foreign = browser.get(f"/api/sessions/{theirs['session_id']}/export")
        assert foreign.status_code == 404
        wrong = httpx.get(f"{base}/api/export", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 404
        assert httpx.get(f"{base}/api/export").status_code == 401
        # A page on another site does not get the browser's chats.
        cross = browser.get("/api/export", headers={"Origin": "https://evil.example"})
        assert cross.status_code == 401
