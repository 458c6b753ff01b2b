"""A small real HTTP app standing in for conversation behind nginx.

It shows what nginx does to traffic: which replica answered, which headers arrived, whether
a streamed event reached the client before the next one was produced.

The SSE stream is gated: event i+1 is only produced after the client has received event i
and said so (POST /api/release/{run}/{i}, sent straight to this app). If anything between
the app and the client held events back (proxy buffering, gzip), the client would never see
event i, never release the gate, and its read would time out: the test fails without any
timing assumption.

Run: python -m tests.integration.deploy.upstream_app --port 8000 --name replica-1
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

GATE_TIMEOUT = 20.0  # seconds a stream waits for a release before giving up


def create_app(name: str) -> Starlette:
    gates: defaultdict[tuple[str, int], asyncio.Event] = defaultdict(asyncio.Event)

    def answer(request: Request, **extra: object) -> JSONResponse:
        return JSONResponse(
            {
                "replica": name,
                "path": request.url.path,
                "method": request.method,
                "headers": dict(request.headers),
                **extra,
            },
            headers={"Server": "upstream-app", "X-Powered-By": "starlette"},
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "success", "replica": name})

    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return answer(request, size=len(body))

    async def release(request: Request) -> JSONResponse:
        gates[(request.path_params["run"], int(request.path_params["i"]))].set()
        return JSONResponse({"released": True})

    async def stream(request: Request) -> StreamingResponse:
        run = request.path_params["run"]
        count = int(request.query_params.get("count", "5"))

        async def events() -> AsyncIterator[bytes]:
            for i in range(count):
                yield f"id: {i}\nevent: tick\ndata: {i}\n\n".encode()
                try:
                    await asyncio.wait_for(gates[(run, i)].wait(), GATE_TIMEOUT)
                except TimeoutError:
                    yield b"event: stalled\ndata: the client never received the last event\n\n"
                    return
            yield b"event: done\ndata: end\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def websocket(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                text = await ws.receive_text()
                await ws.send_text(f"{name}:{text}")
        except Exception:  # the client closed: nothing to clean up
            return

    async def anything(request: Request) -> Response:
        body = await request.body()
        return answer(request, size=len(body))

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/api/health", health),
            Route("/api/echo", echo, methods=["POST"]),
            Route("/api/release/{run}/{i:int}", release, methods=["POST"]),
            Route("/api/stream/{run}", stream),
            WebSocketRoute("/api/sessions/{session_id}/ws", websocket),
            WebSocketRoute("/chat", websocket),
            Route("/{path:path}", anything, methods=methods),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="upstream")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.name),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
