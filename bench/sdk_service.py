"""`python -m bench.sdk_service [--rounds N] [--no-litellm]`: assistant's OpenAI-compatible
provider on aiohttp (the product) against the same provider on the `openai` SDK
(`bench/sdk_variant.py`), through the service, in one run.

Both assistants, the floor (`bench/relay.py`) and LiteLLM stand in front of one fake model
(scenario 1's reply: 16 tokens, no delay); one chat, then 16 closed-loop chats, the routes
taking turns round by round (each round starting with the next route, so a drift in the
machine's load hits each alike). Printed: each route's time to first token added to
direct's (p50, p99) and the two assistants' added time over LiteLLM's, the ratio bench
scenario 1 holds to at most 0.1. bench/README.md ("The openai SDK") has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from bench.clients import Turn, http_session
from bench.peers import litellm
from bench.routes import OpenAIRoute, Route, run_batch
from bench.stack import (
    ASSISTANT_SETTINGS,
    DEFAULT_TOKENS,
    service_cmd,
    start_assistant_service,
    start_floor,
)
from bench.stats import ms, summary
from tests.support.conversation import assistant_env
from tests.support.servers import Server, free_port, http_ok, running, start, start_fake_upstream


def start_sdk_variant(upstream: Server) -> Server:
    port = free_port()
    cmd = service_cmd("bench.sdk_variant:create_app", port)
    ready = http_ok(f"http://127.0.0.1:{port}/health/ready")
    env = {**assistant_env(upstream), **ASSISTANT_SETTINGS}
    return start("assistant-sdk", cmd, port, ready, env, timeout=120)


async def compare(routes: list[Route], chats: int, rounds: int) -> None:
    turns_each = 12 if chats == 1 else 2
    found: dict[str, list[Turn]] = {}
    for route in routes:  # warm-up: connections, caches; not counted
        await run_batch(route, chats, 3, "warm up")
    for r in range(rounds):
        for route in routes[r % len(routes) :] + routes[: r % len(routes)]:
            turns = await run_batch(route, chats, turns_each, "hello")
            found.setdefault(route.name, []).extend(turns)
    added: dict[str, tuple[float, float]] = {}
    base = summary([ms(t.ttft) for t in found["direct"] if t.ok])
    print(f"{chats} chat(s) at once, {len(found['direct'])} turns per route")
    for name, turns in found.items():
        s = summary([ms(t.ttft) for t in turns if t.ok])
        added[name] = (s["p50"] - base["p50"], s["p99"] - base["p99"])
        errors = sum(not t.ok for t in turns)
        print(
            f"  {name:>14}: added p50 {added[name][0]:7.3f} ms, p99 {added[name][1]:7.3f} ms"
            f"  ({errors} errors)"
        )
    if "litellm" in added:
        peer = added["litellm"]
        for name in ("assistant", "assistant-sdk"):
            p50, p99 = (added[name][i] / peer[i] for i in (0, 1))
            print(f"  {name:>14} / litellm: p50 {p50:.3f}x, p99 {p99:.3f}x")


async def measure(servers: dict[str, Server], upstream: Server, rounds: int) -> None:
    async with http_session() as http:
        routes: list[Route] = [OpenAIRoute("direct", http, upstream.url)]
        for name, server in servers.items():
            headers = {"Authorization": f"Bearer {litellm.MASTER_KEY}"}
            routes.append(
                OpenAIRoute(name, http, server.url, headers=headers if name == "litellm" else None)
            )
        await compare(routes, 1, rounds)
        await compare(routes, 16, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_service", description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()
    upstream = start_fake_upstream(FAKE_TOKENS=str(DEFAULT_TOKENS), FAKE_DELAY_MS="0")
    with contextlib.ExitStack() as stack:
        stack.enter_context(running(upstream))
        servers = {
            "floor": stack.enter_context(running(start_floor(upstream))),
            "assistant": stack.enter_context(running(start_assistant_service(upstream))),
            "assistant-sdk": stack.enter_context(running(start_sdk_variant(upstream))),
        }
        if not args.no_litellm:
            peer = litellm.start_litellm(litellm.install(), upstream)
            servers["litellm"] = stack.enter_context(running(peer))
        asyncio.run(measure(servers, upstream, args.rounds))


if __name__ == "__main__":
    main()
