"""The session WebSocket: the SSE events as JSON frames, with a plain websockets client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.integration.conversation.conftest import Fast, Slow
from tests.support.conversation import Session, create_session, get_session
from tests.support.metrics import scrape


def ws_url(session: Session, query: str = "") -> str:
    return session.url("/ws").replace("http://", "ws://") + query


def frames_until(ws: ClientConnection, name: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        frame = json.loads(ws.recv(timeout=30))
        frames.append(frame)
        if frame["event"] == name:
            return frames


def test_chat_over_websocket_with_token_query(fast: Fast) -> None:
    session = create_session(fast.conversation)
    with connect(ws_url(session, f"?token={session.token}")) as ws:
        ws.send(json.dumps({"type": "message", "content": "over ws"}))
        frames = frames_until(ws, "done")
        ws.send(json.dumps({"type": "message", "content": "twice", "client_message_id": "w1"}))
        second = frames_until(ws, "done")
    names = [f["event"] for f in frames]
    assert names[:2] == ["user", "start"] and set(names[2:-1]) == {"delta"}
    assert all(set(f) == {"event", "id", "data"} for f in frames)
    assert frames[-1]["data"]["content"] == "Echo: over ws"
    assert frames[-1]["id"] == str(len("Echo: over ws"))
    assert second[-1]["data"]["content"] == "Echo: twice"
    assert len(get_session(session)["messages"]) == 4


def test_token_as_subprotocol(fast: Fast) -> None:
    session = create_session(fast.conversation)
    with connect(ws_url(session), subprotocols=["bearer", session.token]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "bearer"
        ws.send(json.dumps({"type": "message", "content": "sub"}))
        assert frames_until(ws, "done")[-1]["data"]["content"] == "Echo: sub"


@pytest.mark.parametrize("query", ["", "?token=wrong"])
def test_missing_or_bad_token_closes_with_1008(fast: Fast, query: str) -> None:
    session = create_session(fast.conversation)
    with connect(ws_url(session, query)) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_bad_frames_get_error_events(fast: Fast) -> None:
    session = create_session(fast.conversation)
    with connect(ws_url(session, f"?token={session.token}")) as ws:
        ws.send("not json")
        assert json.loads(ws.recv(timeout=10))["data"]["code"] == "invalid"
        ws.send(b"\xff binary")
        assert json.loads(ws.recv(timeout=10))["data"]["code"] == "invalid"
        ws.send(json.dumps({"type": "message", "content": "x" * 9000}))
        error = json.loads(ws.recv(timeout=10))
        assert error["event"] == "error" and "8000" in error["data"]["message"]
        ws.send(json.dumps({"type": "message", "content": "still open"}))
        assert frames_until(ws, "done")[-1]["data"]["content"] == "Echo: still open"


def test_cancel_over_websocket_and_409_while_writing(slow: Slow) -> None:
    session = create_session(slow.a)
    with connect(ws_url(session, f"?token={session.token}")) as ws:
        ws.send(json.dumps({"type": "message", "content": "long"}))
        frames_until(ws, "delta")
        ws.send(json.dumps({"type": "message", "content": "too soon"}))
        busy = frames_until(ws, "error")[-1]["data"]
        assert busy["code"] == "conflict"
        ws.send(json.dumps({"type": "cancel"}))
        done = frames_until(ws, "done")[-1]["data"]
    assert done["status"] == "cancelled"
    assert get_session(session)["messages"][1]["status"] == "cancelled"


def test_messages_while_the_sockets_reply_is_written_are_refused_without_redis(
    slow: Slow,
) -> None:
    """A client flooding its own socket during its reply: each message is refused as a turn's
    start would refuse it (the same words as the HTTP 409), and none reaches Redis."""
    session = create_session(slow.a)
    with connect(ws_url(session, f"?token={session.token}")) as ws:
        ws.send(json.dumps({"type": "message", "content": "long"}))
        reply_id = frames_until(ws, "start")[-1]["data"]["message_id"]
        frames_until(ws, "delta")
        before = scrape(slow.a)
        refusals = []
        for i in range(5):
            ws.send(json.dumps({"type": "message", "content": f"flood {i}"}))
            refusals.append(frames_until(ws, "error")[-1]["data"])
        after = scrape(slow.a)
        http = httpx.post(
            session.url("/messages"),
            json={"content": "over http"},
            headers={"Authorization": f"Bearer {session.token}"},
            timeout=10,
        )
        ws.send(json.dumps({"type": "cancel"}))
        assert frames_until(ws, "done")[-1]["data"]["status"] == "cancelled"
        # Free again the moment its reply has ended: the next message is a turn.
        ws.send(json.dumps({"type": "message", "content": "next"}))
        assert frames_until(ws, "start")[-1]["data"]["message_id"] != reply_id
        ws.send(json.dumps({"type": "cancel"}))
        frames_until(ws, "done")
    assert http.status_code == 409
    assert {r["code"] for r in refusals} == {"conflict"}
    assert {r["message"] for r in refusals} == {http.json()["detail"]}
    assert reply_id in refusals[0]["message"]
    turns = "chatstack_redis_latency_seconds_count"
    assert before.value(turns, command="begin_turn") >= 1
    assert after.value(turns, command="begin_turn") == before.value(turns, command="begin_turn")
