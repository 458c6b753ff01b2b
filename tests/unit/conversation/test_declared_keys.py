"""No script touches a key its call does not declare in KEYS.

Both replicas run every script as an ACL user allowed exactly the keys of that call
(tests/support/declared_keys.py), so Redis itself refuses a command on any other key and logs
it in ACL LOG, which must stay empty through every path that touches a reply's stream: turns,
a history read mid-reply, resume, cancel, continue, regenerate, edit, replies orphaned by a
writer that is gone, and delete. The two replicas see different turns, so each often knows an
old `live` reply when it calls (the 'stale' answer and the call again are exercised). So too
through every script of search: indexing, queries (a browser's, one script on one server or
step by step as on a Cluster; a token's), rebuilds of changed chats, deleted and expired
chats taken out of the index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from conversation.search import Scope, Search, owner_of
from conversation.store import Claim, SessionMeta, Store, TurnStarted, digest, new_message
from conversation.turns import Turn
from tests.support.declared_keys import connect_declared_keys_only
from tests.support.replica import (
    CLIENT,
    Replica,
    Rig,
    events_until_end,
    new_session,
    next_events,
    text_of,
)


@pytest.fixture
async def admin(rig: Rig) -> AsyncIterator[Redis]:
    """The server's default user: to read ACL LOG and to act as a dead writer's lease would."""
    client = Redis.from_url(rig.settings.redis_url, decode_responses=True)
    await client.acl_log_reset()
    yield client
    await client.aclose()


async def answered(rig: Rig, turn: Turn, *pieces: str) -> str:
    """The turn's reply, written by the scripted assistant; its text as the client got it."""
    reply = await rig.assistant.next_reply()
    reply.text(*pieces)
    reply.finish()
    return text_of(await events_until_end(turn.events))


async def shown(at: Replica, sid: str) -> list[tuple[str, str, str]]:
    page = await at.store.history(sid)
    assert page is not None
    return [(m.role, m.content, m.status) for m in page.messages]


async def orphan(at: Replica, admin: Redis, claim: Claim, text: str) -> str:
    """A reply whose writer is gone: started, some text in its stream, then its lease lost."""
    sid, reply = claim.session_id, new_message("assistant", "", "streaming")
    user = new_message("user", "lost", "complete")
    started = await at.store.begin_turn(claim, "message", user, reply, None, 1000)
    assert isinstance(started, TurnStarted)
    await at.store.flush(sid, reply.id, len(text), text, expire=True, renew=False)
    await admin.delete(f"{at.store.keys.session(sid)}:g")  # what a lapsed lease leaves
    return reply.id


async def test_the_check_refuses_a_script_that_touches_an_undeclared_key(
    rig: Rig, admin: Redis
) -> None:
    async with rig.replica(connect_declared_keys_only) as one:
        key = one.store.keys.session("0" * 32)
        sneaky = one.store.redis.register_script("return redis.call('GET', KEYS[1]..':r:x')")
        with pytest.raises(ResponseError, match="can't access"):
            await sneaky(keys=[key])
        fair = one.store.redis.register_script("return redis.call('GET', KEYS[1])")
        assert await fair(keys=[key]) is None
    assert [entry["object"] for entry in await admin.acl_log()] == [f"{key}:r:x"]


async def test_every_path_touching_a_reply_stream_declares_its_keys(rig: Rig, admin: Redis) -> None:
    strict = connect_declared_keys_only
    async with rig.replica(strict) as one, rig.replica(strict) as other:
        claim = await new_session(one)
        sid = claim.session_id
        first = await one.turns.send(claim, "a", None, CLIENT)
        assert await answered(rig, first, "one") == "one"

        # `other` never saw the session: it learns the live reply from the 'stale' answer,
        # and the turn drops the first reply's stream.
        second = await other.turns.send(claim, "b", None, CLIENT)
        writing = await rig.assistant.next_reply()
        writing.text("tw")
        await next_events(second.events)
        assert not await admin.exists(one.store.keys.stream(sid, first.reply_id))
        # The writer's clients get the text from memory first; Redis gets it a moment later.
        stream = one.store.keys.stream(sid, second.reply_id)
        assert await admin.xread({stream: "0-0"}, count=1, block=10_000), "no text in Redis"
        # Read mid-reply on `one`, which knows only the first reply as live.
        assert (await shown(one, sid))[-1] == ("assistant", "tw", "streaming")
        resumed = await one.turns.resume(sid, second.reply_id, 0)
        assert text_of(await next_events(resumed.events)) == "tw"
        stopped = await one.turns.cancel(sid, second.reply_id)
        assert (stopped.content, stopped.status) == ("tw", "cancelled")
        await events_until_end(second.events)

        more = await one.turns.extend(claim, second.reply_id, CLIENT)
        assert await answered(rig, more, "o") == "o"
        again = await other.turns.regenerate(claim, CLIENT)
        assert await answered(rig, again, "two") == "two"
        page = await one.store.history(sid)
        assert page is not None
        edited = await one.turns.edit(claim, page.messages[0].id, "A", CLIENT)
        assert await answered(rig, edited, "uno") == "uno"

        # Orphans: one found by a history read, one by the next turn's start, each on the
        # replica that did not start it.
        lost = await orphan(other, admin, claim, "abc")
        assert (await shown(one, sid))[-1] == ("assistant", "abc", "interrupted")
        lost = await orphan(one, admin, claim, "de")
        after = await other.turns.send(claim, "c", None, CLIENT)
        assert await answered(rig, after, "three") == "three"
        assert (await shown(one, sid))[-4:-2] == [
            ("user", "lost", "complete"),
            ("assistant", "de", "interrupted"),
        ]
        assert not await admin.exists(one.store.keys.stream(sid, lost))

        # Deleted mid-reply by the replica that did not start the reply.
        last = await one.turns.send(claim, "d", None, CLIENT)
        writing = await rig.assistant.next_reply()
        writing.text("go")
        await next_events(last.events)
        meta = await one.store.get_meta(claim)
        assert isinstance(meta, SessionMeta)
        # `other` last saw the reply it started before this one.
        assert await other.store.delete(meta) == last.reply_id
        await other.turns.stop(sid, last.reply_id)  # as the route does
        # Left: the readers' marks of replies tailed earlier, which expire in seconds.
        left = cast(list[str], await admin.keys(f"{one.store.keys.session(sid)}*"))
        assert {key.removesuffix(":w") for key in left} <= {
            one.store.keys.stream(sid, turn.reply_id) for turn in (first, second, more, again)
        }, left
        await events_until_end(last.events)

    assert await admin.acl_log() == []


async def chat_of(store: Store, owner: str, name: str, *texts: str) -> SessionMeta:
    meta, _ = await store.create_session(name, "", owner)
    await store.append_messages(
        meta.session_id, [new_message("user", t, "complete") for t in texts]
    )
    return meta


@pytest.mark.parametrize("one_round_trip", [True, False], ids=["one server", "step by step"])
async def test_every_search_script_declares_its_keys(
    rig: Rig, admin: Redis, one_round_trip: bool
) -> None:
    async with rig.replica(connect_declared_keys_only) as one:
        store = one.store
        search = Search(store, one_round_trip=one_round_trip)
        owner = digest("declared")
        metas = [
            await chat_of(store, owner, "Baking", "walnut bread", "rye starter"),
            await chat_of(store, owner, "Garden", "walnut tree pruning"),
            await chat_of(store, owner, "Travel", "night train"),
        ]
        sids = [meta.session_id for meta in metas]
        browser = [Scope(owner, [], browser=True)]

        async def found(scopes: list[Scope], q: str) -> list[tuple[int, str | None]]:
            results = (await search.search(scopes, q, 20)).results
            return [(sids.index(r.session_id), r.message_id and "message") for r in results]

        await search.add(owner, sids[:2])  # as an import indexes what it brings
        assert await found(browser, "walnut") == [(1, "message"), (0, "message")]
        # Rebuilds: a new message, a rename (the old title's words leave the index).
        await store.append_messages(sids[2], [new_message("user", "walnut cake", "complete")])
        await store.update(sids[0], name="Loaves")
        assert await found(browser, "walnut") == [(2, "message"), (1, "message"), (0, "message")]
        assert await found(browser, "baking") == []
        assert await found(browser, "loaves") == [(0, None)]
        # A chat without a browser is its own owner, searched with its token's scope.
        alone = await chat_of(store, "", "Alone", "walnut oil")
        sids.append(alone.session_id)
        assert await found([Scope(owner_of(alone), [alone.session_id])], "wal") == [(3, "message")]
        # Deleted (out of the index at once), then expired (out at the next query).
        assert await store.delete(metas[1]) is None
        await search.forget(metas[1])
        await admin.delete(*store.keys.family(sids[2]))
        assert await found(browser, "walnut") == [(0, "message")]

    assert await admin.acl_log() == []
