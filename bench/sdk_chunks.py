"""`python -m bench.sdk_chunks [--chunks N]`: what the `openai` SDK costs per streamed chunk.

One streamed reply of N `chat.completion.chunk` events, served in process (httpx2's
MockTransport: no socket, no server), read three ways:

- `raw`: assistant's own reader (`Chunks`, orjson per chunk) over the bytes directly;
- `sdk-raw`: the SDK sends the request (`AsyncOpenAI.post`) and hands over the body, read
  by `Chunks`: the OpenAI-compatible provider's path;
- `sdk-typed`: the SDK's own stream of typed `ChatCompletionChunk` objects.

Each way's best of several runs, in microseconds per chunk. Only the difference between
the ways carries over to another machine.
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
        async for batch in Chunks("bench").batches(response.aiter_bytes()):
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_chunks", description=__doc__)
    parser.add_argument("--chunks", type=int, default=20_000)
    args = parser.parse_args()
    for name, micros in asyncio.run(measure(args.chunks)).items():
        print(f"{name:>10}: {micros:7.2f} us per chunk")


if __name__ == "__main__":
    main()
