"""A reply's events from the history and from its Redis Stream: the same events with the same
ids, a deleted session, and a writer that died without finishing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conversation.models import ErrorInfo, Status, StoredMessage
from conversation.store import TurnStarted, new_message
from conversation.streams import GONE, from_history, from_redis, sse_body
from tests.support.replica import (
    Replica,
    Rig,
    data,
    events_until_end,
    new_session,
    next_events,
    text_of,
)


def reply(content: str, status: Status, error: ErrorInfo | None = None) -> StoredMessage:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    return StoredMessage(
        id="r", role="assistant", content=content, status=status, created_at=created, error=error
    )


@pytest.mark.parametrize(
    ("offset", "expected"), [(0, [("delta", 5), ("done", 5)]), (2, [("delta", 5), ("done", 5)])]
)
async def test_the_history_gives_the_text_after_the_offset(
    offset: int, expected: list[tuple[str, int]]
) -> None:
    events = await events_until_end(from_history(reply("hello", "complete"), offset))
    assert [(e.name, e.id) for e in events] == expected
    assert text_of(events) == "hello"[offset:]


async def test_the_history_gives_only_the_end_to_a_client_that_has_it_all() -> None:
    events = await events_until_end(from_history(reply("hello", "cancelled"), 5))
    assert [(e.name, e.id, data(e)["status"]) for e in events] == [("done", 5, "cancelled")]


async def test_a_failed_reply_ends_with_its_error() -> None:
    failed = reply("hal", "error", ErrorInfo(code="assistant_error", message="no"))
    events = await events_until_end(from_history(failed, 0))
    assert [(e.name, e.id) for e in events] == [("delta", 3), ("error", 3)]
    assert data(events[-1]) == {"code": "assistant_error", "message": "no"}


async def test_sse_body_writes_each_batch_at_once() -> None:
    body = [part async for part in sse_body([], from_history(reply("hi", "complete"), 0))]
    assert len(body) == 1
    assert body[0].startswith(b'event: delta\ndata: {"text":"hi"}\nid: 2\n\nevent: done\n')


async def test_a_deleted_session_ends_a_tailed_reply_as_gone(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("abc")
    await next_events(turn.events)

    async with rig.replica() as other:
        tail = from_redis(other.store, claim.session_id, turn.reply_id, 0, 200)
        assert text_of(await next_events(tail)) == "abc"
        meta = await one.store.get_meta(claim)
        assert not isinstance(meta, str)
        await one.store.delete(meta)
        events = await events_until_end(tail)
    assert [(e.name, e.id) for e in events] == [("error", 3)]
    assert (data(events[0])["code"], data(events[0])["message"]) == GONE


async def test_a_writer_that_died_leaves_an_interrupted_reply(rig: Rig) -> None:
    # A writer that stops writing without finishing: its turn started, its first text in
    # the stream, then nothing. Its lease lapses; the reader finds it interrupted.
    async with rig.replica(generation_lease=0.5) as dead:
        claim = await new_session(dead)
        user, written = (
            new_message("user", "hi", "complete"),
            new_message("assistant", "", "streaming"),
        )
        started = await dead.store.begin_turn(claim, "message", user, written, None, 1000)
        assert isinstance(started, TurnStarted)
        await dead.store.flush(claim.session_id, written.id, 3, "abc", expire=True, renew=False)

        tail = from_redis(dead.store, claim.session_id, written.id, 1, 100)
        events = await events_until_end(tail)
        stored = await dead.store.get_message(claim.session_id, written.id)
    assert text_of(events) == "bc"
    assert (events[-1].name, events[-1].id, data(events[-1])["code"]) == ("error", 3, "interrupted")
    assert stored is not None and (stored.content, stored.status) == ("abc", "interrupted")
