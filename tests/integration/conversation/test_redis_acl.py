"""Conversation against a locked-down Redis: a password on the default user, and an ACL user
allowed only conversation's keys, channels and the commands in REDIS_COMMANDS. Every flow
works, and Redis logs no refused command."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from conversation.redis_client import acl_rule
from tests.integration.conversation.conftest import SLOW_TOKENS
from tests.support.conversation import (
    create_session,
    get_session,
    open_stream,
    read_until,
    send,
    slow_reply,
    start_assistant_for,
    start_replica,
    text_of,
)
from tests.support.servers import Server, start_fake_upstream, start_redis
from tests.support.sse import iter_events

ADMIN = "admin-s3cret"
USER, PASSWORD = "chat", "chat-s3cret"


@dataclass
class Locked:
    server: Server
    admin: redis.Redis
    a: Server
    b: Server


@pytest.fixture(scope="module")
def locked() -> Iterator[Locked]:
    server = start_redis()
    started: list[Server] = []
    try:
        admin = redis.Redis(port=server.port, decode_responses=True)
        rule = ["on", f">{PASSWORD}", *acl_rule("chat").split()]
        admin.execute_command("ACL", "SETUSER", USER, *rule)  # type: ignore[no-untyped-call]
        admin.config_set("requirepass", ADMIN)
        admin = redis.Redis(port=server.port, password=ADMIN, decode_responses=True)
        upstream = start_fake_upstream(FAKE_TOKENS=str(SLOW_TOKENS), FAKE_DELAY_MS="20")
        started.append(upstream)
        assistant = start_assistant_for(upstream)
        started.append(assistant)
        url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{server.port}/0"
        for _ in range(2):
            started.append(start_replica(server, assistant.url, REDIS_URL=url))
        yield Locked(server, admin, started[-2], started[-1])
    finally:
        for s in reversed(started):
            s.stop()
        server.stop()


def test_every_flow_works_with_only_the_listed_commands(locked: Locked) -> None:
    with httpx.Client(base_url=locked.a.url) as browser:
        assert browser.post("/api/sessions", json={"name": "locked"}).status_code == 201
        assert len(browser.get("/api/sessions").json()["sessions"]) == 1
    session = create_session(locked.a)
    with open_stream(session, "POST", "/messages", json={"content": "go"}) as events:
        seen = read_until(events, "delta")
        mid = seen[1].json()["message_id"]
        # Tailed from Redis by the other replica, then stopped from there (pub/sub).
        url = session.url(f"/messages/{mid}/stream", locked.b)
        with httpx.stream("GET", url, headers=session.auth, timeout=60) as resumed:
            first = next(e for e in iter_events(resumed.iter_lines()) if e.event == "delta")
            assert first.json()["text"]
        stopped = httpx.post(session.url(f"/messages/{mid}/cancel", locked.b), headers=session.auth)
        assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
        read_until(events, "done")
    with open_stream(session, "POST", f"/messages/{mid}/continue", locked.b) as events:
        assert read_until(events, "done")[-1].json()["status"] == "complete"
    with open_stream(session, "POST", "/regenerate") as events:
        assert text_of(read_until(events, "done")) == slow_reply(SLOW_TOKENS)
    assert send(session, "again")[-1].event == "done"
    oldest = get_session(session)["messages"][0]["id"]
    paged = httpx.get(session.url(f"?before={oldest}"), headers=session.auth)
    assert paged.status_code == 200
    token = httpx.post(f"{locked.a.url}/token", params={"name": "tutorial"}).json()["token"]
    assert httpx.get(f"{locked.b.url}/refresh_token", params={"token": token}).status_code == 200
    assert httpx.get(f"{locked.a.url}/api/health/ready").status_code == 200
    assert httpx.delete(session.url(), headers=session.auth).status_code == 204

    assert locked.admin.acl_log() == []
    keys = list(locked.admin.scan_iter(count=1000))
    assert keys and [k for k in keys if locked.admin.ttl(k) == -1] == []
