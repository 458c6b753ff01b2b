"""Chunk encoding: every pre-rendered event is a valid OpenAI chunk or error body."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from assistant.errors import upstream_timeout
from assistant.providers.base import Finish, StreamItem
from assistant.streaming import DONE, ChunkEncoder, encode
from common.protocol import ChatCompletionChunk, ErrorResponse, Usage

ENCODER = ChunkEncoder("chatcmpl-1", 'model "quoted"', 1700000000)


def payload(event: bytes) -> object:
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    return orjson.loads(event[6:])


def test_first_chunk_carries_the_role() -> None:
    chunk = ChatCompletionChunk.model_validate(payload(ENCODER.first("Hi")))
    assert chunk.choices[0].delta.role == "assistant"
    assert chunk.choices[0].delta.content == "Hi"
    assert (chunk.id, chunk.model, chunk.created) == ("chatcmpl-1", 'model "quoted"', 1700000000)


def test_text_is_json_escaped() -> None:
    text = 'line\n"quote" \\ ünï 🐉'
    chunk = ChatCompletionChunk.model_validate(payload(ENCODER.text(text)))
    assert chunk.choices[0].delta.content == text
    assert chunk.choices[0].delta.role is None


def test_finish_and_usage_chunks() -> None:
    finish = ChatCompletionChunk.model_validate(payload(ENCODER.finish("length")))
    assert finish.choices[0].finish_reason == "length"
    usage = Usage(prompt_tokens=2, completion_tokens=3, total_tokens=5)
    last = ChatCompletionChunk.model_validate(payload(ENCODER.usage(usage)))
    assert last.choices == [] and last.usage == usage


def test_queue_place_is_a_chunk_without_choices() -> None:
    event = payload(ENCODER.queued(3))
    chunk = ChatCompletionChunk.model_validate(event)
    assert chunk.choices == [] and chunk.model == 'model "quoted"'
    assert event == {**chunk.model_dump(exclude={"usage"}), "queue": {"position": 3}}


def test_error_event_is_openais_error_body() -> None:
    error = ErrorResponse.model_validate(payload(ENCODER.error(upstream_timeout("x", "token", 2))))
    assert error.error.code == "upstream_timeout"
    assert error.error.message == "The x provider was too slow: no token within 2s."


async def test_deltas_that_arrived_together_are_one_write_of_one_event_each() -> None:
    async def items() -> AsyncIterator[StreamItem]:
        yield ["a", "b"]
        yield ["c"]
        yield Finish("stop", None)

    writes = [w async for w in encode(items(), ENCODER, include_usage=False, provider="x")]
    assert len(writes) == 3  # a+b, c, finish + [DONE]
    events = [e + b"\n\n" for e in writes[0].split(b"\n\n") if e]
    chunks = [ChatCompletionChunk.model_validate(payload(e)) for e in events]
    assert [c.choices[0].delta.content for c in chunks] == ["a", "b"]
    assert [c.choices[0].delta.role for c in chunks] == ["assistant", None]
    assert ChatCompletionChunk.model_validate(payload(writes[1])).choices[0].delta.content == "c"
    assert writes[-1].endswith(b"\n\n" + DONE)
    finish = ChatCompletionChunk.model_validate(payload(writes[-1].removesuffix(DONE)))
    assert finish.choices[0].finish_reason == "stop"
