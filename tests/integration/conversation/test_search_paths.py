"""Search's two ways through Redis give the same answers: the single-server script (one,
after reading the browser's list of chats) and the step-by-step one a Redis Cluster needs,
run here against one real redis-server; an index of the layout before this one is rebuilt.
Chats are written with conversation's own Store, as an import writes them."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import cast

import pytest
from redis.asyncio import Redis

from conversation.config import Settings
from conversation.search import Scope, Search
from conversation.store import Store, digest, new_message
from tests.support.servers import Server

Body = Callable[[Settings, Redis, Store], Awaitable[None]]


def against(server: Server, body: Body) -> None:
    """Runs `body` with a Store on the server, closing its client after."""

    async def run() -> None:
        settings = Settings(redis_url=f"redis://127.0.0.1:{server.port}/0")
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            await body(settings, redis, Store(redis, settings))
        finally:
            await redis.aclose()

    asyncio.run(run())


async def seed(store: Store, owner: str) -> list[str]:
    sids = []
    for i, texts in enumerate(
        [["alpha beta", "gamma"], ["beta delta", "alphabet soup"], ["nothing here"]]
    ):
        meta, _ = await store.create_session(f"chat {i}", "", owner)
        messages = [new_message("user", t, "complete") for t in texts]
        await store.append_messages(meta.session_id, messages)
        sids.append(meta.session_id)
    return sids


@pytest.mark.parametrize("one_round_trip", [True, False])
def test_both_paths_find_the_same_and_follow_changes(
    redis_server: Server, one_round_trip: bool
) -> None:
    async def body(settings: Settings, redis: Redis, store: Store) -> None:
        owner = digest(f"paths-{one_round_trip}")
        sids = await seed(store, owner)
        search = Search(store, one_round_trip=one_round_trip)
        scope = [Scope(owner, [], browser=True)]

        async def found(q: str) -> list[tuple[int, str]]:
            results = (await search.search(scope, q, 20)).results
            return [(sids.index(r.session_id), r.role or "title") for r in results]

        # Newest chat first; "alpha" begins "alphabet" too; "chat" is in every title.
        assert await found("alpha") == [(1, "user"), (0, "user")]
        # Every word in one message: chat 1 has both, but in two messages.
        assert await found("beta alpha") == [(0, "user")]
        assert await found("chat 2") == [(2, "title")]
        # A new message, then a deleted chat: the next query knows.
        await store.append_messages(sids[2], [new_message("assistant", "alpha!", "complete")])
        assert await found("alpha") == [(2, "assistant"), (1, "user"), (0, "user")]
        await redis.delete(*store.keys.family(sids[1]))
        assert await found("alpha") == [(2, "assistant"), (0, "user")]

    against(redis_server, body)


def test_a_reply_being_written_when_indexed_is_compared_until_it_is_done(
    redis_server: Server,
) -> None:
    """A finishing reply changes its chat without renewing it; the index notes that a
    reply was being written and looks again. A chat untouched for a while is not read."""

    async def body(settings: Settings, redis: Redis, store: Store) -> None:
        owner = digest("busy")
        quiet = (await seed(store, owner))[0]
        busy = (await store.create_session("busy chat", "", owner))[0].session_id
        reply = new_message("assistant", "", "streaming")
        await store.append_messages(busy, [new_message("user", "alphabet", "complete"), reply])
        search = Search(store)
        scope = [Scope(owner, [], browser=True)]
        ttl_ms = settings.session_ttl * 1000
        for sid in (quiet, busy):
            # Last touched a minute ago, as far as the chats' expiry tells.
            await redis.pexpire(store.keys.session(sid), ttl_ms - 60_000)
        await redis.set(f"{store.keys.session(busy)}:g", reply.id, px=60_000)
        assert len((await search.search(scope, "alpha", 20)).results) == 3
        # The reply ends (FINISH: the text stored, the lock gone, no renewal) ...
        done = reply.model_copy(update={"content": "zebra", "status": "complete"})
        await redis.hset(f"{store.keys.session(busy)}:m", reply.id, done.model_dump_json())
        await redis.delete(f"{store.keys.session(busy)}:g")
        # ... and a quiet chat changes behind the index's back (nothing in the product
        # does that): the first is found, the second is not read again.
        first = (await redis.lrange(f"{store.keys.session(quiet)}:o", 0, 0))[0]
        raw = new_message("user", "zebra crossing", "complete").model_copy(update={"id": first})
        await redis.hset(f"{store.keys.session(quiet)}:m", first, raw.model_dump_json())
        found = (await search.search(scope, "zebra", 20)).results
        assert [(r.session_id, r.message_id) for r in found] == [(busy, reply.id)]

    against(redis_server, body)


@pytest.mark.parametrize("one_round_trip", [True, False])
def test_an_index_of_the_layout_with_a_key_per_word_is_ignored_and_rebuilt(
    redis_server: Server, one_round_trip: bool
) -> None:
    """Chats indexed, up to date, under the layout before this one (a set per word, a string
    per chat's words, a sorted set of words, entries without a layout), untouched since: the
    first query indexes them anew, keeping their numbers, and leaves the old keys to expire."""

    async def body(settings: Settings, redis: Redis, store: Store) -> None:
        owner = digest(f"old-layout-{one_round_trip}")
        sids = await seed(store, owner)
        x = f"{store.keys.prefix}:x:{{{owner}}}"
        now_ms = int((await redis.time())[0]) * 1000
        old = [f"{x}:v", f"{x}:w:beta"] + [f"{x}:l:{n}" for n in (1, 2, 3)]
        for n, sid in enumerate(sids, 1):
            key = store.keys.session(sid)
            # Last touched a minute ago, as far as the chat's expiry tells.
            await redis.pexpire(key, settings.session_ttl * 1000 - 60_000)
            [last] = cast(list[str], await redis.lrange(f"{key}:o", -1, -1))
            size = await redis.hstrlen(f"{key}:m", last)
            count, name = await redis.llen(f"{key}:o"), cast(str, await redis.hget(key, "name"))
            version = hashlib.sha1(f"{count}:{last}:{size}:{name}".encode()).hexdigest()[:16]
            await redis.hset(f"{x}:c", sid, f"{n} {now_ms} 0 {version}")
            await redis.hset(f"{x}:n", mapping={str(n): sid, "next": n})
            await redis.set(f"{x}:l:{n}", "beta chat", ex=1000)
        await redis.sadd(f"{x}:w:beta", 1, 2)
        await redis.zadd(f"{x}:v", {"beta": 0, "chat": 0, "gone": 0})
        for key in old[:2]:
            await redis.expire(key, 1000)

        search = Search(store, one_round_trip=one_round_trip)
        scope = [Scope(owner, [], browser=True)]
        found = (await search.search(scope, "alpha", 20)).results
        assert [sids.index(r.session_id) for r in found] == [1, 0]
        assert (await search.search(scope, "gone", 20)).results == []
        for n, sid in enumerate(sids, 1):
            assert str(await redis.hget(f"{x}:c", sid)).split()[:2] == [str(n), "2"]
        assert "gone" not in await redis.zrange(f"{x}:d", 0, -1)
        # The old keys: neither read nor written, so left to expire as they were.
        assert all(0 < ttl <= 1000 for ttl in [await redis.ttl(key) for key in old])
        assert await redis.zrange(f"{x}:v", 0, -1) == ["beta", "chat", "gone"]

    against(redis_server, body)


def test_a_chat_touched_since_it_was_indexed_is_read_again_once(redis_server: Server) -> None:
    """On one server, a chat read (its expiry renewed) since it was indexed is read once more
    by the next query, then no longer: compared, with all its keys, by a replica that rebuilt
    it lately (and restamped), or indexed anew by another (given its P alone)."""

    async def body(settings: Settings, redis: Redis, store: Store) -> None:
        owner = digest("touched")
        sids = await seed(store, owner)
        scope = [Scope(owner, [], browser=True)]
        entries = f"{store.keys.prefix}:x:{{{owner}}}:c"

        async def stamp() -> int:
            return int(str(await redis.hget(entries, sids[0])).split()[2])

        async def indexed_a_minute_ago_and_read_since() -> int:
            n, layout, at, busy, version = str(await redis.hget(entries, sids[0])).split()
            await redis.hset(entries, sids[0], f"{n} {layout} {int(at) - 60_000} {busy} {version}")
            await redis.pexpire(store.keys.session(sids[0]), settings.session_ttl * 1000 - 30_000)
            return int(at) - 60_000

        async def found(search: Search) -> int:
            return len((await search.search(scope, "alpha", 20)).results)

        builder = Search(store)
        assert await found(builder) == 2
        for search in (builder, Search(store)):
            before = await indexed_a_minute_ago_and_read_since()
            assert await found(search) == 2
            read = await stamp()
            assert read > before
            # Not read again, by any replica.
            assert await found(Search(store)) == 2
            assert await stamp() == read

    against(redis_server, body)
