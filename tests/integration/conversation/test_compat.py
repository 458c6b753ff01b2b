"""The original tutorials' interfaces, driven by plain httpx and a plain WebSocket client."""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.conversation.conftest import Fast


def test_test_route(fast: Fast) -> None:
    assert httpx.get(f"{fast.conversation.url}/test").json() == {"msg": "API is Online"}


@pytest.mark.parametrize("query", ["?name=", "?name=%20%20", ""])
def test_token_needs_a_name(fast: Fast, query: str) -> None:
    r = httpx.post(f"{fast.conversation.url}/token{query}")
    assert r.status_code == 400
    assert r.json()["detail"] == {"loc": "name", "msg": "Enter a valid name"}


def test_token_chat_socket_and_refresh_token(fast: Fast) -> None:
    base = fast.conversation.url
    created = httpx.post(f"{base}/token", params={"name": "Ada"}).json()
    assert set(created) == {"name", "token"} and created["name"] == "Ada"
    token = created["token"]
    ws_base = base.replace("http://", "ws://")
    with connect(f"{ws_base}/chat?token={token}") as ws:
        ws.send("Hello bot")
        assert ws.recv(timeout=30) == "Echo: Hello bot"
        ws.send("And again")
        assert ws.recv(timeout=30) == "Echo: And again"
    for method in ("GET", "POST"):
        history = httpx.request(method, f"{base}/refresh_token", params={"token": token})
        assert history.status_code == 200, history.text
        body = history.json()
        assert set(body) == {"token", "name", "messages", "session_start"}
        assert (body["token"], body["name"]) == (token, "Ada")
        assert [m["msg"] for m in body["messages"]] == [
            "Hello bot",
            "Echo: Hello bot",
            "And again",
            "Echo: And again",
        ]
        assert all({"id", "msg", "timestamp"} <= set(m) for m in body["messages"])
    # The same session through the main API, with the same token as Bearer.
    bad = httpx.get(f"{base}/refresh_token", params={"token": "nope"})
    assert bad.status_code == 400
    assert bad.json()["detail"] == "Session expired or does not exist"


@pytest.mark.parametrize("query", ["", "?token=nope"])
def test_chat_socket_without_a_valid_token_closes_1008(fast: Fast, query: str) -> None:
    ws_base = fast.conversation.url.replace("http://", "ws://")
    with connect(f"{ws_base}/chat{query}") as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_api_chat_streams_one_word_per_event(fast: Fast) -> None:
    url = f"{fast.conversation.url}/api/chat"
    with httpx.stream("POST", url, json={"user_message": "split  these words"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines == ["data: Echo:", "data: split", "data: these", "data: words"]
    bad = httpx.post(url, json={"message": "wrong field"})
    assert bad.status_code == 422


def test_chat_json_turns_start_and_continue_a_session(fast: Fast) -> None:
    url = f"{fast.conversation.url}/chat/"
    first = httpx.post(url, json={"message": "first"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["response"] == "Echo: first"
    sid, token = body["session_id"], body["token"]
    empty_id = httpx.post(url, json={"session_id": "", "message": "fresh"}).json()
    assert empty_id["session_id"] != sid and empty_id["token"]
    auth = {"Authorization": f"Bearer {token}"}
    second = httpx.post(url, json={"session_id": sid, "message": "second"}, headers=auth)
    assert second.json() == {"response": "Echo: second", "session_id": sid}
    stranger = httpx.post(url, json={"session_id": sid, "message": "x"})
    assert stranger.status_code == 401
    history = httpx.get(f"{fast.conversation.url}/api/sessions/{sid}", headers=auth).json()
    assert [m["content"] for m in history["messages"]][-1] == "Echo: second"
