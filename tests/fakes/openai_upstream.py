"""A small OpenAI-compatible model server for tests and benchmarks.

It is a real HTTP server (uvicorn), so every client in the stack talks to it exactly as it
would talk to OpenAI or vLLM. The reply is deterministic: "Echo: <last user message>",
sent as one chunk per word. Behaviour is scripted by environment variables (defaults for
the whole process) so benchmarks can set token count and pace:

- FAKE_TOKENS: when set, reply with this many tokens ("tok0 tok1 ...") instead of the echo.
- FAKE_DELAY_MS: delay between streamed chunks (default 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "fake-model"


def reply_tokens(body: dict[str, object]) -> list[str]:
    count = os.environ.get("FAKE_TOKENS")
    if count:
        return [f"tok{i} " for i in range(int(count))]
    messages = body.get("messages") or []
    assert isinstance(messages, list)
    last_user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    words = f"Echo: {last_user}".split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


def chunk(cid: str, delta: dict[str, str], finish: str | None = None) -> bytes:
    payload = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def stream(
    tokens: list[str], include_usage: bool, prompt_tokens: int
) -> AsyncIterator[bytes]:
    delay = float(os.environ.get("FAKE_DELAY_MS", "0")) / 1000
    cid = f"chatcmpl-fake{time.monotonic_ns()}"
    yield chunk(cid, {"role": "assistant", "content": ""})
    for i, tok in enumerate(tokens):
        if delay and i:
            await asyncio.sleep(delay)  # the fake model's pace, a benchmark parameter
        yield chunk(cid, {"content": tok})
    yield chunk(cid, {}, "stop")
    if include_usage:
        usage = usage_of(prompt_tokens, len(tokens))
        payload = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [],
            "usage": usage,
        }
        yield b"data: " + orjson.dumps(payload) + b"\n\n"
    yield b"data: [DONE]\n\n"


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def chat_completions(request: Request) -> Response:
    body = orjson.loads(await request.body())
    tokens = reply_tokens(body)
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            stream(tokens, include_usage, prompt_tokens), media_type="text/event-stream"
        )
    return JSONResponse(
        {
            "id": f"chatcmpl-fake{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(tokens)},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage_of(prompt_tokens, len(tokens)),
        }
    )


async def models(_: Request) -> Response:
    return JSONResponse(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "fake"}],
        }
    )


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models),
            Route("/health", health),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
