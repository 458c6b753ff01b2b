"""Every error leaves this service as one JSON shape: `{"detail", "code"}`.

`detail` is for a person (the UI shows it); `code` is for programs, which must never depend on
the wording. Validation errors keep FastAPI's list of `{loc, msg, type}` as `detail`, without
the offending input: it is the client's own, and may not even be encodable (a lone surrogate).

The one place where the domain's refusals (`conversation/errors.py`) become HTTP statuses and
headers, WebSocket `error` frames, and the close of a WebSocket that may not open.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from starlette.exceptions import HTTPException

from conversation.errors import ConversationError, ErrorCode
from conversation.events import Event

log = logging.getLogger("conversation")

CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
    507: "storage_full",
}


# A limit the client must make room for is a conflict with what it keeps; one that passes
# with time is 429 with Retry-After.
STATUSES: dict[ErrorCode, int] = {
    "invalid": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "unauthorized": status.HTTP_401_UNAUTHORIZED,
    "forbidden": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "conflict": status.HTTP_409_CONFLICT,
    "overloaded": status.HTTP_503_SERVICE_UNAVAILABLE,
    "rate_limited": status.HTTP_429_TOO_MANY_REQUESTS,
    "too_many_sessions": status.HTTP_409_CONFLICT,
    "session_full": status.HTTP_409_CONFLICT,
}
# Over HTTP the status already says "overloaded"; the body's code is the generic one.
HTTP_CODES: dict[ErrorCode, str] = {"overloaded": "unavailable"}


def code_for(status_code: int) -> str:
    return CODES.get(status_code, "error" if status_code >= 500 else "invalid")


def error_response(
    status_code: int,
    detail: Any,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
) -> JSONResponse:
    body = {"detail": detail, "code": code or code_for(status_code)}
    return JSONResponse(body, status_code=status_code, headers=headers)


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConversationError)
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if exc.code == "unauthorized":
        headers["WWW-Authenticate"] = "Bearer"
    code = HTTP_CODES.get(exc.code, exc.code)
    return error_response(STATUSES[exc.code], exc.message, headers or None, code)


def error_frame(exc: ConversationError) -> str:
    """The `error` frame a WebSocket gets instead: the socket stays open."""
    data: dict[str, str | int] = {"code": exc.code, "message": exc.message}
    if exc.retry_after is not None:
        data["retry_after"] = exc.retry_after
    return Event("error", 0, orjson.dumps(data)).ws()


def refused_socket(exc: ConversationError) -> tuple[int, str]:
    """The close code and reason of a WebSocket refused as it opens (a reason is at most
    123 bytes)."""
    return status.WS_1008_POLICY_VIOLATION, exc.message[:120]


async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, errors)


def storage_full(exc: RedisError) -> bool:
    # Redis at `maxmemory` with `noeviction` refuses writes with an OOM error reply; inside
    # a script it comes back as the script's error, with the OOM text.
    return isinstance(exc, OutOfMemoryError) or (
        isinstance(exc, ResponseError) and "OOM command not allowed" in str(exc)
    )


def redis_failure(exc: RedisError) -> tuple[int, str]:
    """The status and the message for a person when Redis failed a request (logged here)."""
    if storage_full(exc):
        log.error("Redis is full (maxmemory): %s", exc)
        return (
            status.HTTP_507_INSUFFICIENT_STORAGE,
            "The chat store is full right now, so nothing new can be saved; your message was "
            "not stored. Try again later, or delete old chats.",
        )
    log.error("Redis error: %r", exc)
    return (
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "The session store (Redis) is unavailable right now; try again shortly.",
    )


async def redis_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RedisError)
    status_code, message = redis_failure(exc)
    retry = {"Retry-After": "2"} if status_code == status.HTTP_503_SERVICE_UNAVAILABLE else None
    return error_response(status_code, message, headers=retry)


async def internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "The conversation service failed on this request; try again.",
        code="internal_error",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ConversationError, refused)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(RedisError, redis_error)
    app.add_exception_handler(Exception, internal_error)
