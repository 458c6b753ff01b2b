"""Streams held open at once through any route, up to the most a server holds: its memory
idle and per open stream, and how many streams it held without an error or a stall.

Used by scenario 4 for the floor, assistant, the whole stack and the peers alike, so that
their figures come from one method: the fake streams `tokens` tokens `pace_ms` apart to every
stream, all opened at the same moment, while the resident memory of the server's processes
(each server runs in its own process group) is sampled; a step fails on any error or on a
stalled stream (bench/stalls.py: a gap or a first token too late), and no larger step is
tried. The stall rule's baseline is the same streams opened straight on the fake
(`direct_rule`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from bench import procs
from bench.clients import Turn
from bench.routes import Route
from bench.stalls import StallRule
from bench.stats import ms, summary
from tests.support.fake_control import FakeControl

SAMPLE_EVERY = 0.2  # seconds between memory samples while the streams are open
WARM_TURNS = 20
GIB = 2**30


@dataclass(frozen=True)
class Subject:
    """What is measured: a name, how a stream is opened, and whose memory counts."""

    name: str
    route: Route
    pgids: tuple[int, ...]

    def rss(self) -> int:
        return sum(procs.usage(p).rss_bytes for p in self.pgids)


async def _peak_while(subject: Subject, work: asyncio.Future[Any]) -> int:
    peak = subject.rss()
    while not work.done():
        peak = max(peak, subject.rss())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(work), SAMPLE_EVERY)
    return max(peak, subject.rss())


async def _stream_all(
    subject: Subject, fake: FakeControl, count: int, tokens: int, pace_ms: int
) -> tuple[list[Turn], int, int]:
    """`count` streams opened at once through the subject: their turns, and the subject's
    resident memory before and at its peak while they were open."""
    fake.reset()
    fake.script(
        {"tokens": [f"tok{i} " for i in range(tokens)], "delay_ms": pace_ms, "times": count}
    )
    await subject.route.prepare(count)
    try:
        idle = subject.rss()
        work = asyncio.ensure_future(
            asyncio.gather(*(subject.route.turn(w, "hold") for w in range(count)))
        )
        peak = await _peak_while(subject, work)
        turns = await work
    finally:
        await subject.route.close()
        fake.reset()
    return list(turns), idle, peak


async def direct_rule(
    direct: Subject, fake: FakeControl, count: int, tokens: int, pace_ms: int
) -> StallRule:
    """The stall rule for `count` streams: the same streams opened straight on the fake."""
    turns, _, _ = await _stream_all(direct, fake, count, tokens, pace_ms)
    return StallRule.against(turns, pace_ms)


def complete(turns: list[Turn], tokens: int) -> list[Turn]:
    return [t for t in turns if t.ok and len(t.token_times) == tokens]


async def step(
    subject: Subject, fake: FakeControl, count: int, tokens: int, rule: StallRule
) -> dict[str, Any]:
    turns, idle, peak = await _stream_all(subject, fake, count, tokens, rule.pace_ms)
    good = complete(turns, tokens)
    return {
        "streams": count,
        "errors": count - len(good),
        "first_error": next((t.error for t in turns if not t.ok), None),
        **rule.count(good),
        "max_gap_ms": summary([ms(max(t.gaps(), default=0)) for t in good], 1),
        "ttft_ms": summary([ms(t.ttft) for t in good], 1),
        "idle_rss_mib": round(idle / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "kib_per_stream": round((peak - idle) / count / 1024, 1),
    }


async def ramp(
    subject: Subject,
    fake: FakeControl,
    steps: tuple[int, ...],
    tokens: int,
    rules: dict[int, StallRule],
) -> dict[str, Any]:
    """Warm the subject up with a few short replies, then each step in turn until one fails;
    `rules` holds each step's stall rule."""
    fake.reset()
    await subject.route.prepare(1)
    try:
        for _ in range(WARM_TURNS):
            await subject.route.turn(0, "warm up")
    finally:
        await subject.route.close()
    idle = subject.rss()
    done: list[dict[str, Any]] = []
    for count in steps:
        found = await step(subject, fake, count, tokens, rules[count])
        done.append(found)
        if found["errors"] or found["stalled"]:
            break
    held = [s for s in done if not s["errors"] and not s["stalled"]]
    best = held[-1] if held else None
    return {
        "idle_rss_mib": round(idle / 2**20, 1),
        "most_streams_held": best["streams"] if best else 0,
        "kib_per_stream": best["kib_per_stream"] if best else None,
        "streams_per_gib": round(best["streams"] / (best["peak_rss_mib"] * 2**20 / GIB), 1)
        if best
        else 0,
        "steps": done,
    }
