"""A model per chat, per reply and per regenerate; usage per chat and client; titles.

Real servers: three fake model upstreams (alpha, beta, gamma) behind one assistant whose
MODELS_FILE serves one model from each, behind one conversation that titles chats with
gamma. Each upstream's recorded requests show which model was asked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from conversation.limits import Identity
from tests.support.conversation import (
    Session,
    create_session,
    get_session,
    open_stream,
    read_until,
    send,
    start_catalogue_assistant,
    start_replica,
)
from tests.support.fake_control import FakeControl, closed_port
from tests.support.metrics import scrape
from tests.support.servers import Server, start_fake_upstream, wait_until
from tests.support.sse import Event, iter_events

MODELS = ("alpha", "beta", "gamma")


@dataclass
class Stack:
    redis: Server
    upstreams: dict[str, Server]
    assistant: Server
    conversation: Server

    def fake(self, model: str) -> FakeControl:
        return FakeControl(self.upstreams[model])


@pytest.fixture(scope="module")
def stack(redis_server: Server) -> Iterator[Stack]:
    started: list[Server] = []
    try:
        upstreams = {}
        for model in MODELS:
            upstreams[model] = start_fake_upstream(FAKE_DELAY_MS="5")
            started.append(upstreams[model])
        assistant = start_catalogue_assistant(upstreams, default="alpha")
        started.append(assistant)
        conversation = start_replica(
            redis_server, assistant.url, TITLE_MODEL="gamma", TITLES="true"
        )
        started.append(conversation)
        yield Stack(redis_server, upstreams, assistant, conversation)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def fresh(stack: Stack) -> Stack:
    for model in MODELS:
        stack.fake(model).reset()
    return stack


def asked(stack: Stack, model: str) -> list[str]:
    """The `model` of each chat request the upstream serving `model` received."""
    return [str(r["body"].get("model")) for r in stack.fake(model).requests()]


def done(events: list[Event]) -> dict[str, Any]:
    assert events[-1].event == "done", [(e.event, e.data) for e in events]
    data: dict[str, Any] = events[-1].json()
    return data


def patch(session: Session, **body: Any) -> httpx.Response:
    return httpx.patch(session.url(), json=body, headers=session.auth, timeout=10)


def regenerate(session: Session, **body: Any) -> list[Event]:
    with open_stream(session, "POST", "/regenerate", json=body) as events:
        return list(events)


def invalid_model(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == "invalid"
    (error,) = body["detail"]
    assert error["loc"] == ["body", "model"]
    assert error["valid"] == list(MODELS)
    assert "nope" in error["msg"] and "alpha, beta, gamma" in error["msg"]


# The catalogue ------------------------------------------------------------------------


def test_the_catalogue_lists_every_model_and_no_address(fresh: Stack) -> None:
    response = httpx.get(f"{fresh.conversation.url}/api/models", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["default"] == "alpha"
    assert [m["id"] for m in body["models"]] == list(MODELS)
    alpha = body["models"][0]
    assert alpha == {
        "id": "alpha",
        "display_name": "Model alpha",
        "provider": "p-alpha",
        "context_length": 4096,
        "ready": True,
        "default": True,
    }
    for upstream in fresh.upstreams.values():
        assert str(upstream.port) not in response.text
    assert str(fresh.assistant.port) not in response.text and "test-key" not in response.text


# A model per chat ---------------------------------------------------------------------


def test_a_chat_has_the_default_or_the_chosen_model(fresh: Stack) -> None:
    assert create_session(fresh.conversation).data["model"] == "alpha"
    chosen = create_session(fresh.conversation, model="beta")
    assert chosen.data["model"] == "beta"
    assert get_session(chosen)["model"] == "beta"
    refused = httpx.post(f"{fresh.conversation.url}/api/sessions", json={"model": "nope"})
    invalid_model(refused)


def test_switching_models_mid_chat(fresh: Stack) -> None:
    session = create_session(fresh.conversation, name="Switch")
    first = done(send(session, "one two"))
    assert first["model"] == "alpha" and first["usage"]["completion_tokens"] == 3
    changed = patch(session, model="beta")
    assert changed.status_code == 200, changed.text
    assert changed.json()["model"] == "beta" and changed.json()["name"] == "Switch"
    second = done(send(session, "three"))
    assert second["model"] == "beta"
    assert asked(fresh, "alpha") == ["alpha"] and asked(fresh, "beta") == ["beta"]
    # Stored and restored: each reply keeps the model that wrote it, and its usage.
    data = get_session(session)
    assert data["model"] == "beta"
    replies = [m for m in data["messages"] if m["role"] == "assistant"]
    assert [r["model"] for r in replies] == ["alpha", "beta"]
    assert [r["usage"]["completion_tokens"] for r in replies] == [3, 2]
    assert all(m["model"] is None for m in data["messages"] if m["role"] == "user")
    invalid_model(patch(session, model="nope"))
    assert get_session(session)["model"] == "beta"


def test_the_chat_list_shows_each_chats_model(fresh: Stack) -> None:
    with httpx.Client(base_url=fresh.conversation.url, timeout=10) as browser:
        for model in ("beta", "alpha"):
            assert browser.post("/api/sessions", json={"model": model}).status_code == 201
        listed = browser.get("/api/sessions").json()["sessions"]
    assert [s["model"] for s in listed] == ["alpha", "beta"]  # newest first


def test_regenerate_with_another_model_for_that_reply_only(fresh: Stack) -> None:
    session = create_session(fresh.conversation)
    done(send(session, "hello there"))
    again = done(regenerate(session, model="beta"))
    assert again["model"] == "beta" and again["content"] == "Echo: hello there"
    data = get_session(session)
    assert data["model"] == "alpha"  # the chat keeps its model
    replies = [m for m in data["messages"] if m["role"] == "assistant"]
    assert replies[-1]["model"] == "beta" and replies[-1]["id"] == again["id"]
    assert asked(fresh, "beta") == ["beta"]
    # The first reply is kept as the new one's sibling, with the model that wrote it.
    assert (replies[-1]["sibling_index"], replies[-1]["sibling_count"]) == (2, 2)
    first = httpx.patch(
        session.url(f"/messages/{again['id']}/active"),
        json={"sibling_index": 1},
        headers=session.auth,
        timeout=10,
    )
    assert first.status_code == 200, first.text
    assert first.json()["messages"][-1]["model"] == "alpha"
    # Without a model, the chat's own.
    assert done(regenerate(session))["model"] == "alpha"
    response = httpx.post(
        session.url("/regenerate"), json={"model": "nope"}, headers=session.auth, timeout=10
    )
    invalid_model(response)


# Usage --------------------------------------------------------------------------------


def usage_of(report: dict[str, Any], model: str) -> dict[str, Any]:
    today = report["days"][0]
    found: dict[str, Any] = next(m for m in today["models"] if m["model"] == model)
    return found


def browser_tokens_counted(stack: Stack, cookie: str) -> int:
    """The per-client token limit's count for this browser, read from Redis."""
    r = redis.Redis(port=stack.redis.port, decode_responses=True)
    digest = Identity.of("browser", cookie).digest
    return int(r.get(f"chat:l:d:{{{digest}}}") or 0)


def test_usage_counts_completed_failed_and_cancelled_replies(fresh: Stack) -> None:
    beta = fresh.fake("beta")
    with httpx.Client(
        base_url=fresh.conversation.url, timeout=30, headers={"X-Requested-With": "test"}
    ) as browser:
        created = browser.post("/api/sessions", json={"model": "beta"})
        sid = created.json()["session_id"]
        cookie = browser.cookies["chat_browser"]

        def turn(content: str) -> list[Event]:
            with browser.stream(
                "POST", f"/api/sessions/{sid}/messages", json={"content": content}
            ) as r:
                return list(iter_events(r.iter_lines()))

        completed = done(turn("one two three"))  # reported: 4 completion tokens
        beta.script({"tokens": ["a ", "b ", "c ", "d "], "error_after": 2})
        failed = turn("fail please")
        assert failed[-1].event == "error"
        beta.script({"tokens": ["e ", "f ", "g ", "h "], "stall_after": 2})
        with browser.stream("POST", f"/api/sessions/{sid}/messages", json={"content": "stop"}) as r:
            events = iter_events(r.iter_lines())
            start = read_until(events, "start")[-1].json()["message_id"]
            read_until(events, "delta")
            cancelled = browser.post(f"/api/sessions/{sid}/messages/{start}/cancel")
            assert cancelled.json()["status"] == "cancelled", cancelled.text

        mine = browser.get("/api/usage", params={"days": 3}).json()
        chat = browser.get(f"/api/sessions/{sid}/usage").json()

    assert mine["client"] == "browser" and len(mine["days"]) == 3
    assert [d["models"] for d in mine["days"][1:]] == [[], []]
    counted = usage_of(mine, "beta")
    assert counted["replies"] == 3
    reported = completed["usage"]
    # The failed and the cancelled reply wrote "a b " and "e f " (or less, if the cancel
    # came first): 4 bytes, 1 token each, estimated, with their prompts' estimates.
    assert counted["completion_tokens"] == reported["completion_tokens"] + 2
    assert counted["estimated_tokens"] > 2
    assert counted["prompt_tokens"] == reported["prompt_tokens"] + counted["estimated_tokens"] - 2
    assert counted["total_tokens"] == counted["prompt_tokens"] + counted["completion_tokens"]
    assert usage_of(chat, "beta") == counted and chat["client"] == "chat"
    # The per-client token limit counts the same (completion) tokens.
    assert browser_tokens_counted(fresh, cookie) == counted["completion_tokens"]


def test_usage_is_the_callers_own(fresh: Stack) -> None:
    url = f"{fresh.conversation.url}/api/usage"
    token_chat = create_session(fresh.conversation)
    done(send(token_chat, "just me"))
    mine = httpx.get(url, headers=token_chat.auth, timeout=10).json()
    assert mine["client"] == "session" and usage_of(mine, "alpha")["replies"] == 1
    with httpx.Client(timeout=10) as stranger:
        stranger.post(f"{fresh.conversation.url}/api/sessions", json={})
        theirs = stranger.get(url).json()
        assert theirs["client"] == "browser" and theirs["days"][0]["models"] == []
        # Another chat's usage is not theirs to read: the same 404 as no such chat.
        other = stranger.get(token_chat.url("/usage"))
        assert other.status_code == 404, other.text
    nobody = httpx.get(url, timeout=10)
    assert nobody.status_code == 401 and nobody.json()["code"] == "unauthorized"
    forged = httpx.get(url, headers={"Authorization": f"Bearer {token_chat.session_id}.x"})
    assert forged.status_code == 401
    too_many = httpx.get(url, params={"days": 0}, headers=token_chat.auth)
    assert too_many.status_code == 422


def test_usage_keys_expire(fresh: Stack) -> None:
    session = create_session(fresh.conversation)
    done(send(session, "count me"))
    r = redis.Redis(port=fresh.redis.port, decode_responses=True)
    keys = list(r.scan_iter("chat:u:*"))
    assert keys
    assert all(0 < r.ttl(k) <= 7 * 86400 for k in keys)


# Titles -------------------------------------------------------------------------------


def name_of(session: Session) -> str:
    return str(get_session(session)["name"])


def titles(server: Server, outcome: str) -> float:
    """How many title jobs of `server` ended so (its metrics: titled, kept, failed)."""
    return scrape(server).value("chatstack_titles_total", outcome=outcome)


def wait_titles(server: Server, outcome: str, count: float) -> None:
    wait_until(lambda: titles(server, outcome) >= count, 15, f"{count:g} titles {outcome}")


def test_the_first_reply_titles_the_chat_in_the_background(fresh: Stack) -> None:
    fresh.fake("gamma").script({"tokens": ['"Lisbon ', "trip ", 'plans."']})
    session = create_session(fresh.conversation, name="Plan a trip to Lisbon")
    reply = done(send(session, "Plan a trip to Lisbon"))
    assert reply["status"] == "complete"
    wait_until(lambda: name_of(session) == "Lisbon trip plans", 15, "the generated title")
    (title_request,) = fresh.fake("gamma").requests()
    assert title_request["body"]["model"] == "gamma"
    assert "Plan a trip to Lisbon" in str(title_request["body"]["messages"])
    assert get_session(session)["named_by_user"] is False
    # Only the first reply titles a chat.
    done(send(session, "And Porto?"))
    assert len(fresh.fake("gamma").requests()) == 1


def test_a_failing_title_model_leaves_the_chat_alone(fresh: Stack) -> None:
    fresh.fake("gamma").script({"status": 500, "message": "title model down", "times": 10})
    failed = titles(fresh.conversation, "failed")
    session = create_session(fresh.conversation, name="First message")
    reply = done(send(session, "First message"))
    assert reply["status"] == "complete" and reply["model"] == "alpha"
    wait_titles(fresh.conversation, "failed", failed + 1)
    assert name_of(session) == "First message"
    assert done(send(session, "Second"))["status"] == "complete"


def test_a_slow_title_model_times_out_harmlessly(redis_server: Server, fresh: Stack) -> None:
    quick = start_replica(
        redis_server, fresh.assistant.url, TITLES="true", TITLE_MODEL="gamma", TITLE_TIMEOUT="0.3"
    )
    try:
        fresh.fake("gamma").script({"delay_headers_ms": 3000})
        session = create_session(quick, name="Slow")
        assert done(send(session, "Slow", quick))["status"] == "complete"
        wait_titles(quick, "failed", 1)
        assert name_of(session) == "Slow"
    finally:
        quick.stop()


def test_a_renamed_chat_keeps_its_name(fresh: Stack) -> None:
    gamma = fresh.fake("gamma")
    kept = titles(fresh.conversation, "kept")
    # Renamed before its first reply: no title is even asked for.
    named = create_session(fresh.conversation, name="x")
    assert patch(named, name="Mine").json()["named_by_user"] is True
    done(send(named, "hello"))
    # Renamed while its title is being written: the person's name wins.
    gamma.script({"delay_headers_ms": 1500, "tokens": ["Generated"]})
    racing = create_session(fresh.conversation, name="y")
    done(send(racing, "hello again"))
    wait_until(lambda: len(gamma.requests()) == 1, 15, "the title request")
    assert patch(racing, name="Also mine").status_code == 200
    wait_titles(fresh.conversation, "kept", kept + 1)
    assert name_of(racing) == "Also mine" and name_of(named) == "Mine"
    assert len(gamma.requests()) == 1


def test_session_ids_in_usage_keys_are_digests(fresh: Stack) -> None:
    session = create_session(fresh.conversation)
    done(send(session, "hi"))
    r = redis.Redis(port=fresh.redis.port, decode_responses=True)
    keys = " ".join(r.scan_iter("chat:u:*"))
    assert session.session_id not in keys
    assert hashlib.sha256(f"session:{session.session_id}".encode()).hexdigest()[:32] in keys


def test_without_assistants_list_a_chat_takes_assistants_default(redis_server: Server) -> None:
    lonely = start_replica(redis_server, f"http://127.0.0.1:{closed_port()}")
    try:
        listed = httpx.get(f"{lonely.url}/api/models", timeout=10)
        assert listed.status_code == 503 and listed.json()["code"] == "unavailable"
        assert listed.headers["Retry-After"] == "2"
        # No model asked for: the chat is made, with assistant's own default when it is back.
        assert create_session(lonely).data["model"] is None
        # A model asked for cannot be checked: refused, nothing made.
        chosen = httpx.post(f"{lonely.url}/api/sessions", json={"model": "alpha"}, timeout=10)
        assert chosen.status_code == 503, chosen.text
    finally:
        lonely.stop()
