"""Inputs and timings a careless or hostile client produces: each gets a clear 4xx (or the
right outcome), never a 500, and leaves nothing behind in Redis."""

from __future__ import annotations

import json

import httpx
import pytest
import redis
from websockets.sync.client import connect

from tests.integration.conversation.conftest import Fast, Slow, echo_stack
from tests.integration.conversation.test_websocket import ws_url
from tests.support.conversation import (
    KEYS,
    create_session,
    get_session,
    open_stream,
    read_until,
    send,
)
from tests.support.fake_control import FakeControl
from tests.support.servers import start_redis


def keys_without_expiry(server_port: int) -> list[str]:
    r = redis.Redis(port=server_port, decode_responses=True)
    return [k for k in r.scan_iter(count=1000) if r.ttl(k) == -1]


def test_listing_skips_and_forgets_an_expired_session(fast: Fast) -> None:
    r = redis.Redis(port=fast.redis.port, decode_responses=True)
    with httpx.Client(base_url=fast.conversation.url) as browser:
        gone = browser.post("/api/sessions", json={"name": "gone"}).json()["session_id"]
        kept = browser.post("/api/sessions", json={"name": "kept"}).json()["session_id"]
        # What expiry does: the session's keys vanish, its id stays in the browser's index.
        r.delete(KEYS.session(gone))
        listed = browser.get("/api/sessions")
        assert listed.status_code == 200, listed.text
        assert [s["session_id"] for s in listed.json()["sessions"]] == [kept]
        owners = [k for k in r.scan_iter("chat:b:*") if r.zscore(k, kept) is not None]
        assert owners and r.zscore(owners[0], gone) is None


@pytest.mark.parametrize("value", ["9" * 5000, "-1", "1e3", "12 3", "0x10", "1" * 16])
def test_a_malformed_last_event_id_is_a_400(fast: Fast, value: str) -> None:
    session = create_session(fast.conversation)
    mid = read_until(iter(send(session, "hello")), "start")[-1].json()["message_id"]
    url = session.url(f"/messages/{mid}/stream")
    for response in (
        httpx.get(url, headers={**session.auth, "Last-Event-ID": value}),
        httpx.get(url, params={"last_event_id": value}, headers=session.auth),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid"
        assert "Last-Event-ID" in response.json()["detail"]


def test_non_ascii_digits_are_not_an_event_id(fast: Fast) -> None:
    session = create_session(fast.conversation)
    mid = read_until(iter(send(session, "hello")), "start")[-1].json()["message_id"]
    url = session.url(f"/messages/{mid}/stream")
    response = httpx.get(url, params={"last_event_id": "١٢"}, headers=session.auth)
    assert response.status_code == 400, response.text


LONE = b'"a \\ud800 b"'


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/messages", b'{"content": %s}' % LONE, "content"),
        ("PATCH", "", b'{"name": %s}' % LONE, "name"),
        (
            "POST",
            "/messages",
            b'{"content": "hi", "client_message_id": %s}' % LONE,
            "client_message_id",
        ),
    ],
)
def test_lone_surrogates_are_a_422_naming_the_field(
    fast: Fast, method: str, path: str, body: bytes, field: str
) -> None:
    session = create_session(fast.conversation, name="before")
    headers = {**session.auth, "Content-Type": "application/json"}
    response = httpx.request(method, session.url(path), content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid"
    assert response.json()["detail"][0]["loc"][-1] == field
    stored = get_session(session)
    assert stored["messages"] == [] and stored["name"] == "before"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/sessions", b'{"name": %s}' % LONE, "name"),
        ("/api/sessions", b'{"system_prompt": %s}' % LONE, "system_prompt"),
        ("/api/chat", b'{"user_message": %s}' % LONE, "user_message"),
        ("/chat/", b'{"message": %s}' % LONE, "message"),
        ("/api/sessions", b'{"name": "x", "unknown": %s}' % LONE, "unknown"),
    ],
)
def test_lone_surrogates_on_unauthenticated_routes(
    fast: Fast, path: str, body: bytes, field: str
) -> None:
    response = httpx.post(
        f"{fast.conversation.url}{path}",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == field


def test_deleting_a_chat_mid_reply_stops_it_and_leaves_nothing(slow: Slow) -> None:
    fake = FakeControl(slow.upstream)
    fake.reset()
    session = create_session(slow.a)
    with open_stream(session, "POST", "/messages", json={"content": "go"}) as events:
        read_until(events, "delta")
        # From the other replica: the stop has to reach the writer through Redis.
        deleted = httpx.delete(session.url(server=slow.b), headers=session.auth)
        assert deleted.status_code == 204, deleted.text
        end = read_until(events, "done")[-1].json()
        assert end["status"] == "cancelled"
    assert fake.settled(1)[0]["state"] == "cancelled"
    r = redis.Redis(port=slow.redis.port, decode_responses=True)
    assert list(r.scan_iter(KEYS.session(session.session_id) + "*")) == []
    assert keys_without_expiry(slow.redis.port) == []


def test_a_reply_cut_at_the_length_limit_says_so_and_continues(fast: Fast) -> None:
    fake = FakeControl(fast.upstream)
    fake.reset()
    fake.script(
        {"tokens": ["cut ", "hé"], "finish_reason": "length"},
        {"tokens": ["re ", "now"]},
    )
    session = create_session(fast.conversation)
    events = send(session, "write a lot")
    done = events[-1]
    assert done.event == "done" and done.json()["status"] == "length"
    mid = done.json()["id"]
    assert get_session(session)["messages"][-1]["status"] == "length"

    with open_stream(session, "POST", f"/messages/{mid}/continue") as stream:
        more = read_until(stream, "done")
    start = more[0]
    assert start.event == "start" and start.json()["message_id"] == mid
    assert start.id == str(len("cut hé"))
    assert "".join(e.json()["text"] for e in more if e.event == "delta") == "re now"
    assert more[-1].json()["content"] == "cut hére now"
    assert more[-1].json()["status"] == "complete"
    stored = get_session(session)["messages"]
    assert [m["content"] for m in stored] == ["write a lot", "cut hére now"]
    sent = fake.requests()[-1]["body"]["messages"]
    assert sent[-1] == {"role": "assistant", "content": "cut hé"}

    # Resuming the continued reply from the start replays all of it, once.
    replay = httpx.get(session.url(f"/messages/{mid}/stream"), headers=session.auth)
    text = "".join(
        line.removeprefix("data: ")
        for line in replay.text.splitlines()
        if line.startswith('data: {"text"')
    )
    assert "cut hé" in text and text.count("cut") == 1


def test_only_a_reply_that_stopped_early_can_be_continued(fast: Fast) -> None:
    session = create_session(fast.conversation)
    events = send(session, "hello")
    user_id = events[0].json()["id"]
    reply_id = events[-1].json()["id"]
    for mid in (reply_id, user_id, "0" * 16):
        response = httpx.post(session.url(f"/messages/{mid}/continue"), headers=session.auth)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "conflict"


def test_an_overlong_body_field_and_junk_ids_get_4xx(fast: Fast) -> None:
    session = create_session(fast.conversation)
    for path in ("/messages/..%2F..%2Fx/stream", "/messages/%00/cancel", "/messages/x" * 50):
        response = httpx.get(session.url(path), headers=session.auth)
        assert 400 <= response.status_code < 500, (path, response.text)
    huge = httpx.post(
        session.url("/messages"), json={"content": "x" * 100_000}, headers=session.auth
    )
    assert huge.status_code == 422 and huge.json()["code"] == "invalid"
    assert get_session(session)["messages"] == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/sessions", {"name": "x"}),
        ("/api/chat", {"user_message": "spend your model"}),
        ("/chat/", {"message": "spend your model"}),
        ("/token?name=x", None),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        # A forged X-Forwarded-Host must not make a foreign page look like ours.
        {"Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"},
    ],
)
def test_pages_on_other_sites_cannot_create_sessions_or_spend_the_model(
    fast: Fast, path: str, body: dict[str, str] | None, headers: dict[str, str]
) -> None:
    r = redis.Redis(port=fast.redis.port, decode_responses=True)
    before = sum(1 for _ in r.scan_iter("chat:s:*"))
    # A form post: the simple request a foreign page can send without a preflight.
    response = httpx.post(f"{fast.conversation.url}{path}", data=body, headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"
    assert "set-cookie" not in response.headers
    assert sum(1 for _ in r.scan_iter("chat:s:*")) == before


def test_our_own_page_still_creates_sessions(fast: Fast) -> None:
    host = fast.conversation.url.removeprefix("http://")
    response = httpx.post(
        f"{fast.conversation.url}/api/sessions",
        json={},
        headers={"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 201, response.text


def test_a_full_redis_is_a_clear_507_and_loses_nothing_stored() -> None:
    own = start_redis()
    try:
        with echo_stack(own) as stack:
            session = create_session(stack.conversation)
            send(session, "kept")
            r = redis.Redis(port=own.port, decode_responses=True)
            # What `maxmemory` with `noeviction` does once the data reaches it.
            r.config_set("maxmemory-policy", "noeviction")
            r.config_set("maxmemory", "1")
            try:
                refused = httpx.post(
                    session.url("/messages"), json={"content": "lost?"}, headers=session.auth
                )
                assert refused.status_code == 507, refused.text
                assert refused.json()["code"] == "storage_full"
                created = httpx.post(f"{stack.conversation.url}/api/sessions", json={})
                assert created.status_code == 507, created.text
                with connect(ws_url(session, f"?token={session.token}")) as ws:
                    ws.send(json.dumps({"type": "message", "content": "over the socket"}))
                    frame = json.loads(ws.recv(timeout=10))
                    assert frame["event"] == "error"
                    assert frame["data"]["code"] == "storage_full"
                # Reading still works while nothing can be written.
                assert [m["content"] for m in get_session(session)["messages"]] == [
                    "kept",
                    "Echo: kept",
                ]
            finally:
                r.config_set("maxmemory", "0")
            assert [m["content"] for m in get_session(session)["messages"]] == [
                "kept",
                "Echo: kept",
            ]
            assert send(session, "after")[-1].event == "done"
    finally:
        own.stop()
