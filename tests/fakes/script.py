"""Scripted misbehaviour and request records shared by the fake model servers.

A test queues behaviours with `POST /_fake/script`; each incoming model request takes the
next one (or behaves normally when the queue is empty), so one running fake can show every
failure in turn. `POST /_fake/stall` with `{"on": true}` stalls the whole server instead:
every model request (and the model list) hangs with its connection open until the client
leaves, until `{"on": false}`. Every model request is recorded with what happened to it, including a
client that went away (`cancelled`), readable at `GET /_fake/requests`.

Behaviour fields (all optional):
- status, message, retry_after: answer with this HTTP error status and body.
- delay_headers_ms: wait before answering at all (a slow or hung server).
- first_token_delay_ms: send the response headers, then wait before the first token.
- stall_after: send this many tokens, then hang with the connection open.
- drop_after: send this many tokens, then abort the connection (mid-stream drop).
- error_after: send this many tokens, then an error event in the stream.
- tokens: reply with these tokens instead of the server's default reply.
- finish_reason: the reply's finish reason (default "stop"; "length" as if cut at max_tokens).
- delay_ms: pause between tokens for this request (instead of FAKE_DELAY_MS).
- times: queue the behaviour this many times (default 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


@dataclass
class Behaviour:
    status: int | None = None
    message: str = "scripted failure"
    retry_after: str | None = None
    delay_headers_ms: int = 0
    first_token_delay_ms: int = 0
    stall_after: int | None = None
    drop_after: int | None = None
    error_after: int | None = None
    tokens: list[str] | None = None
    delay_ms: int | None = None
    finish_reason: str = "stop"

    def pace(self) -> float:
        """Seconds between tokens: this behaviour's, else the process default."""
        if self.delay_ms is not None:
            return self.delay_ms / 1000
        return float(os.environ.get("FAKE_DELAY_MS", "0")) / 1000

    @classmethod
    def parse(cls, data: dict[str, Any]) -> list[Behaviour]:
        times = int(data.pop("times", 1))
        return [cls(**data) for _ in range(times)]


DEFAULT = Behaviour()


@dataclass
class Record:
    n: int
    path: str
    body: dict[str, Any]
    authorization: str | None
    state: str = "active"  # active | completed | failed | cancelled | dropped | stalled
    tokens_sent: int = 0
    behaviour: dict[str, Any] = field(default_factory=dict)


class Dropped(Exception):
    """Raised inside a streaming body to make the server abort the connection."""


class FakeState:
    def __init__(self) -> None:
        self.script: deque[Behaviour] = deque()
        self.records: list[Record] = []
        self._numbers = itertools.count(1)
        # Set while the server runs normally; cleared in stall mode.
        self.flowing = asyncio.Event()
        self.flowing.set()

    @property
    def stalled(self) -> bool:
        return not self.flowing.is_set()

    def take(self, request: Request, body: dict[str, Any]) -> tuple[Behaviour, Record]:
        behaviour = self.script.popleft() if self.script else Behaviour()
        record = Record(
            n=next(self._numbers),
            path=request.url.path,
            body=body,
            authorization=request.headers.get("authorization"),
            behaviour={k: v for k, v in asdict(behaviour).items() if v != getattr(DEFAULT, k)},
        )
        self.records.append(record)
        return behaviour, record

    def routes(self) -> list[Route]:
        async def script(request: Request) -> Response:
            data = orjson.loads(await request.body())
            items = data if isinstance(data, list) else [data]
            for item in items:
                self.script.extend(Behaviour.parse(dict(item)))
            return JSONResponse({"queued": len(self.script)})

        async def reset(_: Request) -> Response:
            self.script.clear()
            self.records.clear()
            self.flowing.set()
            return JSONResponse({"status": "reset"})

        async def stall(request: Request) -> Response:
            on = bool(orjson.loads(await request.body()).get("on"))
            if on:
                self.flowing.clear()
            else:
                self.flowing.set()
            return JSONResponse({"stalled": on})

        async def requests(_: Request) -> Response:
            return JSONResponse([asdict(r) for r in self.records])

        async def stats(_: Request) -> Response:
            counts: dict[str, int] = {}
            for r in self.records:
                counts[r.state] = counts.get(r.state, 0) + 1
            return JSONResponse({"requests": len(self.records), "states": counts})

        async def health(_: Request) -> Response:
            return JSONResponse({"status": "ok"})

        return [
            Route("/_fake/script", script, methods=["POST"]),
            Route("/_fake/reset", reset, methods=["POST"]),
            Route("/_fake/stall", stall, methods=["POST"]),
            Route("/_fake/requests", requests),
            Route("/_fake/stats", stats),
            Route("/health", health),
        ]


async def disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, waiting: Awaitable[object]) -> bool:
    """Wait for `waiting`; False when the client gave up first."""
    task = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(disconnected(request))
    done, pending = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    for pending_task in pending:
        pending_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending_task
    return task in done


async def sleep_unless_disconnected(request: Request, seconds: float) -> bool:
    """Wait like a slow server; True when the client gave up meanwhile."""
    return not await unless_disconnected(request, asyncio.sleep(seconds))


async def hang() -> None:
    await asyncio.Event().wait()  # until the client disconnects and the server cancels us


async def while_stalled(request: Request, state: FakeState) -> bool:
    """In stall mode, hang until the mode ends (then True) or the client leaves (False)."""
    return not state.stalled or await unless_disconnected(request, state.flowing.wait())


async def before_headers(request: Request, behaviour: Behaviour, record: Record) -> bool:
    """Apply a scripted pre-header delay; False when the client left during it."""
    if behaviour.delay_headers_ms and await sleep_unless_disconnected(
        request, behaviour.delay_headers_ms / 1000
    ):
        record.state = "cancelled"
        return False
    return True


class TrackedStream(StreamingResponse):
    """A streaming body whose record says `cancelled` when the client left before the end."""

    def __init__(self, content: AsyncIterator[bytes], record: Record) -> None:
        super().__init__(content, media_type="text/event-stream")
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.record.state in ("active", "stalled"):
                self.record.state = "cancelled"


def error_response(status: int, body: dict[str, Any], retry_after: str | None) -> Response:
    headers = {"Retry-After": retry_after} if retry_after else None
    return JSONResponse(body, status_code=status, headers=headers)


def serve(create_app: Callable[[], Starlette]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    # 0.0.0.0 in a container (tests/compose.fakes.yml), where other containers call it.
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
