"""Scenario 9: searching one browser's chats, 1,000 chats of 50 messages each.

The chats are written through conversation's own Store (the scripts an import runs), owned
by one browser, with text drawn from a made-up vocabulary so a word's share of chats is
known: a rare word (one chat), a word in about a tenth of the chats, a word in every chat,
and two words together. Queries go through nginx with the browser's cookie, one at a time,
the kinds taking turns. The first query builds every chat's word list and is reported on
its own; the target is the p99 of the queries after it.
"""

from __future__ import annotations

import random
import time
from typing import Any

from redis.asyncio import Redis

from bench.context import Bench
from bench.report import Outcome, at_most
from bench.stats import ms, summary
from conversation.auth import new_browser_id
from conversation.config import Settings
from conversation.store import Store, digest, new_message

# A fixed vocabulary of made-up words ("bakulo", "temira", ...), the same every run.
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    found: set[str] = set()
    while len(found) < size:
        found.add("".join(rng.choice(SYLLABLES) for _ in range(3)))
    return sorted(found)


async def seed(store: Store, owner: str, chats: int, messages: int) -> dict[str, str]:
    """The chats, and a query of each kind that this seeding makes selective as named."""
    rng = random.Random(9)
    words = vocabulary(rng, 3000)
    common, tenth, rare, pair_a, pair_b = "everywhere", "tenthword", "needlezz", "alpha", "omega"
    for c in range(chats):
        meta, _ = await store.create_session(f"Chat {c} about {rng.choice(words)}", "", owner)
        batch = []
        for m in range(messages):
            text = " ".join(rng.choice(words) for _ in range(30))
            if m == messages // 2:
                text += f" {common}"
                if c % 10 == 0:
                    text += f" {tenth} {pair_a}"
                if c % 10 == 5:
                    text += f" {pair_b}"
                if c % 20 == 0:
                    text += f" {pair_b}"  # both words in one message: a tenth of a tenth
                if c == chats // 3:
                    text += f" {rare}"
            batch.append(new_message("user" if m % 2 == 0 else "assistant", text, "complete"))
        await store.append_messages(meta.session_id, batch)
    return {"rare": rare, "tenth": tenth, "every chat": common, "two words": f"{pair_a} {pair_b}"}


async def run(bench: Bench) -> Outcome:
    stack, scale = bench.stack, bench.scale
    chats, messages, rounds = (50, 10, 5) if scale.quick else (1000, 50, 100)
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{stack.redis.port}/0", max_sessions_per_browser=0
    )
    browser = new_browser_id()
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        began = time.perf_counter()
        queries = await seed(Store(redis, settings), digest(browser), chats, messages)
        seeding = time.perf_counter() - began
    finally:
        await redis.aclose()
    cookies = {settings.cookie_name: browser}
    url = f"{stack.nginx.url}/api/search"

    async def query(q: str) -> tuple[float, int]:
        start = time.perf_counter()
        async with bench.http.get(url, params={"q": q}, cookies=cookies) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"search: HTTP {response.status} {body}")
        return time.perf_counter() - start, len(body["results"])

    first, _ = await query("warmup")
    times: dict[str, list[float]] = {kind: [] for kind in queries}
    found: dict[str, int] = {}
    for _ in range(rounds):
        for kind, q in queries.items():
            took, count = await query(q)
            times[kind].append(took)
            found[kind] = count
    every = [t for kinds in times.values() for t in kinds]
    overall = summary([ms(t) for t in every])
    figures: dict[str, Any] = {
        "chats": chats,
        "messages_per_chat": messages,
        "seeding_seconds": round(seeding, 1),
        "first_query_ms": round(ms(first), 1),
        "queries": {
            kind: {"q": queries[kind], "results": found[kind], "ms": summary([ms(t) for t in ts])}
            for kind, ts in times.items()
        },
        "all_ms": overall,
    }
    target = at_most(
        9,
        f"search p99 per query, {chats:,} chats of {messages} messages",
        50,
        float(overall["p99"]),
        "ms",
        note=f"p50 {overall['p50']} ms; the first query, which builds every chat's word list, "
        f"{ms(first):.0f} ms",
    )
    return Outcome(figures, [target])
