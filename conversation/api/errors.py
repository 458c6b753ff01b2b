"""Every error leaves this service as one JSON shape: `{"detail", "code"}`.

`detail` is for a person (the UI shows it); `code` is for programs, which must never depend on
the wording. Validation errors keep FastAPI's list of `{loc, msg, type}` as `detail`, without
the offending input: it is the client's own, and may not even be encodable (a lone surrogate).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from starlette.exceptions import HTTPException

from conversation.api.limit_errors import limit_exceeded
from conversation.limits import LimitExceeded

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
    app.add_exception_handler(LimitExceeded, limit_exceeded)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(RedisError, redis_error)
    app.add_exception_handler(Exception, internal_error)
