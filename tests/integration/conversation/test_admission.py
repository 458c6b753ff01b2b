"""A full replica refuses a turn at once (503 + Retry-After) and stores nothing of it.

MAX_ACTIVE_GENERATIONS=2 and a fake model that stalls after one token: two replies stay in
flight for as long as the test wants, so "full" is a state, not a race against a clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conversation.conftest import Fast, echo_stack
from tests.support.conversation import create_session, get_session, open_stream, read_until, send
from tests.support.fake_control import FakeControl
from tests.support.servers import Server

LIMIT = 2


@pytest.fixture(scope="module")
def capped(redis_server: Server) -> Iterator[Fast]:
    with echo_stack(redis_server, MAX_ACTIVE_GENERATIONS=str(LIMIT)) as stack:
        yield stack


def test_the_turn_past_the_cap_is_refused_at_once_and_loses_nothing(capped: Fast) -> None:
    fake = FakeControl(capped.upstream)
    fake.reset()
    fake.script({"stall_after": 1, "times": LIMIT})
    busy = [create_session(capped.conversation) for _ in range(LIMIT)]
    extra = create_session(capped.conversation)
    with open_stream(busy[0], "POST", "/messages", json={"content": "one"}) as first:
        read_until(first, "delta")
        with open_stream(busy[1], "POST", "/messages", json={"content": "two"}) as second:
            reply_id = read_until(second, "start")[-1].json()["message_id"]
            read_until(second, "delta")

            refused = httpx.post(
                extra.url("/messages"), json={"content": "three"}, headers=extra.auth, timeout=10
            )
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert "not saved" in refused.json()["detail"]
            assert get_session(extra)["messages"] == []
            # The tutorials' JSON turn is refused the same way, before it creates a session.
            compat = httpx.post(
                f"{capped.conversation.url}/chat/", json={"message": "four"}, timeout=10
            )
            assert compat.status_code == 503
            assert compat.headers["retry-after"] == "1"

            # One reply ends (stopped here; finishing normally frees its slot the same way).
            stopped = httpx.post(
                busy[1].url(f"/messages/{reply_id}/cancel"), headers=busy[1].auth, timeout=10
            )
            assert stopped.json()["status"] == "cancelled"
            read_until(second, "done")

        events = send(extra, "three")
        assert events[-1].event == "done"
        assert [m["content"] for m in get_session(extra)["messages"]] == ["three", "Echo: three"]
