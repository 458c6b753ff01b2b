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
# What the stack may add to a gap between tokens, as a share of the pace measured direct:
# 1% at p50, 10% at p99 (0.2 ms and 2 ms at this pace, the targets' first statement).
SHARE_P50 = 0.01
SHARE_P99 = 0.1
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
            OpenAIRoute("floor", http, s.floor.url),
            OpenAIRoute("assistant", http, s.assistant.url),
            SseRoute(STACK, http, s.nginx.url, conv),
            WsRoute("nginx-ws", http, s.nginx.url, conv),
            SseRoute(BUFFERED, http, buffered.url, conv),
            *(peer.route(http) for peer in bench.peers.all()),
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
    # The pace measured in the same run (the direct stream's median gap) is the yardstick:
    # the time a hop adds between two tokens, as a share of the gap a model leaves.
    pace = float(figures["direct"]["gap_ms"].get("p50", PACE_MS))
    share50 = {n: round(v / pace, 4) for n, v in added_p50.items()}
    share99 = {n: round(v / pace, 4) for n, v in added_p99.items()}
    others = ", ".join(
        f"{n} +{added_p50[n]} / +{added_p99[n]} ms" for n in added_p50 if n not in (STACK, BUFFERED)
    )
    absolute = (
        f"the whole stack added +{added_p50[STACK]} ms p50, +{added_p99[STACK]} ms p99 to "
        f"gaps of {pace:.2f} ms (direct median); p50 / p99 added by the others: {others}"
    )
    buffered_fails = share50[BUFFERED] > SHARE_P50 or share99[BUFFERED] > SHARE_P99
    targets: list[Target] = [
        at_most(
            2, "added gap between tokens / pace, p50", SHARE_P50, share50[STACK], "x", absolute
        ),
        at_most(2, "added gap between tokens / pace, p99", SHARE_P99, share99[STACK], "x"),
        Target(
            2,
            "nginx with proxy buffering on fails the gap targets",
            "fails",
            share99[BUFFERED],
            "x pace added p99",
            buffered_fails,
            note=f"{figures[BUFFERED]['events_delivered_together']} of "
            f"{figures[BUFFERED]['events']} events arrived in a read with another "
            f"(unbuffered: {figures[STACK]['events_delivered_together']}); "
            f"+{added_p99[BUFFERED]} ms p99",
        ),
    ]
    result = {
        "pace_ms": PACE_MS,
        "tokens": scale.gap_tokens,
        "routes": figures,
        "added_excess_p50_ms": added_p50,
        "added_excess_p99_ms": added_p99,
        "added_share_of_pace_p50": share50,
        "added_share_of_pace_p99": share99,
    }
    return Outcome(result, targets)
