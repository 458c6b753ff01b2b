"""The floor: the least a Python hop can be, measured beside assistant in the same run.

A bare ASGI app (no framework, no validation, no logging) served by the same uvicorn as the
services (uvloop, httptools, the Procfile's flags), that sends each request's body on to the
upstream with the same aiohttp client assistant uses and streams the answer back chunk by
chunk as it arrives. What assistant adds above this is what its own code costs; what this
adds above going direct is the price of any Python hop on this machine, which is why the
hop targets are stated as multiples of it.

Run: `RELAY_UPSTREAM=http://127.0.0.1:PORT uvicorn bench.relay:create_app --factory ...`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Headers that describe one connection, not the message: each side sets its own.
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"host"}


def create_app() -> App:
    upstream = os.environ["RELAY_UPSTREAM"].rstrip("/")
    client: list[aiohttp.ClientSession] = []

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
                client.append(aiohttp.ClientSession(connector=connector, auto_decompress=False))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await client[0].close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k not in HOP_BY_HOP
        }
        url = upstream + scope["path"]
        async with client[0].request(
            scope["method"], url, data=bytes(body), headers=headers
        ) as answer:
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status,
                    "headers": [
                        (k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in answer.headers.items()
                        if k.lower().encode("latin-1") not in HOP_BY_HOP
                    ],
                }
            )
            async for chunk in answer.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app
