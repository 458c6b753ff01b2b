"""`python -m bench.sdk_chunks [--chunks N] [--requests N]`: what the `openai` SDK costs per
streamed chunk, and per request.

One streamed reply of N `chat.completion.chunk` events, served in process (httpx2's
MockTransport: no socket, no server), read three ways:

- `raw`: assistant's own reader (`Chunks`, orjson per chunk) over the bytes directly;
- `sdk-raw`: the SDK sends the request (`AsyncOpenAI.post`) and hands over the transport's
  body stream, read by `Chunks`: the SDK's cheapest path (`bench/sdk_variant.py`);
- `sdk-typed`: the SDK's own stream of typed `ChatCompletionChunk` objects.

Then N short replies, one after another, from the fake model server over loopback (a real
HTTP hop; the fake's own CPU is in every figure alike), four ways: the provider's aiohttp
client (`common.http`), the SDK's `chat.completions.create`, its
lower-level `post` with a body built by the caller (`bench/sdk_variant.py`), and that `post`
on httpx2's own transport instead of aiohttp.

Each way's best of several runs, the ways taking turns. Only the differences between the
ways carry over to another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx2
import openai
import orjson

from assistant.providers.openai_compatible import Chunks
from common.http import pooled_session, post
from tests.support.servers import running, start_fake_upstream

RUNS = 5


def event(delta: dict[str, str], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def reply(chunks: int) -> list[bytes]:
    events = [event({"content": f"tok{i} "}) for i in range(chunks)]
    return [*events, event({}, "stop"), b"data: [DONE]\n\n"]


async def measure(chunks: int) -> dict[str, float]:
    parts = reply(chunks)

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    def handler(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    client = openai.AsyncOpenAI(api_key="x", base_url="http://bench/v1", http_client=http)
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "x"}
    ]

    async def raw() -> int:
        texts = 0
        async for batch in Chunks("bench").batches(body()):
            texts += len(batch)
        return texts

    async def sdk_raw() -> int:
        texts = 0
        body = {"model": "bench", "messages": messages, "stream": True}
        response = await client.post(
            "/chat/completions", body=body, cast_to=httpx2.Response, stream=True
        )
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        async for batch in Chunks("bench").batches(response.stream):
            texts += len(batch)
        await response.aclose()
        return texts

    async def sdk_typed() -> int:
        texts = 0
        stream = await client.chat.completions.create(model="bench", messages=messages, stream=True)
        async for chunk in stream:
            texts += sum(1 for c in chunk.choices if c.delta.content)
        return texts

    ways: dict[str, Callable[[], Awaitable[int]]] = {
        "raw": raw,
        "sdk-raw": sdk_raw,
        "sdk-typed": sdk_typed,
    }
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(RUNS):
        for name, way in ways.items():  # ways take turns, so load drifts hit each alike
            began = time.perf_counter()
            assert await way() == chunks
            best[name] = min(best[name], time.perf_counter() - began)
    await client.close()
    return {name: seconds / chunks * 1e6 for name, seconds in best.items()}


async def measure_requests(base_url: str, requests: int) -> dict[str, float]:
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "hello"},
    ]
    body = {"model": "fake-model", "messages": messages, "stream": True, "max_tokens": 100}
    limits = httpx2.Limits(max_connections=10, max_keepalive_connections=10, keepalive_expiry=4)
    on_aiohttp = openai.AsyncOpenAI(
        api_key="x", base_url=base_url, http_client=openai.DefaultAioHttpClient(limits=limits)
    )
    on_httpx2 = openai.AsyncOpenAI(
        api_key="x", base_url=base_url, http_client=openai.DefaultAsyncHttpxClient(limits=limits)
    )
    aiohttp_session = pooled_session(
        connect_timeout=5, read_timeout=60, max_connections=10, keepalive_timeout=4
    )

    async def before() -> None:
        url = f"{base_url}/chat/completions"
        async with await post(aiohttp_session, url, orjson.dumps(body)) as response:
            async for _ in Chunks("bench").batches(response.content.iter_any()):
                pass

    async def create() -> None:
        async with on_aiohttp.chat.completions.with_streaming_response.create(
            model="fake-model", messages=messages, stream=True, max_tokens=100
        ) as response:
            async for _ in Chunks("bench").batches(response.http_response.aiter_bytes()):
                pass

    async def sdk_post(client: openai.AsyncOpenAI) -> None:
        response = await client.post(
            "/chat/completions", body=body, cast_to=httpx2.Response, stream=True
        )
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        async for _ in Chunks("bench").batches(response.stream):
            pass
        await response.aclose()

    ways: dict[str, Callable[[], Awaitable[None]]] = {
        "aiohttp": before,
        "sdk-create": create,
        "sdk-post": lambda: sdk_post(on_aiohttp),
        "sdk-post-httpx2": lambda: sdk_post(on_httpx2),
    }
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(RUNS):
        for name, way in ways.items():
            began = time.perf_counter()
            for _ in range(requests):
                await way()
            best[name] = min(best[name], time.perf_counter() - began)
    await aiohttp_session.close()
    await on_aiohttp.close()
    await on_httpx2.close()
    return {name: seconds / requests * 1e6 for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_chunks", description=__doc__)
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    for name, micros in asyncio.run(measure(args.chunks)).items():
        print(f"{name:>16}: {micros:7.2f} us per chunk")
    with running(start_fake_upstream()) as fake:
        found = asyncio.run(measure_requests(f"{fake.url}/v1", args.requests))
    for name, micros in found.items():
        print(f"{name:>16}: {micros:7.0f} us per request")


if __name__ == "__main__":
    main()
