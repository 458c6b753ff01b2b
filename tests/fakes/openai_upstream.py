"""A small OpenAI-compatible model server for tests and benchmarks.

It is a real HTTP server (uvicorn), so every client in the stack talks to it exactly as it
would talk to OpenAI or vLLM. The reply is deterministic: "Echo: <last user message>",
sent as one chunk per word, cut at the request's max_tokens (then with finish_reason
"length", as real servers do). Behaviour is scripted by environment variables (defaults for
the whole process) so benchmarks can set token count and pace:

- FAKE_TOKENS: when set, reply with this many tokens ("tok0 tok1 ...") instead of the echo.
- FAKE_DELAY_MS: delay between streamed chunks (default 0).
- FAKE_MODELS: the ids `GET /v1/models` lists, comma-separated (default "fake-model");
  `POST /_fake/models` with `[{"id", "max_model_len"?}, ...]` replaces them while it runs.

Tests script failures per request and read what the server saw through the `/_fake/`
routes (see tests/fakes/script.py): error statuses, slow or stalled streams, dropped
connections, error events, and requests the client cancelled.

Run: `python -m tests.fakes.openai_upstream --port N`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.script import (
    Behaviour,
    Dropped,
    FakeState,
    Record,
    TrackedStream,
    before_headers,
    error_response,
    hang,
    serve,
    while_stalled,
)

MODEL = "fake-model"
ERROR_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}


def reply_tokens(body: dict[str, Any]) -> list[str]:
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
    tokens: list[str],
    include_usage: bool,
    prompt_tokens: int,
    behaviour: Behaviour | None = None,
    record: Record | None = None,
    finish: str = "stop",
) -> AsyncIterator[bytes]:
    behaviour = behaviour or Behaviour()
    delay = behaviour.pace()
    cid = f"chatcmpl-fake{time.monotonic_ns()}"
    yield chunk(cid, {"role": "assistant", "content": ""})
    if behaviour.first_token_delay_ms:
        await asyncio.sleep(behaviour.first_token_delay_ms / 1000)  # the scripted slow model
    for i, tok in enumerate(tokens):
        if i == behaviour.stall_after:
            if record:
                record.state = "stalled"
            await hang()
        if i == behaviour.drop_after:
            if record:
                record.state = "dropped"
            raise Dropped("scripted mid-stream drop")
        if i == behaviour.error_after:
            error = {"message": behaviour.message, "type": "server_error", "code": None}
            yield b"data: " + orjson.dumps({"error": error}) + b"\n\n"
            if record:
                record.state = "failed"
            return
        if delay and i:
            await asyncio.sleep(delay)  # the fake model's pace, a benchmark parameter
        yield chunk(cid, {"content": tok})
        if record:
            record.tokens_sent += 1
    yield chunk(cid, {}, finish)
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
    if record:
        record.state = "completed"


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion(tokens: list[str], prompt_tokens: int, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(tokens)},
                "finish_reason": finish,
            }
        ],
        "usage": usage_of(prompt_tokens, len(tokens)),
    }


async def answer(request: Request, state: FakeState) -> Response:
    """The chat-completions endpoint, shared with the Hugging Face fake's chat route."""
    body = orjson.loads(await request.body())
    behaviour, record = state.take(request, body)
    if state.stalled:
        record.state = "stalled"
        if not await while_stalled(request, state):
            record.state = "cancelled"
            return Response(status_code=499)
        record.state = "active"
    if not await before_headers(request, behaviour, record):
        return Response(status_code=499)
    if behaviour.status:
        record.state = "failed"
        error = {
            "message": behaviour.message,
            "type": ERROR_TYPES.get(behaviour.status, "server_error"),
            "code": str(behaviour.status),
        }
        return error_response(behaviour.status, {"error": error}, behaviour.retry_after)
    tokens = behaviour.tokens or reply_tokens(body)
    # Like a real server: no more tokens than the request's max_tokens, and it says so.
    limit = body.get("max_tokens")
    finish = "length" if isinstance(limit, int) and len(tokens) > limit else behaviour.finish_reason
    tokens = tokens[:limit] if finish == "length" else tokens
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return TrackedStream(
            stream(tokens, include_usage, prompt_tokens, behaviour, record, finish), record
        )
    record.state = "completed"
    record.tokens_sent = len(tokens)
    return JSONResponse(completion(tokens, prompt_tokens, finish))


def model_entry(model: dict[str, Any]) -> dict[str, Any]:
    return {"object": "model", "created": 0, "owned_by": "fake", **model}


def create_app() -> Starlette:
    state = FakeState()
    ids = os.environ.get("FAKE_MODELS", MODEL).split(",")
    offered = [model_entry({"id": i}) for i in ids if i]

    async def chat_completions(request: Request) -> Response:
        return await answer(request, state)

    async def models(request: Request) -> Response:
        if not await while_stalled(request, state):
            return Response(status_code=499)
        return JSONResponse({"object": "list", "data": offered})

    async def set_models(request: Request) -> Response:
        offered[:] = [model_entry(m) for m in orjson.loads(await request.body())]
        return JSONResponse({"models": len(offered)})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models),
            Route("/_fake/models", set_models, methods=["POST"]),
            *state.routes(),
        ]
    )


def main() -> None:
    serve(create_app)


if __name__ == "__main__":
    main()
