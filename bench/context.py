"""What every scenario gets: the running stack, one client session, and the run's scale."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from bench.peers.running import Peers
from bench.stack import Stack


@dataclass(frozen=True)
class Scale:
    """Counts per scenario. `quick` is the smoke test's: seconds, every code path, no figure
    worth quoting. `full` fits the whole run in about ten minutes on two cores."""

    quick: bool
    # 1: time to first token
    ttft_concurrency: tuple[int, ...]
    ttft_turns: int  # turns per route per concurrency level, split over repetitions
    ttft_reps: int
    # 2: token gaps
    gap_tokens: int
    gap_streams: int
    # 3: throughput
    long_tokens: int
    long_reps: int
    # 4: concurrency and memory
    held_streams: int
    held_tokens: int
    held_pace_ms: int
    saturation_streams: int
    saturation_tokens: int
    # 5: sustained load
    wrk_connections: tuple[int, ...]
    wrk_seconds: float
    overload_connections: int
    gunicorn_workers: int
    # 6: Redis
    redis_turns: int
    # 7: history
    history_sizes: tuple[int, ...]
    history_turns: int
    # 8: embedded model
    model_tokens: int
    model_reps: int


QUICK = Scale(
    quick=True,
    ttft_concurrency=(1, 4),
    ttft_turns=8,
    ttft_reps=1,
    gap_tokens=8,
    gap_streams=1,
    long_tokens=2000,  # fewer went through nginx in one read, leaving no span to time
    long_reps=3,
    held_streams=20,
    held_tokens=3,
    held_pace_ms=100,
    saturation_streams=4,
    saturation_tokens=50,
    wrk_connections=(2,),
    wrk_seconds=1,
    overload_connections=16,
    gunicorn_workers=2,
    redis_turns=3,
    history_sizes=(10, 100),
    history_turns=3,
    model_tokens=8,
    model_reps=1,
)

FULL = Scale(
    quick=False,
    ttft_concurrency=(1, 16, 64),
    ttft_turns=384,
    ttft_reps=4,
    gap_tokens=64,
    gap_streams=8,
    long_tokens=2000,
    long_reps=31,  # one stream lasts ~15 ms: a median needs many
    held_streams=1000,
    held_tokens=12,
    held_pace_ms=1000,
    saturation_streams=64,
    saturation_tokens=400,
    wrk_connections=(1, 2, 4, 8, 16, 32, 64),
    wrk_seconds=5,
    overload_connections=256,
    gunicorn_workers=2,
    redis_turns=20,
    history_sizes=(10, 1000, 10000),
    history_turns=40,
    model_tokens=128,
    model_reps=5,
)


@dataclass
class Bench:
    scale: Scale
    stack: Stack
    http: aiohttp.ClientSession
    peers: Peers = field(default_factory=Peers)
