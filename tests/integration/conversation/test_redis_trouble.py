"""When Redis stalls or refuses writes mid-reply (a restart, a failover), the connected client
still gets every token at once, from memory, and the whole reply is stored once Redis takes
writes again: a Redis hiccup delays no token and loses no text."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from redis import Redis

from tests.integration.conversation.conftest import SLOW_TOKENS
from tests.support.conversation import (
    create_session,
    get_session,
    open_stream,
    read_until,
    slow_reply,
    start_assistant_for,
    start_replica,
    text_of,
)
from tests.support.metrics import scrape
from tests.support.servers import Server, start_redis, wait_until

FINISH_CALLS = "chatstack_redis_latency_seconds_count"
# Tokens that must reach the client while Redis answers nothing: ~0.8 s of the slow
# upstream's pace.
DURING_STALL = 20


@pytest.fixture
def own_redis() -> Iterator[Server]:
    """A Redis for this test alone: the others must not stall with it."""
    server = start_redis()
    yield server
    server.stop()


def test_a_redis_stall_mid_reply_holds_back_no_token_and_loses_nothing(
    own_redis: Server, slow_upstream: Server
) -> None:
    assistant = start_assistant_for(slow_upstream)
    # Stream writes every 100 ms: several of them meet the stall, not just the first.
    conversation = start_replica(own_redis, assistant.url, STREAM_UNWATCHED_FLUSH_MS="100")
    try:
        session = create_session(conversation)
        with open_stream(session, "POST", "/messages", json={"content": "hi"}) as events:
            seen = read_until(events, "delta")  # stored and streaming: now Redis stops
            os.kill(own_redis.proc.pid, signal.SIGSTOP)
            try:
                for _ in range(DURING_STALL):
                    seen.append(next(events))
                    assert seen[-1].event == "delta", seen[-1]
            finally:
                os.kill(own_redis.proc.pid, signal.SIGCONT)
            seen += read_until(events, "done")
        assert text_of(seen) == slow_reply(SLOW_TOKENS)
        reply = get_session(session)["messages"][-1]
        assert (reply["status"], reply["content"]) == ("complete", slow_reply(SLOW_TOKENS))
    finally:
        conversation.stop()
        assistant.stop()


def test_a_reply_finishing_while_redis_refuses_writes_is_stored_once_it_takes_them(
    own_redis: Server, slow_upstream: Server
) -> None:
    """Redis refuses every script (as a replica refuses writes during a failover) from the
    reply's first token until the reply has ended and conversation has failed to store it."""
    admin = Redis(port=own_redis.port, decode_responses=True)
    assistant = start_assistant_for(slow_upstream)
    conversation = start_replica(own_redis, assistant.url)
    try:
        session = create_session(conversation)
        with open_stream(session, "POST", "/messages", json={"content": "hi"}) as events:
            seen = read_until(events, "delta")
            # enabled: redis-py's default turns the user off, and every new connection
            # would then fail to authenticate, which a failover does not do.
            admin.acl_setuser("default", enabled=True, nopass=True, commands=["-@scripting"])
            try:
                while text_of(seen) != slow_reply(SLOW_TOKENS):
                    seen.append(next(events))
                # Each attempt is timed, refused or not: one means the store was refused.
                wait_until(
                    lambda: scrape(conversation).value(FINISH_CALLS, command="finish") >= 1,
                    10,
                    "conversation trying to store the finished reply",
                )
            finally:
                admin.acl_setuser("default", enabled=True, nopass=True, commands=["+@all"])
            assert read_until(events, "done")[-1].json()["status"] == "complete"
        reply = get_session(session)["messages"][-1]
        assert (reply["status"], reply["content"]) == ("complete", slow_reply(SLOW_TOKENS))
    finally:
        admin.close()
        conversation.stop()
        assistant.stop()
