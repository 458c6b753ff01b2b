"""Streams held open at once through any route, up to the most a server holds: its memory
idle and per open stream, and how many streams it held without an error or a stall.

Used by scenario 4 for the floor, assistant, the whole stack and the peers alike, so that
their figures come from one method: the fake streams `tokens` tokens `pace_ms` apart to every
stream, all opened at the same moment, while the resident memory of the server's processes
(each server runs in its own process group) is sampled; a step fails on any error or on a
stream whose tokens arrive more than twice the pace apart, and no larger step is tried.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from bench import procs
from bench.routes import Route
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


async def step(
    subject: Subject, fake: FakeControl, count: int, tokens: int, pace_ms: int
) -> dict[str, Any]:
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
    good = [t for t in turns if t.ok and len(t.token_times) == tokens]
    max_gap = [ms(max(t.gaps(), default=0)) for t in good]
    return {
        "streams": count,
        "errors": count - len(good),
        "first_error": next((t.error for t in turns if not t.ok), None),
        "stalled": sum(g > 2 * pace_ms for g in max_gap),
        "max_gap_ms": summary(max_gap, 1),
        # A server slow to start streams delays every first token instead: not a stall
        # between tokens, so it is shown here.
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
    pace_ms: int,
) -> dict[str, Any]:
    """Warm the subject up with a few short replies, then each step in turn until one fails."""
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
        found = await step(subject, fake, count, tokens, pace_ms)
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
