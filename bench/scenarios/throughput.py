"""Scenario 3: one long reply (2,000 tokens, no delay) direct and through the stack.

Tokens per second are counted from the first token to the last at the client, so the
figure is the streaming rate itself, not the time to first token. The routes alternate,
and the ratio is the median through the stack over the median direct.

A reply that reached the client in one socket read has no span to divide by: it gives no
rate (counted in `one_read`), never 0 tokens/s. The smoke run streams the full run's 2,000
tokens for that reason: 200 went through nginx in one read, and its figure read 0.
"""

from __future__ import annotations

import math
from typing import Any

from bench.clients import Turn
from bench.context import Bench
from bench.report import Outcome, at_least
from bench.routes import OpenAIRoute, Route, SseRoute, WsRoute, run_batch
from bench.stats import median, ratio

STACK = "nginx-sse"


def rate(turn: Turn) -> float | None:
    """Tokens per second after the first token; None when every token came in one read."""
    span = turn.token_times[-1] - turn.token_times[0]
    return (len(turn.token_times) - 1) / span if span > 0 else None


def describe(turns: list[Turn], tokens: int) -> dict[str, Any]:
    good = [t for t in turns if t.ok and len(t.token_times) == tokens]
    found = [rate(t) for t in good]
    rates = [r for r in found if r is not None]
    return {
        "tokens_per_s": [round(r) for r in rates],
        "median_tokens_per_s": round(median(rates)) if rates else None,
        "one_read": len(found) - len(rates),
        "errors": len(turns) - len(good),
        "first_error": next((t.error for t in turns if not t.ok), None),
    }


async def run(bench: Bench) -> Outcome:
    s, http, scale = bench.stack, bench.http, bench.scale
    conv = s.conversation.url
    routes: list[Route] = [
        OpenAIRoute("direct", http, s.upstream.url),
        OpenAIRoute("floor", http, s.floor.url),
        OpenAIRoute("assistant", http, s.assistant.url),
        SseRoute("conversation-sse", http, conv, conv),
        SseRoute(STACK, http, s.nginx.url, conv),
        WsRoute("nginx-ws", http, s.nginx.url, conv),
        *(peer.route(http) for peer in bench.peers.all()),
    ]
    tokens = [f"tok{i} " for i in range(scale.long_tokens)]
    found: dict[str, list[Turn]] = {}
    try:
        s.fake.reset()
        s.fake.script({"tokens": tokens, "delay_ms": 0, "times": 100_000})
        for route in routes:  # warm-up
            await run_batch(route, 1, 1, "long")
        for _ in range(scale.long_reps):
            for route in routes:
                found.setdefault(route.name, []).extend(await run_batch(route, 1, 1, "long"))
    finally:
        s.fake.reset()
    figures = {name: describe(turns, len(tokens)) for name, turns in found.items()}
    direct = figures["direct"]["median_tokens_per_s"]
    ratios = {name: ratio(f["median_tokens_per_s"], direct, 3) for name, f in figures.items()}
    note = ", ".join(
        f"{n} {'n/a' if math.isnan(r) else f'{r}x'}" for n, r in ratios.items() if n != "direct"
    )
    targets = [
        at_least(3, "streaming throughput, stack / direct", 0.9, ratios[STACK], "x", note=note)
    ]
    return Outcome({"tokens": len(tokens), "routes": figures, "ratio_to_direct": ratios}, targets)
