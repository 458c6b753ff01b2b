"""What a client sees while the model is not ready or not reachable: `GET /api/health/ready`
and the error codes of a refused reply, stored so that a page that reloads sees them too.

"Loading" is a real assistant whose provider has not finished starting: the Hugging Face
provider fetches its chat template from HF_HUB_URL before it is ready, and here that URL is a
gate that holds the request until the test opens it (then answers 404: the built-in template).
"Unreachable" is an ASSISTANT_URL nobody listens on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.conversation.conftest import Fast
from tests.support.conversation import (
    Session,
    create_session,
    get_session,
    send,
    start_replica,
)
from tests.support.fake_control import closed_port, start_hf_upstream
from tests.support.readiness import Gate, start_loading_assistant
from tests.support.servers import (
    Server,
    running,
    wait_until,
)
from tests.support.sse import Event, iter_events


@dataclass
class Loading:
    gate: Gate
    assistant: Server
    conversation: Server


@pytest.fixture
def loading(redis_server: Server) -> Iterator[Loading]:
    gate = Gate()
    try:
        with (
            running(start_hf_upstream()) as hf,
            running(start_loading_assistant(gate, hf)) as assistant,
            running(start_replica(redis_server, assistant.url)) as conversation,
        ):
            wait_until(gate.held.is_set, 10, "assistant's request for its chat template")
            yield Loading(gate, assistant, conversation)
    finally:
        gate.close()


@pytest.fixture(scope="module")
def unreachable(redis_server: Server) -> Iterator[Server]:
    with running(start_replica(redis_server, f"http://127.0.0.1:{closed_port()}")) as server:
        yield server


def readiness(server: Server) -> httpx.Response:
    return httpx.get(f"{server.url}/api/health/ready", timeout=10)


def regenerate(session: Session) -> list[Event]:
    with httpx.stream("POST", session.url("/regenerate"), headers=session.auth, timeout=30) as r:
        assert r.status_code == 200, r.read()
        return list(iter_events(r.iter_lines()))


def last_message(session: Session) -> dict[str, Any]:
    message: dict[str, Any] = get_session(session)["messages"][-1]
    return message


def test_ready_when_redis_and_the_model_answer(fast: Fast) -> None:
    response = readiness(fast.conversation)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "assistant": "ready"}


def test_liveness_keeps_the_tutorials_shape(unreachable: Server) -> None:
    response = httpx.get(f"{unreachable.url}/api/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "success", "message": "The server is up and running."}


def test_unreachable_assistant_is_unavailable(unreachable: Server) -> None:
    response = readiness(unreachable)
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["assistant"]) == ("unavailable", "unreachable")
    assert "cannot be reached" in body["message"]


def test_reply_while_unreachable_is_assistant_unavailable_and_stays_so(
    unreachable: Server,
) -> None:
    session = create_session(unreachable)
    events = send(session, "anyone there?")
    assert events[-1].event == "error"
    assert events[-1].json()["code"] == "assistant_unavailable"
    stored = last_message(session)
    assert (stored["role"], stored["status"]) == ("assistant", "error")
    assert stored["error"]["code"] == "assistant_unavailable"
    assert stored["error"]["message"] == events[-1].json()["message"]


def test_messages_that_did_not_fail_have_no_error(fast: Fast) -> None:
    session = create_session(fast.conversation)
    send(session, "hello")
    messages = get_session(session)["messages"]
    assert [(m["role"], m["error"]) for m in messages] == [("user", None), ("assistant", None)]


def test_redis_down_is_unavailable(fast: Fast) -> None:
    dead_redis = f"redis://127.0.0.1:{closed_port()}/0"
    with running(start_replica(fast.redis, fast.assistant.url, REDIS_URL=dead_redis)) as server:
        response = readiness(server)
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["assistant"]) == ("unavailable", "ready")
    assert "Redis" in body["message"]


def test_loading_model_is_not_ready_until_it_is(loading: Loading) -> None:
    response = readiness(loading.conversation)
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["assistant"]) == ("starting", "loading")
    assert "loading" in body["message"]

    session = create_session(loading.conversation)
    events = send(session, "are you ready?")
    assert [e.event for e in events] == ["user", "start", "error"]
    error = events[-1].json()
    assert error["code"] == "assistant_not_ready"
    assert "still loading" in error["message"]
    # A page that reloads finds the same code on the stored reply.
    stored = last_message(session)
    assert stored["status"] == "error" and stored["error"] == error

    loading.gate.open()
    wait_until(lambda: readiness(loading.conversation).status_code == 200, 30, "ready")
    assert readiness(loading.conversation).json() == {"status": "ready", "assistant": "ready"}
    again = regenerate(session)
    assert again[-1].event == "done"
    assert again[-1].json()["content"] != ""
    assert last_message(session)["error"] is None


def test_other_refusals_stay_assistant_error(fast: Fast) -> None:
    """An upstream that answers 503 is assistant's failure to reach it, not a loading model."""
    control = httpx.post(
        f"{fast.upstream.url}/_fake/script",
        json=[{"status": 503, "message": "Loading model", "times": 3}],
        timeout=5,
    )
    control.raise_for_status()
    try:
        session = create_session(fast.conversation)
        events = send(session, "hello")
        assert events[-1].event == "error"
        assert events[-1].json()["code"] == "assistant_error"
        assert last_message(session)["error"]["code"] == "assistant_error"
    finally:
        httpx.post(f"{fast.upstream.url}/_fake/reset", timeout=5).raise_for_status()
