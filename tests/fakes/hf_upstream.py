"""A fake Hugging Face inference server: the classic text-generation task, as TGI serves it.

A real HTTP server, so `huggingface_hub`'s AsyncInferenceClient talks to it unchanged when
assistant's HF_BASE_URL points here:
- `POST /`: text generation, `{"inputs", "parameters", "stream"}`; streamed as TGI's
  `data:{"token": {...}, "generated_text", "details"}` events, the last one a special
  end-of-sequence token with the details (finish reason, token counts).
- `POST /v1/chat/completions`: the chat task, only when FAKE_HF_CHAT=1; otherwise 404,
  like a model that offers only text generation.
- `GET /{org}/{model}/resolve/main/tokenizer_config.json`: the model's chat template (a
  Mistral-style `[INST]` template for models named like Mistral; 404 for others), so
  HF_HUB_URL can point here too.

Failures are scripted per request through `/_fake/` (see tests/fakes/script.py), and
FAKE_TOKENS / FAKE_DELAY_MS work as in the OpenAI fake.

Run: `python -m tests.fakes.hf_upstream --port N`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import openai_upstream
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
)

REPLY = ["Hello", " from", " text", " generation", "."]
EOS = "</s>"
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)


def reply_tokens() -> list[str]:
    count = os.environ.get("FAKE_TOKENS")
    return [f"tok{i} " for i in range(int(count))] if count else list(REPLY)


def event(payload: dict[str, Any]) -> bytes:
    return b"data:" + orjson.dumps(payload) + b"\n\n"


def token_event(index: int, text: str, special: bool = False) -> dict[str, Any]:
    token = {"id": index, "text": text, "logprob": -0.1, "special": special}
    return {"index": index, "token": token, "generated_text": None, "details": None}


async def generate(
    tokens: list[str], max_new: int, input_length: int, behaviour: Behaviour, record: Record
) -> AsyncIterator[bytes]:
    delay = behaviour.pace()
    if behaviour.first_token_delay_ms:
        await asyncio.sleep(behaviour.first_token_delay_ms / 1000)  # the scripted slow model
    sent = tokens[:max_new]
    for i, text in enumerate(sent):
        if i == behaviour.stall_after:
            record.state = "stalled"
            await hang()
        if i == behaviour.drop_after:
            record.state = "dropped"
            raise Dropped("scripted mid-stream drop")
        if i == behaviour.error_after:
            record.state = "failed"
            yield event({"error": behaviour.message, "error_type": "generation"})
            return
        if delay and i:
            await asyncio.sleep(delay)  # the fake model's pace, a benchmark parameter
        yield event(token_event(i + 1, text))
        record.tokens_sent += 1
    finish = "length" if len(sent) < len(tokens) else "eos_token"
    last = token_event(len(sent) + 1, EOS, special=True)
    last["generated_text"] = "".join(sent)
    last["details"] = {
        "finish_reason": finish,
        "generated_tokens": len(sent) + 1,
        "input_length": input_length,
        "seed": None,
    }
    yield event(last)
    record.state = "completed"


def create_app() -> Starlette:
    state = FakeState()

    async def text_generation(request: Request) -> Response:
        body = orjson.loads(await request.body())
        behaviour, record = state.take(request, body)
        if not await before_headers(request, behaviour, record):
            return Response(status_code=499)
        if behaviour.status:
            record.state = "failed"
            error = {"error": behaviour.message, "error_type": "scripted"}
            return error_response(behaviour.status, error, behaviour.retry_after)
        tokens = behaviour.tokens or reply_tokens()
        parameters = body.get("parameters") or {}
        max_new = int(parameters.get("max_new_tokens") or 20)  # TGI's default
        input_length = len(str(body.get("inputs", "")).split())
        if body.get("stream"):
            return TrackedStream(generate(tokens, max_new, input_length, behaviour, record), record)
        record.state = "completed"
        return JSONResponse([{"generated_text": "".join(tokens[:max_new])}])

    async def chat(request: Request) -> Response:
        if os.environ.get("FAKE_HF_CHAT") != "1":
            return JSONResponse({"error": "Not Found"}, status_code=404)
        return await openai_upstream.answer(request, state)

    async def tokenizer_config(request: Request) -> Response:
        repo = request.path_params["repo"]
        if "mistral" not in repo.lower():
            return JSONResponse({"error": "Entry not found"}, status_code=404)
        # As Mistral's own file lists them: its special tokens, by id.
        added = {
            str(i): {"content": text, "special": True}
            for i, text in enumerate(["<unk>", "<s>", EOS])
        }
        return JSONResponse(
            {
                "bos_token": "<s>",
                "eos_token": EOS,
                "chat_template": MISTRAL_TEMPLATE,
                "added_tokens_decoder": added,
            }
        )

    return Starlette(
        routes=[
            Route("/", text_generation, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/{repo:path}/resolve/main/tokenizer_config.json", tokenizer_config),
            *state.routes(),
        ]
    )


def main() -> None:
    serve(create_app)


if __name__ == "__main__":
    main()
