"""WebSocket limits: the frame size cap (1009), the frame rate, binary frames, and a turn
over the client's limits, through conversation's own WebSocket server (ws_server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.integration.conversation.conftest import Fast, echo_stack
from tests.integration.conversation.test_websocket import frames_until, ws_url
from tests.support.conversation import create_session
from tests.support.servers import Server

MAX_CHARS = 100
BURST = 3


@pytest.fixture(scope="module")
def limited(redis_server: Server) -> Iterator[Fast]:
    settings = {
        "MAX_MESSAGE_CHARS": str(MAX_CHARS),
        # One frame each 10 s after the burst: the test's frames always come faster.
        "WS_FRAME_RATE": "0.1",
        "WS_FRAME_BURST": str(BURST),
        "LIMIT_CLIENT_TURNS": "1",
    }
    with echo_stack(redis_server, **settings) as stack:
        yield stack


def open_socket(stack: Fast, address: str) -> ClientConnection:
    session = create_session(stack.conversation)
    url = ws_url(session, f"?token={session.token}")
    return connect(url, additional_headers={"X-Real-IP": address})


def closed_with(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def message(content: str) -> str:
    return json.dumps({"type": "message", "content": content}, ensure_ascii=False)


def test_a_frame_past_the_cap_closes_the_socket_with_1009(limited: Fast) -> None:
    with open_socket(limited, "192.0.2.1") as ws:
        # The longest message, in 4-byte characters, fits.
        longest = "\U0001f600" * MAX_CHARS
        ws.send(message(longest))
        assert frames_until(ws, "done")[-1]["data"]["content"] == f"Echo: {longest}"
    with open_socket(limited, "192.0.2.2") as ws:
        ws.send(message("x" * (MAX_CHARS * 4 + 1024)))
        assert closed_with(ws) == 1009


def test_binary_frames_are_answered_with_an_error(limited: Fast) -> None:
    with open_socket(limited, "192.0.2.3") as ws:
        ws.send(message("hi").encode())
        error = json.loads(ws.recv(timeout=10))
        assert error["event"] == "error"
        assert error["data"] == {"code": "invalid", "message": "send JSON text frames"}
        ws.send(message("as text"))
        assert frames_until(ws, "done")[-1]["data"]["content"] == "Echo: as text"


def test_frames_past_the_rate_get_an_error_then_close_1008(limited: Fast) -> None:
    with open_socket(limited, "192.0.2.4") as ws:
        for _ in range(BURST):
            ws.send(json.dumps({"type": "cancel"}))  # nothing to stop: no answer
        ws.send(json.dumps({"type": "cancel"}))
        error: dict[str, Any] = json.loads(ws.recv(timeout=10))
        assert error["event"] == "error"
        assert error["data"]["code"] == "rate_limited"
        assert 1 <= error["data"]["retry_after"] <= 10
        assert "Too many frames" in error["data"]["message"]
        ws.send(json.dumps({"type": "cancel"}))
        assert closed_with(ws) == 1008


def test_a_turn_over_the_limit_gets_an_error_frame_and_the_socket_stays_open(
    limited: Fast,
) -> None:
    with open_socket(limited, "192.0.2.5") as ws:
        ws.send(message("one"))
        assert frames_until(ws, "done")[-1]["data"]["content"] == "Echo: one"
        for _ in range(2):
            ws.send(message("two"))
            error = json.loads(ws.recv(timeout=10))
            assert error["event"] == "error" and error["id"] == "0"
            data = error["data"]
            assert set(data) == {"code", "message", "retry_after"}
            assert data["code"] == "rate_limited"
            assert "not saved" in data["message"]
            assert 1 <= data["retry_after"] <= 60


def test_the_tutorials_socket_is_limited_too(limited: Fast) -> None:
    base = limited.conversation.url
    token = httpx.post(f"{base}/token", params={"name": "tutorial"}, timeout=10).json()["token"]
    url = f"{base.replace('http://', 'ws://')}/chat?token={token}"
    with connect(url, additional_headers={"X-Real-IP": "192.0.2.6"}) as ws:
        ws.send("one")
        assert ws.recv(timeout=10) == "Echo: one"
        ws.send("two")  # the session's one turn per window is spent
        refusal = str(ws.recv(timeout=10))
        assert "this session" in refusal and "not saved" in refusal
        for _ in range(BURST - 2):
            ws.send("three")
            ws.recv(timeout=10)
        ws.send("too fast")
        assert json.loads(ws.recv(timeout=10))["data"]["code"] == "rate_limited"
        ws.send("again")
        assert closed_with(ws) == 1008
