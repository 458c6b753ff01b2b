"""The embedded SmolLM2 model end to end: nginx -> conversation -> assistant -> llama.cpp."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Stack, build_stack
from tests.integration.assistant.test_local_model import LONG
from tests.support.sse import iter_events, read_events

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


@pytest.fixture(scope="module")
def one_slot_stack() -> Iterator[Stack]:
    """The whole product with the embedded model writing one reply at a time."""
    env = {"ASSISTANT_PROVIDER": "local", "LOCAL_PARALLEL": "1", "LOCAL_MAX_TOKENS": "1000"}
    with build_stack(env, None) as s:
        yield s


def test_a_reply_waiting_for_the_model_tells_its_place_until_its_text(
    one_slot_stack: Stack,
) -> None:
    stack = one_slot_stack
    with httpx.Client(base_url=stack.url, timeout=120) as client:
        session = client.post("/api/sessions", json={}).json()
        auth = {"Authorization": f"Bearer {session['token']}"}
        url = f"/api/sessions/{session['session_id']}/messages"
        with httpx.stream(
            "POST", f"{stack.assistant.url}/v1/chat/completions", json=LONG, timeout=120
        ) as busy:
            held = iter_events(busy.iter_lines())
            next(held)  # the only slot is writing a long reply
            with client.stream("POST", url, json={"content": "Hi"}, headers=auth) as r:
                assert r.status_code == 200
                events = iter_events(r.iter_lines())
                first = [next(events) for _ in range(3)]
                assert [e.event for e in first] == ["user", "start", "queued"], stack.logs()
                assert first[2].json() == {"position": 0}
                busy.close()  # the long reply's reader leaves: its slot goes to this one
                rest = list(events)
    queued_and_after = [e.event for e in rest]
    assert queued_and_after[0] == "delta" and queued_and_after[-1] == "done", queued_and_after
