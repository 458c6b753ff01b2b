"""Turns: what a send, a duplicate, a refusal, a resume and a cancel give back and store."""

from __future__ import annotations

import pytest

from conversation.errors import AccessDenied, TurnError
from conversation.limits import LimitExceeded
from conversation.turns import final_event
from tests.support.replica import (
    CLIENT,
    Replica,
    Rig,
    data,
    events_until_end,
    new_session,
    next_events,
    text_of,
)


async def history(at: Replica, session_id: str) -> list[tuple[str, str, str]]:
    page = await at.store.history(session_id, 100)
    assert page is not None
    return [(m.role, m.content, m.status) for m in page.messages]


async def test_a_message_is_answered_and_stored(rig: Rig, one: Replica) -> None:
    claim = await new_session(one, system_prompt="Be brief.")
    turn = await one.turns.send(claim, "hello", None, CLIENT)
    assert [e.name for e in turn.first] == ["user", "start"]
    assert data(turn.first[1]) == {"message_id": turn.reply_id}

    reply = await rig.assistant.next_reply()
    assert reply.prompt == [("system", "Be brief."), ("user", "hello")]
    reply.text("Hel", "lo!")
    reply.finish(completion_tokens=2)
    events = await events_until_end(turn.events)

    assert text_of(events) == "Hello!"
    assert [e.id for e in events if e.name == "delta"][-1] == 6
    done = events[-1]
    assert (done.name, done.id) == ("done", 6)
    assert data(done)["status"] == "complete" and data(done)["usage"]["completion_tokens"] == 2
    assert await history(one, claim.session_id) == [
        ("user", "hello", "complete"),
        ("assistant", "Hello!", "complete"),
    ]


async def test_the_same_client_message_id_is_answered_once(rig: Rig, one: Replica) -> None:
    claim = await new_session(one)
    first = await one.turns.send(claim, "hi", "m-1", CLIENT)
    reply = await rig.assistant.next_reply()
    reply.text("once")
    reply.finish()
    await events_until_end(first.events)

    again = await one.turns.send(claim, "hi", "m-1", CLIENT)
    assert again.reply_id == first.reply_id
    events = [*again.first, *await events_until_end(again.events)]
    assert [e.name for e in events] == ["user", "start", "delta", "done"]
    assert text_of(events) == "once"
    assert rig.assistant.unanswered == 0, "the duplicate asked assistant again"
    assert len(await history(one, claim.session_id)) == 2


async def test_a_second_turn_while_a_reply_is_written_is_a_conflict(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one, "one")

    with pytest.raises(TurnError) as refused:
        await one.turns.send(claim, "two", None, CLIENT)
    assert refused.value.code == "conflict" and turn.reply_id in refused.value.message
    reply.finish()
    await events_until_end(turn.events)
    assert [m[1] for m in await history(one, claim.session_id)] == ["one", ""]


async def test_regenerating_an_empty_session_is_a_conflict(one: Replica) -> None:
    claim = await new_session(one)
    with pytest.raises(TurnError) as refused:
        await one.turns.regenerate(claim, CLIENT)
    assert refused.value.code == "conflict"
    assert "no user message" in refused.value.message


async def test_a_full_replica_refuses_before_storing_anything(rig: Rig) -> None:
    async with rig.replica(max_active_generations=1) as full:
        busy, turn, reply = await rig.ask(full, "one")
        idle = await new_session(full)
        gen = full.hub.get(busy.session_id, turn.reply_id)
        assert gen is not None

        with pytest.raises(TurnError) as refused:
            await full.turns.send(idle, "two", None, CLIENT)
        assert (refused.value.code, refused.value.retry_after) == ("overloaded", 1)
        assert await history(full, idle.session_id) == []

        reply.finish()
        await gen.finished()
        # The slot came back with the reply's end.
        second = await full.turns.send(idle, "two", None, CLIENT)
        (await rig.assistant.next_reply()).finish()
        await events_until_end(second.events)


async def test_a_client_over_its_limit_is_refused_and_keeps_no_slot(rig: Rig) -> None:
    async with rig.replica(limit_client_turns=0, limit_ip_turns=1) as limited:
        claim, turn, reply = await rig.ask(limited, "one")
        reply.finish()
        await events_until_end(turn.events)

        with pytest.raises(LimitExceeded) as refused:
            await limited.turns.send(claim, "two", None, CLIENT)
        assert refused.value.code == "rate_limited" and refused.value.retry_after
        assert limited.hub.reserve(), "the refused turn kept this replica's slot"
        limited.hub.release()


async def test_a_finished_reply_is_resumed_from_the_history(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("abcdef")
    reply.finish()
    await events_until_end(turn.events)

    whole = await one.turns.resume(claim.session_id, turn.reply_id, None)
    assert [e.name for e in whole.first] == ["start"]
    assert text_of(await events_until_end(whole.events)) == "abcdef"
    rest = await one.turns.resume(claim.session_id, turn.reply_id, 4)
    assert rest.first == []
    events = await events_until_end(rest.events)
    assert [(e.name, e.id) for e in events] == [("delta", 6), ("done", 6)]
    assert text_of(events) == "ef"


async def test_resuming_what_is_no_reply_is_not_found(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.finish()
    await events_until_end(turn.events)
    page = await one.store.history(claim.session_id, 100)
    assert page is not None
    user_id = page.messages[0].id
    for missing in (user_id, "0123456789abcdef"):
        with pytest.raises(AccessDenied) as refused:
            await one.turns.resume(claim.session_id, missing, None)
        assert refused.value.code == "not_found"


async def test_a_reply_being_written_is_resumed_on_another_replica(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("abc")
    await next_events(turn.events)  # the writer has the text

    async with rig.replica() as other:
        resumed = await other.turns.resume(claim.session_id, turn.reply_id, 1)
        # The first text is in the stream at once, so the other replica reads it now.
        assert text_of(await next_events(resumed.events)) == "bc"
        reply.text("def")
        reply.finish()
        events = await events_until_end(resumed.events)
    assert text_of(events) == "def"
    assert (events[-1].name, events[-1].id) == ("done", 6)
    assert data(events[-1])["content"] == "abcdef"


async def test_a_cancel_keeps_the_partial_reply(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("part")
    await next_events(turn.events)

    stored = await one.turns.cancel(claim.session_id, turn.reply_id)
    assert (stored.content, stored.status) == ("part", "cancelled")
    end = await final_event(turn)
    assert end is not None and data(end)["status"] == "cancelled"


async def test_a_cancel_reaches_the_replica_writing_the_reply(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("part")
    await next_events(turn.events)

    async with rig.replica() as other:
        stored = await other.turns.cancel(claim.session_id, turn.reply_id)
    assert (stored.content, stored.status) == ("part", "cancelled")
    assert await history(one, claim.session_id) == [
        ("user", "hi", "complete"),
        ("assistant", "part", "cancelled"),
    ]
