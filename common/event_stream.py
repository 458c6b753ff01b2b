"""Stop work the moment the caller disconnects, so the upstream request is cancelled too.

`cancel_on_disconnect` watches the ASGI `receive` channel and cancels the current task when
the client goes away; the cancellation reaches whatever the task awaits (an upstream read,
the local model's queue), whose cleanup then closes the upstream request. Cancellation is
one-shot in asyncio, so that cleanup may await freely.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class ClientDisconnected(Exception):
    """The caller went away; nobody is left to answer."""


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@contextlib.asynccontextmanager
async def cancel_on_disconnect(receive: Receive) -> AsyncIterator[None]:
    """Run the body; if the client disconnects meanwhile, cancel it and raise ClientDisconnected."""
    task = asyncio.current_task()
    assert task is not None
    state = {"finished": False, "disconnected": False}

    async def watch() -> None:
        await _wait_for_disconnect(receive)
        if not state["finished"]:
            state["disconnected"] = True
            task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        yield
        # No await between the body's end and here: a cancel requested by the watcher is
        # always delivered inside the body, where the except below takes it.
        state["finished"] = True
    except asyncio.CancelledError:
        if not state["disconnected"]:
            raise
        task.uncancel()
        raise ClientDisconnected from None
    finally:
        state["finished"] = True
        watcher.cancel()


class EventStreamResponse(Response):
    """Server-sent events from an async iterator of bytes, cancelled on client disconnect.

    Starlette's StreamingResponse (and FastAPI's EventSourceResponse, built on it) leaves
    its iterator for the garbage collector to close when the client disconnects during a
    send; here it is always closed at once, so the upstream request ends with the caller.
    It also spares each stream an anyio task group on the way to the first event.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.body_iterator = body
        self.status_code = status_code
        self.background = background
        self.init_headers(
            {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body_iterator
        try:
            async with cancel_on_disconnect(receive):
                await send(
                    {
                        "type": "http.response.start",
                        "status": self.status_code,
                        "headers": self.raw_headers,
                    }
                )
                async for chunk in body:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (ClientDisconnected, OSError):
            return
        finally:
            await body.aclose()
        if self.background is not None:
            await self.background()
