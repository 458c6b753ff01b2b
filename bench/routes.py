"""The ways a chat turn can travel, each one a `Route`: direct to the fake model, through
assistant, through conversation (SSE or WebSocket), and through nginx in front of them.

A route prepares what its `workers` concurrent chats need (sessions, open sockets) before
the clock starts, so only the turns themselves are timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp

from bench.clients import ChatSession, Turn, WsChat, create_sessions, openai_stream, sse_turn


class Route:
    name = ""

    async def prepare(self, workers: int) -> None:
        """Get ready for `workers` concurrent chats (untimed)."""

    async def turn(self, worker: int, content: str) -> Turn:
        raise NotImplementedError

    async def close(self) -> None:
        """Release what prepare() made."""


class OpenAIRoute(Route):
    """A streamed chat completion from an OpenAI-compatible server: the fake, the floor,
    assistant, or a peer (at its own `path`, with its `headers`)."""

    def __init__(
        self,
        name: str,
        http: aiohttp.ClientSession,
        base_url: str,
        path: str = "/v1/chat/completions",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name, self.http, self.base_url = name, http, base_url
        self.path, self.headers = path, headers

    async def turn(self, worker: int, content: str) -> Turn:
        return await openai_stream(
            self.http, self.base_url, content, path=self.path, headers=self.headers
        )


class SessionRoute(Route):
    """Conversation's API: one fresh session per concurrent chat, created before timing.

    Fresh sessions keep the history short, so the direct baseline (one message) and the
    stack do comparable work; history growth is a scenario of its own.
    """

    def __init__(
        self, name: str, http: aiohttp.ClientSession, base_url: str, session_url: str
    ) -> None:
        self.name, self.http, self.base_url = name, http, base_url
        self.session_url = session_url  # where sessions are created (untimed)
        self.sessions: Sequence[ChatSession] = ()

    async def prepare(self, workers: int) -> None:
        self.sessions = await create_sessions(self.http, self.session_url, workers)


class SseRoute(SessionRoute):
    async def turn(self, worker: int, content: str) -> Turn:
        return await sse_turn(self.http, self.base_url, self.sessions[worker], content)


class WsRoute(SessionRoute):
    """A WebSocket per chat, opened before timing and kept for its turns (as the page does)."""

    def __init__(
        self,
        name: str,
        http: aiohttp.ClientSession,
        base_url: str,
        session_url: str,
        compress: int = 0,
    ) -> None:
        super().__init__(name, http, base_url, session_url)
        self.compress = compress
        self.sockets: list[WsChat] = []

    async def prepare(self, workers: int) -> None:
        await super().prepare(workers)
        self.sockets = list(
            await asyncio.gather(
                *(WsChat.open(self.http, self.base_url, s, self.compress) for s in self.sessions)
            )
        )

    async def turn(self, worker: int, content: str) -> Turn:
        return await self.sockets[worker].turn(content)

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sockets))
        self.sockets = []


async def run_batch(route: Route, workers: int, turns_each: int, content: str) -> list[Turn]:
    """`workers` chats at once, each sending `turns_each` messages back to back."""
    await route.prepare(workers)
    try:

        async def chat(worker: int) -> list[Turn]:
            return [await route.turn(worker, content) for _ in range(turns_each)]

        done = await asyncio.gather(*(chat(w) for w in range(workers)))
    finally:
        await route.close()
    return [turn for turns in done for turn in turns]
