"""Event encoding: SSE and WebSocket frames carry the same data and id."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from common.protocol import Usage
from conversation.events import delta_event, done_event, start_event, terminal_event
from conversation.models import ErrorInfo, StoredMessage


def reply(**fields: object) -> StoredMessage:
    base: dict[str, object] = {
        "id": "m1",
        "role": "assistant",
        "content": "Hello",
        "status": "complete",
        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
    }
    return StoredMessage.model_validate({**base, **fields})


def test_sse_wire_format() -> None:
    assert delta_event("Hi\nthere", 8).sse() == (
        b'event: delta\ndata: {"text":"Hi\\nthere"}\nid: 8\n\n'
    )
    assert start_event("m1").sse() == b'event: start\ndata: {"message_id":"m1"}\nid: 0\n\n'


def test_websocket_frame_matches_the_sse_event() -> None:
    event = delta_event("Hi", 2)
    assert orjson.loads(event.ws()) == {"event": "delta", "id": "2", "data": {"text": "Hi"}}


def test_done_carries_the_stored_reply_its_model_and_usage() -> None:
    usage = Usage(prompt_tokens=3, completion_tokens=1, total_tokens=4)
    event = done_event(reply(usage=usage, tokens=1, model="m-1"))
    data = orjson.loads(event.data)
    assert set(data) == {"id", "role", "content", "status", "created_at", "model", "usage"}
    assert data["usage"]["total_tokens"] == 4 and event.id == 5 and event.terminal
    assert data["model"] == "m-1"


def test_terminal_event_follows_the_status() -> None:
    assert terminal_event(reply()).name == "done"
    assert terminal_event(reply(status="cancelled")).name == "done"
    failed = terminal_event(
        reply(status="error", error=ErrorInfo(code="assistant_error", message="boom"))
    )
    assert (failed.name, orjson.loads(failed.data)["code"]) == ("error", "assistant_error")
    lost = terminal_event(reply(status="interrupted"))
    assert orjson.loads(lost.data)["code"] == "interrupted"
