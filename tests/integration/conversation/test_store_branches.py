"""The message tree in a real redis-server: edits and regenerations add versions, switching
shows one, and nothing is lost."""

from __future__ import annotations

from typing import Any, cast

import pytest

from conversation.store import (
    Claim,
    HistoryPage,
    Store,
    SwitchRefused,
    TurnMode,
    TurnRefused,
    TurnStarted,
    new_message,
)


@pytest.fixture
def store_settings() -> dict[str, Any]:
    return {"key_prefix": "branchtest", "max_stored_messages_per_session": 12}


async def new_session(store: Store) -> Claim:
    meta, token = await store.create_session("n", "", "")
    return Claim.for_token(meta.session_id, token)


async def turn(
    store: Store, claim: Claim, mode: TurnMode, content: str = "", target: str = ""
) -> TurnStarted:
    """A whole turn: started, then its reply finished as the generation stores it."""
    user = new_message("user", content, "complete")
    reply = new_message("assistant", "", "streaming")
    started = await store.begin_turn(claim, mode, user, reply, None, 10_000, target)
    assert isinstance(started, TurnStarted), started
    text = f"re: {started.user.content}"
    done = reply.model_copy(
        update={"content": text, "status": "complete", "parent": started.user.id}
    )
    await store.finish(claim.session_id, done, 0)
    return started


async def refusal(store: Store, claim: Claim, mode: TurnMode, target: str = "") -> object:
    user = new_message("user", "x", "complete")
    reply = new_message("assistant", "", "streaming")
    return await store.begin_turn(claim, mode, user, reply, None, 100, target)


async def page(store: Store, claim: Claim) -> HistoryPage:
    found = await store.history(claim.session_id)
    assert found is not None
    return found


async def shown(store: Store, claim: Claim) -> list[tuple[str, int, int]]:
    """The active path: each message's text, sibling index and sibling count."""
    p = await page(store, claim)
    return [
        (m.content, place.index, place.count)
        for m, place in zip(p.messages, p.siblings, strict=True)
    ]


async def test_editing_any_user_message_adds_a_version_and_keeps_the_old(store: Store) -> None:
    claim = await new_session(store)
    await turn(store, claim, "message", "one")
    await turn(store, claim, "message", "two")
    first = (await page(store, claim)).messages[0]
    edited = await turn(store, claim, "edit", "uno", target=first.id)
    # The context sent to the model is the new path only.
    assert [m.content for m in edited.context] == ["uno"]
    assert await shown(store, claim) == [("uno", 2, 2), ("re: uno", 1, 1)]
    tree = await store.read_tree(claim.session_id)
    assert len(tree.messages) == 6  # nothing lost
    assert tree.children[""] == [first.id, edited.user.id]
    assert tree.messages[edited.user.id].parent is None
    # The branch below the old version is remembered: switching back shows all of it.
    await store.switch(claim.session_id, edited.user.id, 1)
    assert await shown(store, claim) == [
        ("one", 1, 2),
        ("re: one", 1, 1),
        ("two", 1, 1),
        ("re: two", 1, 1),
    ]


async def test_regenerating_any_reply_adds_a_sibling_and_the_context_ends_before_it(
    store: Store,
) -> None:
    claim = await new_session(store)
    await turn(store, claim, "message", "one")
    await turn(store, claim, "message", "two")
    old = (await page(store, claim)).messages[1]
    again = await turn(store, claim, "regenerate", target=old.id)
    assert [m.content for m in again.context] == ["one"]
    assert await shown(store, claim) == [("one", 1, 1), ("re: one", 2, 2)]
    new_reply = (await page(store, claim)).messages[1]
    assert new_reply.parent == again.user.id == (await page(store, claim)).messages[0].id
    # Without a target: the last reply.
    await turn(store, claim, "regenerate")
    assert await shown(store, claim) == [("one", 1, 1), ("re: one", 3, 3)]
    assert await store.switch(claim.session_id, new_reply.id, 1) is None
    assert [t for t, _, _ in await shown(store, claim)] == ["one", "re: one", "two", "re: two"]


async def test_switching_refuses_what_it_cannot_show(store: Store) -> None:
    claim = await new_session(store)
    sid = claim.session_id
    started = await turn(store, claim, "message", "one")
    assert await store.switch(sid, started.user.id, 2) == SwitchRefused(
        "sibling_index", sibling_count=1
    )
    assert await store.switch(sid, "0123456789abcdef", None) == SwitchRefused("gone")
    # While a reply is being written, the path stays as it is.
    user = new_message("user", "two", "complete")
    reply = new_message("assistant", "", "streaming")
    assert isinstance(await store.begin_turn(claim, "message", user, reply, None, 100), TurnStarted)
    assert await store.switch(sid, started.user.id, 1) == SwitchRefused("busy", holder=reply.id)


async def test_edit_and_regenerate_name_what_they_refuse(store: Store) -> None:
    claim = await new_session(store)
    await turn(store, claim, "message", "one")
    user, reply = (await page(store, claim)).messages
    assert await refusal(store, claim, "edit", reply.id) == TurnRefused("not_user")
    assert await refusal(store, claim, "regenerate", user.id) == TurnRefused("not_reply")
    await turn(store, claim, "edit", "uno", target=user.id)
    # The old version is off the active path now: it cannot be edited until shown.
    assert await refusal(store, claim, "edit", user.id) == TurnRefused("not_on_path")


async def test_the_versions_of_a_session_are_bounded(store: Store) -> None:
    claim = await new_session(store)  # at most 12 messages stored over all branches
    await turn(store, claim, "message", "one")
    for _ in range(10):
        await turn(store, claim, "regenerate")
    assert await refusal(store, claim, "regenerate") == TurnRefused("full_tree")
    assert await shown(store, claim) == [("one", 1, 1), ("re: one", 11, 11)]


async def test_a_session_stored_before_the_tree_gets_one(store: Store) -> None:
    claim = await new_session(store)
    sid = claim.session_id
    await turn(store, claim, "message", "one")
    await turn(store, claim, "message", "two")
    # As an older version stored it: no tree, no parents.
    key = store.keys.session(sid)
    await store.redis.delete(f"{key}:k")
    stored = cast(dict[str, str], await store.redis.hgetall(f"{key}:m"))
    for mid, raw in stored.items():
        await store.redis.hset(f"{key}:m", mid, raw.replace(raw[: raw.index('"id"')], "{"))
    assert await shown(store, claim) == [
        ("one", 1, 1),
        ("re: one", 1, 1),
        ("two", 1, 1),
        ("re: two", 1, 1),
    ]
    second = (await page(store, claim)).messages[2]
    await turn(store, claim, "edit", "dos", target=second.id)
    assert [s for _, s, _ in await shown(store, claim)] == [1, 1, 2, 1]
    await store.switch(sid, second.id, None)
    assert [t for t, _, _ in await shown(store, claim)] == ["one", "re: one", "two", "re: two"]
    ttls = [await store.redis.ttl(k) async for k in store.redis.scan_iter(f"{key}*")]
    assert ttls and all(t > 0 for t in ttls)
