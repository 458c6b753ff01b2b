"""The embedded SmolLM2 model end to end: nginx -> conversation -> assistant -> llama.cpp."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Stack
from tests.support.sse import read_events

pytestmark = pytest.mark.model


def test_local_model_answers_through_the_whole_stack(model_stack: Stack) -> None:
    with httpx.Client(base_url=model_stack.url, timeout=120) as client:
        created = client.post("/api/sessions", json={})
        assert created.status_code == 201, created.text
        session = created.json()
        auth = {"Authorization": f"Bearer {session['token']}"}
        url = f"/api/sessions/{session['session_id']}/messages"
        with client.stream("POST", url, json={"content": "What is 2+2?"}, headers=auth) as r:
            assert r.status_code == 200
            events = read_events(r)

    names = [e.event for e in events]
    assert names[0] == "user" and names[-1] == "done", (names, model_stack.logs())
    streamed = "".join(e.json()["text"] for e in events if e.event == "delta")
    assert streamed.strip(), "the local model produced no text"
    assert events[-1].json()["content"] == streamed

    history = httpx.get(f"{model_stack.url}/api/sessions/{session['session_id']}", headers=auth)
    roles = [(m["role"], m["status"]) for m in history.json()["messages"]]
    # The stack's model writes at most LOCAL_MAX_TOKENS (48) tokens: a longer answer is cut,
    # and says so (`length`) in the `done` event and in the history alike.
    status = events[-1].json()["status"]
    assert status in ("complete", "length")
    assert roles == [("user", "complete"), ("assistant", status)]
