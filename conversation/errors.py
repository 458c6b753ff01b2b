"""What conversation refuses, said without HTTP: a code for programs, a message for a person.

Domain code raises these; `conversation/api/errors.py` alone turns them into HTTP statuses,
headers and WebSocket frames, so the same refusal reads the same on every route.
"""

from __future__ import annotations

from typing import Literal

ErrorCode = Literal[
    "invalid",  # the request itself is wrong (too long, empty)
    "unauthorized",  # no credentials at all
    "forbidden",  # a page on another site, or a cookie without the CSRF proof
    "not_found",  # no such session or reply, or the credentials do not grant it
    "conflict",  # the session's state does not allow it now
    "overloaded",  # this process writes as many replies as it may
    "rate_limited",  # a per-client limit that passes with time
    "too_many_sessions",  # limits the client has to make room for
    "session_full",
]


class ConversationError(Exception):
    """A request refused. `retry_after`: seconds after which the same request may pass
    (None: waiting will not help)."""

    def __init__(self, code: ErrorCode, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.retry_after = retry_after


class TurnError(ConversationError):
    """A turn (send, regenerate, edit, continue, resume, cancel) that cannot happen now."""


class AccessDenied(ConversationError):
    """Credentials missing, refused, or from the wrong place."""


class InvalidInput(ConversationError):
    """Input the validation models let through but a setting refuses (a length limit)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid", message)
