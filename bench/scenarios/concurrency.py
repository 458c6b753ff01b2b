"""Scenario 4: many streams held open at once, their memory, and frames per core.

Held streams: the fake model answers at one token per second, and every stream is opened at
once through nginx (SSE; WebSocket without compression; WebSocket offering
permessage-deflate as browsers do). Each variant gets freshly started assistant,
conversation and nginx processes, warmed up with a few short turns, so that the resident
memory they gain while the streams are open is the streams' own. A stream stalls when two
of its tokens arrive more than twice the pace apart.

Saturation: a few dozen streams of a long reply with no delay, all at once; frames delivered
per second of CPU that the stack's processes (nginx, conversation, assistant, Redis) used.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import procs
from bench.clients import ChatSession, Turn, WsChat, create_sessions, sse_turn
from bench.context import Bench
from bench.report import Outcome, Target, at_least, at_most
from bench.stack import Stack, start_assistant_service, start_bench_nginx
from bench.stack import start_conversation_service as start_conversation
from bench.stats import ms, summary
from tests.support.servers import Server

WARM_TURNS = 20
SAMPLE_EVERY = 0.2  # seconds between memory samples while streams are open
KIB = 1024
VARIANTS = ("sse", "ws", "ws-deflate")


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


async def hold(bench: Bench, variant: str) -> dict[str, Any]:
    scale, stack = bench.scale, bench.stack
    count, pace = scale.held_streams, scale.held_pace_ms
    tokens = [f"tok{i} " for i in range(scale.held_tokens)]
    # Its own client pool: one connection per stream, none shared with other scenarios.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(sock_read=60)
    ) as http:
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
    good = [t for t in turns if t.ok and len(t.token_times) == len(tokens)]
    max_gap = [ms(max(t.gaps(), default=0)) for t in good]
    added = {name: round((watch.peak[name] - baseline[name]) / count / KIB, 1) for name in baseline}
    return {
        "streams": count,
        "pace_ms": pace,
        "tokens": len(tokens),
        "seconds": round(took, 1),
        "errors": len(turns) - len(good),
        "first_error": next((t.error for t in turns if not t.ok), None),
        "stalled": sum(g > 2 * pace for g in max_gap),
        "max_gap_ms": summary(max_gap, 1),
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


async def run(bench: Bench) -> Outcome:
    held = {v: await hold(bench, v) for v in VARIANTS}
    saturation = {v: await saturate(bench, v) for v in ("sse", "ws")}
    count = bench.scale.held_streams
    errors = sum(h["errors"] for h in held.values())
    stalled = sum(h["stalled"] for h in held.values())
    worst_gap = max(h["max_gap_ms"].get("max", 0) for h in held.values())
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
            f"streams stalled > 2x pace (pace {bench.scale.held_pace_ms} ms)",
            0,
            stalled,
            "",
            note=f"longest gap {worst_gap:.0f} ms",
        ),
    ]
    deflate = held["ws-deflate"]["added_kib_per_stream"]
    browser_like = (
        f"with permessage-deflate offered, as browsers do: {deflate.get('conversation')} KiB "
        f"(conversation), {deflate.get('assistant')} KiB (assistant) per stream"
    )
    for variant in ("sse", "ws"):
        for service, kib in held[variant]["added_kib_per_stream"].items():
            note = browser_like if variant == "ws" and service == "conversation" else ""
            name = f"memory per open {variant} stream, {service}"
            targets.append(at_most(4, name, 64, kib, "KiB", note=note))
    per_core = min(s["frames_per_cpu_second"] or 0 for s in saturation.values())
    targets.append(
        at_least(
            4,
            "frames delivered per core-second at saturation",
            1000,
            per_core,
            "frames/s",
            note=", ".join(
                f"{v}: {s['frames_per_s']} frames/s on "
                f"{s['stack_cpu_seconds'] / s['seconds']:.2f} cores"
                for v, s in saturation.items()
            ),
        )
    )
    return Outcome({"held": held, "saturation": saturation}, targets)
