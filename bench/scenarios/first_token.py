"""Scenario 1: time to first token, direct to the fake model and through each hop.

Two measurements, both against the same request sent straight to the fake model in the
same run, the routes taking turns round by round so that a change in the machine's load
hits every route alike:

- **Our own overhead** (the "added p50/p99 at 1 chat" targets): a short reply with no delay
  (16 tokens), asked for directly, through assistant, through conversation (SSE and
  WebSocket) and through nginx (SSE and WebSocket). Also run at 16 and 64 chats as closed
  loops (each chat sends its next message the moment its reply ends), kept as extra data:
  64 zero-delay loops only saturate the two cores the stack shares with the load generator
  and the fake (p99 7 ms at 1 chat, ~415 ms at 64), which measures CPU saturation
  (scenario 5's subject), not what 64 people chatting at once see.
- **The hop comparisons past one chat** (the floor's and the peers' ratios at 16 and 64
  chats): open-loop chats. Zero-delay closed loops saturate the cores, and a saturated
  machine queues every route alike: the floor's added time there was at or below direct's,
  which leaves no ratio. Instead each chat sends its turns on a fixed schedule (one every
  chats / OPEN_RATE seconds, from a random phase), whether or not the machine keeps up,
  each turn through the next route in turn, and gets scenario 2's paced reply; all chats
  together offer OPEN_RATE turns a second, a load every route (the peers too) carries with
  idle CPU to spare, so what a route adds is its own cost and not its place in a queue, and
  a burst of another process's load falls on every route's turns alike. A turn sent late
  because the chat's previous reply had not ended is counted (`late_sends`): with a
  sustainable rate there are none. One chat keeps the closed loop: alone, it queues behind
  nothing.
- **Many people chatting** (the "p99 at 64 chats / p99 at 1" target): each chat's reply
  streams at a model's pace (16 tokens 20 ms apart, scenario 2's pace, ~0.3 s a reply) and
  the chat then waits a think time drawn uniformly from THINK_S before its next message;
  chats start at random within one think time, so they do not arrive in lockstep. Measured
  at 1, 16 and 64 chats on the direct route and nginx SSE (the browser's path). The think
  time is deliberately short (a person reads a reply and types for several seconds): 64
  such chats still send ~80 turns/s, ~1,300 tokens/s. TTFT does not include the pace: the
  fake sends its first token at once.

A session's history is part of every turn's context, so each chat gets a fresh session
every PER_SESSION turns; growth with history is scenario 7.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

from bench import stats
from bench.clients import Turn
from bench.context import Bench, Scale
from bench.peers.running import LITELLM, OPEN_WEBUI
from bench.report import Outcome, Target, at_most
from bench.routes import OpenAIRoute, Route, SseRoute, WsRoute, run_batch
from bench.stats import ms, percentile, summary

STACK = "nginx-sse"  # the browser's path: the figure the targets are about
FLOOR = "floor"  # the minimal relay (bench/relay.py): one Python hop at its cheapest
HOPS = "conversation-sse"  # conversation and assistant, no nginx
# Added time to first token, as a multiple of the floor's added time, at every level, p50
# and p99: assistant is one hop, conversation in front of it a second one with Redis.
ASSISTANT_PER_FLOOR = 2
HOPS_PER_FLOOR = 4
# Against the peers doing the same job in the same run (issue's targets): assistant against
# LiteLLM's one hop, the whole stack against LiteLLM's one hop and Open WebUI's.
ASSISTANT_PER_LITELLM = 0.1
STACK_PER_LITELLM = 0.5
STACK_PER_OPEN_WEBUI = 0.15
# A session's history is part of every turn's context: keep it as short as the direct
# request's (one message), so only the hops differ. Growth with history is scenario 7.
PER_SESSION = 4
# Paced chats: the reply a model streams (scenario 2's pace) and the think time between a
# reply's end and the chat's next message, uniform in THINK_S seconds (shortened in --quick).
PACE_MS = 20
PACED_TOKENS = 16
THINK_S = (0.25, 0.75)
QUICK_THINK_S = (0.0, 0.05)
# Paced turns per route at one chat: each takes the reply plus a think time with nothing
# else to run, so this level is the slow one (~105 s per route in the full run); with 64
# turns its p99 was their maximum, one stray pause away from doubling. With more chats: at
# least PACED_TURNS_CROWD turns and two rounds of PER_SESSION turns per chat.
PACED_TURNS_ALONE = 128
PACED_TURNS_CROWD = 256
SEED = 7  # think times are random but the same in every run
# Open-loop chats (the hop comparisons past one chat): turns a second offered by all the
# chats of a level together, over all routes, the same at every level so the levels differ
# in how many chats share the load, not in how busy the cores are. About OPEN_RATE x the
# reply's 0.3 s streams are open at a time (~8), and one turn costs the stack a few ms of
# CPU: a small share of two cores, carried by Open WebUI too. A chat's period never drops
# below twice its reply, so a chat is not late by its own reply (the smoke run's 4 chats).
OPEN_RATE = 24.0
OPEN_MIN_PERIOD_S = 2 * PACED_TOKENS * PACE_MS / 1000
OPEN_TURNS_EACH = 2  # turns per route per chat per round, on fresh sessions
OPEN_TURNS = 256  # per route per level, whole rounds (the smoke run: one round)


def routes(bench: Bench) -> list[Route]:
    s, http = bench.stack, bench.http
    conv = s.conversation.url
    return [
        OpenAIRoute("direct", http, s.upstream.url),
        OpenAIRoute(FLOOR, http, s.floor.url),
        OpenAIRoute("assistant", http, s.assistant.url),
        SseRoute(HOPS, http, conv, conv),
        WsRoute("conversation-ws", http, conv, conv),
        SseRoute(STACK, http, s.nginx.url, conv),
        WsRoute("nginx-ws", http, s.nginx.url, conv),
        *(peer.route(http) for peer in bench.peers.all()),
    ]


def compared_routes(bench: Bench) -> list[Route]:
    """The routes the hop targets compare, with direct (the open-loop levels' routes): all
    but the WebSocket ones, which no target compares."""
    return [route for route in routes(bench) if not isinstance(route, WsRoute)]


def paced_routes(bench: Bench) -> list[Route]:
    s, http = bench.stack, bench.http
    return [
        OpenAIRoute("direct", http, s.upstream.url),
        SseRoute(STACK, http, s.nginx.url, s.conversation.url),
    ]


async def measure(bench: Bench, concurrency: int) -> dict[str, list[Turn]]:
    """Zero-delay closed loops: about `ttft_turns` turns per route, in rounds of at most
    PER_SESSION turns per chat on fresh sessions, the routes taking turns round by round."""
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


async def paced_batch(
    route: Route, chats: int, turns_each: int, think: tuple[float, float], rng: random.Random
) -> list[Turn]:
    """`chats` chats at once, each starting at a random moment within one think time and
    waiting a think time after each reply before its next message."""
    await route.prepare(chats)
    try:
        pauses = [[rng.uniform(*think) for _ in range(turns_each)] for _ in range(chats)]

        async def chat(worker: int) -> list[Turn]:
            turns: list[Turn] = []
            await asyncio.sleep(rng.uniform(0, think[1]))
            for i, pause in enumerate(pauses[worker]):
                turns.append(await route.turn(worker, "hello"))
                if i + 1 < turns_each:
                    await asyncio.sleep(pause)
            return turns

        done = await asyncio.gather(*(chat(w) for w in range(chats)))
    finally:
        await route.close()
    return [turn for turns in done for turn in turns]


def paced_turns(scale: Scale, chats: int) -> int:
    """Turns per route at this level (whole rounds of PER_SESSION turns per chat)."""
    if scale.quick:
        return PER_SESSION * chats
    if chats == 1:
        return PACED_TURNS_ALONE
    return max(PACED_TURNS_CROWD, 2 * PER_SESSION * chats)


async def measure_paced(bench: Bench, chats: int, rng: random.Random) -> dict[str, list[Turn]]:
    think = QUICK_THINK_S if bench.scale.quick else THINK_S
    rounds = math.ceil(paced_turns(bench.scale, chats) / (chats * PER_SESSION))
    found: dict[str, list[Turn]] = {}
    all_routes = paced_routes(bench)
    for route in all_routes:  # warm-up, not counted
        await run_batch(route, chats, 1, "warm up")
    for _ in range(rounds):
        for route in all_routes:
            found.setdefault(route.name, []).extend(
                await paced_batch(route, chats, PER_SESSION, think, rng)
            )
    return found


def open_period(chats: int) -> float:
    """Seconds between one chat's turns at this level."""
    return max(chats / OPEN_RATE, OPEN_MIN_PERIOD_S)


def open_rounds(scale: Scale, chats: int) -> int:
    return 1 if scale.quick else math.ceil(OPEN_TURNS / (chats * OPEN_TURNS_EACH))


async def scheduled_batch(
    routes: list[Route], chats: int, turns_each: int, period: float, rng: random.Random
) -> tuple[dict[str, list[Turn]], dict[str, int]]:
    """`chats` chats at once, chat w sending its k-th turn at phase_w + k * period (phase
    uniform within one period) through route (w + k) mod len(routes), so every route's
    turns are spread over the same moments. Each route's turns, and its late sends: a chat
    has one turn in flight at a time, so a reply that outlasts the period delays the next."""
    for route in routes:
        await route.prepare(chats)
    found: dict[str, list[Turn]] = {route.name: [] for route in routes}
    late = dict.fromkeys(found, 0)
    try:
        phases = [rng.uniform(0, period) for _ in range(chats)]
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def chat(worker: int) -> None:
            for k in range(turns_each):
                route = routes[(worker + k) % len(routes)]
                wait = began + phases[worker] + k * period - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif k:
                    late[route.name] += 1
                found[route.name].append(await route.turn(worker, "hello"))

        await asyncio.gather(*(chat(w) for w in range(chats)))
    finally:
        for route in routes:
            await route.close()
    return found, late


async def measure_open(
    bench: Bench, chats: int, rng: random.Random
) -> tuple[dict[str, list[Turn]], dict[str, int]]:
    """Open-loop chats through every compared route, OPEN_TURNS_EACH turns per route per
    chat in each round (fresh sessions every round); each route's turns and late sends."""
    found: dict[str, list[Turn]] = {}
    late: dict[str, int] = {}
    all_routes = compared_routes(bench)
    for route in all_routes:  # warm-up: a connection per chat, not counted
        await run_batch(route, chats, 1, "warm up")
    turns_each = OPEN_TURNS_EACH * len(all_routes)
    for _ in range(open_rounds(bench.scale, chats)):
        turns, behind = await scheduled_batch(
            all_routes, chats, turns_each, open_period(chats), rng
        )
        for name, more in turns.items():
            found.setdefault(name, []).extend(more)
            late[name] = late.get(name, 0) + behind[name]
    return found, late


def compared_levels(figures: dict[str, Any]) -> dict[str, Any]:
    """The levels the hop targets read: one chat's closed loop, then the open-loop levels."""
    alone = {level: f for level, f in figures["levels"].items() if level == "1"}
    crowds: dict[str, Any] = figures.get("open_loop", {}).get("levels", {})
    return alone | crowds


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


def level_figures(turns: dict[str, list[Turn]]) -> tuple[dict[str, Any], dict[str, float]]:
    """A level's figures, and the p99 of each route's time to first token."""
    figures = {name: describe(found) for name, found in turns.items()}
    p99 = {
        name: percentile([ms(t.ttft) for t in found if t.ok], 99) for name, found in turns.items()
    }
    level = {
        "routes": figures,
        "added_p50_ms": {n: added(figures, n, "p50") for n in figures if n != "direct"},
        "added_p99_ms": {n: added(figures, n, "p99") for n in figures if n != "direct"},
    }
    return level, p99


def relative(
    levels: dict[str, Any], route: str, base: str, limit: float, also: str = ""
) -> list[Target]:
    """One target per level: `route`'s added time to first token over `base`'s, the worse of
    p50 and p99; the absolute figures (and `also`'s ratio) go in the note."""
    found: list[Target] = []
    for level, figures in levels.items():
        a50, a99 = figures["added_p50_ms"], figures["added_p99_ms"]
        parts, ratios = [], []
        for q, added_ms in (("p50", a50), ("p99", a99)):
            ratio = stats.ratio(added_ms[route], added_ms[base])
            ratios.append(ratio)
            # A base that added nothing measurable (at or below direct: noise under load)
            # leaves no ratio: said so, rather than a division by noise.
            shown = (
                "n/a (the base added nothing measurable)" if math.isnan(ratio) else f"{ratio:.2f}x"
            )
            parts.append(
                f"{q} {shown} ({route} {added_ms[route]:+.2f} ms, {base} {added_ms[base]:+.2f} ms)"
            )
            if also and not math.isnan(ratio):
                parts[-1] += f", {also} {stats.ratio(added_ms[also], added_ms[base]):.2f}x"
        worst = math.nan if any(math.isnan(r) for r in ratios) else max(ratios)
        if "period_s" in figures:
            late = figures["late_sends"]
            parts.append(
                f"open-loop chats, {OPEN_RATE:g} turns/s offered, each chat every "
                f"{figures['period_s']} s; late sends: {route} {late.get(route, 0)}, "
                f"{base} {late.get(base, 0)}"
            )
        chats = f"{level} chat{'s' if level != '1' else ''}"
        found.append(
            at_most(
                1,
                f"TTFT added, {route} / {base}, at {chats} (worse of p50, p99)",
                limit,
                worst,
                "x",
                note="; ".join(parts),
            )
        )
    return found


def errors_in(levels: dict[str, Any]) -> int:
    return sum(int(r["errors"]) for level in levels.values() for r in level["routes"].values())


async def run(bench: Bench) -> Outcome:
    levels: dict[str, Any] = {}
    p99_closed: dict[int, dict[str, float]] = {}
    for concurrency in bench.scale.ttft_concurrency:
        levels[str(concurrency)], p99_closed[concurrency] = level_figures(
            await measure(bench, concurrency)
        )
    paced: dict[str, Any] = {}
    p99_paced: dict[int, dict[str, float]] = {}
    rng = random.Random(SEED)
    tokens = [f"tok{i} " for i in range(PACED_TOKENS)]
    bench.stack.fake.reset()
    # The fake builds one behaviour object per scripted turn: script what the paced levels
    # use (their rounds and warm-ups, with room to spare), not a million of them, whose
    # building alone outlasted the control call's time-out on a loaded machine.
    crowds = [c for c in bench.scale.ttft_concurrency if c > 1]
    paced_total = sum(
        paced_turns(bench.scale, c) + PER_SESSION * c + c for c in bench.scale.ttft_concurrency
    )
    open_total = sum((open_rounds(bench.scale, c) * OPEN_TURNS_EACH + 1) * c for c in crowds)
    times = 2 * (len(paced_routes(bench)) * paced_total + len(compared_routes(bench)) * open_total)
    bench.stack.fake.script({"tokens": tokens, "delay_ms": PACE_MS, "times": times})
    open_levels: dict[str, Any] = {}
    try:
        for chats in bench.scale.ttft_concurrency:
            paced[str(chats)], p99_paced[chats] = level_figures(
                await measure_paced(bench, chats, rng)
            )
        for chats in crowds:
            turns, late = await measure_open(bench, chats, rng)
            open_levels[str(chats)] = {
                **level_figures(turns)[0],
                "period_s": round(open_period(chats), 3),
                "late_sends": late,
            }
    finally:
        bench.stack.fake.reset()
    open_loop = {
        "rate_per_s": OPEN_RATE,
        "turns_each_round": OPEN_TURNS_EACH,
        "pace_ms": PACE_MS,
        "tokens": PACED_TOKENS,
        "levels": open_levels,
    }
    compared = compared_levels({"levels": levels, "open_loop": open_loop})
    low, high = min(p99_paced), max(p99_paced)

    def growth(p99: dict[int, dict[str, float]], route: str) -> float:
        return p99[high][route] / p99[low][route] if p99[low][route] else math.nan

    closed_note = (
        f"zero-delay closed loops (CPU saturation, not the target): p99 "
        f"{p99_closed[low][STACK]:.1f} ms at {low}, {p99_closed[high][STACK]:.1f} ms at {high} "
        f"({growth(p99_closed, STACK):.1f}x)"
    )
    think = QUICK_THINK_S if bench.scale.quick else THINK_S
    litellm, open_webui = bench.peers.get(LITELLM), bench.peers.get(OPEN_WEBUI)
    targets: list[Target] = [
        *relative(compared, "assistant", FLOOR, ASSISTANT_PER_FLOOR),
        *relative(compared, HOPS, FLOOR, HOPS_PER_FLOOR, also=STACK),
        *(relative(compared, "assistant", LITELLM, ASSISTANT_PER_LITELLM) if litellm else []),
        *(relative(compared, STACK, LITELLM, STACK_PER_LITELLM) if litellm else []),
        *(relative(compared, STACK, OPEN_WEBUI, STACK_PER_OPEN_WEBUI) if open_webui else []),
        at_most(
            1,
            f"stack TTFT p99 at {high} chats / p99 at {low} (paced replies, think time)",
            3,
            round(growth(p99_paced, STACK), 2),
            "x",
            note=f"replies of {PACED_TOKENS} tokens {PACE_MS} ms apart, think "
            f"{think[0]}-{think[1]} s: p99 {p99_paced[low][STACK]:.1f} ms at {low}, "
            f"{p99_paced[high][STACK]:.1f} ms at {high}; direct "
            f"{p99_paced[low]['direct']:.1f} -> {p99_paced[high]['direct']:.1f} ms "
            f"({growth(p99_paced, 'direct'):.1f}x); alone, a chat's turns come to an idle "
            f"machine, slower than back to back: against the zero-delay closed loop's p99 at "
            f"{low} ({p99_closed[low][STACK]:.1f} ms) the paced p99 at {high} is "
            f"{p99_paced[high][STACK] / p99_closed[low][STACK]:.1f}x; {closed_note}",
        ),
    ]
    figures = {
        "levels": levels,
        "paced": {
            "pace_ms": PACE_MS,
            "tokens": PACED_TOKENS,
            "think_s": list(think),
            "levels": paced,
        },
        "open_loop": open_loop,
        "stack_route": STACK,
        "errors": errors_in(levels) + errors_in(paced) + errors_in(open_levels),
    }
    return Outcome(figures, targets)
