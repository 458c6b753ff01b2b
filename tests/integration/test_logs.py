"""The logs of real conversation and assistant processes (at DEBUG) after chat turns through
nginx: one JSON object per line, nginx's request id on the lines a request causes, in both
services, and never a token, a cookie or a message's text."""

from __future__ import annotations

import json
from typing import Any

import httpx
from websockets.sync.client import connect

from tests.conftest import Stack
from tests.integration.conftest import fake
from tests.support.conversation import read_until
from tests.support.servers import Server, wait_until
from tests.support.sse import iter_events

FIELDS = {"time", "level", "logger", "message", "request_id"}


def log_lines(server: Server) -> list[dict[str, Any]]:
    lines = []
    for raw in server.log().splitlines():
        line = json.loads(raw)  # every line is one JSON object
        assert isinstance(line, dict) and set(line) >= FIELDS, raw
        lines.append(line)
    return lines


def chat(http: httpx.Client, url: str, content: str, request_id: str, **headers: str) -> str:
    """One turn over SSE; the reply's text."""
    with http.stream(
        "POST",
        url,
        json={"content": content},
        headers={"X-Request-ID": request_id, **headers},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        events = read_until(iter_events(response.iter_lines()), "done")
    return "".join(e.json()["text"] for e in events if e.event == "delta")


def test_logs_are_json_with_the_request_id_and_without_secrets(observed: Stack) -> None:
    base = observed.nginx.url
    secret_text = "my private words 5d1e"
    with httpx.Client(base_url=base) as http:
        created = http.post("/api/sessions", json={"name": "logs"}, headers={"X-Request-ID": "a1"})
        assert created.status_code == 201, created.text
        sid, token = created.json()["session_id"], created.json()["token"]
        cookie = str(next(iter(http.cookies.jar)).value)  # the browser's cookie
        messages = f"/api/sessions/{sid}/messages"
        auth = {"Authorization": f"Bearer {token}"}
        reply = chat(http, messages, secret_text, "sse-turn-1", **auth)
        assert secret_text in reply  # the fake model echoes it: the reply holds it too
        # A failure before the first token: assistant retries, and logs it under the id.
        fake(observed).script({"status": 500, "message": "transient"})
        chat(http, messages, f"{secret_text} again", "retried-turn-1", **auth)

    ws_url = f"{base.replace('http://', 'ws://')}/api/sessions/{sid}/ws?token={token}"
    with connect(ws_url, additional_headers={"X-Request-ID": "ws-turn-1"}) as ws:
        ws.send(json.dumps({"type": "message", "content": f"{secret_text} over ws"}))
        while json.loads(ws.recv(timeout=30))["event"] != "done":
            pass

    def retry_logged() -> bool:
        return any(line["request_id"] == "retried-turn-1" for line in log_lines(observed.assistant))

    wait_until(retry_logged, 10, "assistant's line about its retry")
    conversation, assistant = log_lines(observed.conversation), log_lines(observed.assistant)
    accepted = [line for line in conversation if "[accepted]" in line["message"]]
    assert [line["request_id"] for line in accepted] == ["ws-turn-1"]
    assert "token=[redacted]" in accepted[0]["message"]
    retried = [line for line in assistant if line["request_id"] == "retried-turn-1"]
    assert retried and retried[0]["level"] == "WARNING" and "retrying" in retried[0]["message"]

    for server in (observed.conversation, observed.assistant):
        text = server.log()
        for secret in (token, cookie, secret_text):
            assert secret not in text, (server.name, secret)
