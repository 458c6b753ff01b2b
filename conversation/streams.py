"""A reply's events for a client joining at any point, from wherever they are.

The replica writing the reply serves them from memory; any other replica tails the reply's
Redis Stream; a finished reply is served from the history. All three speak the same events
with the same ids, so a client can move between replicas mid-reply.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from conversation.events import (
    HEARTBEAT,
    Event,
    delta_event,
    error_event,
    queued_event,
    terminal_event,
)
from conversation.generation import Generation, outbox_events
from conversation.models import StoredMessage
from conversation.store import Store

# Events come in batches (those ready at once go out in one write); None is a heartbeat.
Events = AsyncIterator[list[Event] | None]

GONE = (
    "not_found",
    "This reply no longer exists: the session was deleted, expired, or the reply was replaced.",
)


def from_generation(gen: Generation, offset: int) -> Events:
    return outbox_events(gen, gen.subscribe(offset))


async def from_history(message: StoredMessage, offset: int) -> Events:
    rest = message.content[offset:]
    end = terminal_event(message)
    yield [delta_event(rest, len(message.content)), end] if rest else [end]


async def from_redis(store: Store, sid: str, mid: str, offset: int, block_ms: int) -> Events:
    """Tail the reply's stream from `offset`; detect a writer that died without finishing."""
    after, pos = f"{offset}-0", offset
    while True:
        entries = await store.read_stream(sid, mid, after, block_ms)
        if not entries:
            yield None
            message = await store.check_live(sid, mid)
            if message is None:
                yield [error_event(*GONE, pos)]
                return
            if message.status != "streaming":
                # Finished (or just marked interrupted): the history has the whole text.
                async for batch in from_history(message, pos):
                    yield batch
                return
            continue
        deltas: list[Event] = []
        for entry_id, fields in entries:
            after = entry_id
            if "x" in fields:
                text, end = fields["x"], int(entry_id.partition("-")[0])
                if end > pos:
                    # Entries can overlap what the client has: send only the new tail.
                    deltas.append(delta_event(text[max(len(text) - (end - pos), 0) :], end))
                    pos = end
            elif "q" in fields:  # a place in the model's queue, before the text
                deltas.append(queued_event(int(fields["q"]), pos))
            else:
                if deltas:
                    yield deltas
                message = await store.get_message(sid, mid)
                if message is None:
                    yield [error_event(*GONE, pos)]
                else:
                    async for batch in from_history(message, pos):
                        yield batch
                return
        if deltas:
            yield deltas


async def sse_body(first: list[Event], events: Events | None) -> AsyncGenerator[bytes, None]:
    """The turn's events as server-sent events: each batch in one write."""
    if first:
        yield b"".join(event.sse() for event in first)
    del first  # the `user` event holds the whole message: not for the whole reply
    if events is not None:
        async for batch in events:
            yield HEARTBEAT if batch is None else b"".join(event.sse() for event in batch)
