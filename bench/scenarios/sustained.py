"""Scenario 5: sustained non-streaming chat turns through nginx, measured with wrk.

Each request is one whole turn of the tutorials' JSON route (`POST /chat/`): read the
session, store the message, stream the fake's short reply through assistant, store the reply,
answer JSON. wrk holds 1, 2, 4 ... 64 connections (closed loop) for a few seconds each; for
each step the figures are turns/s, latency percentiles, and turns per CPU-second used by the
stack's own processes (nginx, conversation, assistant, Redis; the fake model and wrk are
left out, as they are not ours). The knee is the last step whose p99 stays within 50 ms.
The same steps run against gunicorn with N uvicorn workers per service, then past
saturation: with the product's per-address rate limit, and without it.

Latency is what each request took from its send to its answer, timed by the wrk script
itself (bench/wrk/turn.lua) and matched by X-Request-ID; wrk's own percentiles are kept as
`wrk_corrected_*` but not used. wrk "corrects" its histogram for coordinated omission by
copying every slow sample at each multiple of the mean request interval below it, which
assumes all requests cost the same. Past saturation with the rate limit they do not: ~200
turns let through (each queues in conversation for hundreds of ms) among ~300,000 429s
answered in ~2 ms. The copies of those few turns were ~5% of the histogram, and wrk's p99
(218 ms in one run, 1,533 ms in the next, depending on how long the let-through turns
queued) was the turns' copies, not an answer anyone waited for. The p99 of the answers
themselves, and of each status apart, is what is reported now.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import procs
from bench.clients import create_sessions
from bench.context import Bench
from bench.peers.running import LITELLM, OPEN_WEBUI
from bench.report import Outcome, Target, at_least, at_most
from bench.stack import Stack, running_stack, start_bench_nginx
from bench.stats import ratio

LUA = Path(__file__).resolve().parents[1] / "wrk" / "turn.lua"
COMPLETION_LUA = LUA.with_name("completion.lua")
KNEE_P99_MS = 50
# The stack's turn runs four processes (nginx, conversation, assistant, Redis) where the
# fake's completion runs one: per CPU-second, at least this share of the fake's own rate.
TURNS_PER_FAKE_COMPLETION = 0.3
# Open WebUI does the whole stack's job: the stack serves at least this many times its
# turns per CPU-second.
OVER_OPEN_WEBUI = 4
# A session answers 409 while its previous turn runs: with this many sessions per
# connection, a session's next turn comes long after its last one (409s are counted).
SESSIONS_PER_CONNECTION = 8
TIMEOUT_S = 5  # wrk counts a request without an answer after this as a time-out


async def wrk(
    url: str, connections: int, seconds: float, sessions: Path, script: Path = LUA, *args: str
) -> dict[str, Any]:
    """wrk with `script` (turn.lua's arguments are the sessions file and the thread count;
    another script's are `args`)."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    threads = min(2, connections)
    cmd = [
        exe,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{TIMEOUT_S}s",
        "-s",
        str(script),
        url,
        "--",
        *((str(sessions), str(threads)) if script == LUA else args),
    ]
    done = await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr}")
    raw: dict[str, Any] = orjson.loads(line.removeprefix("BENCH_JSON "))
    return raw


async def step(
    stack: Stack, url: str, connections: int, seconds: float, sessions: Path
) -> dict[str, Any]:
    """One load level: wrk's figures and the stack's CPU use during it."""
    pgids = [s.proc.pid for s in stack.services().values()]
    fake = [stack.upstream.proc.pid]
    cpu_before, fake_before = procs.cpu_seconds(pgids), procs.cpu_seconds(fake)
    raw = await wrk(url, connections, seconds, sessions)
    cpu = procs.cpu_seconds(pgids) - cpu_before
    fake_cpu = procs.cpu_seconds(fake) - fake_before
    stack.fake.reset()  # the fake keeps a record per request: keep it small
    wall = raw["duration_us"] / 1e6
    ok = int(raw["statuses"].get("200", 0))
    lat = raw["latency_us"]
    corrected = raw["wrk_corrected_latency_us"]
    return {
        "connections": connections,
        "turns_per_s": round(ok / wall, 1),
        "p50_ms": round(lat["p50"] / 1000, 2),
        "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2),
        "p999_ms": round(lat["p999"] / 1000, 2),
        "max_ms": round(lat["max"] / 1000, 2),
        "by_status_ms": {
            status: {k: round(v / 1000, 2) if k != "n" else v for k, v in figures.items()}
            for status, figures in raw["latency_by_status_us"].items()
        },
        "unmatched_answers": raw["unmatched"],
        "wrk_corrected_p99_ms": round(corrected["p99"] / 1000, 2),
        "statuses": raw["statuses"],
        "unexpected": raw.get("samples", {}),
        "timeouts": raw["errors"]["timeout"],
        "socket_errors": sum(v for k, v in raw["errors"].items() if k != "status"),
        "stack_cores": round(cpu / wall, 2),
        "turns_per_core_s": round(ok / cpu, 1) if cpu else None,
        # Each turn is one streamed completion of the fake: its own rate per CPU-second,
        # measured in the same step, is the yardstick the stack's is stated against.
        "fake_cores": round(fake_cpu / wall, 2),
        "fake_completions_per_core_s": round(ok / fake_cpu, 1) if fake_cpu else None,
    }


async def completion_step(
    url: str, connections: int, seconds: float, args: list[str], pgids: list[int]
) -> dict[str, Any]:
    """One load level of non-streaming chat completions (completion.lua) against a server
    speaking OpenAI's API, and the CPU its processes (`pgids`) used meanwhile."""
    cpu_before = procs.cpu_seconds(pgids)
    raw = await wrk(url, connections, seconds, Path(), COMPLETION_LUA, *args)
    cpu = procs.cpu_seconds(pgids) - cpu_before
    wall = raw["duration_us"] / 1e6
    failed = sum(raw["errors"].values())
    ok = max(int(raw["requests"]) - int(raw["errors"]["status"]), 0)
    return {
        "connections": connections,
        "turns_per_s": round(ok / wall, 1),
        "p50_ms": round(raw["latency_us"]["p50"] / 1000, 2),
        "p99_ms": round(raw["latency_us"]["p99"] / 1000, 2),
        "errors": failed,
        "cores": round(cpu / wall, 2),
        "turns_per_core_s": round(ok / cpu, 1) if cpu else None,
    }


async def completion_ladder(
    bench: Bench, url: str, path: str, model: str, token: str, pgids: list[int]
) -> dict[str, Any]:
    """Scenario 5's ladder for a server of OpenAI's API: assistant, or a peer."""
    scale = bench.scale
    args = [path, model, token]
    await wrk(url, 4, 1, Path(), COMPLETION_LUA, *args)  # warm-up
    bench.stack.fake.reset()
    steps = []
    for connections in scale.wrk_connections:
        steps.append(await completion_step(url, connections, scale.wrk_seconds, args, pgids))
        bench.stack.fake.reset()
    top = knee(steps)
    return {"steps": steps, "knee": top, "turns_per_core_s": top["turns_per_core_s"]}


async def peer_ladders(bench: Bench, stack_knee: dict[str, Any]) -> dict[str, Any]:
    """Requests per CPU-second at the knee: assistant beside LiteLLM, the whole stack (its
    uvicorn ladder's knee) beside Open WebUI."""
    s = bench.stack
    found: dict[str, Any] = {
        "assistant": await completion_ladder(
            bench, s.assistant.url, "/v1/chat/completions", "fake-model", "", [s.assistant.proc.pid]
        ),
        "nginx-sse": {"knee": stack_knee, "turns_per_core_s": stack_knee["turns_per_core_s"]},
    }
    for peer in bench.peers.all():
        token = peer.headers.get("Authorization", "").removeprefix("Bearer ")
        found[peer.name] = await completion_ladder(
            bench, peer.server.url, peer.path, peer.model, token, [peer.server.proc.pid]
        )
    return found


def open_webui_target(per_cpu: dict[str, Any]) -> list[Target]:
    theirs = per_cpu.get(OPEN_WEBUI)
    if theirs is None:
        return []
    ours = per_cpu["nginx-sse"]["turns_per_core_s"] or 0
    rate = theirs["turns_per_core_s"] or 0
    litellm = per_cpu.get(LITELLM)
    beside = (
        f"; one hop: assistant {per_cpu['assistant']['turns_per_core_s']}, LiteLLM "
        f"{litellm['turns_per_core_s']} per core-second"
        if litellm
        else ""
    )
    return [
        at_least(
            5,
            "turns per CPU-second at the knee, the whole stack / Open WebUI",
            OVER_OPEN_WEBUI,
            ratio(ours, rate),
            "x",
            note=f"stack {ours} turns per stack core-second, Open WebUI {rate} per its "
            f"core-second at {theirs['knee']['connections']} connections{beside}",
        )
    ]


async def session_file(http: aiohttp.ClientSession, conversation_url: str, count: int) -> Path:
    """`count` new sessions, one "session_id token" per line, for wrk's script."""
    sessions = await create_sessions(http, conversation_url, count)
    path = Path(tempfile.mkdtemp(prefix="bench-wrk-")) / "sessions.txt"
    path.write_text("".join(f"{s.session_id} {s.token}\n" for s in sessions))
    return path


def knee(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The busiest step whose p99 stays within the limit (else the lightest step, marked)."""
    within = [s for s in steps if s["p99_ms"] <= KNEE_P99_MS and s["turns_per_s"] > 0]
    if not within:
        return {**steps[0], "p99_over_limit_at_every_step": True}
    return max(within, key=lambda s: s["turns_per_s"])


async def ladder(bench: Bench, workers: int) -> dict[str, Any]:
    scale = bench.scale
    base = bench.stack
    with running_stack(workers, redis=base.redis, upstream=base.upstream) as stack:
        sessions = await session_file(
            bench.http, stack.conversation.url, SESSIONS_PER_CONNECTION * scale.overload_connections
        )
        await wrk(stack.nginx.url, 4, 1, sessions)  # warm-up
        stack.fake.reset()
        steps = [
            await step(stack, stack.nginx.url, c, scale.wrk_seconds, sessions)
            for c in scale.wrk_connections
        ]
        past = await step(
            stack, stack.nginx.url, scale.overload_connections, scale.wrk_seconds, sessions
        )
        limited_nginx = start_bench_nginx(stack.conversation, limited=True)
        try:
            limited = await step(
                stack, limited_nginx.url, scale.overload_connections, scale.wrk_seconds, sessions
            )
        finally:
            limited_nginx.stop()
    return {
        "workers": workers,
        "steps": steps,
        "knee": knee(steps),
        "overload_unlimited": past,
        "overload_rate_limited": limited,
    }


def limited_note(limited: dict[str, Any], gunicorn: dict[str, Any]) -> str:
    """The rate-limited run's answers by status, and wrk's corrected p99 beside ours."""
    parts = [
        f"{status}: p99 {figures['p99']} ms, max {figures['max']} ms (n={figures['n']})"
        for status, figures in sorted(limited["by_status_ms"].items())
    ]
    return (
        f"statuses {limited['statuses']}; by status {'; '.join(parts)}; wrk's "
        f"coordinated-omission-corrected p99 {limited['wrk_corrected_p99_ms']} ms (not used); "
        f"gunicorn x{gunicorn['workers']}: p99 {gunicorn['overload_rate_limited']['p99_ms']} ms"
    )


def unexpected_note(runs: list[dict[str, Any]]) -> str:
    """The first body of each status other than 200 and 429 seen in any step, if any."""
    seen: dict[str, str] = {}
    for r in runs:
        for s in [*r["steps"], r["overload_unlimited"], r["overload_rate_limited"]]:
            seen.update(s["unexpected"])
    return "; other answers: " + "; ".join(f"{k}: {v}" for k, v in seen.items()) if seen else ""


async def run(bench: Bench) -> Outcome:
    single = await ladder(bench, 0)
    gunicorn = await ladder(bench, bench.scale.gunicorn_workers)
    top, g_top = single["knee"], gunicorn["knee"]
    passing = [s["connections"] for s in single["steps"] if s["p99_ms"] > KNEE_P99_MS]
    knee_note = (
        f"p99 passes {KNEE_P99_MS} ms at {passing[0]} connections"
        if passing
        else f"p99 within {KNEE_P99_MS} ms at every step"
    )
    runs = [single, gunicorn]
    timeouts = sum(
        r[k]["timeouts"] for r in runs for k in ("overload_unlimited", "overload_rate_limited")
    )
    limited = single["overload_rate_limited"]
    unlimited = single["overload_unlimited"]
    fake_rate = top["fake_completions_per_core_s"] or 0
    targets: list[Target] = [
        at_least(
            5,
            "non-streaming turns per stack core-second at the knee / the fake's completions "
            "per its core-second",
            TURNS_PER_FAKE_COMPLETION,
            ratio(top["turns_per_core_s"], fake_rate, 3),
            "x",
            note=f"{top['turns_per_core_s']} turns per stack core-second, the fake "
            f"{fake_rate} completions per core-second; "
            f"{top['turns_per_s']} turns/s at {top['connections']} connections, "
            f"{knee_note}; gunicorn x{bench.scale.gunicorn_workers}: "
            f"{g_top['turns_per_s']} turns/s, {g_top['turns_per_core_s']} per "
            f"core-second at {g_top['connections']} connections",
        ),
        at_most(
            5,
            "time-outs past saturation",
            0,
            timeouts,
            "",
            note=f"{bench.scale.overload_connections} connections; without the rate "
            f"limit: statuses {unlimited['statuses']}, p99 {unlimited['p99_ms']} ms",
        ),
        at_most(
            5,
            "p99 past saturation with the product's rate limit / p99 at the knee",
            1,
            ratio(limited["p99_ms"], top["p99_ms"]),
            "x",
            note=f"{limited['p99_ms']} ms past saturation, {top['p99_ms']} ms at the knee; "
            f"{limited_note(limited, gunicorn)}{unexpected_note(runs)}",
        ),
    ]
    figures: dict[str, Any] = {"uvicorn": single, "gunicorn": gunicorn, "knee_p99_ms": KNEE_P99_MS}
    if bench.peers.all():
        per_cpu = await peer_ladders(bench, top)
        figures["per_cpu"] = per_cpu
        targets += open_webui_target(per_cpu)
    return Outcome(figures, targets)
