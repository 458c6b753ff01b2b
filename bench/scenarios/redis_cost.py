"""Scenario 6: what a chat turn costs Redis.

- Round trips outside streaming: every command conversation sends while a turn runs, seen
  by MONITOR, except those Lua scripts run inside Redis and the stream writes (FLUSH), with a
  MULTI ... EXEC block counted once. Short replies, one turn at a time.
- Writes while streaming: how far apart one reply's stream writes (FLUSH) reach Redis, by its
  clock, for replies of 64 tokens 20 ms apart tailed from Redis as another replica would
  (the writer's fastest pace, STREAM_FLUSH_MS): writes per 50 ms, and the shortest gap.
- Bytes written: Redis's own count of bytes received (INFO stats total_net_input_bytes) per
  turn, for a short reply and a long one (16 and 64 tokens 20 ms apart; also 2,000 without
  delay).
  The difference over the difference in reply size is what each byte of reply costs (its
  stream entries plus its history entry); the whole turn's bytes over its reply too.
- Calls per turn by command, including those inside scripts, from INFO commandstats.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import threading
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis

from bench.clients import ChatSession, Turn, create_sessions, sse_turn
from bench.context import Bench
from bench.report import Outcome, Target, at_most
from conversation import redis_scripts
from conversation.config import Settings
from conversation.store import Store

FLUSH_SHA = hashlib.sha1(redis_scripts.FLUSH.encode()).hexdigest()
MARKER = "bench-end-of-window"
HANDSHAKE = {"HELLO", "CLIENT", "MONITOR", "ECHO", "AUTH", "SELECT"}
SYNC_CLIENT = re.compile(r"^\s*(from redis import|import redis\b)|\bredis\.Redis\(", re.M)


class Monitor:
    """Collects the top-level commands Redis runs until `stop()` (MONITOR in a thread)."""

    def __init__(self, port: int) -> None:
        self.client = redis.Redis(port=port, decode_responses=True)
        self.commands: list[list[str]] = []
        self.times: list[float] = []  # Redis's own clock for each command
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        # redis-py leaves monitor() unannotated.
        with self.client.monitor() as monitor:  # type: ignore[no-untyped-call]
            self._ready.set()
            for entry in monitor.listen():
                command = str(entry["command"]).split(" ")
                if command == ["ECHO", MARKER]:
                    return
                if entry.get("client_type") != "lua":
                    self.commands.append(command)
                    self.times.append(float(entry["time"]))

    def __enter__(self) -> Monitor:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.echo(MARKER)
        self._thread.join(10)
        self.client.close()


def round_trips(commands: list[list[str]]) -> dict[str, int]:
    """Top-level commands grouped into round trips: stream writes, pings, the rest."""
    counts = {"flush": 0, "ping": 0, "other": 0}
    in_block = False
    for command in commands:
        name = command[0].upper()
        if name in HANDSHAKE:
            continue
        if in_block:
            in_block = name != "EXEC"
            continue
        if name == "MULTI":
            in_block = True
            counts["other"] += 1
        elif name == "EVALSHA" and len(command) > 1 and command[1] == FLUSH_SHA:
            counts["flush"] += 1
        elif name == "PING":
            counts["ping"] += 1  # redis-py's health check of a connection idle for 30 s
        else:
            counts["other"] += 1
    return counts


def write_spacing(monitor: Monitor) -> dict[str, float]:
    """How far apart one reply's stream writes (FLUSH) reach Redis, by Redis's clock: the
    mean rate as writes per 50 ms, and the shortest gap (ms)."""
    by_reply: dict[str, list[float]] = {}
    for command, at in zip(monitor.commands, monitor.times, strict=True):
        # EVALSHA sha numkeys stream_key ...: the reply's stream is the fourth word.
        if command[0].upper() == "EVALSHA" and command[1] == FLUSH_SHA and len(command) > 3:
            by_reply.setdefault(command[3], []).append(at)
    gaps = [b - a for times in by_reply.values() for a, b in itertools.pairwise(sorted(times))]
    if not gaps:
        return {"writes_per_50ms": float("nan"), "shortest_gap_ms": float("nan")}
    return {
        "writes_per_50ms": round(0.05 * len(gaps) / sum(gaps), 3),
        "shortest_gap_ms": round(min(gaps) * 1000, 2),
    }


def input_bytes(db: redis.Redis) -> int:
    return int(db.info("stats")["total_net_input_bytes"])


async def tail_reply(port: int, sid: str) -> None:
    """Tail the session's reply from Redis to its end, as a client resuming it on another
    replica does (through conversation's own Store, which tells the writer it is watched)."""
    db = AsyncRedis(port=port, decode_responses=True)
    store = Store(db, Settings(redis_url=f"redis://127.0.0.1:{port}/0"))
    try:
        # The reply's id is in the session once the turn has started (a few ms): poll for it,
        # since sse_turn reads the `start` event that carries it only with the whole reply.
        mid = ""
        while not mid:
            await asyncio.sleep(0.002)
            mid = str(await db.hget(store.keys.session(sid), "live") or "")
        after, ended = "0-0", False
        while not ended:
            for entry_id, fields in await store.read_stream(sid, mid, after, 500):
                after, ended = entry_id, "k" in fields
    finally:
        await db.aclose()


async def turn(bench: Bench, session: ChatSession, tailed: bool) -> Turn:
    conv = bench.stack.conversation.url
    if not tailed:
        return await sse_turn(bench.http, conv, session, "hello")
    tail = asyncio.create_task(tail_reply(bench.stack.redis.port, session.session_id))
    found = await sse_turn(bench.http, conv, session, "hello")
    await asyncio.wait_for(tail, 10)
    return found


async def turns_watched(
    bench: Bench, count: int, db: redis.Redis, tailed: bool = False
) -> dict[str, Any]:
    """`count` turns one after another on fresh sessions, watched by MONITOR and INFO;
    `tailed`: each reply also tailed from Redis as by another replica."""
    stack = bench.stack
    sessions = await create_sessions(bench.http, stack.conversation.url, count)
    found: list[Turn] = []
    db.config_resetstat()
    before = input_bytes(db)
    with Monitor(stack.redis.port) as monitor:
        for session in sessions:
            found.append(await turn(bench, session, tailed))
    written = input_bytes(db) - before
    stats = db.info("commandstats")
    good = [t for t in found if t.ok]
    if len(good) != count:
        raise RuntimeError(f"turns failed: {[t.error for t in found if not t.ok][:3]}")
    trips = round_trips(monitor.commands)
    reply_chars = sum(t.text_chars for t in good) / count
    stream_seconds = sum(t.token_times[-1] - t.token_times[0] for t in good) / count
    return {
        "turns": count,
        "round_trips_per_turn": {k: round(v / count, 2) for k, v in trips.items()},
        "reply_chars": reply_chars,
        "stream_seconds": round(stream_seconds, 3),
        "bytes_in_per_turn": round(written / count),
        "stream_writes": write_spacing(monitor),
        "calls_per_turn": {
            name.removeprefix("cmdstat_"): round(int(v["calls"]) / count, 2)
            for name, v in stats.items()
            if name not in ("cmdstat_config", "cmdstat_monitor", "cmdstat_info")
        },
    }


def sync_client_uses() -> list[str]:
    """Places in conversation/ that would use redis-py's blocking client."""
    root = Path(__file__).resolve().parents[2] / "conversation"
    return [
        f"{path.name}: {match.group(0).strip()}"
        for path in sorted(root.rglob("*.py"))
        for match in SYNC_CLIENT.finditer(path.read_text())
    ]


async def run(bench: Bench) -> Outcome:
    stack, count = bench.stack, bench.scale.redis_turns
    db = redis.Redis(port=stack.redis.port, decode_responses=True)
    try:
        stack.fake.reset()
        long_reply = [f"tok{i} " for i in range(64)]
        short_reply = long_reply[:16]
        # Scripts load once per process (SCRIPT LOAD sends a script's whole text): a warm-up
        # reply long enough to write its stream loads every one of them before measuring.
        stack.fake.script({"tokens": long_reply, "delay_ms": 20, "times": 1})
        await sse_turn(
            bench.http,
            stack.conversation.url,
            (await create_sessions(bench.http, stack.conversation.url, 1))[0],
            "warm up",
        )
        # The short reply at the long one's pace: both then pay the per-reply costs (turn,
        # history entry, the stream's first write), and the difference is what the extra
        # text costs. (Unpaced, the fake's 16 tokens often arrive in one read and the reply
        # ends before its first stream write: a fixed cost charged to the long reply.)
        stack.fake.script({"tokens": short_reply, "delay_ms": 20, "times": count})
        short = await turns_watched(bench, count, db)
        stack.fake.script({"tokens": long_reply, "delay_ms": 20, "times": count})
        streamed = await turns_watched(bench, count, db)
        stack.fake.script({"tokens": long_reply, "delay_ms": 20, "times": count})
        tailed = await turns_watched(bench, count, db, tailed=True)
        burst_reply = [f"tok{i} " for i in range(bench.scale.long_tokens)]
        stack.fake.script({"tokens": burst_reply, "delay_ms": 0, "times": count})
        burst = await turns_watched(bench, count, db)
    finally:
        stack.fake.reset()
        db.close()
    outside = short["round_trips_per_turn"]["other"]
    flushes = streamed["round_trips_per_turn"]["flush"]
    tailed_flushes = tailed["round_trips_per_turn"]["flush"]
    spacing = tailed["stream_writes"]
    extra_chars = streamed["reply_chars"] - short["reply_chars"]
    marginal = (streamed["bytes_in_per_turn"] - short["bytes_in_per_turn"]) / extra_chars
    whole = streamed["bytes_in_per_turn"] / streamed["reply_chars"]
    burst_marginal = (burst["bytes_in_per_turn"] - short["bytes_in_per_turn"]) / (
        burst["reply_chars"] - short["reply_chars"]
    )
    sync_uses = sync_client_uses()
    targets: list[Target] = [
        at_most(6, "Redis round trips per turn outside streaming", 3, outside, ""),
        at_most(
            6,
            "Redis stream writes per 50 ms while streaming",
            1,
            spacing["writes_per_50ms"],
            "",
            note=f"tailed from Redis as by another replica: {tailed_flushes} stream writes per "
            f"reply over {tailed['stream_seconds']} s of streaming, shortest gap between two "
            f"{spacing['shortest_gap_ms']} ms (Redis's clock: includes its queueing jitter); "
            f"not tailed: {flushes} per reply",
        ),
        at_most(
            6,
            "bytes written to Redis per byte of reply (stream + history)",
            2.5,
            round(marginal, 2),
            "x",
            note=f"whole turn: {streamed['bytes_in_per_turn']} bytes for a "
            f"{streamed['reply_chars']:.0f}-character reply ({whole:.1f}x), "
            f"{short['bytes_in_per_turn']} bytes for a "
            f"{short['reply_chars']:.0f}-character one; a {burst['reply_chars']:.0f}-character "
            f"reply with no delay between tokens: {burst_marginal:.2f}x",
        ),
        at_most(
            6,
            "blocking Redis clients in conversation (async client only)",
            0,
            len(sync_uses),
            "",
            note="; ".join(sync_uses),
        ),
    ]
    figures = {
        "short_replies": short,
        "streamed_replies": streamed,
        "tailed_replies": tailed,
        "burst_replies": burst,
        "bytes_per_reply_byte": round(marginal, 3),
        "bytes_per_reply_byte_burst": round(burst_marginal, 3),
        "sync_client_uses": sync_uses,
    }
    return Outcome(figures, targets)
