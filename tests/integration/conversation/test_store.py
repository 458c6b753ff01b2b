"""The Redis scripts against a real redis-server: a retried write never applies twice."""

from __future__ import annotations

from typing import Any

import pytest

from conversation.models import StoredMessage
from conversation.store import (
    Claim,
    SessionMeta,
    Store,
    TurnDuplicate,
    TurnOutcome,
    TurnRefused,
    TurnStarted,
    digest,
    new_message,
)


@pytest.fixture
def store_settings() -> dict[str, Any]:
    return {"key_prefix": "storetest"}


async def messages(store: Store, sid: str) -> list[StoredMessage]:
    page = await store.history(sid)
    return page.messages if page else []


async def new_session(store: Store, owner: str = "") -> Claim:
    """A new session, claimed with its token."""
    meta, token = await store.create_session("n", "", digest(owner) if owner else "")
    return Claim.for_token(meta.session_id, token)


async def test_every_write_of_a_turn_can_be_retried(store: Store) -> None:
    claim = await new_session(store)
    sid = claim.session_id
    user = new_message("user", "hi", "complete")
    reply = new_message("assistant", "", "streaming")
    for _ in range(2):  # what redis-py does when a reply is lost after the command ran
        started = await store.begin_turn(claim, "message", user, reply, "c1", 100)
        assert isinstance(started, TurnStarted)
        assert [m.content for m in started.context] == ["hi"]
    for _ in range(2):
        await store.flush(sid, reply.id, 2, "he")
    final = reply.model_copy(update={"content": "hello", "status": "complete"})
    for _ in range(2):
        await store.finish(sid, final, 2)
    entries = await store.redis.xrange(store.keys.stream(sid, reply.id))
    assert entries == [("2-0", {"x": "he"}), ("5-0", {"x": "llo"}), ("5-1", {"k": "complete"})]
    page = await store.history(sid)
    history = page.messages if page else None
    assert history is not None
    assert [(m.role, m.content, m.status) for m in history] == [
        ("user", "hi", "complete"),
        ("assistant", "hello", "complete"),
    ]
    # The same client_message_id from another request is a duplicate: nothing new stored.
    again = await store.begin_turn(
        claim,
        "message",
        new_message("user", "hi", "complete"),
        new_message("assistant", "", "streaming"),
        "c1",
        100,
    )
    assert isinstance(again, TurnDuplicate)
    assert again.user.id == user.id and again.reply is not None and again.reply.id == reply.id
    assert len(await messages(store, sid)) == 2


async def test_one_generation_per_session(store: Store) -> None:
    claim = await new_session(store)
    sid = claim.session_id
    first = new_message("assistant", "", "streaming")
    await store.begin_turn(claim, "message", new_message("user", "a", "complete"), first, None, 100)
    busy = await store.begin_turn(
        claim,
        "message",
        new_message("user", "b", "complete"),
        new_message("assistant", "", "streaming"),
        None,
        100,
    )
    assert busy == TurnRefused(reason="busy", holder=first.id)
    assert len(await messages(store, sid)) == 2


async def test_an_orphaned_reply_is_marked_interrupted_with_its_text(store: Store) -> None:
    claim = await new_session(store)
    sid = claim.session_id
    reply = new_message("assistant", "", "streaming")
    await store.begin_turn(claim, "message", new_message("user", "a", "complete"), reply, None, 100)
    await store.flush(sid, reply.id, 3, "abc")
    assert (await store.check_live(sid, reply.id)).status == "streaming"  # type: ignore[union-attr]
    await store.redis.delete(f"{store.keys.session(sid)}:g")  # the writer's lease ran out
    lost = await store.check_live(sid, reply.id)
    assert lost is not None and (lost.status, lost.content) == ("interrupted", "abc")
    last = await store.redis.xrevrange(store.keys.stream(sid, reply.id), count=1)
    assert last == [("3-1", {"k": "interrupted"})]


async def started_reply(store: Store) -> tuple[str, StoredMessage]:
    """A new session with a turn started: its id and the reply being written."""
    claim = await new_session(store)
    reply = new_message("assistant", "", "streaming")
    user = new_message("user", "hi", "complete")
    started = await store.begin_turn(claim, "message", user, reply, None, 100)
    assert isinstance(started, TurnStarted)
    return claim.session_id, reply


async def test_the_writer_learns_that_someone_tails_its_stream(store: Store) -> None:
    sid, reply = await started_reply(store)
    assert await store.flush(sid, reply.id, 2, "he") is False
    key = store.keys.stream(sid, reply.id)
    assert 0 < await store.redis.ttl(key) <= store.settings.stream_retention
    # A later write without the retention keeps the stream's expiry.
    assert await store.flush(sid, reply.id, 3, "l", expire=False) is False
    assert await store.redis.ttl(key) > 0
    # A reader elsewhere tails it: the next write says so, and the writer speeds up.
    assert await store.read_stream(sid, reply.id, "0-0", 1) == [
        ("2-0", {"x": "he"}),
        ("3-0", {"x": "l"}),
    ]
    assert await store.flush(sid, reply.id, 3, "", expire=False) is True


async def test_a_write_renews_the_lease_only_when_asked_and_only_its_own(store: Store) -> None:
    sid, reply = await started_reply(store)
    lock = f"{store.keys.session(sid)}:g"
    await store.redis.pexpire(lock, 1000)
    await store.flush(sid, reply.id, 2, "he", expire=True, renew=False)
    assert await store.redis.pttl(lock) <= 1000
    await store.flush(sid, reply.id, 3, "l", expire=False, renew=True)
    assert await store.redis.pttl(lock) > 1000
    # Another reply holds the session now: a late write from the old one leaves its lease be.
    await store.redis.set(lock, "other", px=1000)
    await store.flush(sid, reply.id, 4, "l", expire=False, renew=True)
    assert await store.redis.pttl(lock) <= 1000
    entries = await store.redis.xrange(store.keys.stream(sid, reply.id))
    assert entries == [("2-0", {"x": "he"}), ("3-0", {"x": "l"}), ("4-0", {"x": "l"})]
    assert await store.redis.ttl(store.keys.stream(sid, reply.id)) > 0


async def start(store: Store, claim: Claim) -> TurnOutcome:
    user, reply = new_message("user", "hi", "complete"), new_message("assistant", "", "streaming")
    return await store.begin_turn(claim, "message", user, reply, None, 100)


async def test_a_turn_starts_only_with_the_sessions_credentials(store: Store) -> None:
    """The script that starts a turn checks the claim: a refused one stores nothing."""
    mine, other = await new_session(store, owner="browser-a"), await new_session(store)
    sid = mine.session_id
    wrong_token = Claim(sid, token_hash=other.token_hash)
    missing = Claim("0" * 32, token_hash=mine.token_hash)
    cookie = Claim(sid, owner_hash=digest("browser-a"), cookie_allowed=True)
    cookie_csrf = Claim(sid, owner_hash=digest("browser-a"), cookie_allowed=False)
    wrong_cookie = Claim(sid, owner_hash=digest("browser-b"), cookie_allowed=True)
    nothing = Claim(sid)

    assert await start(store, wrong_token) == TurnRefused(reason="denied")
    assert await start(store, missing) == TurnRefused(reason="denied")
    assert await start(store, wrong_cookie) == TurnRefused(reason="denied")
    assert await start(store, nothing) == TurnRefused(reason="denied")
    assert await start(store, cookie_csrf) == TurnRefused(reason="csrf")
    assert await messages(store, sid) == []
    assert await store.redis.exists("storetest:s:" + "0" * 32) == 0

    started = await start(store, cookie)
    assert isinstance(started, TurnStarted) and started.system_prompt == ""
    assert len(await messages(store, sid)) == 2


async def test_reading_a_session_checks_the_claim_and_renews_only_when_granted(
    store: Store,
) -> None:
    claim = await new_session(store, owner="browser-a")
    key = store.keys.session(claim.session_id)
    await store.redis.expire(key, 100)

    assert await store.get_meta(Claim(claim.session_id, token_hash=digest("guess"))) == "denied"
    csrf = Claim(claim.session_id, owner_hash=digest("browser-a"), cookie_allowed=False)
    assert await store.get_meta(csrf) == "csrf"
    assert await store.redis.ttl(key) <= 100, "a refused read renews nothing"

    meta = await store.get_meta(claim)
    assert isinstance(meta, SessionMeta) and meta.session_id == claim.session_id
    assert await store.redis.ttl(key) > 100


async def test_the_system_prompt_comes_back_and_counts_against_the_context_budget(
    store: Store,
) -> None:
    meta, token = await store.create_session("n", "x" * 400, "")  # ~100 tokens
    claim = Claim.for_token(meta.session_id, token)
    for text in ("a" * 40, "b" * 40):  # 10 tokens each
        reply = new_message("assistant", "", "streaming")
        started = await store.begin_turn(
            claim, "message", new_message("user", text, "complete"), reply, None, 125
        )
        assert isinstance(started, TurnStarted) and started.system_prompt == "x" * 400
        final = reply.model_copy(update={"content": "c" * 40, "status": "complete"})
        await store.finish(claim.session_id, final, 0)
    # 125 - 100 for the prompt leaves 25: the new message (10) and the last reply (10).
    last = new_message("user", "d" * 40, "complete")
    started = await store.begin_turn(
        claim, "message", last, new_message("assistant", "", "streaming"), None, 125
    )
    assert isinstance(started, TurnStarted)
    assert [m.content for m in started.context] == ["c" * 40, "d" * 40]
