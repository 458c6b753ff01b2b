"""Scenario 13: the embedded model shared by 4 chats at once, against one chat alone.

One assistant with the embedded SmolLM2 and LOCAL_PARALLEL=4. Each repetition runs one chat
alone, then 4 chats sent at once (different questions, greedy, the same token cap), all
through assistant's HTTP API. Per repetition: the slowest of the 4 first tokens over the
lone chat's, and the 4 chats' aggregate tokens per second (all their tokens over the time
from the first request to the last token) over the lone chat's (its tokens over its own
request-to-last-token time). The figures are the medians over repetitions. A chat "waited
behind a whole reply" when its first token came after another chat of its group had ended.

For comparison, one group of 4 runs on an assistant with LOCAL_PARALLEL=1: one reply at a
time, as before batching.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.clients import Turn, openai_stream
from bench.context import Bench
from bench.report import Outcome, at_least, at_most
from bench.stack import start_local_assistant
from bench.stats import median, ms

CHATS = 4
QUESTIONS = [
    "Tell me a long story about a lighthouse keeper and a storm.",
    "Describe, step by step, how bread is baked.",
    "Write a long letter to a friend about a trip to the mountains.",
    "Explain in detail how a bicycle works.",
]
TTFT_LIMIT = 2.0
RATE_TARGET = 1.5


async def served_model(bench: Bench, url: str) -> str:
    async with bench.http.get(f"{url}/v1/models") as response:
        listed = await response.json()
    return str(listed["data"][0]["id"])


async def prompt_reading(bench: Bench, url: str) -> dict[str, int]:
    """Prompt tokens the model read, and those it found already in a slot or copied from one
    (the chat template and system prompt every prompt starts with), since it started."""
    async with bench.http.get(f"{url}/health") as response:
        stats = (await response.json())["stats"]
    return {key: int(stats[key]) for key in ("prompt_tokens_read", "prompt_tokens_reused")}


async def chat(bench: Bench, url: str, question: str, max_tokens: int) -> Turn:
    model = await served_model(bench, url)
    turn = await openai_stream(
        bench.http, url, question, model=model, temperature=0, max_tokens=max_tokens
    )
    if not turn.ok:
        raise RuntimeError(f"a chat failed: {turn.error}")
    return turn


def questions(round_: int) -> list[str]:
    """New questions each round: only the system prompt is a prefix an earlier chat left in a
    slot, as for people asking different things (a slot reuses a shared prefix's cells)."""
    return [f"Question {round_}.{k}. {q}" for k, q in enumerate(QUESTIONS)]


def aggregate_rate(turns: list[Turn]) -> float:
    """All tokens over the time from the first request to the last token."""
    began = min(t.start for t in turns)
    ended = max(t.token_times[-1] for t in turns)
    return sum(len(t.token_times) for t in turns) / (ended - began)


def waited_behind_a_reply(turns: list[Turn]) -> int:
    """Chats whose first token came after another chat of the group had ended."""
    return sum(
        any(other is not t and other.end <= t.token_times[0] for other in turns) for t in turns
    )


async def together(bench: Bench, url: str, asked: list[str], max_tokens: int) -> list[Turn]:
    return list(await asyncio.gather(*(chat(bench, url, q, max_tokens) for q in asked)))


def group_figures(turns: list[Turn]) -> dict[str, Any]:
    return {
        "ttft_ms": [round(ms(t.ttft), 1) for t in turns],
        "tokens": [len(t.token_times) for t in turns],
        "aggregate_tokens_per_s": round(aggregate_rate(turns), 1),
        "waited_behind_a_reply": waited_behind_a_reply(turns),
    }


async def run(bench: Bench) -> Outcome:
    scale = bench.scale
    tokens = scale.model_tokens
    reps = scale.model_reps
    settings = {"LOCAL_MAX_TOKENS": str(tokens), "LOCAL_QUEUE_SIZE": str(CHATS)}
    rounds: list[dict[str, Any]] = []
    server = start_local_assistant(LOCAL_PARALLEL=str(CHATS), **settings)
    try:
        await together(bench, server.url, questions(0), tokens)  # warm-up: weights paged in
        for rep in range(1, reps + 1):
            alone = await chat(bench, server.url, f"Alone {rep}. {QUESTIONS[0]}", tokens)
            group = await together(bench, server.url, questions(rep), tokens)
            rounds.append(
                {
                    "alone_ttft_ms": round(ms(alone.ttft), 1),
                    "alone_tokens": len(alone.token_times),
                    "alone_tokens_per_s": round(aggregate_rate([alone]), 1),
                    **group_figures(group),
                    "ttft_ratio": round(max(t.ttft for t in group) / alone.ttft, 2),
                    "rate_ratio": round(aggregate_rate(group) / aggregate_rate([alone]), 2),
                }
            )
        reading = await prompt_reading(bench, server.url)
    finally:
        server.stop()
    serial = start_local_assistant(LOCAL_PARALLEL="1", **settings)
    try:
        await chat(bench, serial.url, QUESTIONS[0], tokens)  # warm-up
        began = time.perf_counter()
        one_at_a_time = group_figures(await together(bench, serial.url, questions(0), tokens))
        one_at_a_time["seconds"] = round(time.perf_counter() - began, 2)
    finally:
        serial.stop()

    ttft_ratio = median([r["ttft_ratio"] for r in rounds])
    rate_ratio = median([r["rate_ratio"] for r in rounds])
    waited = sum(r["waited_behind_a_reply"] for r in rounds)
    last = rounds[-1]
    targets = [
        at_most(
            13,
            "embedded model, 4 chats at once: slowest first token / one chat alone's",
            TTFT_LIMIT,
            ttft_ratio,
            "x",
            note=f"median of {len(rounds)} rounds {[r['ttft_ratio'] for r in rounds]}; last "
            f"round {last['ttft_ms']} ms vs {last['alone_ttft_ms']} ms alone; one reply at a "
            f"time (LOCAL_PARALLEL=1): {one_at_a_time['ttft_ms']} ms; prompt tokens read "
            f"{reading['prompt_tokens_read']}, found in a slot {reading['prompt_tokens_reused']}",
        ),
        at_least(
            13,
            "embedded model, 4 chats at once: aggregate tokens/s / one chat alone's",
            RATE_TARGET,
            rate_ratio,
            "x",
            note=f"median of {len(rounds)} rounds {[r['rate_ratio'] for r in rounds]}; last "
            f"round {last['aggregate_tokens_per_s']} vs {last['alone_tokens_per_s']} tokens/s; "
            f"one at a time: {one_at_a_time['aggregate_tokens_per_s']} tokens/s",
        ),
        at_most(
            13,
            "embedded model, 4 chats at once: chats that waited behind a whole reply",
            0,
            waited,
            "",
            note=f"over {len(rounds) * CHATS} chats; one reply at a time: "
            f"{one_at_a_time['waited_behind_a_reply']} of {CHATS}",
        ),
    ]
    figures = {
        "max_tokens": tokens,
        "rounds": rounds,
        "median_ttft_ratio": ttft_ratio,
        "median_rate_ratio": rate_ratio,
        "one_at_a_time": one_at_a_time,
        "prompt_tokens": reading,
    }
    return Outcome(figures, targets)
