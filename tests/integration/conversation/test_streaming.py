"""Replies being written: 409, disconnects, resume and cancel from another replica, a replica
or assistant dying mid-reply. The fake model writes SLOW_TOKENS tokens, SLOW_DELAY_MS apart,
so every step here happens while the reply is still being written."""

from __future__ import annotations

from typing import Any

import httpx
import redis

from tests.integration.conversation.conftest import SLOW_TOKENS, Slow
from tests.support.conversation import (
    KEYS,
    Session,
    create_session,
    get_session,
    kill,
    open_stream,
    read_until,
    slow_reply,
    start_assistant_for,
    start_replica,
    text_of,
)
from tests.support.servers import Server
from tests.support.sse import Event, iter_events

FULL = slow_reply(SLOW_TOKENS)


def resume(session: Session, server: Server, mid: str, last_id: str | None = None) -> list[Event]:
    headers = {**session.auth, **({"Last-Event-ID": last_id} if last_id else {})}
    url = session.url(f"/messages/{mid}/stream", server)
    with httpx.stream("GET", url, headers=headers, timeout=60) as r:
        assert r.status_code == 200, r.read()
        return list(iter_events(r.iter_lines()))


def cancel(session: Session, server: Server, mid: str) -> dict[str, Any]:
    r = httpx.post(session.url(f"/messages/{mid}/cancel", server), headers=session.auth, timeout=30)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_second_message_while_writing_is_409_on_any_replica(slow: Slow) -> None:
    session = create_session(slow.a)
    with open_stream(session, "POST", "/messages", slow.a, json={"content": "first"}) as events:
        mid = read_until(events, "delta")[1].json()["message_id"]
        for server in (slow.a, slow.b):
            r = httpx.post(
                session.url("/messages", server), json={"content": "second"}, headers=session.auth
            )
            assert r.status_code == 409
            assert mid in r.json()["detail"] and "cancel" in r.json()["detail"]
        regen = httpx.post(session.url("/regenerate", slow.b), headers=session.auth)
        assert regen.status_code == 409
        cancel(session, slow.a, mid)
    assert get_session(session)["messages"][0]["content"] == "first"


def test_browser_disconnect_mid_reply_still_stores_the_reply(slow: Slow) -> None:
    session = create_session(slow.a)
    with open_stream(session, "POST", "/messages", slow.a, json={"content": "bye"}) as events:
        mid = read_until(events, "delta")[1].json()["message_id"]
    # The connection is gone; the reply goes on. Follow it to its end from the other replica.
    events_b = resume(session, slow.b, mid)
    assert events_b[-1].event == "done"
    assert text_of(events_b) == FULL
    reply = get_session(session)["messages"][1]
    assert (reply["content"], reply["status"]) == (FULL, "complete")


def test_resume_after_a_dropped_connection_on_another_replica(slow: Slow) -> None:
    session = create_session(slow.a)
    with open_stream(session, "POST", "/messages", slow.a, json={"content": "go"}) as events:
        got = read_until(events, "delta")
        got += read_until(events, "delta")
        got += read_until(events, "delta")
    mid, last_id = got[1].json()["message_id"], got[-1].id
    assert last_id is not None
    before = text_of(got)
    assert len(before) == int(last_id)
    rest_b = resume(session, slow.b, mid, last_id)
    rest_a = resume(session, slow.a, mid, last_id)
    assert rest_b[0].event == "delta"  # no start: the client has it already
    assert before + text_of(rest_b) == FULL == before + text_of(rest_a)
    # Served while being written: several deltas, not one block from the history.
    assert sum(e.event == "delta" for e in rest_b) > 1
    assert rest_b[-1].event == rest_a[-1].event == "done"
    assert int(rest_b[-1].id or 0) == len(FULL)


def test_reloaded_page_sees_streaming_status_and_resumes(slow: Slow) -> None:
    session = create_session(slow.a)
    with open_stream(session, "POST", "/messages", slow.a, json={"content": "reload"}) as events:
        read_until(events, "delta")
        read_until(events, "delta")
        reply = get_session(session, slow.b)["messages"][1]
        assert reply["status"] == "streaming"
        assert FULL.startswith(reply["content"])
        replay = resume(session, slow.b, reply["id"])
    assert replay[0].event == "start" and replay[-1].event == "done"
    assert text_of(replay) == FULL


def test_cancel_from_another_replica_keeps_the_partial_reply(slow: Slow) -> None:
    session = create_session(slow.a)
    with open_stream(session, "POST", "/messages", slow.a, json={"content": "stop"}) as events:
        mid = read_until(events, "delta")[1].json()["message_id"]
        stopped = cancel(session, slow.b, mid)
        assert stopped["status"] == "cancelled"
        assert stopped["content"] and FULL.startswith(stopped["content"])
        assert len(stopped["content"]) < len(FULL)
        rest = list(events)
    assert rest[-1].event == "done" and rest[-1].json()["status"] == "cancelled"
    reply = get_session(session)["messages"][1]
    assert (reply["status"], reply["content"]) == ("cancelled", stopped["content"])
    # Cancelling again changes nothing.
    assert cancel(session, slow.a, mid) == stopped


def test_cancel_on_the_writing_replica(slow: Slow) -> None:
    session = create_session(slow.a)
    with open_stream(session, "POST", "/messages", slow.a, json={"content": "stop"}) as events:
        mid = read_until(events, "delta")[1].json()["message_id"]
        stopped = cancel(session, slow.a, mid)
        assert stopped["status"] == "cancelled"
        assert read_until(events, "done")[-1].json()["status"] == "cancelled"


def test_heartbeats_keep_streams_alive(slow: Slow) -> None:
    session = create_session(slow.a)
    url = session.url("/messages", slow.a)
    with httpx.stream("POST", url, json={"content": "hb"}, headers=session.auth, timeout=60) as r:
        lines = list(r.iter_lines())
    assert ": ping" in lines
    assert lines.count("event: done") == 1


def test_a_dead_replica_leaves_its_reply_interrupted_not_hanging(slow: Slow) -> None:
    doomed = start_replica(slow.redis, slow.assistant.url)
    session = create_session(doomed)
    try:
        with open_stream(session, "POST", "/messages", doomed, json={"content": "x"}) as events:
            mid = read_until(events, "delta")[1].json()["message_id"]
            read_until(events, "delta")
            kill(doomed)
    finally:
        doomed.stop()
    events_b = resume(session, slow.b, mid)
    assert events_b[-1].event == "error"
    assert events_b[-1].json()["code"] == "interrupted"
    reply = get_session(session, slow.b)["messages"][1]
    assert reply["status"] == "interrupted"
    assert reply["content"] and FULL.startswith(reply["content"])
    # The session is free again.
    with open_stream(session, "POST", "/messages", slow.b, json={"content": "again"}) as events:
        new_mid = read_until(events, "start")[-1].json()["message_id"]
    cancel(session, slow.b, new_mid)


def test_assistant_down_mid_reply_then_regenerate(slow: Slow) -> None:
    assistant = start_assistant_for(slow.upstream)
    replica = start_replica(slow.redis, assistant.url)
    try:
        session = create_session(replica)
        with open_stream(session, "POST", "/messages", replica, json={"content": "q"}) as events:
            read_until(events, "delta")
            kill(assistant)
            error = read_until(events, "error")[-1].json()
        assert error["code"] == "assistant_disconnected"
        assert "regenerate" in error["message"]
        messages = get_session(session)["messages"]
        assert [(m["role"], m["status"]) for m in messages] == [
            ("user", "complete"),
            ("assistant", "error"),
        ]
        assert FULL.startswith(messages[1]["content"])
        assistant = start_assistant_for(slow.upstream, port=assistant.port)
        with open_stream(session, "POST", "/regenerate", replica) as events:
            mid = read_until(events, "delta")[0].json()["message_id"]
        cancel(session, replica, mid)
    finally:
        replica.stop()
        assistant.stop()


def test_resuming_renews_the_session(slow: Slow) -> None:
    session = create_session(slow.a)
    with open_stream(session, "POST", "/messages", slow.a, json={"content": "x"}) as events:
        mid = read_until(events, "start")[-1].json()["message_id"]
        r = redis.Redis(port=slow.redis.port, decode_responses=True)
        key = KEYS.session(session.session_id)
        r.expire(key, 100)
        cancel(session, slow.b, mid)
        assert r.ttl(key) > 1000
