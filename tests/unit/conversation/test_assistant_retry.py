"""A pooled connection to assistant found closed is retried once, and nothing else is.

A raw TCP server stands in for assistant, so the test decides exactly which request on which
connection is dropped without a byte of answer, as uvicorn does when its keep-alive timeout
closes an idle connection just as conversation reuses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from common.protocol import ChatMessage
from conversation.assistant_client import (
    AssistantCallError,
    AssistantClient,
    ReplyEnd,
    create_http_session,
)
from conversation.config import Settings
from tests.support.scripted_assistant import read_request

BODY = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


@dataclass
class FakeAssistant:
    """Answers each request, except those `drop(connection, request)` says to drop unanswered."""

    drop: Callable[[int, int], bool]
    requests: list[tuple[int, int]] = field(default_factory=list)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn, n = self.connections, 0
        try:
            while True:
                await read_request(reader)
                n += 1
                self.requests.append((conn, n))
                if self.drop(conn, n):
                    return
                writer.write(ANSWER)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def serve(drop: Callable[[int, int], bool]) -> AsyncIterator[tuple[FakeAssistant, str]]:
    fake = FakeAssistant(drop)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake, f"http://127.0.0.1:{port}"


async def reply(client: AssistantClient) -> list[list[str]]:
    """The reply's texts, as read (its end, the last item, checked apart)."""
    items = [item async for item in client.stream([ChatMessage(role="user", content="x")])]
    assert isinstance(items[-1], ReplyEnd)
    return [item for item in items if isinstance(item, list)]


async def test_a_reused_connection_closed_unanswered_is_sent_again() -> None:
    # The second request reuses connection 1, which the server closes without answering.
    async for fake, url in serve(lambda conn, n: (conn, n) == (1, 2)):
        settings = Settings(assistant_url=url)
        async with create_http_session(settings) as http:
            client = AssistantClient(http, settings)
            assert await reply(client) == [["hi"]]
            assert await reply(client) == [["hi"]]
        assert fake.requests == [(1, 1), (1, 2), (2, 1)]


async def test_a_fresh_connection_closed_unanswered_is_not_retried() -> None:
    async for fake, url in serve(lambda conn, n: True):
        settings = Settings(assistant_url=url)
        async with create_http_session(settings) as http:
            with pytest.raises(AssistantCallError) as caught:
                await reply(AssistantClient(http, settings))
        assert caught.value.code == "assistant_disconnected"
        assert fake.requests == [(1, 1)]
