"""The load generator's clients (aiohttp): one chat turn each, timed token by token.

Every reader records when each token arrived (time.perf_counter, seconds) and how many
events arrived in one read from the socket, so a proxy that buffers shows up as events that
arrive together rather than as they were produced.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

READ_TIMEOUT = 30.0


def http_session(limit: int = 0) -> aiohttp.ClientSession:
    """A pooled keep-alive client, as a browser or an API client keeps its connections."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=READ_TIMEOUT)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


@dataclass
class Turn:
    """One reply as the client saw it."""

    start: float
    token_times: list[float] = field(default_factory=list)
    end: float = 0.0
    error: str | None = None
    events: int = 0
    coalesced: int = 0  # events that shared a socket read with an earlier one
    text_chars: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.token_times)

    @property
    def ttft(self) -> float:
        return self.token_times[0] - self.start

    def gaps(self) -> list[float]:
        t = self.token_times
        return [b - a for a, b in itertools.pairwise(t)]

    def fail(self, reason: str) -> Turn:
        self.error = reason
        self.end = time.perf_counter()
        return self


def split_events(buffer: bytearray) -> list[tuple[bytes, bytes]]:
    """Take the complete SSE events (name, data) out of `buffer`; comments are skipped."""
    out: list[tuple[bytes, bytes]] = []
    while True:
        end = buffer.find(b"\n\n")
        if end < 0:
            return out
        block = bytes(buffer[:end])
        del buffer[: end + 2]
        name, data = b"message", b""
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                data = line[5:].lstrip()
        if data:
            out.append((name, data))


def openai_token(_: bytes, data: bytes) -> str | None:
    """The text of a chat.completion.chunk, '' for one without text, None at [DONE]."""
    if data == b"[DONE]":
        return None
    chunk = orjson.loads(data)
    if "error" in chunk:
        raise RuntimeError(f"error chunk: {chunk['error']}")
    for choice in chunk.get("choices") or ():
        text = (choice.get("delta") or {}).get("content")
        if text:
            return str(text)
    return ""


def conversation_token(name: bytes, data: bytes) -> str | None:
    """The text of conversation's `delta` event, '' for other events, None at `done`."""
    if name == b"delta":
        return str(orjson.loads(data)["text"])
    if name == b"done":
        return None
    if name == b"error":
        raise RuntimeError(f"error event: {data[:200]!r}")
    return ""


# Reads an event (name, data): its token text, '' when it holds none, None when it ends the
# reply; raises RuntimeError for an error event.
Meaning = Callable[[bytes, bytes], str | None]


async def read_sse(response: aiohttp.ClientResponse, turn: Turn, meaning: Meaning) -> Turn:
    """Time every token of an SSE reply by the socket read that completed its event."""
    if response.status != 200:
        return turn.fail(f"HTTP {response.status}")
    buffer = bytearray()
    async for data in response.content.iter_any():
        now = time.perf_counter()
        buffer += data
        events = split_events(buffer)
        turn.coalesced += max(len(events) - 1, 0)
        for name, payload in events:
            turn.events += 1
            text = meaning(name, payload)
            if text is None:
                turn.end = now
                # Read the body to its end, as a browser does: an unread body closes the
                # connection, and every turn would pay for a new one on every route.
                async for _ in response.content.iter_any():
                    pass
                return turn
            if text:
                turn.token_times.append(now)
                turn.text_chars += len(text)
    return turn.fail("stream ended before its last event")


async def openai_stream(
    http: aiohttp.ClientSession,
    base_url: str,
    content: str,
    *,
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
    **options: Any,
) -> Turn:
    """A streamed chat completion from an OpenAI-compatible server (a peer's may live at
    another `path` and want `headers`); `options` go in the body (`messages` among them
    replaces the single user message)."""
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **options,
    }
    turn = Turn(start=time.perf_counter())
    try:
        async with http.post(f"{base_url}{path}", json=body, headers=headers) as response:
            return await read_sse(response, turn, openai_token)
    except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
        return turn.fail(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class ChatSession:
    session_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_session(http: aiohttp.ClientSession, base_url: str) -> ChatSession:
    async with http.post(f"{base_url}/api/sessions", json={"name": "bench"}) as response:
        if response.status != 201:
            raise RuntimeError(
                f"creating a session: HTTP {response.status} {await response.text()}"
            )
        data = await response.json(loads=orjson.loads)
    return ChatSession(data["session_id"], data["token"])


async def create_sessions(
    http: aiohttp.ClientSession, base_url: str, count: int, parallel: int = 32
) -> list[ChatSession]:
    gate = asyncio.Semaphore(parallel)

    async def one() -> ChatSession:
        async with gate:
            return await create_session(http, base_url)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def sse_turn(
    http: aiohttp.ClientSession, base_url: str, session: ChatSession, content: str
) -> Turn:
    """POST a message to conversation (direct or through nginx) and read its SSE reply."""
    url = f"{base_url}/api/sessions/{session.session_id}/messages"
    turn = Turn(start=time.perf_counter())
    try:
        async with http.post(url, json={"content": content}, headers=session.auth) as response:
            return await read_sse(response, turn, conversation_token)
    except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
        return turn.fail(f"{type(exc).__name__}: {exc}")


class WsChat:
    """One WebSocket held open for a session's turns, as the chat page keeps it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        base_url: str,
        session: ChatSession,
        compress: int = 0,
    ) -> WsChat:
        """`compress=15` offers permessage-deflate as browsers do; 0 offers none."""
        url = f"{base_url.replace('http', 'ws', 1)}/api/sessions/{session.session_id}/ws"
        ws = await http.ws_connect(
            url, params={"token": session.token}, compress=compress, autoping=True
        )
        return cls(ws)

    @property
    def compressed(self) -> bool:
        return bool(self.ws.compress)

    async def turn(self, content: str) -> Turn:
        turn = Turn(start=time.perf_counter())
        try:
            await self.ws.send_str(orjson.dumps({"type": "message", "content": content}).decode())
            while True:
                message = await self.ws.receive(timeout=READ_TIMEOUT)
                now = time.perf_counter()
                if message.type != aiohttp.WSMsgType.TEXT:
                    return turn.fail(f"socket {message.type.name}")
                frame: dict[str, Any] = orjson.loads(message.data)
                turn.events += 1
                event = frame.get("event")
                if event == "delta":
                    turn.token_times.append(now)
                    turn.text_chars += len(frame["data"]["text"])
                elif event == "done":
                    turn.end = now
                    return turn
                elif event == "error":
                    return turn.fail(f"error event: {frame['data']}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return turn.fail(f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        await self.ws.close()
