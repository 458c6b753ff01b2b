"""Scenario 11: what Redis holds per stored message, against the text itself.

A Redis of its own (the product's command line, no other scenario's keys in it) receives
100,000 messages across 1,000 chats through conversation's own Store scripts (the ones a
real turn runs, without the model): questions of 40-400 characters and replies of
100-2,000, words drawn from a fixed vocabulary with a fixed seed. The figure is `used_memory`
after the seeding minus before it (the scripts already loaded, so only the data counts),
against the UTF-8 size of the texts stored.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

from redis.asyncio import Redis

from bench.context import Bench
from bench.report import Outcome, at_most
from bench.scenarios.history import seed
from conversation.config import Settings
from conversation.store import Store
from tests.support.servers import start_redis

# Target: used_memory growth <= TEXT_FACTOR x the text + PER_MESSAGE_BYTES x the messages.
TEXT_FACTOR = 2
PER_MESSAGE_BYTES = 150
FULL_CHATS, FULL_MESSAGES = 1000, 100_000
QUICK_CHATS, QUICK_MESSAGES = 10, 400
PARALLEL = 16  # chats seeded at once
SEED = 11
WORDS = (
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "it",
    "you",
    "that",
    "for",
    "on",
    "with",
    "as",
    "this",
    "be",
    "are",
    "have",
    "not",
    "was",
    "but",
    "what",
    "can",
    "your",
    "model",
    "reply",
    "history",
    "token",
    "stream",
    "message",
    "context",
    "fast",
    "grows",
    "keep",
    "read",
    "store",
    "append",
    "session",
    "chat",
    "answer",
    "question",
    "example",
    "python",
    "redis",
    "latency",
    "memory",
)


def text(rng: random.Random, low: int, high: int) -> str:
    """Words from WORDS up to a length drawn from [low, high] characters."""
    limit, words, size = rng.randint(low, high), [], 0
    while size < limit:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:limit]


def exchanges(rng: random.Random, count: int) -> Iterator[tuple[str, str]]:
    for _ in range(count):
        yield text(rng, 40, 400), text(rng, 100, 2000)


async def used_memory(db: Redis) -> int:
    info = await db.info("memory")
    return int(info["used_memory"])


async def run(bench: Bench) -> Outcome:
    chats, messages = (
        (QUICK_CHATS, QUICK_MESSAGES) if bench.scale.quick else (FULL_CHATS, FULL_MESSAGES)
    )
    per_chat = messages // chats // 2  # exchanges: a message and its reply
    rng = random.Random(SEED)
    plan = [list(exchanges(rng, per_chat)) for _ in range(chats)]
    text_bytes = sum(len(q.encode()) + len(a.encode()) for chat in plan for q, a in chat)
    stored = chats * per_chat * 2
    redis = start_redis()
    try:
        settings = Settings(
            redis_url=f"redis://127.0.0.1:{redis.port}/0", max_messages_per_session=0
        )
        db = Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            store = Store(db, settings)
            await seed(store, [])  # loads the scripts: their memory is not the messages'
            before = await used_memory(db)
            gate = asyncio.Semaphore(PARALLEL)

            async def one(chat: list[tuple[str, str]]) -> None:
                async with gate:
                    await seed(store, chat)

            await asyncio.gather(*(one(chat) for chat in plan))
            after = await used_memory(db)
            keys = int(await db.dbsize())
            info: dict[str, Any] = await db.info("memory")
        finally:
            await db.aclose()
    finally:
        redis.stop()
    growth = after - before
    allowed = TEXT_FACTOR * text_bytes + PER_MESSAGE_BYTES * stored
    overhead = (growth - text_bytes) / stored
    figures = {
        "chats": chats,
        "messages": stored,
        "text_bytes": text_bytes,
        "used_memory_growth_bytes": growth,
        "growth_per_text_byte": round(growth / text_bytes, 3),
        "bytes_per_message_beyond_text": round(overhead, 1),
        "keys": keys,
        "allocator": info.get("mem_allocator"),
        "fragmentation_ratio": info.get("mem_fragmentation_ratio"),
    }
    target = at_most(
        11,
        f"Redis memory for {stored:,} messages / (2x their text + 150 B per message)",
        1,
        round(growth / allowed, 3),
        "x",
        note=f"used_memory grew {growth / 2**20:.1f} MiB for {text_bytes / 2**20:.1f} MiB of "
        f"text ({growth / text_bytes:.2f}x; {overhead:.0f} B per message beyond the text), "
        f"{chats} chats, {keys} keys",
    )
    return Outcome(figures, [target])
