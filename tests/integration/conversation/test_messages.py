"""Messages against a fast fake model: events, history, idempotency, regenerate, edit,
context budget, bad input, and assistant being unreachable."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from assistant.config import Settings
from tests.integration.conversation.conftest import Fast, echo_stack
from tests.support.conversation import (
    create_session,
    get_session,
    send,
    start_assistant_for,
    start_replica,
    text_of,
)
from tests.support.servers import Server, free_port
from tests.support.sse import iter_events

# Assistant always sends its operator's system prompt first, before the session's.
OPERATOR = len(Settings().assistant_system_prompt.split())


def test_send_streams_user_start_deltas_done(fast: Fast) -> None:
    session = create_session(fast.conversation)
    events = send(session, "how are you")
    names = [e.event for e in events]
    assert names[:2] == ["user", "start"] and names[-1] == "done"
    assert set(names[2:-1]) == {"delta"}
    user, start, done = events[0].json(), events[1].json(), events[-1].json()
    assert set(user) == {"id", "role", "content", "status", "created_at"}
    assert (user["role"], user["content"], user["status"]) == ("user", "how are you", "complete")
    assert set(start) == {"message_id"}
    assert text_of(events) == "Echo: how are you" == done["content"]
    assert done["id"] == start["message_id"]
    assert (done["role"], done["status"]) == ("assistant", "complete")
    assert done["usage"]["completion_tokens"] == 4
    # Every event has an id: the reply characters delivered so far.
    ids = [int(e.id or "-1") for e in events]
    assert ids[:2] == [0, 0] and ids[-1] == len(done["content"])
    deltas = [e for e in events if e.event == "delta"]
    assert all(int(d.id or 0) > 0 for d in deltas)
    assert ids == sorted(ids)


def test_history_keeps_both_messages_in_order(fast: Fast) -> None:
    session = create_session(fast.conversation)
    send(session, "one")
    send(session, "two")
    messages = get_session(session)["messages"]
    assert [(m["role"], m["content"], m["status"]) for m in messages] == [
        ("user", "one", "complete"),
        ("assistant", "Echo: one", "complete"),
        ("user", "two", "complete"),
        ("assistant", "Echo: two", "complete"),
    ]
    newest = httpx.get(session.url("?limit=2"), headers=session.auth).json()["messages"]
    assert [m["content"] for m in newest] == ["two", "Echo: two"]


def test_history_pages_back_with_before(fast: Fast) -> None:
    session = create_session(fast.conversation)
    for word in ("one", "two", "three"):
        send(session, word)

    def page(query: str) -> dict[str, Any]:
        response = httpx.get(session.url(query), headers=session.auth)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    newest = page("?limit=4")
    assert [m["content"] for m in newest["messages"]] == [
        "two",
        "Echo: two",
        "three",
        "Echo: three",
    ]
    assert newest["has_more"] is True
    older = page(f"?limit=4&before={newest['messages'][0]['id']}")
    assert [m["content"] for m in older["messages"]] == ["one", "Echo: one"]
    assert older["has_more"] is False
    assert page("")["has_more"] is False
    oldest = older["messages"][0]["id"]
    empty = page(f"?before={oldest}")
    assert empty["messages"] == [] and empty["has_more"] is False
    gone = httpx.get(session.url("?before=0123456789abcdef"), headers=session.auth)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    for bad in ("?limit=0", "?limit=-1", "?limit=x", "?before=" + "a" * 65):
        response = httpx.get(session.url(bad), headers=session.auth)
        assert response.status_code == 422, (bad, response.text)


def test_history_reads_are_bounded_by_the_page_size(redis_server: Server) -> None:
    with echo_stack(redis_server, HISTORY_PAGE_SIZE="3") as stack:
        session = create_session(stack.conversation)
        send(session, "one")
        send(session, "two")
        full = httpx.get(session.url("?limit=1000"), headers=session.auth).json()
        assert [m["content"] for m in full["messages"]] == ["Echo: one", "two", "Echo: two"]
        assert full["has_more"] is True


def test_client_message_id_makes_sending_idempotent(fast: Fast) -> None:
    session = create_session(fast.conversation)
    first = send(session, "only once", client_message_id="c-1")
    again = send(session, "only once", client_message_id="c-1")
    assert again[0].json() == first[0].json()
    assert again[-1].json() == first[-1].json()
    assert len(get_session(session)["messages"]) == 2


def test_regenerate_replaces_the_last_reply(fast: Fast) -> None:
    session = create_session(fast.conversation)
    first = send(session, "again")
    with httpx.stream("POST", session.url("/regenerate"), headers=session.auth) as r:
        assert r.status_code == 200
        events = list(iter_events(r.iter_lines()))
    assert events[0].event == "start"
    assert events[-1].json()["content"] == "Echo: again"
    messages = get_session(session)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["id"] == events[-1].json()["id"] != first[-1].json()["id"]


def test_regenerate_without_messages_is_409(fast: Fast) -> None:
    session = create_session(fast.conversation)
    r = httpx.post(session.url("/regenerate"), headers=session.auth)
    assert r.status_code == 409
    assert "send a message first" in r.json()["detail"]


def test_edit_last_user_message_regenerates(fast: Fast) -> None:
    # Editing an earlier message is a branch: tests/integration/conversation/test_branches.py.
    session = create_session(fast.conversation)
    send(session, "old question")
    send(session, "latest question")
    latest = get_session(session)["messages"][2]
    with httpx.stream(
        "PATCH",
        session.url(f"/messages/{latest['id']}"),
        json={"content": "edited question"},
        headers=session.auth,
    ) as resp:
        events = list(iter_events(resp.iter_lines()))
    assert events[0].event == "user" and events[0].json()["content"] == "edited question"
    assert events[-1].json()["content"] == "Echo: edited question"
    contents = [m["content"] for m in get_session(session)["messages"]]
    assert contents == [
        "old question",
        "Echo: old question",
        "edited question",
        "Echo: edited question",
    ]


def test_context_is_the_newest_whole_messages_within_the_budget(fast: Fast) -> None:
    # The fake model reports prompt_tokens as the number of words it was sent.
    session = create_session(fast.conversation, system_prompt="Be brief.")
    first = send(session, "hi")[-1].json()
    assert first["usage"]["prompt_tokens"] == OPERATOR + 2 + 1
    second = send(session, "hello")[-1].json()
    assert second["usage"]["prompt_tokens"] == OPERATOR + 2 + 1 + 2 + 1  # everything fits
    # Budget 64 minus the system prompt's 3 leaves 61. 45 words of 5 bytes are 56 estimated
    # tokens; replies count the tokens the model reported (2 each), user messages 1 byte in 4.
    # 56 + 2 ("Echo: hello") + 2 ("hello") fit; "Echo: hi" would not: it is left out whole.
    third = send(session, " ".join(["abcd"] * 45))[-1].json()
    assert third["usage"]["prompt_tokens"] == OPERATOR + 2 + 2 + 1 + 45
    # A message over the budget on its own is still sent, alone.
    fourth = send(session, " ".join(["abcd"] * 60))[-1].json()
    assert fourth["usage"]["prompt_tokens"] == OPERATOR + 2 + 60


def test_context_holds_at_most_context_max_messages(fast: Fast) -> None:
    session = create_session(fast.conversation, system_prompt="Hi.")
    for word in "abc":
        send(session, word)
    # The system prompt, then newest first: d, Echo: c, c, Echo: b, b (5 messages, 7 words);
    # a and its reply are left out.
    assert send(session, "d")[-1].json()["usage"]["prompt_tokens"] == OPERATOR + 1 + 7


def test_message_limits_and_unknown_fields(fast: Fast) -> None:
    session = create_session(fast.conversation)
    url = session.url("/messages")
    too_long = httpx.post(url, json={"content": "x" * 8001}, headers=session.auth)
    assert too_long.status_code == 422
    assert "limit is 8000" in too_long.json()["detail"]
    blank = httpx.post(url, json={"content": "   "}, headers=session.auth)
    assert blank.status_code == 422
    extra = httpx.post(url, json={"content": "x", "role": "system"}, headers=session.auth)
    assert extra.status_code == 422
    missing = httpx.post(url, json={}, headers=session.auth)
    assert missing.status_code == 422
    assert get_session(session)["messages"] == []


@pytest.mark.parametrize("path", ["/messages/nope/stream", "/messages/nope/cancel"])
def test_unknown_reply_is_404(fast: Fast, path: str) -> None:
    session = create_session(fast.conversation)
    method = "GET" if path.endswith("stream") else "POST"
    r = httpx.request(method, session.url(path), headers=session.auth)
    assert r.status_code == 404


def test_resume_a_finished_reply_and_after_an_offset(fast: Fast) -> None:
    session = create_session(fast.conversation)
    done = send(session, "resume me")[-1].json()
    url = session.url(f"/messages/{done['id']}/stream")
    with httpx.stream("GET", url, headers=session.auth) as r:
        full = list(iter_events(r.iter_lines()))
    assert [e.event for e in full] == ["start", "delta", "done"]
    assert text_of(full) == done["content"]
    with httpx.stream("GET", url, headers={**session.auth, "Last-Event-ID": "6"}) as r:
        rest = list(iter_events(r.iter_lines()))
    assert text_of(rest) == done["content"][6:]
    bad = httpx.get(url, headers={**session.auth, "Last-Event-ID": "abc"})
    assert bad.status_code == 400


def test_assistant_unreachable_keeps_the_message_and_regenerate_recovers(fast: Fast) -> None:
    port = free_port()
    conversation = start_replica(fast.redis, f"http://127.0.0.1:{port}")
    try:
        session = create_session(conversation)
        events = send(session, "anyone there?")
        assert [e.event for e in events] == ["user", "start", "error"]
        error = events[-1].json()
        assert set(error) == {"code", "message"}
        assert error["code"] == "assistant_unavailable"
        assert "cannot be reached" in error["message"]
        # Addresses are for the log, not for the person reading the reply.
        assert "127.0.0.1" not in error["message"] and str(port) not in error["message"]
        statuses = [(m["role"], m["status"]) for m in get_session(session)["messages"]]
        assert statuses == [("user", "complete"), ("assistant", "error")]
        assistant = start_assistant_for(fast.upstream, port=port)
        try:
            with httpx.stream("POST", session.url("/regenerate"), headers=session.auth) as r:
                again = list(iter_events(r.iter_lines()))
            assert again[-1].event == "done"
            assert again[-1].json()["content"] == "Echo: anyone there?"
        finally:
            assistant.stop()
    finally:
        conversation.stop()


def test_assistant_failing_ends_the_stream_with_its_reason(fast: Fast) -> None:
    # A wrong path on a live server: assistant answers, with an error status.
    conversation = start_replica(fast.redis, f"{fast.assistant.url}/wrong")
    try:
        session = create_session(conversation)
        events = send(session, "hello?")
        assert events[-1].event == "error"
        error = events[-1].json()
        assert error["code"] == "assistant_error" and "404" in error["message"]
        assert get_session(session)["messages"][0]["content"] == "hello?"
    finally:
        conversation.stop()


def test_redis_down_is_a_503_with_a_reason(fast: Fast) -> None:
    conversation = start_replica(
        fast.redis, fast.assistant.url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    try:
        r = httpx.post(f"{conversation.url}/api/sessions", json={})
        assert r.status_code == 503
        assert "Redis" in r.json()["detail"]
    finally:
        conversation.stop()
