"""Reply events, serialized once and shared by every client that receives them.

An event's `id` is the number of reply characters delivered up to and including it, so a
client that reconnects with `Last-Event-ID: n` gets exactly the text after its first n
characters, on any replica. `user` and `start` carry id 0 (a continued reply's `start`, the
length it had); `done` and `error` carry the final length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import orjson
from pydantic import BaseModel

from conversation.models import (
    DoneEvent,
    ErrorEvent,
    Message,
    QueuedEvent,
    StartEvent,
    StoredMessage,
)

EventName = Literal["user", "start", "queued", "delta", "done", "error"]
HEARTBEAT = b": ping\n\n"


@dataclass(slots=True)
class Event:
    name: EventName
    id: int
    data: bytes
    _sse: bytes | None = field(default=None, repr=False)
    _ws: str | None = field(default=None, repr=False)

    @property
    def terminal(self) -> bool:
        return self.name in ("done", "error")

    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = b"event: %s\ndata: %s\nid: %d\n\n" % (
                self.name.encode(),
                self.data,
                self.id,
            )
        return self._sse

    def ws(self) -> str:
        """The same event as a WebSocket text frame: {"event", "id", "data"}."""
        if self._ws is None:
            head = f'{{"event":"{self.name}","id":"{self.id}","data":'
            self._ws = head + self.data.decode() + "}"
        return self._ws


def _event(name: EventName, offset: int, model: BaseModel) -> Event:
    return Event(name, offset, model.model_dump_json().encode())


def user_event(message: Message) -> Event:
    return _event("user", 0, message)


def start_event(message_id: str, offset: int = 0) -> Event:
    """`offset`: the text the reply already has (a continued reply goes on from there)."""
    return _event("start", offset, StartEvent(message_id=message_id))


def queued_event(ahead: int, offset: int) -> Event:
    """Before the first token: the model is busy, `ahead` requests wait before this one."""
    return _event("queued", offset, QueuedEvent(position=ahead))


def delta_event(text: str, end_offset: int) -> Event:
    # One per token: orjson, not a model's model_dump_json (same bytes, less CPU).
    # Concatenated, not orjson.dumps({"text": ...}): orjson's result keeps its 4 KiB output
    # buffer, held for as long as the event waits to be sent (bench scenario 4).
    return Event("delta", end_offset, b'{"text":' + orjson.dumps(text) + b"}")


def error_event(code: str, message: str, offset: int) -> Event:
    return _event("error", offset, ErrorEvent(code=code, message=message))


def done_event(message: StoredMessage) -> Event:
    payload = DoneEvent(**message.public().model_dump(), model=message.model, usage=message.usage)
    return _event("done", len(message.content), payload)


INTERRUPTED = (
    "interrupted",
    "The server writing this reply stopped before finishing it; the partial reply is kept. "
    "Regenerate it to get a full answer.",
)


def terminal_event(message: StoredMessage) -> Event:
    """The event that ends a finished reply's stream, rebuilt from the stored message."""
    if message.status in ("complete", "cancelled", "length"):
        return done_event(message)
    if message.error is not None:
        return error_event(message.error.code, message.error.message, len(message.content))
    return error_event(*INTERRUPTED, len(message.content))
