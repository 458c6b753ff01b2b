"""Per-client limits: real redis-server, two conversation replicas sharing it, the fake model.

Each test starts its replicas with the limits it needs (small ones) on its own Redis. The
client's address is varied with X-Real-IP, believed from 127.0.0.1 (the default
TRUSTED_PROXIES). A reply the fake model stalls after one token is "being written" for as
long as a test wants, so a full slot is a state, not a race. Time passing is never waited
for: a window's end is made to come now, in Redis (its entries' scores, its expiry), and the
test then polls with a deadline.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
from redis import Redis

from conversation.limits import Identity, LimitKey, ip_identity, limit_key
from tests.support.conversation import KEYS, kill, start_assistant_for, start_replica
from tests.support.fake_control import FakeControl
from tests.support.servers import Server, start_fake_upstream, start_redis, wait_until
from tests.support.sse import Event, iter_events

ADDRESSES = (f"198.51.100.{n}" for n in itertools.count(1))


@dataclass
class Infra:
    redis: Server
    upstream: Server
    assistant: Server
    db: Redis

    @property
    def fake(self) -> FakeControl:
        return FakeControl(self.upstream)


@pytest.fixture(scope="module")
def infra() -> Iterator[Infra]:
    started: list[Server] = []
    try:
        started.append(db_server := start_redis())
        started.append(upstream := start_fake_upstream())
        started.append(assistant := start_assistant_for(upstream))
        db = Redis(port=db_server.port, decode_responses=True)
        yield Infra(db_server, upstream, assistant, db)
        db.close()
    finally:
        for server in reversed(started):
            server.stop()


@contextlib.contextmanager
def replicas(infra: Infra, count: int, **env: str) -> Iterator[list[Server]]:
    infra.fake.reset()
    started: list[Server] = []
    try:
        for _ in range(count):
            started.append(start_replica(infra.redis, infra.assistant.url, **env))
        yield started
    finally:
        for server in reversed(started):
            server.stop()


@dataclass
class Caller:
    """A client: an address, and a browser cookie or (without one) Bearer tokens."""

    ip: str
    cookie: str | None = None

    @classmethod
    def browser(cls, ip: str | None = None) -> Caller:
        return cls(ip or next(ADDRESSES), secrets.token_urlsafe(32))

    @classmethod
    def api(cls, ip: str | None = None) -> Caller:
        return cls(ip or next(ADDRESSES))

    def kwargs(self, session: Chat | None = None) -> dict[str, Any]:
        headers = {"X-Real-IP": self.ip}
        if session is not None and self.cookie is None:
            headers["Authorization"] = f"Bearer {session.token}"
        cookies = {"chat_browser": self.cookie} if self.cookie else None
        return {"headers": headers, "cookies": cookies, "timeout": 30}

    def create(self, server: Server) -> Chat:
        response = httpx.post(f"{server.url}/api/sessions", json={}, **self.kwargs())
        assert response.status_code == 201, response.text
        data = response.json()
        return Chat(data["session_id"], data["token"])

    def post(self, server: Server, chat: Chat, path: str, **body: Any) -> httpx.Response:
        return httpx.post(chat.url(server, path), json=body, **self.kwargs(chat))

    def send(self, server: Server, chat: Chat, content: str) -> list[Event]:
        """A whole turn, which must be admitted."""
        with httpx.stream(
            "POST", chat.url(server, "/messages"), json={"content": content}, **self.kwargs(chat)
        ) as response:
            assert response.status_code == 200, response.read()
            return list(iter_events(response.iter_lines()))

    @contextlib.contextmanager
    def writing(self, server: Server, chat: Chat, content: str) -> Iterator[str]:
        """A turn whose reply is being written (its first delta read): yields its id."""
        with (
            httpx.Client(**self.kwargs(chat)) as client,
            client.stream("POST", chat.url(server, "/messages"), json={"content": content}) as r,
        ):
            assert r.status_code == 200, r.read()
            events = iter_events(r.iter_lines())
            reply_id = ""
            for event in events:
                if event.event == "start":
                    reply_id = event.json()["message_id"]
                if event.event == "delta":
                    break
            yield reply_id

    def history(self, server: Server, chat: Chat) -> list[dict[str, Any]]:
        response = httpx.get(chat.url(server), **self.kwargs(chat))
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages


@dataclass
class Chat:
    session_id: str
    token: str

    def url(self, server: Server, path: str = "") -> str:
        return f"{server.url}/api/sessions/{self.session_id}{path}"


def assert_limited(response: httpx.Response, who: str, most: float) -> int:
    """A 429 naming `who`, with a Retry-After of at most `most` seconds; returns it."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited"
    assert who in body["detail"] and "not saved" in body["detail"]
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= math.ceil(most)
    return retry_after


def key(kind: LimitKey, identity: Identity) -> str:
    return limit_key("chat", kind, identity)


def age_out(infra: Infra, *identities: Identity) -> None:
    """The turn window ends now for these identities: their turns started long ago."""
    for identity in identities:
        t = key("t", identity)
        members = cast(list[str], infra.db.zrange(t, 0, -1))
        if members:
            infra.db.zadd(t, dict.fromkeys(members, 0))


def test_replies_at_once_per_browser_and_per_address_shared_by_replicas(infra: Infra) -> None:
    with replicas(infra, 2, LIMIT_CLIENT_GENERATIONS="2", LIMIT_IP_GENERATIONS="3") as (a, b):
        infra.fake.script({"stall_after": 1, "times": 3})
        alice = Caller.browser()
        bob = Caller.browser(alice.ip)  # another browser behind the same address
        s1, s2, s3 = (alice.create(a) for _ in range(3))
        with alice.writing(a, s1, "one") as first, alice.writing(b, s2, "two"):
            refused = alice.post(a, s3, "/messages", content="three")
            assert_limited(refused, "this browser", 5)
            assert alice.history(b, s3) == []

            t1, t2 = bob.create(b), bob.create(a)
            with bob.writing(b, t1, "bob one"):
                # Bob's own count is 1, but the address now writes 3 replies.
                assert_limited(bob.post(a, t2, "/messages", content="x"), "your network", 5)
                # Another address is not affected.
                carol = Caller.browser()
                assert carol.send(b, carol.create(a), "hi")[-1].json()["content"] == "Echo: hi"

                # Stopping a reply (on the other replica) gives its slot back.
                stopped = alice.post(b, s1, f"/messages/{first}/cancel")
                assert stopped.json()["status"] == "cancelled"
                events = alice.send(b, s3, "three")
                assert events[-1].json()["content"] == "Echo: three"


def test_a_finished_reply_frees_its_slot_before_done(infra: Infra) -> None:
    with replicas(infra, 2, LIMIT_CLIENT_GENERATIONS="1") as (a, b):
        api = Caller.api()
        chat = api.create(a)
        other = api.create(a)
        for server in (a, b, a):
            assert api.send(server, chat, "again")[-1].event == "done"
        # The session is its own client: another session of the same caller has its own slot.
        infra.fake.script({"stall_after": 1})
        with api.writing(a, chat, "held"):
            assert api.send(b, other, "free")[-1].event == "done"


def test_a_killed_replicas_slot_comes_back_after_its_lease(infra: Infra) -> None:
    with replicas(infra, 2, LIMIT_CLIENT_GENERATIONS="1") as (a, b):
        infra.fake.script({"stall_after": 1})
        alice = Caller.browser()
        s1, s2 = alice.create(a), alice.create(a)
        with alice.writing(a, s1, "held"):
            # Replica a renews the lease while its reply runs: b sees the slot taken.
            assert_limited(alice.post(b, s2, "/messages", content="refused"), "browser", 1)
            kill(a)

        def admitted() -> bool:
            response = alice.post(b, s2, "/messages", content="later")
            return response.status_code == 200

        wait_until(admitted, 15, "the dead replica's slot to come back")
        assert [m["content"] for m in alice.history(b, s2)] == ["later", "Echo: later"]


def test_turns_per_window_per_session_and_per_address(infra: Infra) -> None:
    env = {"LIMIT_CLIENT_TURNS": "3", "LIMIT_IP_TURNS": "5", "LIMIT_TURN_WINDOW": "600"}
    with replicas(infra, 2, **env) as (a, b):
        api = Caller.api()
        first = api.create(a)
        for server in (a, b, a):
            api.send(server, first, "hi")
        assert_limited(api.post(b, first, "/messages", content="4th"), "this session", 600)
        assert len(api.history(a, first)) == 6

        second = api.create(b)
        api.send(a, second, "hi")
        api.send(b, second, "hi")
        assert_limited(api.post(a, second, "/messages", content="x"), "your network", 600)
        # Regenerating is a turn too.
        assert_limited(api.post(a, second, "/regenerate"), "your network", 600)
        elsewhere = Caller.api()
        elsewhere.send(b, elsewhere.create(b), "hi")

        # The window moves on: the oldest turns leave it, and a turn passes again (once the
        # second for which each replica refuses again what it just refused has passed).
        age_out(infra, ip_identity(api.ip), Identity.of("session", first.session_id))
        wait_until(
            lambda: api.post(b, first, "/messages", content="4th").status_code == 200,
            10,
            "a turn to pass once the window moved on",
        )
        assert api.history(b, first)[-1]["status"] == "complete"


def scripts_run(infra: Infra) -> int:
    stats = infra.db.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def test_a_replica_refuses_a_retry_within_a_second_of_its_refusal_without_redis(
    infra: Infra,
) -> None:
    """A client that ignores Retry-After (a loop of POSTs, a socket's frames) costs Redis a
    refusal a second, not two round trips and a script per identity each time."""
    with replicas(infra, 1, LIMIT_CLIENT_TURNS="1", LIMIT_TURN_WINDOW="600") as (a,):
        api = Caller.api()
        chat = api.create(a)
        api.send(a, chat, "hi")
        before = scripts_run(infra)
        began = time.monotonic()
        for _ in range(10):
            assert_limited(api.post(a, chat, "/messages", content="again"), "this session", 600)
        seconds = time.monotonic() - began
        # Each refusal that asks Redis runs three scripts (admit for the address and the
        # session, release of the address's): one such refusal per second passed at most.
        assert scripts_run(infra) - before <= 3 * (1 + math.floor(seconds))
        assert len(api.history(a, chat)) == 2, "no refused message was stored"


def test_tokens_per_window(infra: Infra) -> None:
    env = {"LIMIT_CLIENT_TOKENS": "1", "LIMIT_TOKEN_WINDOW": "3600"}
    with replicas(infra, 2, **env) as (a, b):
        api = Caller.api()
        chat = api.create(a)
        done = api.send(a, chat, "count me")[-1].json()
        spent = key("d", Identity.of("session", chat.session_id))
        usage = done["usage"]
        expected = usage["completion_tokens"] if usage else math.ceil(len(done["content"]) / 4)
        assert int(infra.db.get(spent) or 0) == expected

        refused = api.post(b, chat, "/messages", content="over")
        body = refused.json()
        retry_after = assert_limited(refused, "tokens", 3600)
        assert "renews in 1 h" in body["detail"] or "renews in 60 min" in body["detail"]
        # Retry-After is when the budget's window ends, as Redis counts it.
        assert retry_after - 1 <= infra.db.pttl(spent) / 1000 <= retry_after
        assert len(api.history(a, chat)) == 2

        infra.db.pexpire(spent, 1)  # the window ends now

        def admitted() -> bool:
            return api.post(b, chat, "/messages", content="next day").status_code == 200

        wait_until(admitted, 10, "a new token budget")


def test_session_creations_per_address(infra: Infra) -> None:
    with replicas(infra, 2, LIMIT_IP_SESSIONS="2") as (a, b):
        caller = Caller.browser()
        caller.create(a)
        caller.create(b)
        sessions_before = len(list(infra.db.scan_iter(KEYS.session("*"))))
        headers = {"X-Real-IP": caller.ip}
        refused = [
            httpx.post(f"{a.url}/api/sessions", json={}, headers=headers),
            httpx.post(f"{b.url}/token", params={"name": "x"}, headers=headers),
            httpx.post(f"{a.url}/chat/", json={"message": "hi"}, headers=headers),
        ]
        for response in refused:
            assert response.status_code == 429, response.text
            assert response.json()["code"] == "rate_limited"
            assert "chats" in response.json()["detail"]
            assert 3500 <= int(response.headers["retry-after"]) <= 3600
        assert len(list(infra.db.scan_iter(KEYS.session("*")))) == sessions_before
        Caller.browser().create(b)


def test_sessions_per_browser(infra: Infra) -> None:
    with replicas(infra, 1, MAX_SESSIONS_PER_BROWSER="2") as (a,):
        alice = Caller.browser()
        first, second = alice.create(a), alice.create(a)
        refused = httpx.post(f"{a.url}/api/sessions", json={}, **alice.kwargs())
        assert refused.status_code == 409
        assert refused.json()["code"] == "too_many_sessions"
        assert "Delete" in refused.json()["detail"]
        Caller.browser(alice.ip).create(a)  # another browser

        kwargs = alice.kwargs()
        kwargs["headers"]["X-Requested-With"] = "test"  # the CSRF guard of cookie requests
        deleted = httpx.delete(first.url(a), **kwargs)
        assert deleted.status_code == 204
        third = alice.create(a)
        # A session that expired still sits in the browser's list until listed: dropped at
        # the limit.
        for k in infra.db.scan_iter(KEYS.session(second.session_id) + "*"):
            infra.db.delete(k)
        alice.create(a)
        listed = httpx.get(f"{a.url}/api/sessions", **alice.kwargs()).json()["sessions"]
        assert third.session_id in [s["session_id"] for s in listed]


def test_messages_per_session(infra: Infra) -> None:
    with replicas(infra, 1, MAX_MESSAGES_PER_SESSION="4") as (a,):
        api = Caller.api()
        chat = api.create(a)
        api.send(a, chat, "one")
        api.send(a, chat, "two")
        refused = api.post(a, chat, "/messages", content="three")
        assert refused.status_code == 409
        assert refused.json()["code"] == "session_full"
        assert [m["content"] for m in api.history(a, chat)][::2] == ["one", "two"]
        # Regenerating replaces a reply: the session does not grow.
        with httpx.stream("POST", chat.url(a, "/regenerate"), **api.kwargs(chat)) as r:
            assert r.status_code == 200
            assert list(iter_events(r.iter_lines()))[-1].event == "done"


def test_the_tutorials_anonymous_chat_is_limited_per_address(infra: Infra) -> None:
    env = {"LIMIT_IP_GENERATIONS": "1", "LIMIT_IP_TURNS": "2"}
    with replicas(infra, 2, **env) as (a, b):
        infra.fake.script({"stall_after": 1})
        headers = {"X-Real-IP": next(ADDRESSES)}
        body = {"user_message": "hello there"}
        with (
            httpx.Client(headers=headers, timeout=30) as client,
            client.stream("POST", f"{a.url}/api/chat", json=body) as held,
        ):
            assert held.status_code == 200
            lines = held.iter_lines()  # kept: a dropped iterator closes the response
            assert next(lines) == "data: Echo:"
            refused = httpx.post(f"{b.url}/api/chat", json=body, headers=headers)
            assert_limited(refused, "your network", 5)
            other = httpx.post(f"{b.url}/api/chat", json=body, headers={"X-Real-IP": "::1:2"})
            assert other.status_code == 200
        # The client went away: its slot is free again.

        def admitted() -> bool:
            response = httpx.post(f"{b.url}/api/chat", json=body, headers=headers)
            return response.status_code == 200

        wait_until(admitted, 10, "the slot of the closed /api/chat")
        # Each counted as a turn (the refused ones did not): the third is refused, here by
        # the tutorials' JSON turn.
        refused = httpx.post(f"{a.url}/chat/", json={"message": "x"}, headers=headers)
        assert_limited(refused, "your network", 60)


def test_every_key_has_an_expiry(infra: Infra) -> None:
    """Last in this file: every key the tests above left behind expires by itself."""
    keys = list(infra.db.scan_iter("*"))
    assert any(k.startswith("chat:l:") for k in keys)
    lasting = [k for k in keys if infra.db.pttl(k) < 0]
    assert lasting == []
