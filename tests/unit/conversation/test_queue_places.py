"""A reply waiting in the model's queue: its place reaches clients that join or resume while it
waits, here or on another replica, and the wait is not cut by ASSISTANT_READ_TIMEOUT while
assistant keeps telling the place.

Real redis-server; assistant scripted by the test, piece by piece (tests/support)."""

from __future__ import annotations

import asyncio

from conversation.events import Event
from conversation.streams import from_generation
from tests.support.replica import Replica, Rig, data, events_until_end, next_events, text_of
from tests.unit.conversation.test_generation import writing


def places(events: list[Event]) -> list[int]:
    return [data(e)["position"] for e in events if e.name == "queued"]


async def test_a_client_joining_here_while_the_reply_waits_learns_its_place(
    rig: Rig, one: Replica
) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.queued(2)
    assert places(await next_events(turn.events)) == [2]
    reply.queued(2)  # told again while waiting: not news

    late = from_generation(writing(one, claim.session_id, turn.reply_id), 0)
    first = await next_events(late)
    assert [(e.name, e.id, data(e)) for e in first] == [("queued", 0, {"position": 2})]
    reply.queued(1)
    assert places(await next_events(late)) == [1]
    assert places(await next_events(turn.events)) == [1], "the same place once"
    reply.text("hi")
    reply.finish()
    events = await events_until_end(late)
    assert text_of(events) == "hi" and events[-1].name == "done"
    assert places(events) == [], "no place once the text has begun"


async def test_a_client_resuming_on_another_replica_while_the_reply_waits_learns_its_place(
    rig: Rig, one: Replica
) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.queued(1)
    assert places(await next_events(turn.events)) == [1]
    async with rig.replica() as other:
        resumed = await other.turns.resume(claim.session_id, turn.reply_id, 0)
        first = await next_events(resumed.events)
        assert [(e.name, e.id, data(e)) for e in first] == [("queued", 0, {"position": 1})]
        reply.queued(0)
        assert places(await next_events(resumed.events)) == [0]
        reply.text("hi")
        reply.finish()
        events = await events_until_end(resumed.events)
    assert text_of(events) == "hi" and events[-1].name == "done"
    assert places(events) == []


async def test_a_reply_stopped_while_it_waits_still_ends_its_stream(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    for ahead in (1, 0):
        reply.queued(ahead)
        await next_events(turn.events)
    await one.turns.stop(claim.session_id, turn.reply_id)
    stored = await writing(one, claim.session_id, turn.reply_id).finished()
    entries = await one.store.read_stream(claim.session_id, turn.reply_id, "0-0", 1000)
    # The terminal entry comes after the places written at the same length.
    assert [fields for _, fields in entries] == [{"q": "1"}, {"q": "0"}, {"k": "cancelled"}]
    # A retried finish (its answer lost on the way back) writes no second terminal entry.
    await one.store.finish(claim.session_id, stored, 0)
    again = await one.store.read_stream(claim.session_id, turn.reply_id, "0-0", 1000)
    assert again == entries


# --- ASSISTANT_READ_TIMEOUT: per read, so queue places keep a long wait alive --------------

READ_TIMEOUT = 0.5
# Pauses between the assistant's chunks: each under the read timeout, together well over it.
PAUSE = READ_TIMEOUT * 0.4
PAUSES = 5


async def test_a_wait_in_the_queue_longer_than_the_read_timeout_is_not_cut(rig: Rig) -> None:
    async with rig.replica(assistant_read_timeout=READ_TIMEOUT) as at:
        _, turn, reply = await rig.ask(at)
        for ahead in range(PAUSES, 0, -1):
            reply.queued(ahead)
            await next_events(turn.events)
            await asyncio.sleep(PAUSE)  # the model busy with the replies ahead: no text yet
        reply.text("at last")
        reply.finish()
        events = await events_until_end(turn.events)
    assert text_of(events) == "at last"
    assert (events[-1].name, data(events[-1])["status"]) == ("done", "complete")


async def test_a_silent_wait_longer_than_the_read_timeout_is_cut(rig: Rig) -> None:
    """The other side of the test above: without the places the same wait fails."""
    async with rig.replica(assistant_read_timeout=READ_TIMEOUT) as at:
        _, turn, reply = await rig.ask(at)
        reply.queued(PAUSES)
        await next_events(turn.events)
        end = (await events_until_end(turn.events))[-1]
    assert (end.name, data(end)["code"]) == ("error", "assistant_disconnected")
