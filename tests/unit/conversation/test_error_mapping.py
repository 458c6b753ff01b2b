"""The one mapping from the domain's refusals to HTTP answers and WebSocket frames."""

from __future__ import annotations

from typing import Any, get_args

import orjson
import pytest
from starlette.requests import Request

from conversation.api.errors import STATUSES, error_frame, refused, refused_socket
from conversation.errors import ConversationError, ErrorCode

REQUEST = Request({"type": "http", "method": "GET", "path": "/", "headers": []})


async def answer(exc: ConversationError) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = await refused(REQUEST, exc)
    return response.status_code, orjson.loads(response.body), dict(response.headers)


def test_every_code_has_a_status() -> None:
    assert set(STATUSES) == set(get_args(ErrorCode))


@pytest.mark.parametrize(
    ("code", "retry_after", "status", "body_code", "header"),
    [
        ("invalid", None, 422, "invalid", None),
        ("unauthorized", None, 401, "unauthorized", ("www-authenticate", "Bearer")),
        ("forbidden", None, 403, "forbidden", None),
        ("not_found", None, 404, "not_found", None),
        ("conflict", None, 409, "conflict", None),
        ("overloaded", 1, 503, "unavailable", ("retry-after", "1")),
        ("rate_limited", 30, 429, "rate_limited", ("retry-after", "30")),
        ("too_many_sessions", None, 409, "too_many_sessions", None),
        ("session_full", None, 409, "session_full", None),
    ],
)
async def test_a_refusal_over_http(
    code: ErrorCode,
    retry_after: int | None,
    status: int,
    body_code: str,
    header: tuple[str, str] | None,
) -> None:
    got_status, body, headers = await answer(ConversationError(code, "Why.", retry_after))
    assert (got_status, body) == (status, {"detail": "Why.", "code": body_code})
    if header is not None:
        assert headers[header[0]] == header[1]
    assert ("retry-after" in headers) == (retry_after is not None)


def test_a_refusal_over_a_websocket_keeps_its_code_and_wait() -> None:
    frame = orjson.loads(error_frame(ConversationError("rate_limited", "Wait.", 7)))
    assert frame == {
        "event": "error",
        "id": "0",
        "data": {"code": "rate_limited", "message": "Wait.", "retry_after": 7},
    }
    plain = orjson.loads(error_frame(ConversationError("conflict", "Busy.")))
    assert plain["data"] == {"code": "conflict", "message": "Busy."}


def test_a_websocket_refused_as_it_opens_is_closed_as_a_policy_violation() -> None:
    code, reason = refused_socket(ConversationError("not_found", "x" * 200))
    assert (code, reason) == (1008, "x" * 120)
