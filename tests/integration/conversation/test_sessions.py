"""Sessions: create, read, rename, delete, list by browser cookie, isolation, expiry."""

from __future__ import annotations

import hashlib

import httpx
import pytest
import redis

from tests.integration.conversation.conftest import Fast
from tests.support.conversation import KEYS, create_session, get_session, send, start_replica
from tests.support.servers import wait_until


def test_create_returns_the_session_and_a_token(fast: Fast) -> None:
    session = create_session(fast.conversation, name="Trip plans")
    data = session.data
    fields = {"session_id", "token", "name", "created_at", "expires_at", "model", "named_by_user"}
    assert set(data) == fields
    assert data["name"] == "Trip plans"
    assert data["model"] == "fake-model"  # assistant's default
    assert data["named_by_user"] is False
    assert len(session.token) >= 43  # 32 random bytes, urlsafe base64
    assert get_session(session)["messages"] == []


def test_only_the_token_digest_is_stored(fast: Fast) -> None:
    session = create_session(fast.conversation)
    r = redis.Redis(port=fast.redis.port, decode_responses=True)
    meta = r.hgetall(KEYS.session(session.session_id))
    assert meta["th"] == hashlib.sha256(session.token.encode()).hexdigest()
    assert session.token not in str(meta)


def test_default_name_and_empty_body(fast: Fast) -> None:
    response = httpx.post(f"{fast.conversation.url}/api/sessions")
    assert response.status_code == 201
    assert response.json()["name"] == "New chat"


def test_rename(fast: Fast) -> None:
    session = create_session(fast.conversation)
    response = httpx.patch(session.url(), json={"name": "Renamed"}, headers=session.auth)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Renamed"
    assert get_session(session)["name"] == "Renamed"


def test_delete_removes_every_key(fast: Fast) -> None:
    session = create_session(fast.conversation)
    send(session, "hello")
    r = redis.Redis(port=fast.redis.port, decode_responses=True)
    assert r.keys(KEYS.session(session.session_id) + "*")
    response = httpx.delete(session.url(), headers=session.auth)
    assert response.status_code == 204
    assert r.keys(KEYS.session(session.session_id) + "*") == []
    assert httpx.get(session.url(), headers=session.auth).status_code == 404


def test_missing_token_is_401(fast: Fast) -> None:
    session = create_session(fast.conversation)
    response = httpx.get(session.url())
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


def test_wrong_and_other_sessions_tokens_get_the_same_404(fast: Fast) -> None:
    mine = create_session(fast.conversation)
    other = create_session(fast.conversation)
    send(other, "secret")
    wrong = httpx.get(other.url(), headers={"Authorization": "Bearer not-the-token"})
    crossed = httpx.get(other.url(), headers=mine.auth)
    missing = httpx.get(f"{fast.conversation.url}/api/sessions/{'0' * 32}", headers=mine.auth)
    assert wrong.status_code == crossed.status_code == missing.status_code == 404
    assert wrong.json() == crossed.json() == missing.json()
    for path, method in [("/messages", "POST"), ("", "DELETE"), ("", "PATCH")]:
        body = {"content": "x"} if path else {"name": "x"}
        r = httpx.request(method, other.url(path), json=body, headers=mine.auth)
        assert r.status_code == 404, (method, path)
    assert get_session(other)["messages"][0]["content"] == "secret"


def test_browser_cookie_owns_and_lists_its_sessions(fast: Fast) -> None:
    base = fast.conversation.url
    with httpx.Client(base_url=base) as browser, httpx.Client(base_url=base) as stranger:
        first = browser.post("/api/sessions", json={"name": "one"})
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        second = browser.post("/api/sessions", json={"name": "two"})
        stranger.post("/api/sessions", json={"name": "not yours"})
        listed = browser.get("/api/sessions").json()["sessions"]
        assert [s["name"] for s in listed] == ["two", "one"]
        sid = first.json()["session_id"]
        # The cookie stands in for the token, for the browser that owns the session only.
        assert browser.get(f"/api/sessions/{sid}").status_code == 200
        assert stranger.get(f"/api/sessions/{sid}").status_code == 404
        renamed = browser.patch(f"/api/sessions/{sid}", json={"name": "uno"})
        assert renamed.status_code == 200
        deleted = browser.delete(
            f"/api/sessions/{second.json()['session_id']}", headers={"X-Requested-With": "t"}
        )
        assert deleted.status_code == 204
        assert [s["name"] for s in browser.get("/api/sessions").json()["sessions"]] == ["uno"]
    assert httpx.get(f"{base}/api/sessions").json() == {"sessions": []}


def test_cookie_requests_need_the_csrf_guard(fast: Fast) -> None:
    with httpx.Client(base_url=fast.conversation.url) as browser:
        sid = browser.post("/api/sessions", json={}).json()["session_id"]
        # What a cross-site form could send: no JSON body, no custom header.
        forged = browser.delete(f"/api/sessions/{sid}")
        assert forged.status_code == 403
        assert "X-Requested-With" in forged.json()["detail"]
        cross_site = browser.get(f"/api/sessions/{sid}", headers={"Origin": "http://evil.example"})
        assert cross_site.status_code == 403
        assert browser.get(f"/api/sessions/{sid}").status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "x", "colour": "red"}, "extra"),
        ({"name": "n" * 500}, "limit"),
        ({"system_prompt": 12}, "string"),
    ],
)
def test_create_validation(fast: Fast, body: dict[str, object], fragment: str) -> None:
    response = httpx.post(f"{fast.conversation.url}/api/sessions", json=body)
    assert response.status_code == 422
    assert fragment in response.text.lower()


def test_every_key_shares_the_expiry_and_requests_renew_it(fast: Fast) -> None:
    session = create_session(fast.conversation)
    send(session, "hello")
    r = redis.Redis(port=fast.redis.port, decode_responses=True)
    keys = [k for k in r.keys(KEYS.session(session.session_id) + "*") if ":r:" not in k]
    for key in keys:
        r.expire(key, 100)
    get_session(session)
    ttls = [r.ttl(k) for k in keys]
    assert all(t > 1000 for t in ttls), dict(zip(keys, ttls, strict=True))


def test_sessions_expire_after_inactivity(fast: Fast) -> None:
    short = start_replica(fast.redis, fast.assistant.url, SESSION_TTL="1")
    try:
        session = create_session(short)
        send(session, "hello", server=short)
        assert get_session(session)["messages"]
        r = redis.Redis(port=fast.redis.port, decode_responses=True)

        def gone() -> bool:
            return not r.keys(KEYS.session(session.session_id) + "*")

        wait_until(gone, timeout=10, what="session keys expiring")
        assert httpx.get(session.url(), headers=session.auth).status_code == 404
    finally:
        short.stop()


def test_health(fast: Fast) -> None:
    response = httpx.get(f"{fast.conversation.url}/api/health")
    assert response.json() == {"status": "success", "message": "The server is up and running."}
