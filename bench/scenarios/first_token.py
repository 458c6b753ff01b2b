"""Scenario 1: time to first token, direct to the fake model and through each hop.

The same short streamed reply (16 tokens, no delay: only our overhead shows) is asked for
directly, through assistant, through conversation (SSE and WebSocket) and through nginx
(SSE and WebSocket), at 1, 16 and 64 chats at once. Chats are closed loops: each sends its
next message as soon as its reply is done. Routes alternate batch by batch so that a
change in the machine's load hits every route alike.
"""

from __future__ import annotations

import math

from bench.clients import Turn
from bench.context import Bench
from bench.report import Outcome, Target, at_most
from bench.routes import OpenAIRoute, Route, SseRoute, WsRoute, run_batch
from bench.stats import ms, percentile, summary

STACK = "nginx-sse"  # the browser's path: the figure the targets are about
# A session's history is part of every turn's context: keep it as short as the direct
# request's (one message), so only the hops differ. Growth with history is scenario 7.
PER_SESSION = 4


def routes(bench: Bench) -> list[Route]:
    s, http = bench.stack, bench.http
    conv = s.conversation.url
    return [
        OpenAIRoute("direct", http, s.upstream.url),
        OpenAIRoute("assistant", http, s.assistant.url),
        SseRoute("conversation-sse", http, conv, conv),
        WsRoute("conversation-ws", http, conv, conv),
        SseRoute("nginx-sse", http, s.nginx.url, conv),
        WsRoute("nginx-ws", http, s.nginx.url, conv),
    ]


async def measure(bench: Bench, concurrency: int) -> dict[str, list[Turn]]:
    """About `ttft_turns` turns per route, in rounds of at most PER_SESSION turns per chat on
    fresh sessions, the routes taking turns round by round."""
    scale = bench.scale
    rounds = max(scale.ttft_reps, math.ceil(scale.ttft_turns / (concurrency * PER_SESSION)))
    each = max(1, math.ceil(scale.ttft_turns / (rounds * concurrency)))
    found: dict[str, list[Turn]] = {}
    all_routes = routes(bench)
    for route in all_routes:  # warm-up: connections, scripts, caches; not counted
        await run_batch(route, concurrency, 1, "warm up")
    for _ in range(rounds):
        for route in all_routes:
            found.setdefault(route.name, []).extend(
                await run_batch(route, concurrency, each, "hello")
            )
    return found


def describe(turns: list[Turn]) -> dict[str, object]:
    good = [t for t in turns if t.ok]
    return {
        "ttft_ms": summary([ms(t.ttft) for t in good]),
        "turn_ms": summary([ms(t.end - t.start) for t in good]),
        "errors": len(turns) - len(good),
        "first_error": next((t.error for t in turns if not t.ok), None),
    }


def added(figures: dict[str, dict[str, object]], route: str, q: str) -> float:
    def value(name: str) -> float:
        ttft = figures[name]["ttft_ms"]
        assert isinstance(ttft, dict)
        return float(ttft.get(q, math.nan))

    return round(value(route) - value("direct"), 3)


async def run(bench: Bench) -> Outcome:
    levels: dict[str, object] = {}
    p99_stack: dict[int, float] = {}
    for concurrency in bench.scale.ttft_concurrency:
        turns = await measure(bench, concurrency)
        figures = {name: describe(found) for name, found in turns.items()}
        stack_ttft = [ms(t.ttft) for t in turns[STACK] if t.ok]
        p99_stack[concurrency] = percentile(stack_ttft, 99)
        levels[str(concurrency)] = {
            "routes": figures,
            "added_p50_ms": {n: added(figures, n, "p50") for n in figures if n != "direct"},
            "added_p99_ms": {n: added(figures, n, "p99") for n in figures if n != "direct"},
        }
    low, high = min(p99_stack), max(p99_stack)
    first = levels[str(low)]
    assert isinstance(first, dict)
    errors = sum(
        int(r["errors"])
        for level in levels.values()
        if isinstance(level, dict)
        for r in level["routes"].values()
    )
    growth = p99_stack[high] / p99_stack[low] if p99_stack[low] else math.nan
    targets: list[Target] = [
        at_most(
            1,
            f"TTFT added by the whole stack, p50 at {low} chat",
            3,
            first["added_p50_ms"][STACK],
            "ms",
        ),
        at_most(
            1,
            f"TTFT added by the whole stack, p99 at {low} chat",
            10,
            first["added_p99_ms"][STACK],
            "ms",
        ),
        at_most(
            1,
            f"stack TTFT p99 at {high} chats / p99 at {low}",
            3,
            round(growth, 2),
            "x",
            note=f"p99 {p99_stack[low]:.1f} ms at {low}, {p99_stack[high]:.1f} ms at {high}",
        ),
    ]
    return Outcome({"levels": levels, "stack_route": STACK, "errors": errors}, targets)
