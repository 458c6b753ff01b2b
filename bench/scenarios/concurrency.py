"""Scenario 4: many streams held open at once, their memory, and frames per core.

Held streams: the fake model answers at one token per second, and every stream is opened at
once through nginx (SSE; WebSocket without compression; WebSocket offering
permessage-deflate as browsers do). Each variant gets freshly started assistant,
conversation and nginx processes, warmed up with a few short turns, so that the resident
memory they gain while the streams are open is the streams' own. Stalls follow
bench/stalls.py (a gap over twice the pace, or a first token later than the same streams
opened straight on the fake got theirs plus twice the pace), measured direct first.

Saturation: a few dozen streams of a long reply with no delay, all at once; frames delivered
per second of CPU that the stack's processes (nginx, conversation, assistant, Redis) used.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import procs
from bench.clients import ChatSession, Turn, WsChat, create_sessions, sse_turn
from bench.context import Bench
from bench.held import Subject, complete, direct_rule, ramp
from bench.peers.running import OPEN_WEBUI
from bench.report import Outcome, Target, at_least, at_most
from bench.routes import OpenAIRoute, SseRoute, run_batch
from bench.stack import Stack, start_assistant_service, start_bench_nginx
from bench.stack import start_conversation_service as start_conversation
from bench.stalls import StallRule
from bench.stats import ms, ratio, summary
from tests.support.servers import Server

WARM_TURNS = 20
SAMPLE_EVERY = 0.2  # seconds between memory samples while streams are open
KIB = 1024
VARIANTS = ("sse", "ws", "ws-deflate")
# Each service holds one open stream in at most this many times the floor's memory for one.
KIB_PER_FLOOR = 2
# The stack's path crosses four processes (nginx, conversation, assistant, Redis) where the
# floor's crosses one: at least a quarter of the floor's frames per CPU-second.
FRAMES_PER_FLOOR = 0.25
# The whole stack holds at least this many times Open WebUI's open streams per GiB.
STREAMS_PER_GIB_OVER_OPEN_WEBUI = 10
# The steps on the way to the full count beside the peers (every subject climbs them).
PEER_STEPS = (10, 100, 300)


@dataclass
class Services:
    assistant: Server
    conversation: Server
    nginx: Server

    def python(self) -> dict[str, Server]:
        return {"assistant": self.assistant, "conversation": self.conversation}


@contextlib.contextmanager
def fresh_services(stack: Stack, quick: bool) -> Iterator[Services]:
    """New assistant, conversation and nginx processes on the stack's Redis and fake, so the
    memory they gain is the streams'. The smoke test (`quick`) reuses the running ones."""
    if quick:
        yield Services(stack.assistant, stack.conversation, stack.nginx)
        return
    started: list[Server] = []
    try:
        assistant = start_assistant_service(stack.upstream)
        started.append(assistant)
        conversation = start_conversation(stack.redis, assistant.url)
        started.append(conversation)
        nginx = start_bench_nginx(conversation)
        started.append(nginx)
        yield Services(assistant, conversation, nginx)
    finally:
        for server in reversed(started):
            server.stop()


class MemoryWatch:
    """Samples the Python services' resident memory until stopped; keeps each one's peak."""

    def __init__(self, services: Services) -> None:
        self.servers = services.python()
        self.peak = dict.fromkeys(self.servers, 0)
        self.series: list[dict[str, float]] = []
        self._began = time.perf_counter()

    def sample(self) -> dict[str, int]:
        now = {name: procs.usage(s.proc.pid).rss_bytes for name, s in self.servers.items()}
        for name, rss in now.items():
            self.peak[name] = max(self.peak[name], rss)
        self.series.append(
            {"t": round(time.perf_counter() - self._began, 2)}
            | {name: round(rss / 2**20, 1) for name, rss in now.items()}
        )
        return now

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)


def held_client() -> aiohttp.ClientSession:
    """Its own client pool: one connection per stream, none shared with other scenarios."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(sock_read=60)
    )


async def open_turns(
    http: aiohttp.ClientSession, base: str, sessions: list[ChatSession], variant: str
) -> list[Turn]:
    """Every session sends one message at the same moment; all replies read to the end."""
    if variant == "sse":
        return list(await asyncio.gather(*(sse_turn(http, base, s, "hold") for s in sessions)))
    compress = 15 if variant == "ws-deflate" else 0
    sockets = await asyncio.gather(*(WsChat.open(http, base, s, compress) for s in sessions))
    try:
        return list(await asyncio.gather(*(ws.turn("hold") for ws in sockets)))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def hold(bench: Bench, variant: str, rule: StallRule) -> dict[str, Any]:
    scale, stack = bench.scale, bench.stack
    count, pace = scale.held_streams, scale.held_pace_ms
    tokens = [f"tok{i} " for i in range(scale.held_tokens)]
    async with held_client() as http:
        with fresh_services(stack, bench.scale.quick) as services:
            stack.fake.reset()
            stack.fake.script({"times": WARM_TURNS})  # the default short reply
            stack.fake.script({"tokens": tokens, "delay_ms": pace, "times": count})
            conv = services.conversation.url
            sessions = await create_sessions(http, conv, count + WARM_TURNS)
            warm = await asyncio.gather(
                *(sse_turn(http, services.nginx.url, s, "warm") for s in sessions[:WARM_TURNS])
            )
            if not all(t.ok for t in warm):
                raise RuntimeError(f"warm-up failed: {[t.error for t in warm if not t.ok][:3]}")
            watch = MemoryWatch(services)
            baseline = watch.sample()
            stop = asyncio.Event()
            sampler = asyncio.create_task(watch.run(stop))
            began = time.perf_counter()
            turns = await open_turns(http, services.nginx.url, sessions[WARM_TURNS:], variant)
            stop.set()
            await sampler
            took = time.perf_counter() - began
            stack.fake.reset()
    good = complete(turns, len(tokens))
    added = {name: round((watch.peak[name] - baseline[name]) / count / KIB, 1) for name in baseline}
    return {
        "streams": count,
        "pace_ms": pace,
        "tokens": len(tokens),
        "seconds": round(took, 1),
        "errors": len(turns) - len(good),
        "first_error": next((t.error for t in turns if not t.ok), None),
        **rule.count(good),
        "max_gap_ms": summary([ms(max(t.gaps(), default=0)) for t in good], 1),
        "ttft_ms": summary([ms(t.ttft) for t in good], 1),
        "baseline_rss_mib": {k: round(v / 2**20, 1) for k, v in baseline.items()},
        "peak_rss_mib": {k: round(v / 2**20, 1) for k, v in watch.peak.items()},
        "added_kib_per_stream": added,
        "rss_series": watch.series,
    }


async def saturate(bench: Bench, variant: str) -> dict[str, Any]:
    """Frames delivered per CPU-second of the stack with streams as fast as it can go."""
    scale, stack = bench.scale, bench.stack
    count, tokens = scale.saturation_streams, scale.saturation_tokens
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        with fresh_services(stack, bench.scale.quick) as services:
            stack.fake.reset()
            reply = [f"tok{i} " for i in range(tokens)]
            stack.fake.script({"tokens": reply, "delay_ms": 0, "times": 2 * count})
            sessions = await create_sessions(http, services.conversation.url, 2 * count)
            await open_turns(http, services.nginx.url, sessions[:count], variant)  # warm-up
            groups = [services.nginx, services.conversation, services.assistant, stack.redis]
            pgids = [s.proc.pid for s in groups]
            cpu_before, began = procs.cpu_seconds(pgids), time.perf_counter()
            turns = await open_turns(http, services.nginx.url, sessions[count:], variant)
            took = time.perf_counter() - began
            cpu = procs.cpu_seconds(pgids) - cpu_before
            stack.fake.reset()
    frames = sum(len(t.token_times) for t in turns)
    return {
        "streams": count,
        "tokens": tokens,
        "frames": frames,
        "seconds": round(took, 2),
        "frames_per_s": round(frames / took),
        "stack_cpu_seconds": round(cpu, 2),
        "frames_per_cpu_second": round(frames / cpu) if cpu else None,
        "errors": sum(not t.ok for t in turns),
    }


async def saturate_floor(bench: Bench) -> dict[str, Any]:
    """Frames per CPU-second of the floor alone, the same streams as `saturate`'s."""
    scale, stack = bench.scale, bench.stack
    count, tokens = scale.saturation_streams, scale.saturation_tokens
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        route = OpenAIRoute("floor", http, stack.floor.url)
        stack.fake.reset()
        reply = [f"tok{i} " for i in range(tokens)]
        stack.fake.script({"tokens": reply, "delay_ms": 0, "times": 2 * count})
        await run_batch(route, count, 1, "warm up")
        cpu_before, began = procs.cpu_seconds([stack.floor.proc.pid]), time.perf_counter()
        turns = await run_batch(route, count, 1, "saturate")
        took = time.perf_counter() - began
        cpu = procs.cpu_seconds([stack.floor.proc.pid]) - cpu_before
        stack.fake.reset()
    frames = sum(len(t.token_times) for t in turns)
    return {
        "streams": count,
        "frames": frames,
        "seconds": round(took, 2),
        "cpu_seconds": round(cpu, 2),
        "frames_per_cpu_second": round(frames / cpu) if cpu else None,
        "errors": sum(not t.ok for t in turns),
    }


def subjects(bench: Bench, http: aiohttp.ClientSession) -> list[Subject]:
    """The floor always; with the peers, assistant and the whole stack beside them."""
    s = bench.stack
    found = [Subject("floor", OpenAIRoute("floor", http, s.floor.url), (s.floor.proc.pid,))]
    if not bench.peers.all():
        return found
    stack_pgids = tuple(server.proc.pid for server in s.services().values())
    found += [
        Subject(
            "assistant",
            OpenAIRoute("assistant", http, s.assistant.url),
            (s.assistant.proc.pid,),
        ),
        Subject(
            "nginx-sse", SseRoute("nginx-sse", http, s.nginx.url, s.conversation.url), stack_pgids
        ),
        *(Subject(p.name, p.route(http), (p.server.proc.pid,)) for p in bench.peers.all()),
    ]
    return found


def ramp_steps(bench: Bench) -> tuple[int, ...]:
    """Beside the peers, every subject climbs the same steps to the full count (a stall at
    1,000 then still leaves the step it held); alone, the floor goes straight to it."""
    full = bench.scale.held_streams
    steps = tuple(n for n in PEER_STEPS if n < full) if bench.peers.all() else ()
    return (*steps, full)


async def stall_rules(bench: Bench) -> dict[int, StallRule]:
    """Each count's stall rule, from the same streams opened straight on the fake."""
    scale, s = bench.scale, bench.stack
    rules: dict[int, StallRule] = {}
    async with held_client() as http:
        route = OpenAIRoute("direct", http, s.upstream.url)
        direct = Subject("direct", route, (s.upstream.proc.pid,))
        for count in ramp_steps(bench):
            rules[count] = await direct_rule(
                direct, s.fake, count, scale.held_tokens, scale.held_pace_ms
            )
    return rules


async def ramps(bench: Bench, rules: dict[int, StallRule]) -> dict[str, Any]:
    """Memory idle and per stream, and the most streams held, by one method for all."""
    found: dict[str, Any] = {}
    async with held_client() as http:
        for subject in subjects(bench, http):
            found[subject.name] = await ramp(
                subject, bench.stack.fake, ramp_steps(bench), bench.scale.held_tokens, rules
            )
    return found


def per_stream_targets(held: dict[str, Any], floor_kib: float) -> list[Target]:
    """Memory per open stream of each service, as a multiple of the floor's."""
    deflate = held["ws-deflate"]["added_kib_per_stream"]
    browser_like = (
        f"with permessage-deflate offered, as browsers do: {deflate.get('conversation')} KiB "
        f"(conversation), {deflate.get('assistant')} KiB (assistant) per stream"
    )
    found: list[Target] = []
    for variant in ("sse", "ws"):
        for service, kib in held[variant]["added_kib_per_stream"].items():
            note = f"{kib} KiB per stream; the floor {floor_kib} KiB"
            if variant == "ws" and service == "conversation":
                note += f"; {browser_like}"
            name = f"memory per open {variant} stream, {service} / floor's"
            found.append(at_most(4, name, KIB_PER_FLOOR, ratio(kib, floor_kib), "x", note=note))
    return found


def open_webui_target(memory: dict[str, Any]) -> list[Target]:
    if OPEN_WEBUI not in memory:
        return []
    ours, theirs = memory["nginx-sse"], memory[OPEN_WEBUI]
    last = theirs["steps"][-1] if theirs["steps"] else {}
    # A peer that held none of its first step's streams has no finite ratio, yet ours held
    # more than any multiple of none: that meets the target.
    none_held = theirs["streams_per_gib"] == 0 and ours["streams_per_gib"] > 0
    measured = math.inf if none_held else ratio(ours["streams_per_gib"], theirs["streams_per_gib"])
    note = (
        f"stack: {ours['most_streams_held']} streams held, "
        f"{ours['streams_per_gib']} per GiB (idle {ours['idle_rss_mib']} MiB: nginx, "
        f"conversation, assistant, Redis); Open WebUI: {theirs['most_streams_held']} "
        f"held, {theirs['streams_per_gib']} per GiB (idle {theirs['idle_rss_mib']} MiB)"
    )
    if last:
        note += (
            f"; its last step ({last['streams']} streams): {last['errors']} errors, "
            f"{last['late_first_token']} first tokens after {last['first_token_limit_ms']} ms, "
            f"{last['stalled_between_tokens']} gaps over {last['gap_limit_ms']} ms"
            + (f", first error: {last['first_error']}" if last["first_error"] else "")
        )
    return [
        at_least(
            4,
            "open streams per GiB, the whole stack / Open WebUI",
            STREAMS_PER_GIB_OVER_OPEN_WEBUI,
            measured,
            "x",
            note=note,
        )
    ]


async def run(bench: Bench) -> Outcome:
    count = bench.scale.held_streams
    rules = await stall_rules(bench)
    held = {v: await hold(bench, v, rules[count]) for v in VARIANTS}
    saturation = {v: await saturate(bench, v) for v in ("sse", "ws")}
    floor_saturation = await saturate_floor(bench)
    memory = await ramps(bench, rules)
    errors = sum(h["errors"] for h in held.values())
    stalled = sum(h["stalled"] for h in held.values())
    worst_gap = max(h["max_gap_ms"].get("max", 0) for h in held.values())
    late = ", ".join(f"{v} {h['late_first_token']}" for v, h in held.items())
    worst_ttft = max(h["ttft_ms"].get("p99", 0) for h in held.values())
    targets: list[Target] = [
        at_most(
            4,
            f"errors with {count} streams open at once (SSE, WebSocket)",
            0,
            errors,
            "",
            note="; ".join(f"{v}: {h['first_error']}" for v, h in held.items() if h["first_error"]),
        ),
        at_most(
            4,
            f"streams stalled (pace {bench.scale.held_pace_ms} ms; bench/stalls.py)",
            0,
            stalled,
            "",
            note=f"stalled: {rules[count].describe()}; first tokens late: {late}; "
            f"longest gap {worst_gap:.0f} ms, worst p99 first token {worst_ttft:.0f} ms",
        ),
    ]
    targets += per_stream_targets(held, memory["floor"]["kib_per_stream"] or math.nan)
    targets += open_webui_target(memory)
    per_core = min(s["frames_per_cpu_second"] or 0 for s in saturation.values())
    floor_per_core = floor_saturation["frames_per_cpu_second"] or 0
    targets.append(
        at_least(
            4,
            "frames per stack core-second at saturation / the floor's per core-second",
            FRAMES_PER_FLOOR,
            ratio(per_core, floor_per_core, 3),
            "x",
            note=f"stack {per_core} frames per core-second (the worse of SSE and WebSocket), "
            f"floor {floor_per_core}; "
            + ", ".join(
                f"{v}: {s['frames_per_s']} frames/s on "
                f"{s['stack_cpu_seconds'] / s['seconds']:.2f} cores"
                for v, s in saturation.items()
            ),
        )
    )
    figures = {
        "held": held,
        "saturation": saturation,
        "floor_saturation": floor_saturation,
        "ramps": memory,
    }
    return Outcome(figures, targets)
