"""A client over one of its limits, as HTTP and as a WebSocket frame (the one mapping)."""

from __future__ import annotations

import orjson
from fastapi import Request, status
from fastapi.responses import JSONResponse

from conversation.events import Event
from conversation.limits import LimitExceeded


async def limit_exceeded(_: Request, exc: Exception) -> JSONResponse:
    """429 with Retry-After for a limit that passes with time; else 409: the client has to
    make room (delete chats, start a new one)."""
    assert isinstance(exc, LimitExceeded)
    body = {"detail": exc.message, "code": exc.code}
    if exc.retry_after is None:
        return JSONResponse(body, status_code=status.HTTP_409_CONFLICT)
    return JSONResponse(
        body,
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(exc.retry_after)},
    )


def limit_frame(exc: LimitExceeded) -> str:
    """The `error` frame a WebSocket gets instead (the socket stays open)."""
    data: dict[str, str | int] = {"code": exc.code, "message": exc.message}
    if exc.retry_after is not None:
        data["retry_after"] = exc.retry_after
    return Event("error", 0, orjson.dumps(data)).ws()
