"""Scenario 7: does posting a message get slower as a session's history grows?

Sessions with 10, 1,000 and 10,000 stored messages are written through conversation's own
Store (the same Lua scripts a real turn runs, without the model), then messages are posted
to each through nginx in turn, alternating sessions. The figure is the median time to first
token at the largest history over the smallest. Reading a whole history back
(`GET /api/sessions/{id}`, what a reload does) is reported too; it is expected to grow.

A branched session stores as many messages as the largest, in BRANCHES branches from its
first message (each made by editing it, as a person does), so its active path is one
branch: its time to first token over the smallest's has the same target.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from bench.clients import ChatSession, Turn, sse_turn
from bench.context import Bench
from bench.report import Outcome, at_most
from bench.stats import ms, summary
from conversation.config import Settings
from conversation.store import Claim, Store, TurnMode, TurnStarted, new_message

QUESTION = "What is a good way to keep a chat history fast as it grows? " * 2
ANSWER = "Read only the newest messages that fit the context, and append, never rewrite. " * 3
BRANCHES = 20
BRANCHED = -1  # the branched session's key among the sizes


async def seed_branches(store: Store, messages: int, branches: int = 1) -> ChatSession:
    """A session holding `messages` stored messages (user and reply alternating), in
    `branches` branches of equal length from the first message."""
    meta, token = await store.create_session("bench history", "", "")
    claim = Claim.for_token(meta.session_id, token)
    turns = branch_length(messages, branches) // 2
    first = ""
    for branch in range(branches):
        for i in range(turns):
            user = new_message("user", QUESTION, "complete")
            reply = new_message("assistant", "", "streaming")
            # Each further branch starts by editing the first message of the one before.
            mode: TurnMode = "edit" if branch and not i else "message"
            # A budget of one token: the seeding turn reads back the least context it can.
            started = await store.begin_turn(claim, mode, user, reply, None, 1, first)
            if not isinstance(started, TurnStarted):
                raise RuntimeError(f"seeding refused: {started}")
            first = started.user.id if not i else first
            done = reply.model_copy(
                update={"content": ANSWER, "status": "complete", "parent": started.user.id}
            )
            await store.finish(meta.session_id, done, 0)
    return ChatSession(meta.session_id, token)


async def seed(store: Store, exchanges: Iterable[tuple[str, str]]) -> ChatSession:
    """A session holding the `exchanges` (a message and its reply, each pair a turn),
    written through conversation's own Store scripts."""
    meta, token = await store.create_session("bench history", "", "")
    claim = Claim.for_token(meta.session_id, token)
    for question, answer in exchanges:
        user = new_message("user", question, "complete")
        reply = new_message("assistant", "", "streaming")
        # A budget of one token: the seeding turn reads back the least context it can.
        started = await store.begin_turn(claim, "message", user, reply, None, 1)
        if not isinstance(started, TurnStarted):
            raise RuntimeError(f"seeding refused: {started}")
        done = reply.model_copy(
            update={"content": answer, "status": "complete", "parent": started.user.id}
        )
        await store.finish(meta.session_id, done, 0)
    return ChatSession(meta.session_id, token)


async def read_history(bench: Bench, session: ChatSession) -> float:
    url = f"{bench.stack.nginx.url}/api/sessions/{session.session_id}"
    began = time.perf_counter()
    async with bench.http.get(url, headers=session.auth) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"reading the history: HTTP {response.status}")
    return time.perf_counter() - began


async def run(bench: Bench) -> Outcome:
    stack, scale = bench.stack, bench.scale
    # Seeded past the product's MAX_MESSAGES_PER_SESSION (and MAX_STORED_...), which the
    # bench turns off.
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{stack.redis.port}/0",
        max_messages_per_session=0,
        max_stored_messages_per_session=0,
    )
    largest = max(scale.history_sizes)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        began = time.perf_counter()
        seeded = await asyncio.gather(
            *(seed_branches(Store(redis, settings), n) for n in scale.history_sizes),
            seed_branches(Store(redis, settings), largest, BRANCHES),
        )
        sessions = dict(zip(scale.history_sizes, seeded, strict=False))
        branched = seeded[-1]
        seeding = time.perf_counter() - began
    finally:
        await redis.aclose()
    stack.fake.reset()
    # The branched session's figures under key BRANCHED, beside the sizes.
    every = {**sessions, BRANCHED: branched}
    turns: dict[int, list[Turn]] = {n: [] for n in every}
    reads: dict[int, list[float]] = {n: [] for n in every}
    for session in every.values():  # warm-up
        await sse_turn(bench.http, stack.nginx.url, session, "warm up")
    for _ in range(scale.history_turns):
        for n, session in every.items():
            turns[n].append(await sse_turn(bench.http, stack.nginx.url, session, "hello"))
    for _ in range(max(scale.history_turns // 8, 1)):
        for n, session in every.items():
            reads[n].append(await read_history(bench, session))
    figures: dict[int, dict[str, Any]] = {}
    for n, found in turns.items():
        good = [t for t in found if t.ok]
        figures[n] = {
            "ttft_ms": summary([ms(t.ttft) for t in good]),
            "turn_ms": summary([ms(t.end - t.start) for t in good]),
            "read_history_ms": summary([ms(r) for r in reads[n]]),
            "errors": len(found) - len(good),
        }
    small, large = min(sessions), max(sessions)

    def ratio(key: str, base: int = small, of: int = large) -> float:
        return round(median_of(figures[of], key) / median_of(figures[base], key), 3)

    middle = sorted(sessions)[-2]
    # Past a few dozen messages the context sent to the model is full (CONTEXT_TOKEN_BUDGET),
    # so middle -> large isolates the cost of the stored history itself.
    context_full = f"; {middle:,} -> {large:,} messages: {ratio('ttft_ms', middle)}x"

    target = at_most(
        7,
        f"time to first token with {large:,} stored messages / with {small}",
        1.2,
        ratio("ttft_ms"),
        "x",
        note=f"whole turn {ratio('turn_ms')}x; reading the whole history back "
        f"{ratio('read_history_ms')}x{context_full if middle != small else ''}",
    )
    shape = f"{BRANCHES} branches of {branch_length(largest):,}"
    branched_target = at_most(
        7,
        f"time to first token with {largest:,} stored messages in {shape} / with {small}",
        1.2,
        ratio("ttft_ms", of=BRANCHED),
        "x",
        note=f"whole turn {ratio('turn_ms', of=BRANCHED)}x; reading its active path back "
        f"{ratio('read_history_ms', of=BRANCHED)}x",
    )
    result = {
        "sizes": {str(n): figures[n] for n in sessions},
        "branched": {"shape": shape, **figures[BRANCHED]},
        "seeding_seconds": round(seeding, 1),
        "ratios": {k: ratio(k) for k in ("ttft_ms", "turn_ms", "read_history_ms")},
        "branched_ratios": {
            k: ratio(k, of=BRANCHED) for k in ("ttft_ms", "turn_ms", "read_history_ms")
        },
    }
    return Outcome(result, [target, branched_target])


def branch_length(messages: int, branches: int = BRANCHES) -> int:
    """Messages per branch: whole turns, at least one."""
    return max(messages // (2 * branches), 1) * 2


def median_of(figures: dict[str, Any], key: str) -> float:
    return float(figures[key]["p50"])
