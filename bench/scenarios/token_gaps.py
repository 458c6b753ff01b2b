"""Scenario 2: no buffering, and what each token costs on its way to the browser.

The fake model sends 64 tokens 20 ms apart. Direct, every gap between two tokens at the
client is the pace plus the fake's own jitter; through the stack each gap may be longer or
shorter by what our hops add. The figure is the gap's distance from the pace, |gap - 20 ms|,
through the stack minus the same distance direct, at p50 and p99. The same stream through an
nginx with proxy buffering on shows that the measurement can fail: held-back events arrive in
bursts, so the gaps are 0 or several paces long.
"""

from __future__ import annotations

from typing import Any

from bench.clients import Turn
from bench.context import Bench
from bench.report import Outcome, Target, at_most
from bench.routes import OpenAIRoute, Route, SseRoute, WsRoute, run_batch
from bench.stack import start_bench_nginx
from bench.stats import ms, percentile, summary

PACE_MS = 20
STACK = "nginx-sse"
BUFFERED = "nginx-buffered-sse"


def describe(turns: list[Turn]) -> dict[str, Any]:
    good = [t for t in turns if t.ok]
    gaps = [ms(g) for t in good for g in t.gaps()]
    excess = [abs(g - PACE_MS) for g in gaps]
    events = sum(t.events for t in good)
    return {
        "gap_ms": summary(gaps),
        "excess_ms": summary(excess),
        "gaps": [round(g, 3) for g in gaps],  # for the plot
        "events": events,
        "events_delivered_together": sum(t.coalesced for t in good),
        "tokens_per_stream": sorted({len(t.token_times) for t in good}),
        "errors": len(turns) - len(good),
    }


def added(figures: dict[str, dict[str, Any]], route: str, q: int) -> float:
    def excess(name: str) -> float:
        gaps = figures[name]["gaps"]
        return percentile([abs(g - PACE_MS) for g in gaps], q)

    return round(excess(route) - excess("direct"), 3)


async def run(bench: Bench) -> Outcome:
    s, http, scale = bench.stack, bench.http, bench.scale
    conv = s.conversation.url
    buffered = start_bench_nginx(s.conversation, buffered=True)
    tokens = [f"tok{i} " for i in range(scale.gap_tokens)]
    try:
        routes: list[Route] = [
            OpenAIRoute("direct", http, s.upstream.url),
            SseRoute(STACK, http, s.nginx.url, conv),
            WsRoute("nginx-ws", http, s.nginx.url, conv),
            SseRoute(BUFFERED, http, buffered.url, conv),
        ]
        s.fake.reset()
        s.fake.script({"tokens": tokens, "delay_ms": PACE_MS, "times": 100_000})
        found: dict[str, list[Turn]] = {}
        for _ in range(scale.gap_streams):
            for route in routes:
                found.setdefault(route.name, []).extend(await run_batch(route, 1, 1, "gaps"))
    finally:
        s.fake.reset()
        buffered.stop()
    figures = {name: describe(turns) for name, turns in found.items()}
    added_p50 = {n: added(figures, n, 50) for n in figures if n != "direct"}
    added_p99 = {n: added(figures, n, 99) for n in figures if n != "direct"}
    ws = (
        f"WebSocket through nginx: +{added_p50['nginx-ws']} ms p50, +{added_p99['nginx-ws']} ms p99"
    )
    buffered_fails = added_p50[BUFFERED] > 0.2 or added_p99[BUFFERED] > 2
    targets: list[Target] = [
        at_most(2, "added gap between tokens, p50", 0.2, added_p50[STACK], "ms", note=ws),
        at_most(2, "added gap between tokens, p99", 2, added_p99[STACK], "ms"),
        Target(
            2,
            "nginx with proxy buffering on fails the gap targets",
            "fails",
            added_p99[BUFFERED],
            "ms added p99",
            buffered_fails,
            note=f"{figures[BUFFERED]['events_delivered_together']} of "
            f"{figures[BUFFERED]['events']} events arrived in a read with another "
            f"(unbuffered: {figures[STACK]['events_delivered_together']})",
        ),
    ]
    result = {
        "pace_ms": PACE_MS,
        "tokens": scale.gap_tokens,
        "routes": figures,
        "added_excess_p50_ms": added_p50,
        "added_excess_p99_ms": added_p99,
    }
    return Outcome(result, targets)
