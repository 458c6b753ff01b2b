"""`chat.completion.chunk` events on the wire, encoded with the least work per token.

Each chunk of one completion differs only in its delta, so the JSON around the delta is
rendered once per request and a token costs one `orjson.dumps` of its text and a concat.
The shapes match `common.protocol.ChatCompletionChunk` (a unit test checks every one).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable

import orjson

from assistant.errors import AssistantError, log_failure, upstream_failed
from assistant.providers.base import Finish, Queued, StreamItem
from common.protocol import FinishReason, Usage

DONE = b"data: [DONE]\n\n"


class ChunkEncoder:
    __slots__ = ("_head", "_role_prefix", "_text_prefix", "_text_suffix")

    def __init__(self, completion_id: str, model: str, created: int) -> None:
        head = orjson.dumps(
            {"id": completion_id, "object": "chat.completion.chunk", "created": created}
        )[:-1]
        self._head = b"data: " + head + b',"model":' + orjson.dumps(model)
        self._text_prefix = self._head + b',"choices":[{"index":0,"delta":{"content":'
        self._role_prefix = (
            self._head + b',"choices":[{"index":0,"delta":{"role":"assistant","content":'
        )
        self._text_suffix = b'},"finish_reason":null}]}\n\n'

    def first(self, text: str) -> bytes:
        """The first chunk carries the role along with the first text."""
        return self._role_prefix + orjson.dumps(text) + self._text_suffix

    def text(self, text: str) -> bytes:
        return self._text_prefix + orjson.dumps(text) + self._text_suffix

    def finish(self, reason: FinishReason) -> bytes:
        return (
            self._head
            + b',"choices":[{"index":0,"delta":{},"finish_reason":'
            + orjson.dumps(reason)
            + b"}]}\n\n"
        )

    def queued(self, ahead: int) -> bytes:
        """Before the first token: how many requests wait before this one for the model.

        OpenAI's clients ignore the unknown `queue` field and the empty `choices`.
        """
        return self._head + b',"choices":[],"queue":{"position":' + str(ahead).encode() + b"}}\n\n"

    def usage(self, usage: Usage | None) -> bytes:
        body = orjson.dumps(usage.model_dump() if usage is not None else None)
        return self._head + b',"choices":[],"usage":' + body + b"}\n\n"

    @staticmethod
    def error(error: AssistantError) -> bytes:
        return b"data: " + error.json() + b"\n\n"


async def encode(
    items: AsyncIterator[StreamItem],
    encoder: ChunkEncoder,
    include_usage: bool,
    provider: str,
    on_error: Callable[[str], None] = lambda code: None,
) -> AsyncGenerator[bytes, None]:
    """Turn provider items into SSE bytes.

    A failure after the first token ends the stream with an error event and no `[DONE]`,
    so a client never mistakes a cut answer for a complete one; `on_error` gets its code
    (the answer's status said 200: the metrics' middleware cannot see it).
    """
    sent_role = False
    try:
        async for item in items:
            if type(item) is list:
                # One event per delta, however many arrived together, in one write.
                if sent_role:
                    yield b"".join([encoder.text(text) for text in item])
                else:
                    sent_role = True
                    first, *rest = item
                    yield b"".join([encoder.first(first), *(encoder.text(t) for t in rest)])
            elif isinstance(item, Queued):
                yield encoder.queued(item.ahead)
            elif isinstance(item, Finish):
                # The end of the reply in one write: finish reason, usage, [DONE].
                end = [encoder.finish(item.reason)]
                if not sent_role:
                    end.insert(0, encoder.first(""))
                if include_usage:
                    end.append(encoder.usage(item.usage))
                end.append(DONE)
                yield b"".join(end)
                return
    except AssistantError as exc:
        log_failure(exc)
        on_error(exc.code)
        yield encoder.error(exc)
        return
    error = upstream_failed(provider, "the stream ended without a finish reason")
    on_error(error.code)
    yield encoder.error(error)
