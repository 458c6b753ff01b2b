"""An OpenAI-compatible chat-completions server inside the test's own event loop, for tests of
conversation's generation code without assistant's processes.

Each request waits for the test: `await assistant.next_reply()` hands over the request, and
the test writes the answer's pieces when it chooses (text, the end, a refusal, a cut), so
what conversation has seen at any point is decided by the test, never by a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

# How long a test waits for conversation to ask, before failing instead of hanging.
ASK_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class _Refusal:
    status: int
    body: bytes


@dataclass
class ScriptedReply:
    """One request to answer, piece by piece."""

    request: dict[str, Any]
    _out: asyncio.Queue[bytes | _Refusal | None] = field(default_factory=asyncio.Queue)

    @property
    def prompt(self) -> list[tuple[str, str]]:
        """The messages asked about: (role, content)."""
        return [(m["role"], m["content"]) for m in self.request["messages"]]

    def text(self, *pieces: str) -> None:
        """Text deltas, written together (conversation reads them in one batch or more)."""
        self._out.put_nowait(
            b"".join(_event({"choices": [{"delta": {"content": p}}]}) for p in pieces)
        )

    def queued(self, ahead: int) -> None:
        """Before any text: the model is busy, `ahead` requests wait before this one."""
        self._out.put_nowait(_event({"choices": [], "queue": {"position": ahead}}))

    def finish(self, reason: str = "stop", completion_tokens: int | None = None) -> None:
        """The last chunk, with usage when given, then `[DONE]` and the end of the body."""
        last: dict[str, Any] = {"choices": [{"delta": {}, "finish_reason": reason}]}
        if completion_tokens is not None:
            tokens = {"prompt_tokens": 1, "completion_tokens": completion_tokens}
            last["usage"] = {**tokens, "total_tokens": 1 + completion_tokens}
            last["model"] = "scripted"
        self._out.put_nowait(_event(last) + b"data: [DONE]\n\n")
        self._out.put_nowait(None)

    def cut(self) -> None:
        """End the body without `[DONE]`, as a server dying mid-reply does."""
        self._out.put_nowait(None)

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer with an error instead of a stream (allowed only before any text)."""
        body = orjson.dumps({"error": {"message": message, "type": "error", "code": code}})
        self._out.put_nowait(_Refusal(status, body))


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """The body of the next HTTP/1.1 request on a connection (aiohttp's, with a
    Content-Length); IncompleteReadError once the client has closed it."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class ScriptedAssistant:
    def __init__(self) -> None:
        self._asked: asyncio.Queue[ScriptedReply] = asyncio.Queue()
        self.url = ""

    async def next_reply(self) -> ScriptedReply:
        """The next request conversation sends, once it has sent it."""
        async with asyncio.timeout(ASK_TIMEOUT):
            return await self._asked.get()

    @property
    def unanswered(self) -> int:
        return self._asked.qsize()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                reply = ScriptedReply(orjson.loads(await read_request(reader)))
                self._asked.put_nowait(reply)
                if not await self._answer(reply, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, reply: ScriptedReply, writer: asyncio.StreamWriter) -> bool:
        """Write the answer as the test scripts it; False: the connection is done."""
        first = await reply._out.get()
        if isinstance(first, _Refusal):
            writer.write(
                b"HTTP/1.1 %d Refused\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (first.status, len(first.body), first.body)
            )
            await writer.drain()
            return True
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        item: bytes | _Refusal | None = first
        while isinstance(item, bytes):
            writer.write(_chunk(item))
            await writer.drain()
            item = await reply._out.get()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


@contextlib.asynccontextmanager
async def scripted_assistant() -> AsyncIterator[ScriptedAssistant]:
    assistant = ScriptedAssistant()
    server = await asyncio.start_server(assistant._serve, "127.0.0.1", 0)
    assistant.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield assistant
