"""Share links: create, read without credentials, list, revoke, expire, continue."""

from __future__ import annotations

from typing import Any

import httpx
import redis

from tests.integration.conversation.conftest import Fast
from tests.support.conversation import Session, create_session, get_session, send
from tests.support.servers import wait_until


def share(session: Session, **body: Any) -> dict[str, Any]:
    response = httpx.post(session.url("/shares"), json=body, headers=session.auth)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def read(fast: Fast, share_id: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(f"{fast.conversation.url}/api/shares/{share_id}", **kwargs)


def shared_chat(fast: Fast) -> Session:
    session = create_session(fast.conversation, name="Shared", system_prompt="secret prompt")
    send(session, "what is a share link?")
    return session


def test_a_link_shows_a_snapshot_to_anyone_without_setting_a_cookie(fast: Fast) -> None:
    session = shared_chat(fast)
    link = share(session)
    assert len(link["share_id"]) == 32 and link["path"] == f"/s/{link['share_id']}"
    send(session, "said after sharing")
    # No credentials at all, and a browser's cookie sent along: the same snapshot, no cookie.
    for cookies in (None, {"chat_browser": "A" * 43}):
        response = read(fast, link["share_id"], cookies=cookies)
        assert response.status_code == 200, response.text
        assert "set-cookie" not in response.headers
        assert response.headers["cache-control"] == "no-store"
        shared = response.json()
        assert shared["name"] == "Shared"
        assert shared["messages"][0]["content"] == "what is a share link?"
        assert len(shared["messages"]) == 2
        assert "secret prompt" not in response.text
        assert set(shared["messages"][0]) == {"id", "role", "content", "status", "created_at"}


def test_every_share_key_expires(fast: Fast) -> None:
    session = shared_chat(fast)
    link = share(session, expires_in=3600)
    r = redis.Redis(port=fast.redis.port, decode_responses=True)
    snapshot_ttl = r.ttl(f"chat:share:{link['share_id']}")
    index_ttl = r.ttl(f"chat:shares:{{{session.session_id}}}")
    assert 0 < snapshot_ttl <= 3600 and 0 < index_ttl <= 3601
    forever = share(session)
    assert r.ttl(f"chat:share:{forever['share_id']}") > 3600  # SHARE_MAX_TTL, not never


def test_list_and_revoke(fast: Fast) -> None:
    session = shared_chat(fast)
    first, second = share(session), share(session)
    listed = httpx.get(session.url("/shares"), headers=session.auth).json()["shares"]
    assert [s["share_id"] for s in listed] == [second["share_id"], first["share_id"]]
    gone = httpx.delete(session.url(f"/shares/{first['share_id']}"), headers=session.auth)
    assert gone.status_code == 204
    assert read(fast, first["share_id"]).status_code == 404
    assert read(fast, second["share_id"]).status_code == 200
    again = httpx.delete(session.url(f"/shares/{first['share_id']}"), headers=session.auth)
    assert again.status_code == 404
    listed = httpx.get(session.url("/shares"), headers=session.auth).json()["shares"]
    assert [s["share_id"] for s in listed] == [second["share_id"]]


def test_revoked_expired_and_unknown_links_get_the_same_404(fast: Fast) -> None:
    session = shared_chat(fast)
    revoked, expiring = share(session), share(session, expires_in=1)
    httpx.delete(session.url(f"/shares/{revoked['share_id']}"), headers=session.auth)
    wait_until(lambda: read(fast, expiring["share_id"]).status_code == 404, 5, "the link's expiry")
    answers = [
        read(fast, share_id)
        for share_id in (revoked["share_id"], expiring["share_id"], "x" * 32, "bad id", "a" * 500)
    ]
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1
    listed = httpx.get(session.url("/shares"), headers=session.auth).json()["shares"]
    assert listed == []


def test_deleting_the_chat_revokes_its_links(fast: Fast) -> None:
    session = shared_chat(fast)
    link = share(session)
    assert httpx.delete(session.url(), headers=session.auth).status_code == 204
    assert read(fast, link["share_id"]).status_code == 404
    r = redis.Redis(port=fast.redis.port, decode_responses=True)
    assert not r.exists(f"chat:shares:{{{session.session_id}}}")


def test_only_the_owner_manages_links(fast: Fast) -> None:
    mine, theirs = shared_chat(fast), shared_chat(fast)
    their_link = share(theirs)
    for method, path in [
        ("POST", "/shares"),
        ("GET", "/shares"),
        ("DELETE", f"/shares/{their_link['share_id']}"),
    ]:
        response = httpx.request(method, theirs.url(path), json={}, headers=mine.auth)
        assert response.status_code == 404, (method, path)
    # My chat cannot revoke their link either.
    crossed = httpx.delete(mine.url(f"/shares/{their_link['share_id']}"), headers=mine.auth)
    assert crossed.status_code == 404
    assert read(fast, their_link["share_id"]).status_code == 200
    assert httpx.post(theirs.url("/shares"), json={}).status_code == 401


def test_bad_share_requests_name_the_field(fast: Fast) -> None:
    session = shared_chat(fast)
    for value in (0, 10**9, "soon"):
        response = httpx.post(
            session.url("/shares"), json={"expires_in": value}, headers=session.auth
        )
        assert response.status_code == 422, value
        assert response.json()["detail"][0]["loc"] == ["body", "expires_in"]
    extra = httpx.post(session.url("/shares"), json={"public": True}, headers=session.auth)
    assert extra.status_code == 422


def test_a_chat_has_at_most_max_shares_per_session_links(fast: Fast) -> None:
    session = shared_chat(fast)
    for _ in range(20):
        share(session)
    response = httpx.post(session.url("/shares"), json={}, headers=session.auth)
    assert response.status_code == 409
    assert "revoke one" in response.json()["detail"]


def test_continue_copies_the_snapshot_into_the_callers_chats(fast: Fast) -> None:
    link = share(shared_chat(fast))
    with httpx.Client(base_url=fast.conversation.url) as viewer:
        response = viewer.post(f"/api/shares/{link['share_id']}/continue", json={})
        assert response.status_code == 201, response.text
        assert "chat_browser" in response.headers["set-cookie"]
        created = response.json()
        copy = Session(fast.conversation.url, created["session_id"], created["token"], created)
        assert [s["session_id"] for s in viewer.get("/api/sessions").json()["sessions"]] == [
            copy.session_id
        ]
        assert get_session(copy)["messages"][0]["content"] == "what is a share link?"
        send(copy, "my own follow-up")
        assert len(get_session(copy)["messages"]) == 4
        cross_site = viewer.post(
            f"/api/shares/{link['share_id']}/continue",
            json={},
            headers={"Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403
        assert viewer.post("/api/shares/unknown/continue", json={}).status_code == 404
