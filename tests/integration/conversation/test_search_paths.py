"""Search's two ways through Redis give the same answers: the single-server script (one
round trip) and the step-by-step one a Redis Cluster needs, run here against one real
redis-server. Chats are written with conversation's own Store, as an import writes them."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from conversation.config import Settings
from conversation.search import Scope, Search
from conversation.store import Store, digest, new_message
from tests.support.servers import Server


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
    async def run() -> None:
        settings = Settings(redis_url=f"redis://127.0.0.1:{redis_server.port}/0")
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            store = Store(redis, settings)
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
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_a_reply_being_written_when_indexed_is_compared_until_it_is_done(
    redis_server: Server,
) -> None:
    """A finishing reply changes its chat without renewing it; the index notes that a
    reply was being written and looks again. A chat untouched for a while is not read."""

    async def run() -> None:
        settings = Settings(redis_url=f"redis://127.0.0.1:{redis_server.port}/0")
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            store = Store(redis, settings)
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
        finally:
            await redis.aclose()

    asyncio.run(run())
