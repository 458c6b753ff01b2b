"""Parsing assistant's streamed chunks: text, usage, error chunks and malformed ones."""

from __future__ import annotations

import orjson
import pytest

from common.protocol import Usage
from conversation.assistant_client import AssistantCallError, ReplyEnd
from conversation.assistant_client import _parse_chunk as parse_into


def _parse_chunk(payload: bytes) -> list[str | Usage]:
    """The chunk's texts, then its usage if any."""
    texts: list[str] = []
    end = ReplyEnd()
    parse_into(payload, texts, end)
    return [*texts, end.usage] if end.usage is not None else list(texts)


def test_the_finish_reason_is_kept() -> None:
    end = ReplyEnd()
    parse_into(orjson.dumps({"choices": [{"delta": {}, "finish_reason": "length"}]}), [], end)
    assert end.finish_reason == "length"


def chunk(delta: object, **extra: object) -> bytes:
    body = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta}], **extra}
    return orjson.dumps(body)


def test_text_deltas_in_order() -> None:
    assert _parse_chunk(chunk({"content": "Hel"})) == ["Hel"]
    two = b'{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}'
    assert _parse_chunk(two) == ["a", "b"]


def test_role_only_and_empty_deltas_carry_no_text() -> None:
    assert _parse_chunk(chunk({"role": "assistant", "content": ""})) == []
    assert _parse_chunk(chunk({"content": None}, usage=None)) == []
    assert _parse_chunk(b'{"choices":[]}') == []


def test_the_usage_chunk() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    parsed = _parse_chunk(orjson.dumps({"choices": [], "usage": usage}))
    assert parsed == [Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)]


def test_an_error_chunk_keeps_the_model_s_code_and_message() -> None:
    payload = b'{"error":{"message":"boom","type":"server_error","code":"upstream_error"}}'
    with pytest.raises(AssistantCallError) as caught:
        _parse_chunk(payload)
    assert caught.value.code == "upstream_error"
    assert "boom" in caught.value.message


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b'"a string"',
        b"[1, 2]",
        b'{"id":"c1"}',
        b'{"choices":{"delta":{}}}',
        b'{"choices":[7]}',
        b'{"choices":[{"delta":"text"}]}',
        b'{"choices":[{"delta":{"content":5}}]}',
        b'{"choices":[],"usage":{"prompt_tokens":"many"}}',
        b'{"error":"no detail"}',
    ],
)
def test_malformed_chunks_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(AssistantCallError) as caught:
        _parse_chunk(payload)
    assert caught.value.code == "assistant_protocol"
    assert "unreadable chunk" in caught.value.message
