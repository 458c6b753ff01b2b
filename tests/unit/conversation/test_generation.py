"""Generation: how a reply ends (complete, length, refused, cut, stopped), what is stored, what
its stream holds while it is written, and what a client joining mid-reply gets."""

from __future__ import annotations

from common.metrics import NAMESPACE
from conversation.generation import Generation
from conversation.streams import from_generation
from tests.support.replica import (
    CLIENT,
    Replica,
    Rig,
    data,
    events_until_end,
    next_events,
    text_of,
)


async def stored_reply(at: Replica, session_id: str, reply_id: str) -> tuple[str, str, str]:
    message = await at.store.get_message(session_id, reply_id)
    assert message is not None
    code = message.error.code if message.error else ""
    return message.content, message.status, code


def writing(at: Replica, session_id: str, reply_id: str) -> Generation:
    gen = at.hub.get(session_id, reply_id)
    assert gen is not None, "no generation writes this reply here"
    return gen


async def test_a_reply_cut_at_the_token_limit_says_length(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("and so")
    reply.finish("length")
    done = (await events_until_end(turn.events))[-1]
    assert (done.name, data(done)["status"]) == ("done", "length")
    assert await stored_reply(one, claim.session_id, turn.reply_id) == ("and so", "length", "")


async def test_assistant_is_told_who_asked_as_an_address_digest(rig: Rig, one: Replica) -> None:
    """Assistant shares its embedded model fairly by `user`: the client's address identity,
    a digest (never the address), the same for every session from that address."""
    _, first, reply = await rig.ask(one)
    _, second, other = await rig.ask(one)
    for r in (reply, other):
        r.text("hi")
        r.finish()
    await events_until_end(first.events)
    await events_until_end(second.events)
    assert reply.request["user"] == other.request["user"] == CLIENT.ip.digest
    assert "192.0.2.1" not in reply.request["user"]


async def test_each_place_in_the_models_queue_goes_to_the_client_before_the_text(
    rig: Rig, one: Replica
) -> None:
    claim, turn, reply = await rig.ask(one)
    places = []
    for ahead in (1, 0):
        reply.queued(ahead)
        places += [(e.name, e.id, data(e)) for e in await next_events(turn.events)]
    assert places == [("queued", 0, {"position": 1}), ("queued", 0, {"position": 0})]
    reply.text("hi")
    reply.finish()
    events = await events_until_end(turn.events)
    assert [(e.name, e.id) for e in events] == [("delta", 2), ("done", 2)]
    assert await stored_reply(one, claim.session_id, turn.reply_id) == ("hi", "complete", "")


async def test_a_continued_reply_goes_on_from_its_text(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("abc")
    reply.finish("length")
    await events_until_end(turn.events)

    more = await one.turns.extend(claim, turn.reply_id, CLIENT)
    assert [(e.name, e.id) for e in more.first] == [("start", 3)]
    reply = await rig.assistant.next_reply()
    reply.text("def")
    reply.finish()
    events = await events_until_end(more.events)
    assert [(e.name, e.id) for e in events] == [("delta", 6), ("done", 6)]
    assert data(events[-1])["content"] == "abcdef"


async def test_a_refusal_from_assistant_ends_the_reply_with_its_code(
    rig: Rig, one: Replica
) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.refuse(503, "not_ready", "loading the model")
    end = (await events_until_end(turn.events))[-1]
    assert (end.name, data(end)["code"]) == ("error", "assistant_not_ready")
    assert "loading the model" in data(end)["message"]
    stored = await stored_reply(one, claim.session_id, turn.reply_id)
    assert stored == ("", "error", "assistant_not_ready")


async def test_a_reply_cut_mid_way_keeps_its_text(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("half")
    reply.cut()
    events = await events_until_end(turn.events)
    assert text_of(events) == "half"
    assert (events[-1].name, events[-1].id) == ("error", 4)
    assert data(events[-1])["code"] == "assistant_disconnected"
    stored = await stored_reply(one, claim.session_id, turn.reply_id)
    assert stored == ("half", "error", "assistant_disconnected")


async def test_a_stopping_process_stores_its_replies_as_interrupted(rig: Rig) -> None:
    async with rig.replica() as stopping:
        claim, turn, reply = await rig.ask(stopping)
        reply.text("so far")
        await next_events(turn.events)
        await stopping.hub.stop()
        stored = await stored_reply(stopping, claim.session_id, turn.reply_id)
    assert stored == ("so far", "interrupted", "interrupted")


async def test_the_first_text_is_in_the_stream_before_the_reply_ends(
    rig: Rig, one: Replica
) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("abc")
    entries = await one.store.read_stream(claim.session_id, turn.reply_id, "0-0", 5000)
    assert entries == [("3-0", {"x": "abc"})]
    reply.finish()
    await events_until_end(turn.events)


async def test_a_client_joining_mid_reply_gets_the_rest_then_every_event(
    rig: Rig, one: Replica
) -> None:
    claim, turn, reply = await rig.ask(one)
    reply.text("abcd")
    await next_events(turn.events)

    late = from_generation(writing(one, claim.session_id, turn.reply_id), 2)
    first = await next_events(late)
    assert [(e.name, e.id, data(e)) for e in first] == [("delta", 4, {"text": "cd"})]
    reply.text("ef")
    reply.finish()
    events = await events_until_end(late)
    assert text_of(events) == "ef" and events[-1].name == "done"


async def test_a_model_without_usage_counts_a_token_per_delta(rig: Rig, one: Replica) -> None:
    claim, turn, reply = await rig.ask(one)
    gen = writing(one, claim.session_id, turn.reply_id)
    reply.text("a", "b", "c")
    reply.finish()
    await gen.finished()
    counted = f"{NAMESPACE}_tokens_generated_total"
    assert one.metrics.registry.get_sample_value(counted, {"model": "unknown"}) == 3
